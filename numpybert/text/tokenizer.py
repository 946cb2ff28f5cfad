"""BERT tokenization: a thin wrapper over HuggingFace's `tokenizers` library.

    tok = BertTokenizer.from_dir("weights/all-MiniLM-L6-v2", max_position_embeddings=512)
    tok(["Hello world", "Second text"])            # HF style: int64 input_ids / attention_mask / token_type_ids
    tok("How old are you?", "I am six.", max_length=16, padding="max_length")
    tok(["a", "b"], style="tfhub", seq_length=128)  # TF Hub preprocessor: int32, fixed length, round robin

The WordPiece work (normalize, pre-tokenize, word pieces) is done by `tokenizers`. This module only
  * validates the inputs first and names the bad item (`tokenizers` fails the whole batch without
    saying which item),
  * encodes each segment WITHOUT special tokens, then truncates the id lists itself (the strategies
    of `tokenizers`, plus the TF Text round robin), adds [CLS]/[SEP] and type ids, and pads,
  * cuts very long texts before tokenizing when that provably cannot change the result
    (see `_CharCap`), so a 10 MB line costs milliseconds, not seconds.

Output layout is BERT's template: `[CLS] A [SEP]` (type 0), then `B [SEP]` (type 1) for a pair;
padding is on the right with the [PAD] id, type 0, mask 0.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from ..errors import ConfigError, InputTypeError, InputValueError, WeightsNotFoundError
from ..loading.config import read_json_object
from .inputs import check_text

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "round_robin")
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
PADDING_ALIASES = {True: "longest", False: "do_not_pad"}  # transformers' padding=True / False
STYLES = ("hf", "tfhub")
REQUIRED_SPECIAL_TOKENS = ("cls_token", "sep_token", "unk_token")  # [PAD] only when padding is needed
DEFAULT_SPECIAL_TOKENS = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                          "unk_token": "[UNK]", "mask_token": "[MASK]"}

# Characters that survive every BertNormalizer setting (clean_text deletes control, format and
# unassigned characters and U+FFFD; strip_accents deletes combining marks after NFD, which keeps the
# base letter): printable ASCII, Latin-1 letters, and the basic letters of Greek, Cyrillic, Hebrew,
# Arabic, Devanagari, Thai, Hiragana, Katakana, CJK ideographs and Hangul, all in Unicode since
# 1.1/2.0, so no Unicode table treats them as unassigned. See `_CharCap`.
_SURE_CHARS = ("!-~\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0391-\u03a1\u03a3-\u03a9\u03b1-\u03c9"
               "\u0410-\u044f\u05d0-\u05ea\u0621-\u063a\u0641-\u064a\u0905-\u0939\u0e01-\u0e2e"
               "\u3041-\u3093\u30a1-\u30fa\u4e00-\u9fa5\uac00-\ud7a3")
_CJK = "\u4e00-\u9fa5"          # CJK Unified Ideographs (Unicode 1.1), each its own word in BERT
_ASCII_PUNCT = "".join(chr(c) for c in range(0x21, 0x7f) if not chr(c).isalnum())
# Texts shorter than this are tokenized whole: scanning them would cost more than it saves.
_CAP_SCAN_MIN_CHARS = 4096


@dataclass(frozen=True)
class _Plan:
    """What one call asks for, validated: the length limit, how to truncate, how to pad."""

    limit: int                 # max tokens per row, special tokens included
    strategy: str | None       # truncation strategy; None: refuse rows over `limit`
    pad_to: int | None         # fixed row length, or None: pad to the longest row
    limit_name: str            # where `limit` came from, for messages ("max_length=16", ...)
    n_special: int             # 2 for single texts, 3 for pairs (0 without add_special_tokens)
    padding: str = "longest"   # one of PADDING_STRATEGIES
    pad_side: str = "right"
    cut_side: str = "right"    # truncation_side: "left" keeps the last tokens
    pad_multiple: int | None = None
    add_special: bool = True
    stride: int = 0
    overflow: bool = False     # return_overflowing_tokens: windows instead of one cut row

    @property
    def budget(self) -> int:
        """Tokens left for the text segments once [CLS]/[SEP] are counted."""
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
        self._tok = tokenizer
        self.source = source
        self.max_position_embeddings = int(max_position_embeddings)
        self._ids = _special_token_ids(tokenizer, special_tokens, source)
        self._names = dict(special_tokens)
        valid = isinstance(model_max_length, int) and model_max_length > 0
        self._model_max_length = model_max_length if valid else None
        self._char_cap = _CharCap.for_tokenizer(tokenizer)
        self._template = _template(tokenizer, self._ids)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_dir(cls, model_dir: str | Path, max_position_embeddings: int) -> "BertTokenizer":
        """Load the tokenizer of a model directory.

        Uses tokenizer.json when present (its baked-in padding/truncation are dropped); otherwise
        builds BERT's WordPiece pipeline from vocab.txt with do_lower_case / strip_accents /
        tokenize_chinese_chars from tokenizer_config.json (lowercase unless the config says otherwise).
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise WeightsNotFoundError(f"model directory {str(model_dir)!r} does not exist")
        config = _read_tokenizer_config(model_dir)
        special = _special_token_names(model_dir, config)
        limit = config.get("model_max_length")
        limit = int(limit) if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit < 1e9 else None
        tok_json, vocab_txt = model_dir / "tokenizer.json", model_dir / "vocab.txt"
        if tok_json.is_file():
            try:
                tokenizer = Tokenizer.from_file(str(tok_json))
            except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
                raise ConfigError(f"cannot read {tok_json}: {exc}") from exc
            return cls(tokenizer, special, max_position_embeddings, str(tok_json), limit)
        if vocab_txt.is_file():
            return cls(_wordpiece_from_vocab(vocab_txt, config, special), special, max_position_embeddings,
                       str(vocab_txt), limit)
        raise WeightsNotFoundError(f"no tokenizer.json or vocab.txt in {str(model_dir)!r}")

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
        out = self(text, text_pair, add_special_tokens=add_special_tokens, padding=False, **kwargs)
        return [int(i) for i in out["input_ids"][0]]

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
        batch_a = _as_text_list(text, "texts", is_split_into_words)
        batch_b = None if text_pair is None else _as_text_list(text_pair, "text_pairs", is_split_into_words)
        if batch_b is not None and len(batch_b) != len(batch_a):
            raise InputValueError(f"text_pairs has {len(batch_b)} items but texts has {len(batch_a)}; "
                                  "they must have the same length")
        plan = self._plan(style, max_length, padding, truncation, seq_length, pair=batch_b is not None,
                          add_special_tokens=add_special_tokens, stride=stride,
                          overflow=return_overflowing_tokens, padding_side=padding_side,
                          truncation_side=truncation_side, pad_to_multiple_of=pad_to_multiple_of)
        seg_a, seg_b, cut = self._encode_segments(batch_a, batch_b, plan, is_split_into_words,
                                                  offsets=return_offsets_mapping)
        rows = []
        for i in range(len(seg_a)):
            rows += [(i, row) for row in self._fit_row(i, seg_a[i], None if seg_b is None else seg_b[i], plan, cut[i])]
        if style == "tfhub":
            return self._to_arrays([r for _, r in rows], plan, np.int32,
                                   ("input_word_ids", "input_mask", "input_type_ids"))
        out = self._to_arrays([r for _, r in rows], plan, np.int64, ("input_ids", "attention_mask", "token_type_ids"),
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
        n_special = self._template.n_special(pair) if add_special_tokens else 0
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
        multiple = None if pad_to_multiple_of is None else _positive("pad_to_multiple_of", pad_to_multiple_of)
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
        return dataclasses.replace(plan, stride=int(stride), overflow=True)

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

    # --- encoding -----------------------------------------------------------------------------------

    def _encode_segments(self, batch_a: list, batch_b: list | None, plan: _Plan, pretokenized: bool = False,
                         offsets: bool = False) -> tuple[list[_Segment], list[_Segment] | None, list[bool]]:
        """Every segment's tokens (no special tokens), and whether item i was cut short.

        Long texts are cut first (`_CharCap`), which changes nothing: every strategy keeps at most
        `budget` tokens of a segment and only needs to know whether a segment has more than
        `budget`, so a prefix with at least budget + 1 tokens is as good as the whole text.
        Exceptions, where texts are tokenized whole: overflowing windows and left-side truncation
        need every token; "longest_first" with an odd budget gives the extra token to the longer
        segment, so when both segments of a pair are over budget and one was cut, that pair is
        re-encoded whole (rare: two very long texts).
        """
        whole = pretokenized or plan.overflow or plan.cut_side == "left"
        min_tokens = None if whole else plan.budget + 1
        seg_a, cut = self._encode_capped(batch_a, min_tokens, pretokenized, offsets)
        if batch_b is None:
            return seg_a, None, cut
        seg_b, cut_b = self._encode_capped(batch_b, min_tokens, pretokenized, offsets)
        cut = [x or y for x, y in zip(cut, cut_b)]
        if plan.strategy == "longest_first" and plan.budget % 2 == 1:
            for i in range(len(seg_a)):
                if cut[i] and len(seg_a[i].ids) > plan.budget and len(seg_b[i].ids) > plan.budget:
                    seg_a[i] = self._encode_capped([batch_a[i]], None, pretokenized, offsets)[0][0]
                    seg_b[i] = self._encode_capped([batch_b[i]], None, pretokenized, offsets)[0][0]
                    cut[i] = False
        return seg_a, seg_b, cut

    def _encode_capped(self, texts: list, min_tokens: int | None, pretokenized: bool = False,
                       offsets: bool = False) -> tuple[list[_Segment], list[bool]]:
        """Encode texts without special tokens; returns the segments and which texts were cut short."""
        cap = self._char_cap if (self._char_cap and min_tokens is not None) else None
        cut_texts = [cap(t, min_tokens) for t in texts] if cap else texts
        if offsets or pretokenized:  # encode_batch_fast computes no offsets
            encodings = self._tok.encode_batch(cut_texts, is_pretokenized=pretokenized, add_special_tokens=False)
        else:
            encodings = self._tok.encode_batch_fast(cut_texts, add_special_tokens=False)
        segments = [_Segment(e.ids, e.offsets if offsets else None) for e in encodings]
        return segments, [len(c) < len(t) for c, t in zip(cut_texts, texts)]

    # --- truncation -----------------------------------------------------------------------------------

    def _fit_row(self, i: int, a: _Segment, b: _Segment | None, plan: _Plan, cut: bool = False) -> list[_Row]:
        """Truncate item i's segments per the plan (or refuse), then add [CLS]/[SEP]: one row, or
        several overlapping windows with return_overflowing_tokens.

        `cut`: the texts were cut before tokenizing, so the lengths are lower bounds (for messages).
        """
        n_a, n_b = len(a.ids), 0 if b is None else len(b.ids)
        if n_a + n_b <= plan.budget:
            return [self._row(a, b, plan)]
        if plan.strategy is None:
            raise InputValueError(_too_long_message(i, n_a + n_b + plan.n_special, b is not None, plan, cut))
        keep_a, keep_b = _truncated_lengths(i, n_a, n_b, b is not None, plan, cut)
        if not plan.overflow:
            b = None if b is None else b.keep(keep_b, plan.cut_side)
            return [self._row(a.keep(keep_a, plan.cut_side), b, plan)]
        if b is None or keep_b == n_b:   # the window slides over A (B, if any, stays whole)
            return [self._row(a.window(s, e), b, plan) for s, e in _windows(n_a, keep_a, plan.stride, plan.cut_side, i)]
        return [self._row(a, b.window(s, e), plan) for s, e in _windows(n_b, keep_b, plan.stride, plan.cut_side, i)]

    def _row(self, a: _Segment, b: _Segment | None, plan: _Plan) -> _Row:
        """The post-processor's template around the segments (`_template`): BERT's [CLS] A [SEP] (B [SEP]),
        RoBERTa's <s> A </s> (</s> B </s>): ids, type ids, special-token mask and offsets of one row."""
        pieces = self._template.pair if b is not None else self._template.single
        if not plan.add_special:
            pieces = [p for p in pieces if p[0] in ("A", "B")]
        ids, types, special, offsets = [], [], [], None if a.offsets is None else []
        for piece, type_id in pieces:
            segment = {"A": a, "B": b}.get(piece) if isinstance(piece, str) else None
            n = 1 if segment is None else len(segment.ids)
            ids += [piece] if segment is None else list(segment.ids)
            types += [type_id] * n
            special += [int(segment is None)] * n
            if offsets is not None:
                offsets += [(0, 0)] if segment is None else list(segment.offsets)
        return _Row(ids, types, special, offsets)

    # --- arrays ---------------------------------------------------------------------------------------

    def _to_arrays(self, rows: list[_Row], plan: _Plan, dtype: type, keys: tuple[str, str, str],
                   special_tokens_mask: bool = False, offsets: bool = False, length: bool = False) -> dict:
        """Pad rows into [B, T] arrays: ids (pad id), mask (1 on tokens), type ids (pad 0), on plan.pad_side.
        With padding off and rows of different lengths, each key holds a list of 1-D arrays instead."""
        lengths = [len(r.ids) for r in rows]
        columns = {keys[0]: [r.ids for r in rows], keys[1]: [[1] * n for n in lengths],
                   keys[2]: [r.types for r in rows]}
        if special_tokens_mask:
            columns["special_tokens_mask"] = [r.special for r in rows]
        if offsets:
            columns["offset_mapping"] = [r.offsets for r in rows]
        out = {}
        if plan.padding == "do_not_pad" and len(set(lengths)) > 1:
            out = {k: [np.array(v, dtype=dtype).reshape(len(v), *((2,) if k == "offset_mapping" else ())) for v in col]
                   for k, col in columns.items()}
        else:
            width = plan.pad_to if plan.pad_to is not None else max(lengths)
            if plan.pad_multiple and plan.padding != "do_not_pad":
                width = -(-width // plan.pad_multiple) * plan.pad_multiple
            if width > min(lengths) and self.pad_token_id is None:
                raise InputValueError(f"{self.source}: cannot pad, the vocabulary has no pad token "
                                      f"({self._names['pad_token']}); pass padding=False, or texts of one length")
            fills = {keys[0]: self.pad_token_id or 0, keys[1]: 0, keys[2]: 0, "special_tokens_mask": 1,
                     "offset_mapping": (0, 0)}
            for key, col in columns.items():
                shape = (len(rows), width, 2) if key == "offset_mapping" else (len(rows), width)
                arr = np.empty(shape, dtype=dtype)
                arr[...] = fills[key]
                for r, values in enumerate(col):
                    where = slice(width - len(values), width) if plan.pad_side == "left" else slice(0, len(values))
                    if values:
                        arr[r, where] = values
                out[key] = arr
            lengths = [width] * len(rows)  # transformers reports the padded length
        if length:
            out["length"] = np.array(lengths, dtype=dtype)
        return out


@dataclass(frozen=True)
class _Segment:
    """One text's tokens without special tokens: ids and (when asked) character offsets."""
    ids: list
    offsets: list | None = None

    def window(self, start: int, stop: int) -> "_Segment":
        return _Segment(self.ids[start:stop], None if self.offsets is None else self.offsets[start:stop])

    def keep(self, n: int, side: str) -> "_Segment":
        """The first n tokens (truncation_side right) or the last n (left)."""
        return self.window(0, n) if side == "right" else self.window(len(self.ids) - n, len(self.ids))


@dataclass(frozen=True)
class _Row:
    ids: list
    types: list
    special: list
    offsets: list | None


def _windows(n: int, size: int, stride: int, side: str, i: int) -> list[tuple[int, int]]:
    """tokenizers' Encoding.truncate with stride: windows of `size` tokens, each starting size - stride
    after the previous one, from the right end when side is "left"; the last window reaches the end."""
    if stride >= size:
        raise InputValueError(f"stride={stride} must be less than the {size} tokens that fit in a window "
                              f"for item {i} (max_length minus the special tokens and any whole segment)")
    step, spans = size - stride, []
    if side == "right":
        for start in range(0, n, step):
            spans.append((start, min(start + size, n)))
            if spans[-1][1] == n:
                break
    else:
        for stop in range(n, 0, -step):
            spans.append((max(stop - size, 0), stop))
            if spans[-1][0] == 0:
                break
    return spans


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputValueError(f"{name}={value!r}: expected a positive int")
    return int(value)


# --- truncation strategies (pure functions on segment lengths) -----------------------------------------

def _truncated_lengths(i: int, n_a: int, n_b: int, pair: bool, plan: _Plan, cut: bool) -> tuple[int, int]:
    """How many tokens of segment A and B to keep when n_a + n_b > plan.budget (as tokenizers does)."""
    budget, strategy = plan.budget, plan.strategy
    if budget == 0:                         # tokenizers' special case: everything goes
        return 0, 0
    if strategy == "round_robin":
        return round_robin_lengths(n_a, n_b, budget)
    if not pair:                            # longest_first / only_first on a single text
        return budget, 0
    if strategy == "longest_first":
        return longest_first_lengths(n_a, n_b, budget)
    # only_first / only_second: the other segment stays whole, the target must keep >= 1 token,
    # so this fails exactly when the other segment alone fills the budget.
    to_remove = n_a + n_b - budget
    n_target = n_a if strategy == "only_first" else n_b
    if n_target <= to_remove:
        target, other = ("texts", "text_pairs") if strategy == "only_first" else ("text_pairs", "texts")
        n_other = n_b if strategy == "only_first" else n_a
        raise InputValueError(
            f"truncation={strategy!r} cannot fit item {i} into {plan.limit_name}: {other}[{i}] "
            f"({'at least ' if cut else ''}{n_other} tokens, kept whole) and {plan.n_special} special tokens "
            f"leave no room for {target}[{i}]; use truncation='longest_first' or a larger max_length")
    return (n_a - to_remove, n_b) if strategy == "only_first" else (n_a, n_b - to_remove)


def longest_first_lengths(n_a: int, n_b: int, budget: int) -> tuple[int, int]:
    """tokenizers' LongestFirst for a pair (tokenizers/src/utils/truncation.rs).

    With s the shorter and l the longer length: keep s whole and cut l to budget - s when s fits in
    half the budget; otherwise s gets budget // 2 and l the rest (the odd token goes to the
    longer segment, to B on a tie).
    """
    if n_a + n_b <= budget:
        return n_a, n_b
    swap = n_a > n_b
    short, long_ = (n_b, n_a) if swap else (n_a, n_b)
    long_ = short if short > budget else max(short, budget - short)
    if short + long_ > budget:
        short, long_ = budget // 2, budget // 2 + budget % 2
    return (long_, short) if swap else (short, long_)


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


# --- the character cap ------------------------------------------------------------------------------

class _CharCap:
    """Cut a long text to a prefix whose tokens are the text's first >= min_tokens tokens.

    Rule: "boundary" characters are ' ', \\t, \\n, \\r, ASCII punctuation, and CJK ideographs when the
    normalizer handles Chinese characters, minus any character that occurs in an added (special)
    token. Scan units (a boundary character alone, or a run between boundaries) that hold a sure
    character (`_SURE_CHARS`); after min_tokens of them, cut right before the next boundary.
    Why the tokens are unchanged:
      * Every boundary ends a word in the full text too: BertPreTokenizer splits at whitespace and
        isolates every ASCII punctuation character, the normalizer pads CJK ideographs with spaces,
        and no special token can span the cut. Normalization is per character (lowercasing is not
        context-sensitive, NFD does not reorder across a base character, deletions are local), so
        every word before the cut is normalized and split exactly as in the full text.
      * Every counted unit yields >= 1 token: its sure character survives normalization, so the unit
        holds a non-empty word or a special token, and WordPiece gives every word >= 1 id ([UNK] at
        worst). Units are counted, not characters: a 150-character word is one [UNK].
    Only the boundary set matters for correctness of the cut; \\x85 and \\x0b are NOT boundaries
    (clean_text deletes them, so "a\\x85b" is one word), although Python's str.isspace() says so.
    A text with fewer counted units (e.g. emoji or Thai without spaces) is kept whole: correct,
    just slower.
    """

    def __init__(self, boundary_chars: str):
        self._boundary = re.compile(f"[{boundary_chars}]")
        self._sure = re.compile(f"[{_SURE_CHARS}]")

    @classmethod
    def for_tokenizer(cls, tokenizer: Tokenizer) -> "_CharCap | None":
        """The cap for BERT's pipeline (WordPiece, BertPreTokenizer, BertNormalizer or none); else None."""
        normalizer = tokenizer.normalizer
        if not (isinstance(tokenizer.model, WordPiece)
                and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
                and (normalizer is None or isinstance(normalizer, normalizers.BertNormalizer))):
            return None
        in_added = set("".join(t.content for t in tokenizer.get_added_tokens_decoder().values()))
        boundary = "".join(re.escape(c) for c in " \t\n\r" + _ASCII_PUNCT if c not in in_added)
        if normalizer is not None and normalizer.handle_chinese_chars \
                and not any(0x4E00 <= ord(c) <= 0x9FA5 for c in in_added):
            boundary += _CJK
        return cls(boundary)

    def __call__(self, text: str, min_tokens: int) -> str:
        if len(text) < _CAP_SCAN_MIN_CHARS:
            return text
        pos = 0
        for _ in range(min_tokens):
            sure = self._sure.search(text, pos)
            if sure is None:
                return text
            end = self._boundary.search(text, sure.end())     # the unit ends before the next boundary
            if end is None:
                return text
            pos = end.start()
        return text[:pos]


# --- input validation -------------------------------------------------------------------------------

def _as_text_list(value: Any, name: str, split_into_words: bool = False) -> list:
    """texts / text_pairs as a list of plain str (or, split into words, of lists of str); a bad item
    is named by index before tokenizers sees it."""
    if split_into_words:
        return _as_word_lists(value, name)
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


def _as_word_lists(value: Any, name: str) -> list[list[str]]:
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


# --- loading helpers --------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    """A JSON object from path, or {} when the file is absent."""
    return read_json_object(path, path.name, absent={})


def _read_tokenizer_config(model_dir: Path) -> dict:
    return _read_json(model_dir / "tokenizer_config.json")


def _token_content(value: Any) -> str | None:
    """A special token from a config: a plain string or an AddedToken dict {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_token_names(model_dir: Path, config: dict) -> dict[str, str]:
    """Special token strings: defaults, then special_tokens_map.json, then tokenizer_config.json."""
    names = dict(DEFAULT_SPECIAL_TOKENS)
    for source in (_read_json(model_dir / "special_tokens_map.json"), config):
        for key in DEFAULT_SPECIAL_TOKENS:
            content = _token_content(source.get(key))
            if content:
                names[key] = content
    return names


def _special_token_ids(tokenizer: Tokenizer, names: dict[str, str], source: str) -> dict[str, int]:
    """Ids of the special tokens; a required one missing from the vocabulary is a ConfigError."""
    ids = {}
    for key, token in names.items():
        token_id = tokenizer.token_to_id(token)
        if token_id is None and key in REQUIRED_SPECIAL_TOKENS:
            raise ConfigError(f"the vocabulary of {source} has no {token} token ({key}); BERT needs it")
        if token_id is not None:
            ids[key] = token_id
    return ids


def _config_flag(config: dict, key: str, default: bool | None) -> bool | None:
    value = config.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"tokenizer_config.json: {key} must be true/false/null, got {value!r}")
    return value


def _wordpiece_from_vocab(vocab_txt: Path, config: dict, special: dict[str, str]) -> Tokenizer:
    """BERT's pipeline (as transformers builds it) from vocab.txt and tokenizer_config.json."""
    lowercase = _config_flag(config, "do_lower_case", True)
    try:
        model = WordPiece.from_file(str(vocab_txt), unk_token=special["unk_token"], max_input_chars_per_word=100)
    except Exception as exc:
        raise ConfigError(f"cannot read {vocab_txt}: {exc}") from exc
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=_config_flag(config, "tokenize_chinese_chars", True),
        strip_accents=_config_flag(config, "strip_accents", None),   # None: follow lowercase
        lowercase=lowercase,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    present = [t for t in special.values() if tokenizer.token_to_id(t) is not None]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in present])
    cls_token, sep_token = special["cls_token"], special["sep_token"]
    if cls_token in present and sep_token in present:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[(cls_token, tokenizer.token_to_id(cls_token)),
                            (sep_token, tokenizer.token_to_id(sep_token))])
    return tokenizer


@dataclass(frozen=True)
class _Template:
    """Where the special tokens go, as the tokenizer's post-processor builds a row: pieces
    ("A" or "B", type id) for a segment and (token id, type id) for a special token. BERT:
    [CLS] A [SEP] / [CLS] A [SEP] B [SEP], types 0.. 1..; RoBERTa / XLM-R: <s> A </s> /
    <s> A </s> </s> B </s>, types all 0 (tokenizer.json's RobertaProcessing or TemplateProcessing)."""
    single: tuple
    pair: tuple

    def n_special(self, pair: bool) -> int:
        return sum(not isinstance(p, str) for p, _ in (self.pair if pair else self.single))


def _template(tokenizer: Tokenizer, ids: dict[str, int]) -> _Template:
    """The row template of the file's own post-processor (read off by encoding "a" and ("a", "b")),
    or BERT's [CLS]/[SEP] template when it has none."""
    if tokenizer.post_processor is None:
        cls, sep = ids["cls_token"], ids["sep_token"]
        return _Template(((cls, 0), ("A", 0), (sep, 0)), ((cls, 0), ("A", 0), (sep, 0), ("B", 1), (sep, 1)))
    return _Template(_pieces(tokenizer.encode("a")), _pieces(tokenizer.encode("a", "b")))


def _pieces(encoding) -> tuple:
    pieces = []
    for token_id, type_id, sequence in zip(encoding.ids, encoding.type_ids, encoding.sequence_ids):
        piece = (token_id, type_id) if sequence is None else ("AB"[sequence], type_id)
        if sequence is None or not pieces or pieces[-1] != piece:
            pieces.append(piece)
    return tuple(pieces)
