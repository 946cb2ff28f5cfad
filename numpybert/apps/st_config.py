"""A sentence-transformers directory's settings, read once: how `encode` turns texts into vectors.

`SentenceTransformer(dir)` reads `modules.json` (is there a Normalize module?), the Pooling
module's `config.json` (pooling modes, include_prompt), `sentence_bert_config.json`
(`max_seq_length`, `do_lower_case`) and `config_sentence_transformers.json` (`prompts`,
`default_prompt_name`, `similarity_fn_name`); `read_settings` reads the same files into one
`EncodeSettings`. A plain BERT directory (no modules.json) gets sentence-transformers' defaults
for it: mean pooling, not normalized, truncation at the tokenizer's limit.
all-MiniLM-L6-v2: mean, normalized, 256 tokens, cosine.
"""

import dataclasses
import os

from ..errors import ConfigError, InputValueError
from ..loading.config import read_json, read_json_object
from ..util import positive_int
from .pooling import POOLING_MODES, SIMILARITY_FN_NAMES

# sentence-transformers' names -> ours; its legacy boolean keys in the Pooling config.json, in its order
ST_MODE_NAMES = {"cls": "cls", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len",
                 "weightedmean": "weightedmean", "lasttoken": "lasttoken"}
ST_LEGACY_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                  "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
ST_MODULES = ("Transformer", "Pooling", "Normalize")  # the module types numpybert computes


@dataclasses.dataclass(frozen=True)
class EncodeSettings:
    """How texts become vectors. `source` says where the defaults were read from."""
    pooling: tuple  # one or more of POOLING_MODES; several are concatenated, in order
    normalize: bool
    max_seq_length: int  # texts are truncated to this many tokens, [CLS] and [SEP] included
    do_lower_case: bool = False  # sentence-transformers lowercases the text before tokenizing
    source: str = "defaults"
    prompts: tuple = ()  # (name, prompt text) pairs from config_sentence_transformers.json
    default_prompt_name: str | None = None
    similarity_fn_name: str = "cosine"
    include_prompt: bool = True  # Pooling's include_prompt: False leaves the prompt's tokens out of pooling

    def replace(self, pooling=None, normalize=None, max_seq_length=None) -> "EncodeSettings":
        """These settings with the given overrides (None keeps the current value)."""
        changes = {"pooling": check_pooling(pooling) if pooling is not None else None,
                   "normalize": normalize, "max_seq_length": max_seq_length}
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def check_pooling(pooling) -> tuple:
    """A pooling mode or a sequence of them, as a tuple of POOLING_MODES."""
    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    for mode in modes:
        if mode not in POOLING_MODES:
            raise InputValueError(f"pooling={mode!r}: expected one of {POOLING_MODES}")
    if not modes:
        raise InputValueError("pooling is empty: give at least one mode")
    return modes


def check_max_seq_length(value, max_position_embeddings: int) -> int:
    """A max_seq_length the model can take: 2 ([CLS] and [SEP]) to max_position_embeddings."""
    value = positive_int("max_seq_length", value)
    if not 2 <= value <= max_position_embeddings:
        raise InputValueError(f"max_seq_length={value}: expected 2 to max_position_embeddings="
                              f"{max_position_embeddings}")
    return value


def _module_kinds(model_dir) -> dict:
    """modules.json -> {"Pooling": path, "Normalize": path, ...}; refuses modules numpybert lacks."""
    kinds = {}
    path = os.path.join(model_dir, "modules.json")
    modules = read_json(path, "modules.json", ConfigError)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ConfigError(f"{path}: expected a JSON list of modules")
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in ST_MODULES:
            raise ConfigError(f"{path}: module {module.get('type')!r} is not computed by numpybert "
                              f"(it computes {', '.join(ST_MODULES)}); its embeddings would differ")
        kinds[kind] = module.get("path", "")
    return kinds


def _pooling_config(model_dir, kinds: dict) -> tuple:
    """The Pooling module's config.json -> (our mode names, the config): the new `pooling_mode`
    key or the legacy booleans."""
    if "Pooling" not in kinds:
        raise ConfigError(f"{model_dir}/modules.json has no Pooling module, so it defines no sentence embedding")
    config_path = os.path.join(model_dir, kinds["Pooling"], "config.json")
    config = read_json_object(config_path, "Pooling config.json")
    modes = config.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in ST_LEGACY_KEYS.items() if config.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else modes
    ours = tuple(ST_MODE_NAMES.get(m, m) for m in modes)
    unsupported = [m for m in ours if m not in POOLING_MODES]
    if unsupported:
        raise ConfigError(f"{config_path}: pooling mode(s) {unsupported} are not supported "
                          f"(numpybert pools with {POOLING_MODES})")
    return ours, config


def sentence_transformers_pooling(model_dir) -> tuple | None:
    """The pooling a sentence-transformers directory declares (modules.json -> its Pooling
    module's config.json), in numpybert's mode names, e.g. ("mean",); None without modules.json."""
    model_dir = os.fspath(model_dir or "")
    if not os.path.isfile(os.path.join(model_dir, "modules.json")):
        return None
    return _pooling_config(model_dir, _module_kinds(model_dir))[0]


def _default_max_length(model_dir, max_position_embeddings) -> int:
    """As transformers: tokenizer_config.json's model_max_length, capped at max_position_embeddings."""
    path = os.path.join(model_dir, "tokenizer_config.json")
    limit = read_json_object(path, "tokenizer_config.json", absent={}).get("model_max_length")
    return min(int(limit), max_position_embeddings) if isinstance(limit, (int, float)) else max_position_embeddings


def read_settings(model_dir, max_position_embeddings: int) -> EncodeSettings:
    """Defaults of `encode` for a model directory: a sentence-transformers directory's own
    (modules.json, <Pooling>/config.json, sentence_bert_config.json, config_sentence_transformers.json),
    else mean pooling, not normalized, truncation at the tokenizer's limit (what sentence-transformers
    does with a plain BERT checkpoint). Each file is read once."""
    model_dir = os.fspath(model_dir or "")
    max_length = _default_max_length(model_dir, max_position_embeddings)
    if not os.path.isfile(os.path.join(model_dir, "modules.json")):
        return EncodeSettings(("mean",), False, max_length, source="defaults (no modules.json)")
    kinds = _module_kinds(model_dir)
    pooling, pooling_config = _pooling_config(model_dir, kinds)
    st_path = os.path.join(model_dir, "sentence_bert_config.json")
    st_config = read_json_object(st_path, "sentence_bert_config.json", absent={})
    max_length = min(int(st_config.get("max_seq_length") or max_length), max_position_embeddings)
    return EncodeSettings(pooling, "Normalize" in kinds, max_length, bool(st_config.get("do_lower_case")),
                          source=f"{model_dir} (sentence-transformers)",
                          include_prompt=bool(pooling_config.get("include_prompt", True)),
                          **_st_model_config(model_dir))


def gguf_settings(pooling, pooling_type, max_position_embeddings: int, source) -> EncodeSettings:
    """`encode`'s settings for a llama.cpp GGUF: its `{arch}.pooling_type` (mean, cls, last token; none or
    absent: mean), normalized (the GGUF does not record sentence-transformers' Normalize module; llama.cpp's
    server and ollama return unit vectors), at most max_position_embeddings tokens (the file's context_length)."""
    said = f"pooling_type {pooling_type}" if pooling else f"pooling_type {pooling_type!r}: mean"
    return EncodeSettings((pooling or "mean",), True, max_position_embeddings,
                          source=f"{source} (GGUF {said}, normalized as llama.cpp's server)")


def _st_model_config(model_dir) -> dict:
    """config_sentence_transformers.json: prompts, default_prompt_name, similarity_fn_name."""
    path = os.path.join(model_dir, "config_sentence_transformers.json")
    config = read_json_object(path, "config_sentence_transformers.json", absent={})
    prompts = config.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ConfigError(f"{path}: prompts must be an object of strings, got {prompts!r}")
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ConfigError(f"{path}: default_prompt_name {default!r} is not one of the prompts {list(prompts)}")
    similarity = config.get("similarity_fn_name") or "cosine"
    if similarity not in SIMILARITY_FN_NAMES:
        raise ConfigError(f"{path}: similarity_fn_name {similarity!r}: expected one of {SIMILARITY_FN_NAMES}")
    return {"prompts": tuple(prompts.items()), "default_prompt_name": default, "similarity_fn_name": similarity}


def encode_settings(model_dir, config, pooling=None, normalize=None, max_seq_length=None) -> EncodeSettings:
    """The model directory's defaults (`read_settings`) with the caller's overrides, checked."""
    settings = read_settings(model_dir, config.max_length)
    if max_seq_length is not None:
        max_seq_length = check_max_seq_length(max_seq_length, config.max_length)
    return settings.replace(pooling, None if normalize is None else bool(normalize), max_seq_length)
