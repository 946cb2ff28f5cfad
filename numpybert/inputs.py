"""Checking the forward pass's inputs before any math.

NumPy would happily index with a negative id (it wraps to the end of the vocabulary), cast
float ids, or broadcast a mask of the wrong shape: each of those is a silently wrong answer.
Every check here names the argument, the bad value and where it is.
"""

import numpy as np

from .errors import InputTypeError, InputValueError


def _as_2d_int(name, x):
    """An integer array [B, T]; a 1-D array is one sequence."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise InputTypeError(f"{name} must be a NumPy integer array, got {type(x).__name__}")
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise InputTypeError(f"{name} must have an integer dtype, got {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InputValueError(f"{name} must be [batch, tokens] (or 1-D for one sequence), got shape {x.shape}")
    return x


def _in_range(name, x, high, what):
    bad = (x < 0) | (x >= high)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputValueError(f"{name}[{where[0]}, {where[1]}] = {int(x[where])} is outside [0, {high}) ({what})")


def check_inputs(config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None):
    """Validate and fill defaults; returns int64 arrays [B, T] ready for `model.bert`."""
    input_ids = _as_2d_int("input_ids", input_ids)
    B, T = input_ids.shape
    if B == 0 or T == 0:
        raise InputValueError(f"input_ids has shape {input_ids.shape}: need at least one sequence of one token")
    if T > config.max_position_embeddings:
        raise InputValueError(f"input_ids has {T} tokens, more than max_position_embeddings="
                              f"{config.max_position_embeddings}; truncate (tokenize with max_length=...)")
    _in_range("input_ids", input_ids, config.vocab_size, "vocab_size")
    ones, zeros = np.ones((B, T), np.int64), np.zeros((B, T), np.int64)
    attention_mask = _same_shape("attention_mask", attention_mask, input_ids.shape, ones)
    bad = (attention_mask != 0) & (attention_mask != 1)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputValueError(f"attention_mask[{where[0]}, {where[1]}] = {attention_mask[where]}: "
                              "a padding mask holds only 0 (padding) and 1 (token)")
    token_type_ids = _same_shape("token_type_ids", token_type_ids, input_ids.shape, zeros)
    _in_range("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    position_ids = _same_shape("position_ids", position_ids, input_ids.shape,
                               np.broadcast_to(np.arange(T, dtype=np.int64), (B, T)))
    _in_range("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")
    return [a.astype(np.int64, copy=False) for a in (input_ids, attention_mask, token_type_ids, position_ids)]


def _same_shape(name, x, shape, default):
    if x is None:
        return default
    x = _as_2d_int(name, x)
    if name == "position_ids" and x.shape[0] == 1 and shape[0] > 1:
        x = np.broadcast_to(x, (shape[0], x.shape[1]))  # HF accepts position_ids of shape [1, T]
    if x.shape != shape:
        raise InputValueError(f"{name} has shape {x.shape}, input_ids has {shape}")
    return x
