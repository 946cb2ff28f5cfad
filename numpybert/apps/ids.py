"""Sentence embeddings from token ids: `encode_ids(model, rows)` -> [N, D], as `model.encode` would
give for the texts those ids came from.

    batch = model.tokenize(["A man is playing a guitar."], padding=False)
    encode_ids(model, [list(batch["input_ids"][0])])   # == model.encode(["A man is playing a guitar."])

Each row is what the model reads, special tokens included (`model.tokenize` / TEI's /tokenize give
them). The rows run as `encode`'s texts do: sorted by length, batches of at most max_batch_tokens
token positions, real tokens only, then the model's own pooling and Normalize (apps/batching.py).
Used by `numpybert serve` for OpenAI/TEI token-id inputs.
"""

import numpy as np

from ..errors import InputValueError
from .batching import MAX_BATCH_TOKENS, forward_batch, length_sorted_batches


def encode_ids(model, rows, normalize=None, max_batch_tokens: int = MAX_BATCH_TOKENS) -> np.ndarray:
    """Token-id rows (lists of ints, each 1..max_position_embeddings long) -> [N, D] in the model's dtype.
    normalize: None (the model's modules decide, as `encode`), True or False (run or skip Normalize)."""
    rows = [np.asarray(r) for r in rows]
    for i, r in enumerate(rows):
        if r.ndim != 1 or not 1 <= len(r) <= model.config.max_length or not np.issubdtype(r.dtype, np.integer):
            raise InputValueError(f"rows[{i}]: expected 1 to {model.config.max_length} integer token ids, got "
                                  f"shape {r.shape} of {r.dtype}")
        bad = np.flatnonzero((r < 0) | (r >= model.config.vocab_size))
        if bad.size:
            raise InputValueError(f"rows[{i}][{bad[0]}] = {r[bad[0]]} is outside the vocabulary "
                                  f"[0, {model.config.vocab_size})")
    settings = model.sentence.settings
    if normalize is not None:
        settings = settings.replace(None, bool(normalize), None)
    lengths = np.array([len(r) for r in rows], np.int64)
    out = np.empty((len(rows), model.get_sentence_embedding_dimension()), model.dtype)
    for batch_rows in length_sorted_batches(lengths, len(rows) or 1, max_batch_tokens):
        width = int(lengths[batch_rows].max())
        ids = np.zeros((len(batch_rows), width), np.int64)  # [b, T], right-padded
        mask = np.zeros((len(batch_rows), width), np.int64)  # [b, T]
        for j, i in enumerate(batch_rows):
            ids[j, :lengths[i]] = rows[i]
            mask[j, :lengths[i]] = 1
        out[batch_rows] = forward_batch(model, {"input_ids": ids, "attention_mask": mask}, settings)[0]
    return out
