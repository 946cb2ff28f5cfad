"""The math of sentence embeddings: token vectors pooled into one vector per text, unit length,
similarity between vectors and their quantization, as sentence-transformers computes them.

    cls            the [CLS] row of last_hidden_state
    mean           the mean over real tokens (padding excluded)
    max            the element-wise max over real tokens
    mean_sqrt_len  the sum over real tokens divided by sqrt(number of tokens)
    pooler         pooled_output = tanh(W·h_[CLS] + b) (not a sentence-transformers mode)

No files and no model here: numpybert/apps/st_config.py reads which modes a model uses,
batching.py runs the model, encode.py is `model.encode`; audit/onnx.py pools a graph's outputs here too.
"""

import numpy as np

from ..errors import InputValueError

POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len", "pooler")
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's eps, as sentence-transformers' Normalize
SIMILARITY_FN_NAMES = ("cosine", "dot", "euclidean", "manhattan")  # SentenceTransformer.similarity_fn_name


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


def _as_batches(a, b, same_rows: bool = False) -> tuple:
    """Both embeddings as [N, D] and [M, D] of one width D (and N == M for pairwise scores)."""
    a, b = _as_batch(a, "embeddings1"), _as_batch(b, "embeddings2")
    if a.shape[1] != b.shape[1] or (same_rows and a.shape != b.shape):
        need = "the same shape" if same_rows else "the same width D"
        raise InputValueError(f"embeddings1 has shape {a.shape} and embeddings2 {b.shape}; "
                              f"{'pairwise scores' if same_rows else 'similarity'} needs {need}")
    return a, b


def similarity(a, b, fn_name: str = "cosine"):
    """All-pairs scores [N, M] between embeddings a [N, D] and b [M, D], as SentenceTransformer.similarity:
    cosine, dot, or the negated euclidean / manhattan distance."""
    a, b = _as_batches(a, b)
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
    a, b = _as_batches(a, b, same_rows=True)
    if fn_name == "cosine":
        return (l2_normalize(a) * l2_normalize(b)).sum(axis=-1)
    if fn_name == "dot":
        return (a * b).sum(axis=-1)
    if fn_name == "euclidean":
        return -np.sqrt(((a - b) ** 2).sum(axis=-1))
    if fn_name == "manhattan":
        return -np.abs(a - b).sum(axis=-1)
    raise InputValueError(f"similarity_fn_name={fn_name!r}: expected one of {SIMILARITY_FN_NAMES}")


