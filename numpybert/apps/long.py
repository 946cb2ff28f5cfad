"""Texts longer than the model's limit: cut them ("truncate") or embed them whole ("chunk").

    model.encode(docs, long="chunk")                       # from Python
    numpybert embed docs.jsonl --out d.npy --long chunk    # a corpus

truncate (the default, and what sentence-transformers does, silently): a text keeps its first
max_seq_length - 2 tokens, then [CLS] ... [SEP]. numpybert counts the texts it cut and says so
(`numpybert embed`'s summary line).

chunk: a text of n > W = max_seq_length - 2 tokens is split into windows of W tokens that
overlap by `stride` tokens (the name and meaning of the `stride` argument of Hugging Face
tokenizers: the number of tokens shared by consecutive windows). Window k covers tokens
[k·(W - stride), k·(W - stride) + W); the last window ends at the text's end. Each window gets
its [CLS] and [SEP] and is embedded exactly as a text is (pooling, then normalization when the
model normalizes). The document vector is the mean of its windows' embeddings weighted by each
window's token count (specials included: what the model read), renormalized when the model
normalizes. sentence-transformers has no such mode (issues 2669, 2268, 2876 ask for it); this is
the recipe its maintainers suggest there. Texts within the limit are embedded as in truncate.

This module holds the token arithmetic (no model); numpybert/apps/batching.py runs the windows.
"""

import numpy as np

from ..errors import InputValueError

LONG_MODES = ("truncate", "chunk")


def check_long(long, stride, max_seq_length: int) -> int:
    """Validate long / stride; returns the overlap in tokens (default: an eighth of a window)."""
    if long not in LONG_MODES:
        raise InputValueError(f"long={long!r}: expected one of {LONG_MODES}")
    size = max_seq_length - 2
    if stride is None:
        return size // 8
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 0 <= stride < size:
        raise InputValueError(f"stride={stride!r}: expected 0 <= stride < {size} (max_seq_length - 2 tokens)")
    return int(stride)


def content_ids(tokenizer, texts: list, settings) -> list:
    """Every token id of each text, no specials and no truncation (lowercased when the settings say)."""
    if settings.do_lower_case:
        texts = [t.lower() for t in texts]
    return [e.ids for e in tokenizer.backend.encode_batch_fast(texts, add_special_tokens=False)]


def token_windows(ids: list, size: int, stride: int) -> list:
    """Windows of `size` tokens, consecutive ones sharing `stride`; the last one ends at the end."""
    step, windows, start = size - stride, [], 0
    while True:
        windows.append(ids[start:start + size])
        if start + size >= len(ids):
            return windows
        start += step


def token_counts(tokenizer, texts: list, settings, long: str, stride: int):
    """(tokens the model reads per text, whether each text is over the limit): the work to do
    (progress, ETA) and how many texts were cut or chunked."""
    size = settings.max_seq_length - 2
    lengths = np.array([len(ids) for ids in content_ids(tokenizer, texts, settings)], dtype=np.int64)
    over = lengths > size
    if long == "truncate":
        return np.minimum(lengths, size) + 2, over
    step = size - stride
    n_windows = np.where(over, -(-(lengths - size) // step) + 1, 1)  # ceil((n - size) / step) + 1
    return lengths + 2 * n_windows + (n_windows - 1) * stride, over  # overlaps are read twice


def window_rows(docs: list, size: int, stride: int, cls_id: int, sep_id: int) -> tuple:
    """Token-id lists over the limit -> (rows: [CLS] window [SEP] id lists, owner: the doc of each row)."""
    rows, owner = [], []
    for d, ids in enumerate(docs):
        for w in token_windows(ids, size, stride):
            rows.append([cls_id, *w, sep_id])
            owner.append(d)
    return rows, np.array(owner)


def weighted_mean(vectors: np.ndarray, rows: list, owner: np.ndarray, n_docs: int) -> np.ndarray:
    """Window embeddings [W, D] -> one vector per document [n_docs, D]: the mean of its windows'
    vectors weighted by each window's token count (specials included: what the model read)."""
    weights = np.array([len(r) for r in rows]).astype(vectors.dtype)  # [W]
    return np.stack([(weights[owner == d] @ vectors[owner == d]) / weights[owner == d].sum()
                     for d in range(n_docs)])  # [W_d] @ [W_d, D] -> [D], per document
