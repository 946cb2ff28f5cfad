"""Recording intermediates under stable names, from the rows the engine computes.

The engine computes token rows [R, ...] (numpybert/engine/layout.py), not [B, T, ...] tensors.
A `Trace` puts each recorded piece where it belongs in a tensor of the shape HuggingFace
names (`encoder.layer.0.attention.self.probs` is [B, N, T, T]), so that recording never
changes what the forward computes: the traced forward is the forward users run. Positions
the forward does not compute (padding under skip_padding=True) stay 0.

`keep` chooses what is recorded: everything (the audit), or only what the caller asked for
(the hidden states, the attention probabilities); `NO_TRACE` records nothing.
"""

import threading

import numpy as np


class Trace:
    """Records intermediates in forward order under the current scope."""

    def __init__(self, keep=None, store=None, prefix="", lock=None):
        self.keep = keep  # None: every name; else a predicate on the full name
        self.store = {} if store is None else store
        self.prefix = prefix
        self.lock = threading.Lock() if lock is None else lock  # threads record their shares into one tensor

    def scope(self, name):
        return Trace(self.keep, self.store, f"{self.prefix}{name}.", self.lock)

    def wants(self, name) -> bool:
        return self.keep is None or self.keep(self.prefix + name)

    def __call__(self, name, x):
        """A whole tensor, e.g. [B, H]: copied (later in-place work must not change it)."""
        if self.wants(name):
            self.store[self.prefix + name] = np.array(x, copy=True)

    def _tensor(self, name, shape, dtype):
        with self.lock:
            return self.store.setdefault(self.prefix + name, np.zeros(shape, dtype))

    def rows(self, name, x, where, heads=False):
        """Rows [r, ...] of a share; `where` = (B, T, batch [r], positions [r]). heads: x is
        [r, N, D], recorded as [B, N, T, D]."""
        if not self.wants(name):
            return
        B, T, batch, positions = where
        if heads:
            tensor = self._tensor(name, (B, x.shape[1], T, x.shape[2]), x.dtype)  # [B, N, T, D]
            tensor.transpose(0, 2, 1, 3)[batch, positions] = x  # [B, T, N, D] view <- [r, N, D]
        else:
            self._tensor(name, (B, T, *x.shape[1:]), x.dtype)[batch, positions] = x  # [B, T, ...] <- [r, ...]

    def pairs(self, name, x, group, seqs, heads, shape):
        """Attention of a block [g, h, n, n] (sequences `seqs`, heads `heads` of `group`) into
        a [B, N, T, T] tensor of `shape`."""
        if not self.wants(name):
            return
        tensor = self._tensor(name, shape, x.dtype)
        for j, b in enumerate(group.batch[seqs]):
            p = group.positions[seqs][j]
            tensor[b, heads][:, p[:, None], p[None, :]] = x[j]  # [h, n, n]


class _NoTrace:
    """The default: records nothing."""

    def scope(self, name):
        return self

    def wants(self, name) -> bool:
        return False

    def __call__(self, name, x):
        pass

    def rows(self, name, x, where, heads=False):
        pass

    def pairs(self, name, x, group, seqs, heads, shape):
        pass


NO_TRACE = _NoTrace()
