"""Checking the forward pass's inputs before any math.

NumPy would happily index with a negative id (it wraps to the end of the vocabulary), cast
float ids, or broadcast a mask of the wrong shape: each of those is a silently wrong answer.
Every check here names the argument, the bad value and where it is.
"""

import warnings
from typing import Any

import numpy as np

from ..errors import InputTypeError, InputValueError
from ..loading.family import position_ids as family_position_ids

# transformers' wording (modeling_utils.warn_if_padding_and_no_attention_mask)
PADDING_WITHOUT_MASK_WARNING = (
    "We strongly recommend passing in an `attention_mask` since your input_ids may be padded: they hold "
    "pad_token_id={pad} and no attention_mask was given, so the padding is attended to as if it were text. "
    "See https://huggingface.co/docs/transformers/troubleshooting#incorrect-output-when-padding-tokens-arent-masked.")


def _as_array(name, x):
    """A NumPy array from an array or a (nested) list; anything else is refused."""
    if isinstance(x, (list, tuple)):
        try:
            array = np.asarray(x)
        except ValueError:  # NumPy 2 refuses ragged nested lists (and more than 64 levels)
            raise InputValueError(f"{name} is a ragged or too deeply nested list; pad the rows to one length "
                                  "and mark the padding with attention_mask") from None
        return array if array.size else array.astype(np.int64)  # [] is float64 to NumPy
    if isinstance(x, np.ma.MaskedArray):
        raise InputTypeError(f"{name} is a masked array: its mask would be ignored; pass padding as attention_mask")
    if not isinstance(x, np.ndarray):
        raise InputTypeError(f"{name} must be a NumPy integer array, got {type(x).__name__}")
    return np.asarray(x)  # a subclass (np.matrix, ...) becomes a plain array


def _as_2d(name, x, allow_bool=False, allow_float=False):
    """An integer array [B, T] (a 1-D array is one sequence); bool / float too when allowed."""
    x = _as_array(name, x)
    is_bool, is_float = x.dtype == np.bool_, np.issubdtype(x.dtype, np.floating)
    if (is_bool and not allow_bool) or (is_float and not allow_float) \
            or not (is_bool or is_float or np.issubdtype(x.dtype, np.integer)):
        kinds = "a bool, integer or float" if allow_float else "an integer or bool" if allow_bool else "an integer"
        raise InputTypeError(f"{name} must have {kinds} dtype, got {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InputValueError(f"{name} must be [batch, tokens] (or 1-D for one sequence), got shape {x.shape}")
    return x


def _first(bad):
    """The [b, t] index of the first True of a 2-D bool array, as a tuple of ints."""
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _in_range(name, x, high, what):
    bad = (x < 0) | (x >= high)
    if bad.any():
        b, t = _first(bad)
        raise InputValueError(f"{name}[{b}, {t}] = {int(x[b, t])} is outside [0, {high}) ({what})")


def _same_shape(name, x, shape, default, allow_bool=False, allow_float=False):
    if x is None:
        return default
    x = _as_2d(name, x, allow_bool, allow_float)
    if name == "position_ids" and x.shape[0] == 1 and shape[0] > 1:
        x = np.broadcast_to(x, (shape[0], x.shape[1]))  # HF accepts position_ids of shape [1, T]
    if x.shape != shape:
        raise InputValueError(f"{name} has shape {x.shape}, input_ids has {shape}")
    return x


def _check_mask(attention_mask, shape):
    """The padding mask: 0/1 as bool, integers or floats (transformers accepts all three), shaped as
    input_ids; all ones by default. Any other value (0.5, -1, NaN) is refused: it is not a padding mask."""
    mask = _same_shape("attention_mask", attention_mask, shape, np.ones(shape, np.int64), allow_bool=True,
                       allow_float=True)
    bad = (mask != 0) & (mask != 1)
    if bad.any():
        b, t = _first(bad)
        raise InputValueError(f"attention_mask[{b}, {t}] = {mask[b, t]}: "
                              "a padding mask holds only 0 (padding) and 1 (token)")
    return mask


def check_inputs(config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 inputs_embeds=None):
    """Validate and fill defaults; returns int64 arrays [B, T] ready for `model.bert`:
    input_ids (None when inputs_embeds, an array checked by `check_inputs_embeds`, gives the shape),
    attention_mask, token_type_ids, position_ids."""
    if inputs_embeds is not None:
        input_ids, shape, what = None, inputs_embeds.shape[:2], "inputs_embeds"
    else:
        input_ids = _as_2d("input_ids", input_ids)
        shape, what = input_ids.shape, "input_ids"
    B, T = shape
    if B == 0 or T == 0:
        raise InputValueError(f"{what} has shape {shape}: need at least one sequence of one token")
    if T > config.max_length:
        limit = (f"max_position_embeddings={config.max_position_embeddings}" if config.padding_idx is None else
                 f"{config.max_length} ({config.model_type}: max_position_embeddings={config.max_position_embeddings}"
                 f" less pad_token_id + 1)")
        raise InputValueError(f"{what} has {T} tokens, more than {limit}; truncate (tokenize with max_length=...)")
    if input_ids is not None:
        _in_range("input_ids", input_ids, config.vocab_size, "vocab_size")
        input_ids = input_ids.astype(np.int64, copy=False)
    attention_mask = _check_mask(attention_mask, (B, T))
    token_type_ids = _same_shape("token_type_ids", token_type_ids, (B, T), np.zeros((B, T), np.int64))
    if config.type_vocab_size:  # DistilBERT and MPNet have no token types: they are not used (its tokenizer makes none)
        _in_range("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    if position_ids is None:  # filled as token types are: the family's rule (numpybert/loading/family.py)
        position_ids = family_position_ids(input_ids, (B, T), config.padding_idx)
    else:
        position_ids = _same_shape("position_ids", position_ids, (B, T), None)
        _in_range("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")
    position_ids = position_ids.astype(np.int64, copy=False)
    return [input_ids, *(a.astype(np.int64, copy=False) for a in (attention_mask, token_type_ids)), position_ids]


def check_inputs_embeds(config, inputs_embeds, dtype):
    """inputs_embeds as transformers takes it: floats [B, T, H] (2-D [T, H] is one sequence), finite,
    H = hidden_size; returned in the model's dtype. They replace word_embeddings[input_ids]."""
    x = _as_array("inputs_embeds", inputs_embeds)
    if not np.issubdtype(x.dtype, np.floating):
        raise InputTypeError(f"inputs_embeds must have a float dtype, got {x.dtype}")
    if x.ndim == 2:
        x = x[None]  # [T, H] -> [1, T, H]
    if x.ndim != 3 or x.shape[-1] != config.embedding_dim:
        width = "hidden_size" if config.embedding_size is None else "embedding_size"
        raise InputValueError(f"inputs_embeds must be [batch, tokens, {width}={config.embedding_dim}], "
                              f"got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        b, t, h = (int(i) for i in np.argwhere(bad)[0])
        raise InputValueError(f"inputs_embeds[{b}, {t}, {h}] = {x[b, t, h]}: embeddings must be finite")
    return np.array(x, dtype=dtype)  # a copy: the forward pass adds to it in place


def warn_if_padding_and_no_attention_mask(input_ids, pad_token_id):
    """As transformers: warn when the first or last column holds pad_token_id and no mask was given."""
    if pad_token_id is not None and (input_ids[:, [-1, 0]] == pad_token_id).any():
        warnings.warn(PADDING_WITHOUT_MASK_WARNING.format(pad=pad_token_id), UserWarning, stacklevel=3)


def check_masked_rows(attention_mask, mask_value):
    """Refuse a sequence with no real token under mask_value="-inf": every score of its rows
    is -inf and softmax is 0/0 = NaN. (finfo.min, HF's choice, gives uniform attention instead;
    -10000 attends as if unmasked.)"""
    if mask_value != "-inf":
        return
    empty = ~np.asarray(attention_mask).any(axis=-1)
    if empty.any():
        row = int(np.argmax(empty))
        raise InputValueError(f"attention_mask row {row} is all 0: under mask_value='-inf' its attention "
                              "would be NaN (0/0); drop the row or use mask_value='finfo-min'")


def check_text(text, where: str) -> str:
    """One text as the tokenizer needs it: a str (numpy str_ welcome) of valid Unicode (no lone
    surrogates), as a plain str. `where` names it in errors, e.g. "texts[3]"."""
    if not isinstance(text, str):
        raise InputTypeError(f"{where} is {'None' if text is None else type(text).__name__}, expected str")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputValueError(f"{where} has a lone surrogate {text[e.start]!r} (U+{ord(text[e.start]):04X}) "
                                  f"at character {e.start}; texts must be valid Unicode") from None
    return str(text)


def check_text_list(value: Any, name: str, split_into_words: bool = False) -> list:
    """texts / text_pairs as a list of plain str (or, split into words, of lists of str); a bad item
    is named by index before tokenizers sees it."""
    if split_into_words:
        return check_word_lists(value, name)
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        items = list(value)
    else:
        shape = f" of shape {value.shape}" if isinstance(value, np.ndarray) else ""
        raise InputTypeError(f"{name} must be a str or a list of str, got {type(value).__name__}{shape}")
    if not items:
        raise InputValueError(f"{name} is empty; pass at least one text")
    return [check_text(item, f"{name}[{i}]") for i, item in enumerate(items)]


def check_word_lists(value: Any, name: str) -> list[list[str]]:
    """is_split_into_words: one text is a list of words, a batch is a list of such lists."""
    if not isinstance(value, (list, tuple)) or not value:
        raise InputTypeError(f"{name} with is_split_into_words=True must be a non-empty list of words "
                             f"(or a list of such lists), got {type(value).__name__}")
    batch = [value] if all(isinstance(w, str) for w in value) else list(value)
    for i, words in enumerate(batch):
        if not isinstance(words, (list, tuple)):
            raise InputTypeError(f"{name}[{i}] is {type(words).__name__}; with is_split_into_words=True each "
                                 "text is a list of words")
        for j, word in enumerate(words):
            check_text(word, f"{name}[{i}][{j}]")
    return [list(words) for words in batch]
