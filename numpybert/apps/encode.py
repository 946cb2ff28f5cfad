"""Sentence embeddings: `encode(model, texts)` -> [N, H], as sentence-transformers' `encode`.

    import numpybert
    model = numpybert.load("weights/all-MiniLM-L6-v2")
    emb = model.encode(["A man is playing a guitar.", "Someone plays music."])  # float32 [2, 384]
    emb @ emb.T                                                                # cosine (normalized)

A sentence embedding is the encoder's token vectors pooled into one vector per text:
    cls            the [CLS] row of last_hidden_state
    mean           the mean over real tokens (padding excluded)
    max            the element-wise max over real tokens
    mean_sqrt_len  the sum over real tokens divided by sqrt(number of tokens)
    pooler         pooled_output = tanh(W·h_[CLS] + b) (not a sentence-transformers mode)
optionally followed by L2 normalization. The defaults come from a sentence-transformers
directory, as `SentenceTransformer(dir)` reads it: `modules.json` (is there a Normalize
module?), the Pooling module's `config.json`, and `sentence_bert_config.json`
(`max_seq_length`, `do_lower_case`). all-MiniLM-L6-v2: mean, normalized, 256 tokens.

Batching: texts are taken in windows of WINDOW, each window is sorted by token count (longest
first) and cut into batches, so a batch holds texts of similar length and little padding;
results come back in input order. A text's embedding depends only on its window and the
batch size, so a corpus cut into whole windows (numpybert embed, numpybert.Embedder) gives
exactly the same numbers as one `encode` call.
"""

import dataclasses
import os

import numpy as np

from ..errors import ConfigError, InputValueError
from ..loading.config import read_json, read_json_object
from ..text.inputs import check_text
from ..util import positive_int

POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len", "pooler")
# sentence-transformers' names -> ours; its legacy boolean keys in the Pooling config.json, in its order
ST_MODE_NAMES = {"cls": "cls", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len",
                 "weightedmean": "weightedmean", "lasttoken": "lasttoken"}
ST_LEGACY_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                  "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
ST_MODULES = ("Transformer", "Pooling", "Normalize")  # the module types numpybert computes
WINDOW = 4096  # texts sorted together by length: bounds memory; padding ~3% over the real tokens
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's eps, as sentence-transformers' Normalize


@dataclasses.dataclass(frozen=True)
class EncodeSettings:
    """How texts become vectors. `source` says where the defaults were read from."""
    pooling: tuple  # one or more of POOLING_MODES; several are concatenated, in order
    normalize: bool
    max_seq_length: int  # texts are truncated to this many tokens, [CLS] and [SEP] included
    do_lower_case: bool = False  # sentence-transformers lowercases the text before tokenizing
    source: str = "defaults"

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


# ----------------------------------------------------------------------------- reading a directory

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


def _st_pooling(config_path) -> tuple:
    """The Pooling module's config.json -> our mode names (new `pooling_mode` key or legacy booleans)."""
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
    return ours


def sentence_transformers_pooling(model_dir) -> tuple | None:
    """The pooling a sentence-transformers directory declares (modules.json -> its Pooling
    module's config.json), in numpybert's mode names, e.g. ("mean",); None without modules.json."""
    model_dir = os.fspath(model_dir or "")
    if not os.path.isfile(os.path.join(model_dir, "modules.json")):
        return None
    kinds = _module_kinds(model_dir)
    if "Pooling" not in kinds:
        raise ConfigError(f"{model_dir}/modules.json has no Pooling module, so it defines no sentence embedding")
    return _st_pooling(os.path.join(model_dir, kinds["Pooling"], "config.json"))


def _default_max_length(model_dir, max_position_embeddings) -> int:
    """As transformers: tokenizer_config.json's model_max_length, capped at max_position_embeddings."""
    path = os.path.join(model_dir, "tokenizer_config.json")
    limit = read_json_object(path, "tokenizer_config.json", absent={}).get("model_max_length")
    return min(int(limit), max_position_embeddings) if isinstance(limit, (int, float)) else max_position_embeddings


def read_settings(model_dir, max_position_embeddings: int) -> EncodeSettings:
    """Defaults of `encode` for a model directory: a sentence-transformers directory's own
    (modules.json, <Pooling>/config.json, sentence_bert_config.json), else mean pooling,
    not normalized, truncation at the tokenizer's limit (what sentence-transformers does
    with a plain BERT checkpoint)."""
    model_dir = os.fspath(model_dir or "")
    max_length = _default_max_length(model_dir, max_position_embeddings)
    pooling = sentence_transformers_pooling(model_dir)
    if pooling is None:
        return EncodeSettings(("mean",), False, max_length, source="defaults (no modules.json)")
    kinds = _module_kinds(model_dir)
    st_path = os.path.join(model_dir, "sentence_bert_config.json")
    st_config = read_json_object(st_path, "sentence_bert_config.json", absent={})
    max_length = min(int(st_config.get("max_seq_length") or max_length), max_position_embeddings)
    return EncodeSettings(pooling, "Normalize" in kinds, max_length, bool(st_config.get("do_lower_case")),
                          source=f"{model_dir} (sentence-transformers)")


# ----------------------------------------------------------------------------- pooling (the math)

def pool(last_hidden_state, attention_mask, mode: str, pooler_output=None):
    """One sentence vector per row [B, H] from token vectors [B, T, H] and the 0/1 mask [B, T],
    as sentence-transformers' Pooling module computes it (right padding assumed)."""
    if mode == "cls":
        return last_hidden_state[:, 0]
    if mode == "pooler":
        return pooler_output
    mask = attention_mask.astype(last_hidden_state.dtype)  # [B, T]
    if mode == "max":
        return np.where(mask[:, :, None] > 0, last_hidden_state, -np.inf).max(axis=1)  # [B, T, H] -> [B, H]
    summed = (mask[:, None, :] @ last_hidden_state)[:, 0]  # [B, 1, T] @ [B, T, H] -> [B, H]: sum of real tokens
    count = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)  # [B, 1]; the clamp is sentence-transformers'
    return summed / (count if mode == "mean" else np.sqrt(count))


def l2_normalize(x):
    """Rows scaled to unit length: x / max(‖x‖, 1e-12), as torch.nn.functional.normalize."""
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return x / np.maximum(norm, NORMALIZE_EPS)


def embed_batch(model, batch: dict, settings: EncodeSettings):
    """A tokenized batch -> sentence embeddings [B, len(pooling)·H] in the model's dtype."""
    out = model(**batch)
    pooled = out.pooler_output if "pooler" in settings.pooling else None  # refuses when absent
    vectors = [pool(out.last_hidden_state, batch["attention_mask"], mode, pooled) for mode in settings.pooling]
    x = vectors[0] if len(vectors) == 1 else np.concatenate(vectors, axis=-1)
    return l2_normalize(x) if settings.normalize else x


# ----------------------------------------------------------------------------- texts in, vectors out

def length_sorted_batches(lengths, batch_size: int) -> list:
    """Row indices in batches of batch_size, longest texts first (a stable sort, so ties keep
    input order): similar lengths share a batch, so little padding is computed."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def tokenize_texts(tokenizer, texts: list, settings: EncodeSettings) -> dict:
    """Texts as the model sees them: lowercased when the settings say so, cut at max_seq_length,
    right-padded to the longest. The attention mask's row sums are the token counts."""
    if settings.do_lower_case:
        texts = [t.lower() for t in texts]
    return tokenizer(texts, max_length=settings.max_seq_length, truncation=True)


def embed_window(model, texts: list, settings: EncodeSettings, batch_size: int = 32, on_batch=None):
    """Embed one window of texts: tokenize, sort by token count, run batches, return [n, D] in input order.
    `on_batch(k)` is called after each batch of k texts (progress bars)."""
    tokens = tokenize_texts(model.tokenizer, texts, settings)
    lengths = tokens["attention_mask"].sum(axis=1)
    result = None
    for rows in length_sorted_batches(lengths, batch_size):
        width = int(lengths[rows].max())  # right padding: the columns past the longest row are all padding
        batch = {key: value[rows, :width] for key, value in tokens.items()}
        vectors = embed_batch(model, batch, settings)
        if result is None:
            result = np.empty((len(texts), vectors.shape[1]), dtype=vectors.dtype)
        result[rows] = vectors
        if on_batch is not None:
            on_batch(len(rows))
    return result


def encode(model, texts, batch_size: int = 32, pooling=None, normalize=None, show_progress_bar=None,
           max_seq_length=None, window: int = WINDOW, long: str = "truncate", stride=None):
    """Sentence embeddings [N, D] (D = H per pooling mode) in the model's dtype (float32 by default),
    like `SentenceTransformer.encode`. A single str gives one vector [D].

    pooling, normalize, max_seq_length: None takes the model directory's defaults (`read_settings`).
    show_progress_bar: a tqdm bar over texts on stderr (needs the `cli` extra: pip install tqdm).
    long: "truncate" (sentence-transformers' behaviour) cuts texts at max_seq_length; "chunk" embeds
    a longer text as the weighted mean of overlapping windows, `stride` tokens shared (apps/long.py).
    """
    settings = encode_settings(model.model_dir, model.config, pooling, normalize, max_seq_length)
    single = isinstance(texts, str)
    texts = [texts] if single else texts
    with progress_bar(show_progress_bar, len(texts)) as bar:
        result = embed_texts(model, texts, settings, batch_size, window, bar.update, long, stride)
    return result[0] if single else result


def embed_texts(model, texts, settings: EncodeSettings, batch_size: int = 32, window: int = WINDOW, on_batch=None,
                long: str = "truncate", stride=None):
    """`encode` with explicit settings: texts in consecutive windows of `window`, each embedded by
    `embed_window`; [N, D] in input order. The core shared by encode, Embedder and numpybert embed."""
    batch_size, window = positive_int("batch_size", batch_size), positive_int("window", window)
    texts = [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
    if long != "truncate":  # texts over max_seq_length embedded whole, in windows (numpybert/apps/long.py)
        from .long import check_long, embed_texts_long
        stride = check_long(long, stride, settings.max_seq_length)
        return embed_texts_long(model, texts, settings, batch_size, window, stride, on_batch)
    parts = [embed_window(model, texts[i:i + window], settings, batch_size, on_batch)
             for i in range(0, len(texts), window)]
    if not parts:
        return np.empty((0, model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
    return np.concatenate(parts)


def encode_settings(model_dir, config, pooling=None, normalize=None, max_seq_length=None) -> EncodeSettings:
    """The model directory's defaults (`read_settings`) with the caller's overrides, checked."""
    settings = read_settings(model_dir, config.max_position_embeddings)
    if max_seq_length is not None:
        max_seq_length = positive_int("max_seq_length", max_seq_length)
        if not 2 <= max_seq_length <= config.max_position_embeddings:
            raise InputValueError(f"max_seq_length={max_seq_length}: expected 2 to max_position_embeddings="
                                  f"{config.max_position_embeddings}")
    return settings.replace(pooling, None if normalize is None else bool(normalize), max_seq_length)




class _NoBar:
    def update(self, n=1):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(enabled, total: int, **kwargs):
    """A tqdm bar over `total` texts on stderr, or a no-op when not enabled (None means off)."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        raise ConfigError("show_progress_bar needs tqdm: pip install 'numpybert[cli]'") from None
    return tqdm(total=total, unit="text", **kwargs)
