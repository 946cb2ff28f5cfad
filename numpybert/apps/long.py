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
"""

import numpy as np

from .encode import embed_batch, embed_window, l2_normalize, length_sorted_batches

LONG_MODES = ("truncate", "chunk")


def check_long(long, stride, max_seq_length: int) -> int:
    """Validate long / stride; returns the overlap in tokens (default: an eighth of a window)."""
    from ..errors import InputValueError
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


def embed_long(model, texts: list, settings, batch_size: int, stride: int, on_batch=None):
    """Embed one window of texts with long="chunk" -> [n, D] in input order."""
    size = settings.max_seq_length - 2
    ids = content_ids(model.tokenizer, texts, settings)
    short = [i for i, x in enumerate(ids) if len(x) <= size]
    long_rows = [i for i, x in enumerate(ids) if len(x) > size]
    parts = {}
    if short:
        parts.update(zip(short, embed_window(model, [texts[i] for i in short], settings, batch_size, on_batch)))
    if long_rows:
        parts.update(zip(long_rows, chunked_vectors(model, [ids[i] for i in long_rows], settings, batch_size,
                                                    stride)))
        if on_batch is not None:
            on_batch(len(long_rows))
    if not parts:
        return np.empty((0, model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
    return np.stack([parts[i] for i in range(len(texts))])


def chunked_vectors(model, docs: list, settings, batch_size: int, stride: int) -> np.ndarray:
    """Token-id lists over the limit -> one vector each: the token-count-weighted mean of the
    embeddings of their windows, renormalized when the model normalizes."""
    size = settings.max_seq_length - 2
    tok = model.tokenizer
    rows, owner = [], []
    for d, ids in enumerate(docs):
        for w in token_windows(ids, size, stride):
            rows.append([tok.cls_token_id, *w, tok.sep_token_id])
            owner.append(d)
    lengths = np.array([len(r) for r in rows])
    vectors = None
    for batch_rows in length_sorted_batches(lengths, batch_size):
        width = int(lengths[batch_rows].max())
        ids = np.full((len(batch_rows), width), tok.pad_token_id, dtype=np.int64)  # [b, T]
        mask = np.zeros((len(batch_rows), width), dtype=np.int64)  # [b, T]
        for j, r in enumerate(batch_rows):
            ids[j, :lengths[r]], mask[j, :lengths[r]] = rows[r], 1
        batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out = embed_batch(model, batch, settings)  # [b, D]
        if vectors is None:
            vectors = np.empty((len(rows), out.shape[1]), dtype=out.dtype)
        vectors[batch_rows] = out
    owner = np.array(owner)
    weights = lengths.astype(vectors.dtype)  # [W]: tokens per window, specials included
    result = np.stack([(weights[owner == d] @ vectors[owner == d]) / weights[owner == d].sum()
                       for d in range(len(docs))])  # [W_d] @ [W_d, D] -> [D], per document
    return l2_normalize(result) if settings.normalize else result


def embed_texts_long(model, texts: list, settings, batch_size: int, window: int, stride: int, on_batch=None):
    """`encode.embed_texts` with long="chunk": consecutive windows of `window` texts, each by `embed_long`."""
    parts = [embed_long(model, texts[i:i + window], settings, batch_size, stride, on_batch)
             for i in range(0, len(texts), window)]
    if not parts:
        return np.empty((0, model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
    return np.concatenate(parts)
