"""BERT tokenization: transformers' tokenizer call over HuggingFace's `tokenizers` library.

    tok = BertTokenizer.from_dir("weights/all-MiniLM-L6-v2", max_position_embeddings=512)
    tok(["Hello world", "Second text"])            # HF style: int64 input_ids / attention_mask / token_type_ids
    tok("How old are you?", "I am six.", max_length=16, padding="max_length")
    tok(["a", "b"], style="tfhub", seq_length=128)  # TF Hub preprocessor: int32, fixed length, round robin

`tokenizers` does the work: normalize, pre-tokenize, word pieces, the special tokens and pair
template of tokenizer.json's post-processor, truncation (longest_first, only_first, only_second,
either side), overflowing windows with a stride, and padding. This module
  * validates the inputs first and names the bad item (`tokenizers` fails the whole batch without
    saying which item, and panics on a stride too large for a window),
  * turns each call's options into a copy of the file's tokenizer configured for them (a
    `tokenizers.Tokenizer` holds its truncation and padding as shared state: one copy per setting,
    made once and never changed, so threads can share them),
  * adds TF Text's round-robin truncation (style="tfhub"), which `tokenizers` lacks,
  * cuts very long texts before tokenizing when that provably cannot change the result
    (numpybert/text/char_cap.py), so a 10 MB line costs milliseconds, not seconds.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tokenizers import Encoding, Tokenizer

from ..errors import ConfigError, InputTypeError, InputValueError
from ..util import positive_int
from .char_cap import CharCap
from .inputs import check_text, check_text_list
from .tokenizer_files import DEFAULT_SPECIAL_TOKENS, read_tokenizer, special_token_ids

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "round_robin")
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
PADDING_ALIASES = {True: "longest", False: "do_not_pad"}  # transformers' padding=True / False
STYLES = ("hf", "tfhub")
CONFIGURED_COPIES = 16  # per-setting copies kept; a new one costs ~75 ms (MiniLM's tokenizer.json)


@dataclass(frozen=True)
class _Plan:
    """What one call asks for, validated: the length limit, how to truncate, how to pad."""

    limit: int                 # max tokens per row, special tokens included
    strategy: str | None       # truncation strategy; None: refuse rows over `limit`
    pad_to: int | None         # fixed row length, or None: pad to the longest row
    limit_name: str            # where `limit` came from, for messages ("max_length=16", ...)
    n_special: int             # what the post-processor adds (BERT: 2 for single texts, 3 for pairs)
    padding: str = "longest"   # one of PADDING_STRATEGIES
    pad_side: str = "right"
    cut_side: str = "right"    # truncation_side: "left" keeps the last tokens
    pad_multiple: int | None = None
    add_special: bool = True
    stride: int = 0
    overflow: bool = False     # return_overflowing_tokens: windows instead of one cut row

    @property
    def budget(self) -> int:
        """Tokens left for the text segments once the special tokens are counted."""
        return self.limit - self.n_special


class BertTokenizer:
    """BERT WordPiece tokenizer returning NumPy arrays (HF `BertTokenizerFast` ids, or TF Hub style)."""

    def __init__(self, tokenizer: Tokenizer, special_tokens: dict[str, str], max_position_embeddings: int,
                 source: str = "<memory>", model_max_length: int | None = None):
        """Wrap a ready `tokenizers.Tokenizer`. Prefer `BertTokenizer.from_dir`.

        `special_tokens` maps cls_token/sep_token/pad_token/unk_token[/mask_token] to token strings;
        each required one must be in the vocabulary (ConfigError otherwise).
        """
        if isinstance(max_position_embeddings, bool) or not isinstance(max_position_embeddings, (int, np.integer)) \
                or max_position_embeddings < 3:
            raise ConfigError(f"max_position_embeddings must be an int >= 3, got {max_position_embeddings!r}")
        tokenizer.no_padding()      # tokenizer.json may bake in padding / truncation (MiniLM: 128)
        tokenizer.no_truncation()
        self._tok = tokenizer       # never changed after this: each call's settings live in copies
        self._configured: dict = {}  # (truncation, padding) -> a configured copy of _tok
        self._lock = threading.Lock()
        self.source = source
        self.max_position_embeddings = int(max_position_embeddings)
        self._ids = special_token_ids(tokenizer, special_tokens, source)
        self._names = dict(special_tokens)
        valid = isinstance(model_max_length, int) and model_max_length > 0
        self._model_max_length = model_max_length if valid else None
        self._char_cap = CharCap.for_tokenizer(tokenizer)

    @classmethod
    def from_dir(cls, model_dir: str | Path, max_position_embeddings: int) -> "BertTokenizer":
        """The tokenizer of a model directory: tokenizer.json (its baked-in padding/truncation dropped),
        else BERT's pipeline from vocab.txt (numpybert/text/tokenizer_files.py)."""
        tokenizer, special, source, limit = read_tokenizer(model_dir)
        return cls(tokenizer, special, max_position_embeddings, source, limit)

    # --- properties -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def model_max_length(self) -> int:
        """tokenizer_config.json's model_max_length, capped at max_position_embeddings (as numpybert
        truncates); max_position_embeddings when the config has none."""
        return min(self._model_max_length or self.max_position_embeddings, self.max_position_embeddings)

    def _special(self, key: str) -> int | None:
        return self._ids.get(key)

    cls_token_id = property(lambda self: self._special("cls_token"))
    sep_token_id = property(lambda self: self._special("sep_token"))
    unk_token_id = property(lambda self: self._special("unk_token"))
    pad_token_id = property(lambda self: self._special("pad_token"), doc="None when the vocabulary has no [PAD]")
    mask_token_id = property(lambda self: self._special("mask_token"), doc="None when the vocabulary has no [MASK]")
    cls_token = property(lambda self: self._token_of("cls_token"))
    sep_token = property(lambda self: self._token_of("sep_token"))
    unk_token = property(lambda self: self._token_of("unk_token"))
    pad_token = property(lambda self: self._token_of("pad_token"))
    mask_token = property(lambda self: self._token_of("mask_token"))

    def _token_of(self, key: str) -> str | None:
        return self._names[key] if key in self._ids else None

    @property
    def all_special_tokens(self) -> list[str]:
        return [self._names[k] for k in DEFAULT_SPECIAL_TOKENS if k in self._ids]

    @property
    def all_special_ids(self) -> list[int]:
        return [self._ids[k] for k in DEFAULT_SPECIAL_TOKENS if k in self._ids]

    @property
    def backend(self) -> Tokenizer:
        """The underlying `tokenizers.Tokenizer` (padding and truncation disabled)."""
        return self._tok

    def __repr__(self) -> str:
        return f"BertTokenizer(source={self.source!r}, vocab_size={self.vocab_size})"

    # --- tokens <-> ids <-> text ----------------------------------------------------------------

    def tokenize(self, text: str, text_pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """WordPiece token strings of a text (no [CLS]/[SEP] unless asked), as transformers' tokenize."""
        return self.convert_ids_to_tokens(self.encode(text, text_pair, add_special_tokens=add_special_tokens))

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True,
               **kwargs) -> list[int]:
        """Token ids of one text (or pair) as a list, as transformers' encode; kwargs as `__call__`."""
        if not isinstance(text, str) and not kwargs.get("is_split_into_words"):
            raise InputTypeError(f"encode takes one text (str), got {type(text).__name__}; use the tokenizer "
                                 "call for a batch")
        if kwargs.get("max_length") is None and not kwargs.get("truncation") and not kwargs.get("style"):
            return self._encode_whole(text, text_pair, add_special_tokens, kwargs.get("is_split_into_words", False))
        out = self(text, text_pair, add_special_tokens=add_special_tokens, padding=False, **kwargs)
        return [int(i) for i in out["input_ids"][0]]

    def _encode_whole(self, text, text_pair, add_special_tokens: bool, is_split_into_words: bool) -> list[int]:
        """Every id of one text (or pair), as transformers' encode without max_length: a row longer
        than the model takes is returned whole, with a warning (the model refuses it later)."""
        a = check_text_list(text, "text", is_split_into_words)[0]
        b = None if text_pair is None else check_text_list(text_pair, "text_pair", is_split_into_words)[0]
        ids = self._tok.encode(a, b, is_pretokenized=is_split_into_words, add_special_tokens=add_special_tokens).ids
        if len(ids) > self.model_max_length:
            warnings.warn(f"Token indices sequence length is longer than the specified maximum sequence length "
                          f"for this model ({len(ids)} > {self.model_max_length}). Running this sequence through "
                          "the model will result in indexing errors", UserWarning, stacklevel=3)
        return ids

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Token strings of a 1-D id sequence (e.g. one row of input_ids); one id gives one str."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            return self.convert_ids_to_tokens([ids])[0]
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tok.id_to_token(i) for i in self._check_ids(ids) if i not in special]

    def convert_tokens_to_ids(self, tokens):
        """Ids of token strings (unknown ones get the [UNK] id); one str gives one int."""
        if isinstance(tokens, str):
            token_id = self._tok.token_to_id(tokens)
            return self.unk_token_id if token_id is None else token_id
        return [self.convert_tokens_to_ids(check_text(t, f"tokens[{i}]")) for i, t in enumerate(tokens)]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of a 1-D id sequence, WordPiece pieces joined (lowercased text stays lowercased).
        Special tokens are kept unless skip_special_tokens=True, as transformers."""
        return self._tok.decode(self._check_ids(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(self, sequences, skip_special_tokens: bool = False) -> list[str]:
        """`decode` of each row of a [B, T] array or list of id lists."""
        return [self.decode(row, skip_special_tokens) for row in sequences]

    def _check_ids(self, ids: Sequence[int] | np.ndarray) -> list[int]:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise InputValueError(f"ids must be 1-D, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise InputTypeError(f"ids must be integers, got dtype {arr.dtype}")
        bad = np.flatnonzero((arr < 0) | (arr >= self.vocab_size))
        if bad.size:
            raise InputValueError(f"ids[{bad[0]}] = {arr[bad[0]]} is outside the vocabulary [0, {self.vocab_size})")
        return [int(i) for i in arr]

    # --- text -> arrays ---------------------------------------------------------------------------

    def __call__(self, text, text_pair=None, *, add_special_tokens: bool = True, padding: bool | str = "longest",
                 truncation: bool | str | None = None, max_length: int | None = None, stride: int = 0,
                 is_split_into_words: bool = False, pad_to_multiple_of: int | None = None,
                 padding_side: str | None = None, truncation_side: str | None = None,
                 return_tensors: str | None = None, return_token_type_ids: bool | None = None,
                 return_attention_mask: bool | None = None, return_overflowing_tokens: bool = False,
                 return_special_tokens_mask: bool = False, return_offsets_mapping: bool = False,
                 return_length: bool = False, style: str = "hf", seq_length: int = 128) -> dict[str, Any]:
        """Tokenize a text or a batch (optionally paired), as transformers' fast tokenizer `__call__`.

        style="hf" (default): int64 `input_ids`, `attention_mask`, `token_type_ids` [B, T].
            padding: "longest"/True (numpybert's default: arrays need one width), "max_length",
                False/"do_not_pad" (rows of different lengths come back as lists of 1-D arrays).
            truncation: True/"longest_first", "only_first", "only_second", "round_robin" (TF Text),
                False/"do_not_truncate"/None. With max_length and truncation None: "longest_first".
                With truncation and no max_length, rows are cut to model_max_length. With neither, a
                row over max_position_embeddings is an InputValueError.
            stride + return_overflowing_tokens: a long text becomes several rows (windows of
                max_length overlapping by `stride` tokens); `overflow_to_sample_mapping` [rows] gives
                each row's input index.
            return_offsets_mapping ([B, T, 2] character spans, (0, 0) for special and pad tokens),
            return_special_tokens_mask (1 on [CLS]/[SEP]/[PAD]), return_length, is_split_into_words
            (each text is a list of words), padding_side / truncation_side ("right" or "left"),
            pad_to_multiple_of, add_special_tokens: as transformers.
            return_tensors: None or "np"; numpybert always returns NumPy.
        style="tfhub": int32 `input_word_ids`, `input_mask`, `input_type_ids` of fixed length
            seq_length; pairs are trimmed round robin (TF Text RoundRobinTrimmer).
        """
        if return_tensors not in (None, "np"):
            raise InputValueError(f"return_tensors={return_tensors!r}: numpybert returns NumPy arrays only "
                                  "(return_tensors='np' or None); convert them yourself if you need torch or tf")
        batch_a = check_text_list(text, "texts", is_split_into_words)
        batch_b = None if text_pair is None else check_text_list(text_pair, "text_pairs", is_split_into_words)
        if batch_b is not None and len(batch_b) != len(batch_a):
            raise InputValueError(f"text_pairs has {len(batch_b)} items but texts has {len(batch_a)}; "
                                  "they must have the same length")
        plan = self._plan(style, max_length, padding, truncation, seq_length, pair=batch_b is not None,
                          add_special_tokens=add_special_tokens, stride=stride,
                          overflow=return_overflowing_tokens, padding_side=padding_side,
                          truncation_side=truncation_side, pad_to_multiple_of=pad_to_multiple_of)
        if plan.strategy == "round_robin":  # TF Text's trimming (always for style="tfhub")
            rows = list(enumerate(self._round_robin(batch_a, batch_b, plan, is_split_into_words,
                                                    return_offsets_mapping)))
        else:
            rows = self._encode(batch_a, batch_b, plan, is_split_into_words, return_offsets_mapping)
        if style == "tfhub":
            return self._to_arrays(rows, plan, np.int32, ("input_word_ids", "input_mask", "input_type_ids"))
        out = self._to_arrays(rows, plan, np.int64, ("input_ids", "attention_mask", "token_type_ids"),
                              special_tokens_mask=return_special_tokens_mask, offsets=return_offsets_mapping,
                              length=return_length)
        if return_attention_mask is False:
            del out["attention_mask"]
        if return_token_type_ids is False:
            del out["token_type_ids"]
        if return_overflowing_tokens:
            out["overflow_to_sample_mapping"] = np.array([i for i, _ in rows], dtype=np.int64)
        return out

    def _plan(self, style: str, max_length: Any, padding: Any, truncation: Any, seq_length: Any, pair: bool,
              add_special_tokens: bool = True, stride: Any = 0, overflow: bool = False, padding_side: Any = None,
              truncation_side: Any = None, pad_to_multiple_of: Any = None) -> _Plan:
        """Validate the keyword arguments into a `_Plan`."""
        processor = self._tok.post_processor
        n_special = processor.num_special_tokens_to_add(pair) if add_special_tokens and processor else 0
        if style not in STYLES:
            raise InputValueError(f"style must be one of {STYLES}, got {style!r}")
        padding = PADDING_ALIASES.get(padding, padding) if isinstance(padding, (str, bool)) else padding
        if padding not in PADDING_STRATEGIES:
            raise InputValueError(f"padding must be True/False or one of {PADDING_STRATEGIES + ('do_not_pad',)}, "
                                  f"got {padding!r}")
        if truncation == "do_not_truncate":
            truncation = False
        if not (truncation is None or isinstance(truncation, bool) or truncation in TRUNCATION_STRATEGIES):
            raise InputValueError(f"truncation must be one of {TRUNCATION_STRATEGIES} or True/False/None, "
                                  f"got {truncation!r}")
        if truncation == "only_second" and not pair:
            raise InputValueError("truncation='only_second' needs text_pairs; use 'longest_first' for single texts")
        sides = {"padding_side": padding_side or "right", "truncation_side": truncation_side or "right"}
        for name, side in sides.items():
            if side not in ("right", "left"):
                raise InputValueError(f"{name}={side!r}: expected 'right' or 'left'")
        multiple = None if pad_to_multiple_of is None else positive_int("pad_to_multiple_of", pad_to_multiple_of)
        common = {"pad_side": sides["padding_side"], "cut_side": sides["truncation_side"], "pad_multiple": multiple,
                  "add_special": bool(add_special_tokens)}

        if style == "tfhub":
            if max_length is not None:
                raise InputValueError("style='tfhub' takes seq_length=..., not max_length")
            if truncation not in (None, "round_robin"):
                raise InputValueError(f"style='tfhub' always truncates round robin, got truncation={truncation!r}")
            seq_length = self._check_length(seq_length, "seq_length", n_special)
            return _Plan(seq_length, "round_robin", seq_length, f"seq_length={seq_length}", n_special, **common)

        # HF semantics: truncation=True means "longest_first"; max_length alone implies it too.
        if truncation is True or (truncation is None and max_length is not None):
            truncation = "longest_first"
        strategy = truncation or None          # False / None: refuse over-long rows
        if max_length is None:
            if padding == "max_length":
                raise InputValueError("padding='max_length' needs max_length=...")
            limit = self.model_max_length if strategy else self.max_position_embeddings
            limit_name = f"model_max_length={limit}" if strategy else f"max_position_embeddings={limit}"
            plan = _Plan(limit, strategy, None, limit_name, n_special, padding=padding, **common)
        else:
            max_length = self._check_length(max_length, "max_length", n_special)
            plan = _Plan(max_length, strategy, max_length if padding == "max_length" else None,
                         f"max_length={max_length}", n_special, padding=padding, **common)
        return self._plan_overflow(plan, stride, overflow, pair)

    def _plan_overflow(self, plan: _Plan, stride: Any, overflow: bool, pair: bool) -> _Plan:
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 0:
            raise InputValueError(f"stride={stride!r}: expected a non-negative int")
        if not overflow:
            return plan
        if plan.strategy is None:
            raise InputValueError("return_overflowing_tokens=True needs truncation (and max_length) to cut windows")
        if pair and plan.strategy not in ("only_first", "only_second"):
            raise InputValueError(f"return_overflowing_tokens with a pair needs truncation='only_first' or "
                                  f"'only_second' (the window slides over one text), got {plan.strategy!r}")
        return replace(plan, stride=int(stride), overflow=True)

    def _check_length(self, value: Any, name: str, n_special: int) -> int:
        """A max_length / seq_length must be an int in [n_special, max_position_embeddings]."""
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputTypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < n_special:
            what = "a pair" if n_special >= 3 else "a single text"
            raise InputValueError(f"{name}={value} is less than the {n_special} special tokens of {what}")
        if value > self.max_position_embeddings:
            raise InputValueError(f"{name}={value} is more than max_position_embeddings="
                                  f"{self.max_position_embeddings}")
        return int(value)

    # --- encoding: tokenizers truncates, adds the special tokens, pads and cuts windows -------------

    def _configured_backend(self, plan: _Plan) -> Tokenizer:
        """A copy of the tokenizer with this plan's truncation and padding, made once per setting (the
        last CONFIGURED_COPIES settings are kept) and never changed: threads may share it."""
        truncation = None if plan.strategy is None else (plan.limit, plan.stride, plan.strategy, plan.cut_side)
        padding = None
        if plan.padding != "do_not_pad" and self.pad_token_id is not None:
            padding = (plan.pad_side, plan.pad_to, plan.pad_multiple)
        key = (truncation, padding)
        with self._lock:
            if key not in self._configured:
                tok = Tokenizer.from_str(self._tok.to_str())
                if truncation is not None:
                    tok.enable_truncation(plan.limit, stride=plan.stride, strategy=plan.strategy,
                                          direction=plan.cut_side)
                if padding is not None:
                    tok.enable_padding(direction=plan.pad_side, pad_id=self.pad_token_id, pad_type_id=0,
                                       pad_token=self._names["pad_token"], length=plan.pad_to,
                                       pad_to_multiple_of=plan.pad_multiple)
                if len(self._configured) >= CONFIGURED_COPIES:  # bounded: drop the oldest setting
                    del self._configured[next(iter(self._configured))]
                self._configured[key] = tok
            return self._configured[key]

    def _encode(self, batch_a: list, batch_b: list | None, plan: _Plan, pretokenized: bool = False,
                offsets: bool = False) -> list[tuple[int, Encoding]]:
        """(item index, encoding) per output row: one per item, or its windows (transformers' order)."""
        a, cut = self._capped(batch_a, plan, pretokenized)
        b, cut_b = (None, None) if batch_b is None else self._capped(batch_b, plan, pretokenized)
        if b is not None:
            for i in range(len(a)):
                # longest_first with an odd budget gives the extra token to the longer FULL segment: when
                # either was cut, only the whole texts say which one that is ('a a a a aworda' cut to 2 of its
                # 7 tokens looks shorter than a 6-token text; hypothesis found it). Even budgets split evenly.
                if (cut[i] or cut_b[i]) and plan.strategy == "longest_first" and plan.budget % 2:
                    a[i], b[i], cut[i], cut_b[i] = batch_a[i], batch_b[i], False, False
            cut = [x or y for x, y in zip(cut, cut_b)]
        if plan.overflow:
            self._check_items(a, b, plan, pretokenized, cut)
            if b is not None:  # tokenizers gives the windows of a pair's second text type ids 0
                return self._pad(self._pair_windows(a, b, plan, pretokenized, offsets), plan)
        backend = self._configured_backend(plan)
        inputs = a if b is None else list(zip(a, b))
        encode = backend.encode_batch if offsets or pretokenized else backend.encode_batch_fast  # fast: no offsets
        try:
            encodings = encode(inputs, is_pretokenized=pretokenized, add_special_tokens=plan.add_special)
        except Exception:  # only_first / only_second that cannot fit: name the item
            self._check_items(a, b, plan, pretokenized, cut)
            raise
        if plan.strategy is None:
            for i, e in enumerate(encodings):
                if sum(e.attention_mask) > plan.limit:
                    raise InputValueError(_too_long_message(i, sum(e.attention_mask), b is not None, plan, cut[i]))
        windows = (lambda enc: (enc, *enc.overflowing)) if plan.overflow else (lambda enc: (enc,))
        return [(i, e) for i, enc in enumerate(encodings) for e in windows(enc)]

    def _capped(self, texts: list, plan: _Plan, pretokenized: bool) -> tuple[list, list[bool]]:
        """Texts cut by the char cap where that cannot change the result, and which were cut.

        Every strategy keeps at most `budget` tokens of a segment and only needs to know whether it
        has more, so a prefix with at least budget + 1 tokens is as good as the whole text. Overflowing
        windows and left-side truncation need every token: those texts stay whole."""
        if pretokenized or plan.overflow or plan.cut_side == "left" or self._char_cap is None:
            return list(texts), [False] * len(texts)
        return self._char_cap.cut(texts, plan.budget + 1)

    def _check_items(self, a: list, b: list | None, plan: _Plan, pretokenized: bool, cut: list):
        """Name the item before tokenizers fails the whole batch (only_first / only_second: the whole
        other segment leaves no room) or panics (a window not longer than the stride)."""
        def lengths(texts):
            return [len(e.ids) for e in self._segments(texts, pretokenized, False)]
        n_a, n_b = lengths(a), [0] * len(a) if b is None else lengths(b)
        for i, (x, y) in enumerate(zip(n_a, n_b)):
            if x + y <= plan.budget or plan.strategy is None:
                continue
            whole = {"only_first": y, "only_second": x}.get(plan.strategy, 0)  # the segment kept whole
            if whole >= plan.budget:
                kept, cut_one = ("text_pairs", "texts") if plan.strategy == "only_first" else ("texts", "text_pairs")
                raise InputValueError(
                    f"truncation={plan.strategy!r} cannot fit item {i} into {plan.limit_name}: {kept}[{i}] "
                    f"({'at least ' if cut[i] else ''}{whole} tokens, kept whole) and {plan.n_special} special "
                    f"tokens leave no room for {cut_one}[{i}]; use truncation='longest_first' or a larger max_length")
            if plan.overflow and plan.stride >= plan.budget - whole:
                raise InputValueError(f"stride={plan.stride} must be less than the {plan.budget - whole} tokens that "
                                      f"fit in a window for item {i} (max_length minus the special tokens and any "
                                      "whole segment)")

    def _round_robin(self, batch_a: list, batch_b: list | None, plan: _Plan, pretokenized: bool = False,
                     offsets: bool = False) -> list[Encoding]:
        """TF Text's RoundRobinTrimmer (TF Hub's preprocessor), which tokenizers lacks: the segments
        trimmed round robin, then the post-processor's special tokens, then padding as planned."""
        def segments(texts):
            return self._segments(self._capped(texts, plan, pretokenized)[0], pretokenized, offsets)
        seg_a, seg_b = segments(batch_a), [None] * len(batch_a) if batch_b is None else segments(batch_b)
        rows = []
        for x, y in zip(seg_a, seg_b):
            keep_a, keep_b = round_robin_lengths(len(x.ids), 0 if y is None else len(y.ids), plan.budget)
            x.truncate(keep_a)
            if y is not None:
                y.truncate(keep_b)
            rows.append(self._tok.post_process(x, y, add_special_tokens=plan.add_special))
        return [row for _, row in self._pad(list(enumerate(rows)), plan)]

    def _segments(self, texts: list, pretokenized: bool, offsets: bool) -> list[Encoding]:
        """Each text's tokens without special tokens (nor truncation, nor padding)."""
        encode = self._tok.encode_batch if offsets or pretokenized else self._tok.encode_batch_fast
        return encode(texts, is_pretokenized=pretokenized, add_special_tokens=False)

    def _pair_windows(self, a: list, b: list, plan: _Plan, pretokenized: bool, offsets: bool) -> list:
        """return_overflowing_tokens for pairs (only_first / only_second): the windows of the cut
        text (tokenizers' Encoding.truncate with the stride), each joined to the whole other text by
        the post-processor; (item index, encoding) in transformers' order."""
        rows, first = [], plan.strategy == "only_first"
        seg_a, seg_b = self._segments(a, pretokenized, offsets), self._segments(b, pretokenized, offsets)
        for i, (x, y) in enumerate(zip(seg_a, seg_b)):
            cut, whole = (x, y) if first else (y, x)
            cut.truncate(plan.budget - len(whole.ids), stride=plan.stride, direction=plan.cut_side)
            for window in (cut, *cut.overflowing):
                pair = (window, whole) if first else (whole, window)
                rows.append((i, self._tok.post_process(*pair, add_special_tokens=plan.add_special)))
        return rows

    def _pad(self, rows: list[tuple[int, Encoding]], plan: _Plan) -> list[tuple[int, Encoding]]:
        """Rows built outside a configured tokenizer, padded as planned (as `enable_padding` would)."""
        if plan.padding != "do_not_pad" and self.pad_token_id is not None:
            width = plan.pad_to or max(len(row.ids) for _, row in rows)
            width = -(-width // plan.pad_multiple) * plan.pad_multiple if plan.pad_multiple else width
            for _, row in rows:
                row.pad(width, direction=plan.pad_side, pad_id=self.pad_token_id, pad_type_id=0,
                        pad_token=self._names["pad_token"])
        return rows

    # --- arrays ---------------------------------------------------------------------------------------

    def _to_arrays(self, rows: list[tuple[int, Encoding]], plan: _Plan, dtype: type, keys: tuple[str, str, str],
                   special_tokens_mask: bool = False, offsets: bool = False, length: bool = False) -> dict:
        """Encodings (padded by tokenizers) -> [B, T] arrays; rows of different lengths (padding off)
        come back as lists of 1-D arrays instead, as transformers' lists."""
        encodings = [e for _, e in rows]
        lengths = [len(e.ids) for e in encodings]
        if plan.padding != "do_not_pad" and self.pad_token_id is None:
            width = plan.pad_to or max(lengths)
            if plan.pad_multiple:
                width = -(-width // plan.pad_multiple) * plan.pad_multiple
            if width > min(lengths):
                raise InputValueError(f"{self.source}: cannot pad, the vocabulary has no pad token "
                                      f"({self._names['pad_token']}); pass padding=False, or texts of one length")
        columns = {keys[0]: [e.ids for e in encodings], keys[1]: [e.attention_mask for e in encodings],
                   keys[2]: [e.type_ids for e in encodings]}
        if special_tokens_mask:
            columns["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if offsets:
            columns["offset_mapping"] = [e.offsets for e in encodings]
        pairs = {"offset_mapping": (2,)}  # offsets are (start, end) per token
        if len(set(lengths)) > 1:  # padding off
            out = {k: [np.array(v, dtype=dtype).reshape(len(v), *pairs.get(k, ())) for v in column]
                   for k, column in columns.items()}
        else:
            out = {k: np.array(column, dtype=dtype).reshape(len(rows), lengths[0], *pairs.get(k, ()))
                   for k, column in columns.items()}
        if length:
            out["length"] = np.array(lengths, dtype=dtype)  # transformers reports the padded length
        return out


# --- truncation that tokenizers lacks, and messages ---------------------------------------------------

def round_robin_lengths(n_a: int, n_b: int, budget: int) -> tuple[int, int]:
    """TF Text RoundRobinTrimmer: hand out the budget one token at a time to A, B, A, B, ...

    An exhausted segment is skipped, so the other gets the rest. Closed form of that loop.
    """
    half_a, half_b = (budget + 1) // 2, budget // 2     # A is served first, so it gets the odd token
    if n_a <= half_a:
        return n_a, min(n_b, budget - n_a)
    if n_b <= half_b:
        return min(n_a, budget - n_b), n_b
    return half_a, half_b


def _too_long_message(i: int, n_tokens: int, pair: bool, plan: _Plan, cut: bool) -> str:
    """Message for a row over the limit with truncation off."""
    what = f"texts[{i}] + text_pairs[{i}]" if pair else f"texts[{i}]"
    length = f"at least {n_tokens}" if cut else f"{n_tokens}"
    if plan.limit_name.startswith("max_length"):
        fix = "pass truncation='longest_first' (or leave truncation unset) to cut it"
    else:
        fix = f"pass max_length={plan.limit} (or less) to truncate it"
    return f"{what} has {length} tokens with [CLS]/[SEP], more than {plan.limit_name}; {fix}"


