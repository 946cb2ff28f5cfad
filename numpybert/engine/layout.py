"""Which token rows a forward computes, and how they group into sequences ("varlen").

The engine never works on a padded [B, T, H] tensor. It works on R token *rows* [R, H]:
- `skip_padding=False` (what `model(...)` does by default): all B·T positions, in order, and
  attention over every key with the additive mask, exactly as HuggingFace (so padded
  positions get HF's values, which the golden tests check);
- `skip_padding=True` (what `encode` / `embed` use): only the real tokens (mask 1), packed,
  each sequence attending over its own real tokens only. Masked keys get exp(finfo.min) = 0
  in HF's softmax, so the real tokens' values are the same (up to float rounding); padded
  positions are not computed (zeros in the outputs).

Rows are laid out sequence after sequence, so one sequence's rows are consecutive, and
sequences of equal length are consecutive too (packed rows are sorted by length): a *group*
of G sequences of n tokens is then one [G, n, ...] view of the rows, attended to with one
batched product. Dense layers (GEMMs, LayerNorm, GELU) see all R rows at once.

With `set_threads(n)` and enough work, the sequences are cut into n *shares* of about equal
cost; each thread runs every layer on its share (one meeting point per forward, not one per
layer), with BLAS on one thread.
"""

import dataclasses

import numpy as np

from .blocks import MIN_ROWS_PER_THREAD, sharing_active, thread_count


@dataclasses.dataclass
class Group:
    """G consecutive sequences of n tokens each: rows [start, start + G·n) of the share."""
    start: int
    n: int
    batch: np.ndarray  # [G] batch index of each sequence
    positions: np.ndarray  # [G, n] token position t of each row
    bias: np.ndarray | None  # [G, 1, 1, n] additive mask bias on the keys, or None when nothing is masked
    position_bias: np.ndarray | None = None  # MPNet: [1 or G, N, n, n] relative position bias (engine.encoder sets it)


@dataclasses.dataclass
class Share:
    """The rows [start, stop) of the forward that one thread computes, as groups."""
    start: int
    stop: int
    groups: list


@dataclasses.dataclass
class Layout:
    B: int
    T: int
    batch: np.ndarray  # [R] batch index b of each computed row
    positions: np.ndarray  # [R] token position t of each computed row
    natural: bool  # all B·T rows in their [B, T] order: rows.reshape(B, T, ...) is the tensor
    shares: list

    @property
    def rows(self) -> int:
        return len(self.batch)

    def to_tensor(self, x):
        """Rows [R, ...] -> [B, T, ...]: a view when natural, else zeros with the rows scattered."""
        if self.natural:
            return x.reshape(self.B, self.T, *x.shape[1:])  # [R, ...] -> [B, T, ...]
        out = np.zeros((self.B, self.T, *x.shape[1:]), x.dtype)
        out[self.batch, self.positions] = x
        return out


def _segments(attention_mask, skip_padding):
    """(batch index, positions) of each sequence's rows, in row order."""
    B, T = attention_mask.shape
    if not skip_padding or attention_mask.all():
        return [(b, np.arange(T)) for b in range(B)]
    lengths = attention_mask.sum(axis=1)
    order = np.argsort(-lengths, kind="stable")  # longest first; equal lengths side by side
    return [(int(b), np.flatnonzero(attention_mask[b])) for b in order if lengths[b] > 0]


def _groups(segments, start, bias):
    """Consecutive segments of equal length as Groups; rows counted from `start`."""
    groups, row = [], start
    i = 0
    while i < len(segments):
        n = len(segments[i][1])
        j = i
        while j < len(segments) and len(segments[j][1]) == n:
            j += 1
        batch = np.array([b for b, _ in segments[i:j]])
        positions = np.stack([p for _, p in segments[i:j]])  # [G, n]
        group_bias = None
        if bias is not None:
            group_bias = bias[batch[:, None], positions][:, None, None, :]  # [G, n] -> [G, 1, 1, n]
            if not group_bias.any():
                group_bias = None
        groups.append(Group(row - start, n, batch, positions, group_bias))
        row += (j - i) * n
        i = j
    return groups


def _cut(costs, n):
    """Cut a list of costs into at most n contiguous pieces of about equal total: the cut indices."""
    total = np.cumsum(costs)
    cuts = [int(np.searchsorted(total, total[-1] * k / n)) + 1 for k in range(1, n)]
    return sorted({c for c in cuts if 0 < c < len(costs)})


def make_layout(attention_mask, bias, skip_padding, H, I):
    """The rows of one forward: `bias` [B, T] is the additive mask (None when nothing is
    masked); H and I size the per-sequence cost used to balance the threads' shares."""
    B, T = attention_mask.shape
    segments = _segments(attention_mask, skip_padding)
    natural = len(segments) == B and (not skip_padding or bool(attention_mask.all()))
    batch = np.concatenate([np.full(len(p), b) for b, p in segments]) if segments else np.zeros(0, np.int64)
    positions = np.concatenate([p for _, p in segments]) if segments else np.zeros(0, np.int64)
    cuts = []
    n = thread_count()
    if n > 1 and sharing_active() and len(segments) > 1 and len(batch) >= n * MIN_ROWS_PER_THREAD:
        lengths = np.array([len(p) for _, p in segments])
        cuts = _cut(lengths * (4 * H + 2 * I) + 2 * lengths ** 2, n)  # GEMM + attention multiply-adds / H
    shares, row = [], 0
    for part in np.split(np.arange(len(segments)), cuts):
        segs = [segments[k] for k in part]
        stop = row + sum(len(p) for _, p in segs)
        shares.append(Share(row, stop, _groups(segs, row, None if skip_padding else bias)))
        row = stop
    return Layout(B, T, batch, positions, natural, shares)
