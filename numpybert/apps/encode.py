"""Sentence embeddings: `model.encode(sentences)` -> [N, D], as `SentenceTransformer.encode`.

    import numpybert
    model = numpybert.load("weights/all-MiniLM-L6-v2")
    emb = model.encode(["A man is playing a guitar.", "Someone plays music."])  # float32 [2, 384]
    model.similarity(emb, emb)                                                 # cosine, [2, 2]
    model.encode([("How old are you?", "I am six.")])                          # a pair: one vector
    model.encode(texts, output_value="token_embeddings")    # one [tokens, H] per text, no padding
    model.encode(texts, precision="ubinary")                # packed bits, as quantize_embeddings

The arguments are sentence-transformers' (same names, same meaning); numpybert's own additions
(pooling override, max_seq_length, window) are keyword-only and named.

A sentence embedding is the encoder's token vectors pooled into one vector per text:
    cls            the [CLS] row of last_hidden_state
    mean           the mean over real tokens (padding excluded)
    max            the element-wise max over real tokens
    mean_sqrt_len  the sum over real tokens divided by sqrt(number of tokens)
    pooler         pooled_output = tanh(W·h_[CLS] + b) (not a sentence-transformers mode)
followed by L2 normalization when the model has a Normalize module (it always runs, as in
sentence-transformers; `normalize_embeddings=True` is an EXTRA normalization on top). The
defaults come from a sentence-transformers directory, as `SentenceTransformer(dir)` reads it:
`modules.json` (is there a Normalize module?), the Pooling module's `config.json`,
`sentence_bert_config.json` (`max_seq_length`, `do_lower_case`) and
`config_sentence_transformers.json` (`prompts`, `default_prompt_name`, `similarity_fn_name`).
all-MiniLM-L6-v2: mean, normalized, 256 tokens, cosine.

Batching: texts are taken in windows of WINDOW, each window is sorted by token count (longest
first) and cut into batches of at most batch_size texts and max_batch_tokens token positions
(a memory budget), so a batch holds texts of similar length; results come back in input order.
Each batch runs with skip_padding=True: only real tokens are computed, each text attending over
its own tokens (the same values as HF's padded batch at real tokens). A text's embedding
depends only on its window, batch_size and max_batch_tokens, so a corpus cut into whole windows
(numpybert embed, numpybert.Embedder) gives exactly the same numbers as one `encode` call.
"""

import dataclasses
import os
import warnings

import numpy as np

from ..errors import ConfigError, InputTypeError, InputValueError
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
# Token positions (batch rows × the batch's longest text) per forward: bounds a batch's memory
# whatever batch_size is. The engine's workspaces take 4·(4H + max(3H, I)) bytes per token:
# 16384 tokens are ~200 MB for MiniLM (H 384), ~400 MB for bert-base (H 768). The default
# batch_size 32 reaches it only at 512 tokens.
MAX_BATCH_TOKENS = 16384
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's eps, as sentence-transformers' Normalize
OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)  # sentence-transformers' output_value
PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")  # sentence-transformers' ALLOWED_PRECISIONS
SIMILARITY_FN_NAMES = ("cosine", "dot", "euclidean", "manhattan")  # SentenceTransformer.similarity_fn_name


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
    pooling_config = read_json_object(os.path.join(model_dir, kinds["Pooling"], "config.json"), "Pooling config.json")
    return EncodeSettings(pooling, "Normalize" in kinds, max_length, bool(st_config.get("do_lower_case")),
                          source=f"{model_dir} (sentence-transformers)",
                          include_prompt=bool(pooling_config.get("include_prompt", True)),
                          **_st_model_config(model_dir))


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


def forward_batch(model, batch: dict, settings: EncodeSettings, prompt_length: int = 0):
    """A tokenized batch -> (sentence embeddings [B, len(pooling)·H], last_hidden_state [B, T, H]),
    in the model's dtype. The model's own Normalize module runs here (when it has one), as in
    sentence-transformers; `prompt_length` > 0 with include_prompt=False leaves the prompt's
    first tokens ([CLS] and the prompt) out of the pooling, as sentence-transformers' Pooling."""
    out = model(**batch, skip_padding=True)  # real tokens only: pooling never reads padded positions
    pooled = out.pooler_output if "pooler" in settings.pooling else None  # refuses when absent
    mask = batch["attention_mask"]
    if prompt_length and not settings.include_prompt:
        mask = mask.copy()
        mask[:, :prompt_length] = 0  # right padding: the prompt is the first tokens of every row
    vectors = [pool(out.last_hidden_state, mask, mode, pooled) for mode in settings.pooling]
    x = vectors[0] if len(vectors) == 1 else np.concatenate(vectors, axis=-1)
    return (l2_normalize(x) if settings.normalize else x), out.last_hidden_state


def embed_batch(model, batch: dict, settings: EncodeSettings):
    """A tokenized batch -> sentence embeddings [B, len(pooling)·H] in the model's dtype."""
    return forward_batch(model, batch, settings)[0]


# ----------------------------------------------------------------------------- texts in, vectors out

def length_sorted_batches(lengths, batch_size: int, max_batch_tokens: int = MAX_BATCH_TOKENS) -> list:
    """Row indices in batches, longest texts first (a stable sort, so ties keep input order):
    at most batch_size texts, and at most max_batch_tokens token positions (texts × the first,
    longest, text's length; a longer text alone still gets its own batch)."""
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        rows = min(batch_size, max(1, max_batch_tokens // max(1, int(lengths[order[start]]))))
        batches.append(order[start:start + rows])
        start += rows
    return batches


def tokenize_texts(tokenizer, texts: list, settings: EncodeSettings, pairs: list | None = None) -> dict:
    """Texts (and their pairs) as the model sees them: lowercased when the settings say so, cut at
    max_seq_length (longest_first for pairs), right-padded to the longest. The attention mask's
    row sums are the token counts."""
    if settings.do_lower_case:
        texts = [t.lower() for t in texts]
        pairs = None if pairs is None else [t.lower() for t in pairs]
    return tokenizer(texts, pairs, max_length=settings.max_seq_length, truncation=True)


def run_window(model, texts: list, settings: EncodeSettings, batch_size: int = 32, pairs: list | None = None,
               prompt_length: int = 0, max_batch_tokens: int = MAX_BATCH_TOKENS):
    """Tokenize one window of texts, sort by token count, and yield per batch
    (rows, batch, sentence embeddings [b, D], last_hidden_state [b, T, H]); rows index the window."""
    tokens = tokenize_texts(model.tokenizer, texts, settings, pairs)
    lengths = tokens["attention_mask"].sum(axis=1)
    for rows in length_sorted_batches(lengths, batch_size, max_batch_tokens):
        width = int(lengths[rows].max())  # right padding: the columns past the longest row are all padding
        batch = {key: value[rows, :width] for key, value in tokens.items()}
        sentence, hidden = forward_batch(model, batch, settings, prompt_length)
        yield rows, batch, sentence, hidden


def embed_window(model, texts: list, settings: EncodeSettings, batch_size: int = 32, on_batch=None,
                 pairs: list | None = None, prompt_length: int = 0, max_batch_tokens: int = MAX_BATCH_TOKENS):
    """Embed one window of texts: tokenize, sort by token count, run batches, return [n, D] in input order.
    `on_batch(k)` is called after each batch of k texts (progress bars)."""
    result = None
    for rows, _, vectors, _ in run_window(model, texts, settings, batch_size, pairs, prompt_length, max_batch_tokens):
        if result is None:
            result = np.empty((len(texts), vectors.shape[1]), dtype=vectors.dtype)
        result[rows] = vectors
        if on_batch is not None:
            on_batch(len(rows))
    return result


def encode(model, sentences, prompt_name=None, prompt=None, batch_size: int = 32, show_progress_bar=None,
           output_value="sentence_embedding", precision="float32", convert_to_numpy: bool = True,
           convert_to_tensor: bool = False, device=None, normalize_embeddings: bool = False, truncate_dim=None,
           *, pooling=None, normalize=None, max_seq_length=None, window: int = WINDOW, long: str = "truncate",
           stride=None, max_batch_tokens: int = MAX_BATCH_TOKENS):
    """`SentenceTransformer.encode`, same arguments and meaning, in NumPy.

    sentences: a str (-> one result), or a list of str, or a list of pairs (tuples/lists of two str:
        "[CLS] a [SEP] b [SEP]", one embedding per pair).
    prompt / prompt_name: text put before every sentence (the first of a pair); prompt_name picks one of
        the model's `prompts` (config_sentence_transformers.json); with neither, its default_prompt_name.
    output_value: "sentence_embedding" -> [N, D]; "token_embeddings" -> a list of [tokens_i, H] arrays
        (padding removed); None -> a list of dicts per text (input_ids, attention_mask, token_type_ids,
        token_embeddings, sentence_embedding), each without padding.
    precision: "float32" | "int8" | "uint8" | "binary" | "ubinary", as sentence-transformers'
        `quantize_embeddings` (int8/uint8 take per-dimension ranges from these embeddings, so they need
        at least two; binary packs the signs into D/8 bytes).
    normalize_embeddings: an EXTRA L2 normalization after the model's own modules (a model with a
        Normalize module, such as all-MiniLM-L6-v2, returns unit vectors either way).
    truncate_dim: keep the first truncate_dim dimensions (before normalize_embeddings, as sentence-transformers).
    convert_to_numpy=False: a list of 1-D arrays. convert_to_tensor=True: an error (numpybert has no torch).
    device: None or "cpu". show_progress_bar: a tqdm bar over texts (needs the `cli` extra).

    numpybert's own, keyword-only: pooling (override the model's pooling modes, POOLING_MODES),
    normalize (True/False: run or skip the model's Normalize module, as Embedder and `--normalize`;
    None, the default: the model's modules.json decides, as sentence-transformers, which has no such switch),
    max_seq_length (override model.max_seq_length for this call), window (texts sorted together),
    long: "truncate" (sentence-transformers' behaviour) cuts texts at max_seq_length; "chunk" embeds a
    longer text as the weighted mean of overlapping windows, `stride` tokens shared (apps/long.py;
    sentence embeddings of single texts only).
    Results are in the model's dtype (float32 unless loaded with dtype="float64").
    """
    _check_encode_options(output_value, precision, convert_to_tensor, device, truncate_dim)
    limit = max_seq_length if max_seq_length is not None else getattr(model, "max_seq_length", None)
    settings = encode_settings(model.model_dir, model.config, pooling, normalize, limit)
    single = isinstance(sentences, str)
    texts, pairs = split_pairs([sentences] if single else sentences)
    prompt = resolve_prompt(settings, prompt, prompt_name)
    prompt_length = 0
    if prompt:
        texts = [prompt + t for t in texts]
        prompt_length = len(tokenize_texts(model.tokenizer, [prompt], settings)["input_ids"][0]) - 1  # minus [SEP]
    with progress_bar(show_progress_bar, len(texts)) as bar:
        results = _encode_texts(model, texts, pairs, settings, positive_int("batch_size", batch_size),
                                positive_int("window", window), output_value, prompt_length, bar.update,
                                long, stride, positive_int("max_batch_tokens", max_batch_tokens))
    if output_value == "sentence_embedding":
        results = _finish_sentence_embeddings(results, truncate_dim, normalize_embeddings, precision)
        if not convert_to_numpy:
            results = list(results)
    elif output_value == "token_embeddings":
        results = quantize_embeddings(results, precision) if precision != "float32" else results
    else:
        for item in results:
            if truncate_dim is not None:
                item["sentence_embedding"] = item["sentence_embedding"][:truncate_dim]
    return results[0] if single else results


def _encode_texts(model, texts, pairs, settings, batch_size, window, output_value, prompt_length, on_batch,
                  long="truncate", stride=None, max_batch_tokens: int = MAX_BATCH_TOKENS):
    """Per window, run the batches and gather: sentence embeddings [N, D], or per-text token
    embeddings [tokens_i, H], or per-text dicts (output_value None); in input order."""
    if long != "truncate":  # texts over max_seq_length embedded whole, in windows (numpybert/apps/long.py)
        if pairs is not None or output_value != "sentence_embedding":
            raise InputValueError(f"long={long!r} embeds single texts into sentence embeddings; pairs and "
                                  f"output_value={output_value!r} take long='truncate'")
        return embed_texts(model, texts, settings, batch_size, window, on_batch, long, stride, max_batch_tokens)
    if output_value == "sentence_embedding":
        parts = [embed_window(model, texts[i:i + window], settings, batch_size, on_batch,
                              None if pairs is None else pairs[i:i + window], prompt_length, max_batch_tokens)
                 for i in range(0, len(texts), window)]
        if not parts:
            return np.empty((0, model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
        return np.concatenate(parts)
    results = [None] * len(texts)
    for start in range(0, len(texts), window):
        window_pairs = None if pairs is None else pairs[start:start + window]
        for rows, batch, sentence, hidden in run_window(model, texts[start:start + window], settings, batch_size,
                                                        window_pairs, prompt_length, max_batch_tokens):
            for j, row in enumerate(rows):
                n = int(batch["attention_mask"][j].sum())  # right padding: the first n tokens are real
                if output_value == "token_embeddings":
                    results[start + row] = hidden[j, :n]
                else:
                    results[start + row] = {**{k: v[j, :n] for k, v in batch.items()},
                                            "token_embeddings": hidden[j, :n], "sentence_embedding": sentence[j]}
            on_batch(len(rows))
    return results


def _finish_sentence_embeddings(x, truncate_dim, normalize_embeddings, precision):
    """sentence-transformers' order after the modules: truncate_dim, normalize_embeddings, precision."""
    if truncate_dim is not None:
        x = x[:, :truncate_dim]
    if normalize_embeddings:
        x = l2_normalize(x)
    if precision != "float32" and len(x):
        x = quantize_embeddings(x, precision)
    return x


def _check_encode_options(output_value, precision, convert_to_tensor, device, truncate_dim):
    if output_value not in OUTPUT_VALUES:
        raise InputValueError(f"output_value={output_value!r}: expected one of {OUTPUT_VALUES}")
    if precision not in PRECISIONS:
        raise InputValueError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if convert_to_tensor:
        raise InputValueError("convert_to_tensor=True: numpybert returns NumPy arrays and has no torch; "
                              "leave convert_to_numpy=True (the default)")
    if device not in (None, "cpu"):
        raise InputValueError(f"device={device!r}: numpybert computes on the CPU only (device=None or 'cpu')")
    if truncate_dim is not None:
        positive_int("truncate_dim", truncate_dim)


def split_pairs(items) -> tuple:
    """sentences as sentence-transformers takes them -> (texts, pairs or None): all plain texts, or all
    pairs (a tuple/list of two texts). A NumPy array of str is a list of texts."""
    if isinstance(items, np.ndarray) and items.ndim == 1:
        items = items.tolist()
    if not isinstance(items, (list, tuple)):
        raise InputTypeError(f"sentences must be a str, a list of str or a list of (text, text) pairs, "
                             f"got {type(items).__name__}")
    items = list(items)
    is_pair = [isinstance(item, (tuple, list)) for item in items]
    if not any(is_pair):
        return [check_text(t, f"sentences[{i}]") for i, t in enumerate(items)], None
    if not all(is_pair):
        i = is_pair.index(False)
        raise InputTypeError(f"sentences[{i}] is a {type(items[i]).__name__} but sentences[{is_pair.index(True)}] "
                             "is a pair; pass all texts or all (text, text) pairs")
    for i, item in enumerate(items):
        if len(item) != 2:
            raise InputValueError(f"sentences[{i}] has {len(item)} texts; a pair is (text, text)")
    return ([check_text(a, f"sentences[{i}][0]") for i, (a, _) in enumerate(items)],
            [check_text(b, f"sentences[{i}][1]") for i, (_, b) in enumerate(items)])


def resolve_prompt(settings: EncodeSettings, prompt=None, prompt_name=None):
    """The prompt to put before each text, as sentence-transformers picks it: prompt, else
    prompts[prompt_name], else the default prompt (if the model names one), else None."""
    prompts = dict(settings.prompts)
    if prompt is not None:
        if prompt_name is not None:
            warnings.warn("Provide either a `prompt`, a `prompt_name`, or neither, but not both. "
                          "Ignoring the `prompt_name` in favor of `prompt`.", UserWarning, stacklevel=3)
        if not isinstance(prompt, str):
            raise InputTypeError(f"prompt must be a str, got {type(prompt).__name__}")
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise InputValueError(f"prompt_name={prompt_name!r} is not one of the model's prompts "
                                  f"{list(prompts)} (config_sentence_transformers.json)")
        return prompts[prompt_name]
    return prompts.get(settings.default_prompt_name) if settings.default_prompt_name else None


# ----------------------------------------------------------------------------- precision, similarity

def quantize_embeddings(embeddings, precision: str):
    """sentence-transformers' `quantize_embeddings` without calibration data: int8/uint8 map each
    dimension's [min, max] over these embeddings onto 256 buckets; binary/ubinary pack the signs
    (> 0) into bits. A list of [tokens, H] arrays shares one set of ranges."""
    if isinstance(embeddings, list):
        if not embeddings:
            return []
        ranges = _quantization_ranges(np.concatenate(embeddings), precision) if precision.endswith("int8") else None
        return [_quantize(e, precision, ranges) for e in embeddings]
    ranges = _quantization_ranges(embeddings, precision) if precision.endswith("int8") else None
    return _quantize(embeddings, precision, ranges)


def _quantization_ranges(x, precision):
    if x.ndim == 1 or x.shape[0] == 1:
        raise InputValueError(f"precision={precision!r} computes its per-dimension ranges from the embeddings "
                              "themselves, so it needs at least two (sentence-transformers refuses one too); "
                              "encode more texts, or quantize with ranges from a representative set")
    return np.vstack((x.min(axis=0), x.max(axis=0)))  # [2, D]


def _quantize(x, precision, ranges):
    if precision.endswith("int8"):
        ranges = ranges.astype(np.float32, copy=False)
        starts = ranges[0]
        steps = (ranges[1] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        q = np.clip(np.floor((x - starts) / steps), 0, 255)
        return q.astype(np.uint8) if precision == "uint8" else (q - 128).astype(np.int8)
    bits = np.packbits(x > 0, axis=-1)  # [N, D] -> [N, D/8]
    return bits if precision == "ubinary" else (bits - 128).astype(np.int8)


def _as_batch(x, name):
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]  # [D] -> [1, D]
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise InputValueError(f"{name} must be embeddings [N, D] or [D], got shape {x.shape} ({x.dtype})")
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def similarity(a, b, fn_name: str = "cosine"):
    """All-pairs scores [N, M] between embeddings a [N, D] and b [M, D], as SentenceTransformer.similarity:
    cosine, dot, or the negated euclidean / manhattan distance."""
    a, b = _as_batch(a, "embeddings1"), _as_batch(b, "embeddings2")
    if fn_name == "cosine":
        return l2_normalize(a) @ l2_normalize(b).T  # [N, D] @ [D, M] -> [N, M]
    if fn_name == "dot":
        return a @ b.T
    if fn_name == "euclidean":
        return -np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))  # [N, 1, D] - [1, M, D] -> [N, M]
    if fn_name == "manhattan":
        return -np.abs(a[:, None, :] - b[None, :, :]).sum(axis=-1)
    raise InputValueError(f"similarity_fn_name={fn_name!r}: expected one of {SIMILARITY_FN_NAMES}")


def similarity_pairwise(a, b, fn_name: str = "cosine"):
    """Scores [N] between a[i] and b[i], as SentenceTransformer.similarity_pairwise."""
    a, b = _as_batch(a, "embeddings1"), _as_batch(b, "embeddings2")
    if a.shape != b.shape:
        raise InputValueError(f"embeddings1 has shape {a.shape} and embeddings2 {b.shape}; pairwise needs the same")
    if fn_name == "cosine":
        return (l2_normalize(a) * l2_normalize(b)).sum(axis=-1)
    if fn_name == "dot":
        return (a * b).sum(axis=-1)
    if fn_name == "euclidean":
        return -np.sqrt(((a - b) ** 2).sum(axis=-1))
    if fn_name == "manhattan":
        return -np.abs(a - b).sum(axis=-1)
    raise InputValueError(f"similarity_fn_name={fn_name!r}: expected one of {SIMILARITY_FN_NAMES}")


def embed_texts(model, texts, settings: EncodeSettings, batch_size: int = 32, window: int = WINDOW, on_batch=None,
                long: str = "truncate", stride=None, max_batch_tokens: int = MAX_BATCH_TOKENS):
    """`encode` with explicit settings: texts in consecutive windows of `window`, each embedded by
    `embed_window`; [N, D] in input order. The core shared by encode, Embedder and numpybert embed."""
    batch_size, window = positive_int("batch_size", batch_size), positive_int("window", window)
    max_batch_tokens = positive_int("max_batch_tokens", max_batch_tokens)
    texts = [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
    if long != "truncate":  # texts over max_seq_length embedded whole, in windows (numpybert/apps/long.py)
        from .long import check_long, embed_texts_long
        stride = check_long(long, stride, settings.max_seq_length)
        return embed_texts_long(model, texts, settings, batch_size, window, stride, on_batch)
    parts = [embed_window(model, texts[i:i + window], settings, batch_size, on_batch,
                          max_batch_tokens=max_batch_tokens)
             for i in range(0, len(texts), window)]
    if not parts:
        return np.empty((0, model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
    return np.concatenate(parts)


def encode_settings(model_dir, config, pooling=None, normalize=None, max_seq_length=None) -> EncodeSettings:
    """The model directory's defaults (`read_settings`) with the caller's overrides, checked."""
    settings = read_settings(model_dir, config.max_length)
    if max_seq_length is not None:
        max_seq_length = positive_int("max_seq_length", max_seq_length)
        if not 2 <= max_seq_length <= config.max_length:
            raise InputValueError(f"max_seq_length={max_seq_length}: expected 2 to max_position_embeddings="
                                  f"{config.max_length}")
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
