"""Length-bucketed batching: batch texts of similar length, so padding is not computed for nothing.

A batch is padded to its longest sequence, and every padded position costs as much as a real
token (attention even more: T² per head). Sorting by length before cutting batches makes each
batch nearly uniform. Results come back in input order.

    lengths = [len(ids) for ids in tokenized]          # or the attention masks' sums
    vectors = map_batches(lambda idx: embed(idx), lengths, batch_size=32)

`map_batches` calls `fn` with an index array (positions in the input) per batch and puts the
rows it returns back at those positions.
"""

import numpy as np

from .errors import InputTypeError, InputValueError


def _lengths(lengths) -> np.ndarray:
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or (lengths.size and not np.issubdtype(lengths.dtype, np.integer)):
        raise InputTypeError(f"lengths must be a 1-D sequence of integers, got dtype {lengths.dtype}, "
                             f"shape {lengths.shape}")
    if lengths.size and lengths.min() < 0:
        raise InputValueError(f"lengths[{int(np.argmin(lengths))}] = {int(lengths.min())} is negative")
    return lengths.astype(np.int64)


def bucket_batches(lengths, batch_size: int = 32, max_tokens: int | None = None) -> list:
    """Index arrays of batches, longest sequences first (a memory problem shows at once). Each
    batch holds at most `batch_size` items and, when given, at most `max_tokens` padded tokens
    (items × the batch's longest length; a single longer item still gets a batch of its own)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputValueError(f"batch_size={batch_size!r}: expected a positive integer")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InputValueError(f"max_tokens={max_tokens!r}: expected a positive integer or None")
    lengths = _lengths(lengths)
    order = np.argsort(-lengths, kind="stable")  # longest first; ties keep input order
    batches, start = [], 0
    while start < len(order):
        size = min(batch_size, len(order) - start)
        if max_tokens is not None:  # the first item is the longest of the batch
            size = max(1, min(size, max_tokens // max(1, int(lengths[order[start]]))))
        batches.append(order[start:start + size])
        start += size
    return batches


def map_batches(fn, lengths, batch_size: int = 32, max_tokens: int | None = None) -> np.ndarray:
    """Call `fn(indices)` per length bucket; it returns one row per index (an array [n, ...]).
    Returns all rows stacked in input order: row i belongs to item i."""
    lengths = _lengths(lengths)
    result = None
    for indices in bucket_batches(lengths, batch_size, max_tokens):
        rows = np.asarray(fn(indices))
        if rows.shape[:1] != (len(indices),):
            raise InputValueError(f"map_batches: fn returned {rows.shape[:1]} rows for a batch of {len(indices)}")
        if result is None:
            result = np.empty((len(lengths), *rows.shape[1:]), rows.dtype)
        result[indices] = rows
    return result if result is not None else np.empty((0,))


def padded_tokens(lengths, batches) -> int:
    """Token positions the batches compute: each batch costs items × its longest length."""
    lengths = _lengths(lengths)
    return int(sum(len(b) * int(lengths[b].max()) for b in batches if len(b)))
