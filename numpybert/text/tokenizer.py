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
PADDING_STRATEGIES = ("longest", "max_length")
STYLES = ("hf", "tfhub")
REQUIRED_SPECIAL_TOKENS = ("cls_token", "sep_token", "pad_token", "unk_token")
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
    n_special: int             # 2 for single texts, 3 for pairs

    @property
    def budget(self) -> int:
        """Tokens left for the text segments once [CLS]/[SEP] are counted."""
        return self.limit - self.n_special


class BertTokenizer:
    """BERT WordPiece tokenizer returning NumPy arrays (HF `BertTokenizerFast` ids, or TF Hub style)."""

    def __init__(self, tokenizer: Tokenizer, special_tokens: dict[str, str], max_position_embeddings: int,
                 source: str = "<memory>"):
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
        self._char_cap = _CharCap.for_tokenizer(tokenizer)
        _check_bert_template(tokenizer, self._ids, source)

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
        tok_json, vocab_txt = model_dir / "tokenizer.json", model_dir / "vocab.txt"
        if tok_json.is_file():
            try:
                tokenizer = Tokenizer.from_file(str(tok_json))
            except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
                raise ConfigError(f"cannot read {tok_json}: {exc}") from exc
            return cls(tokenizer, special, max_position_embeddings, str(tok_json))
        if vocab_txt.is_file():
            return cls(_wordpiece_from_vocab(vocab_txt, config, special), special, max_position_embeddings,
                       str(vocab_txt))
        raise WeightsNotFoundError(f"no tokenizer.json or vocab.txt in {str(model_dir)!r}")

    # --- properties -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def cls_token_id(self) -> int:
        return self._ids["cls_token"]

    @property
    def sep_token_id(self) -> int:
        return self._ids["sep_token"]

    @property
    def pad_token_id(self) -> int:
        return self._ids["pad_token"]

    @property
    def unk_token_id(self) -> int:
        return self._ids["unk_token"]

    @property
    def mask_token_id(self) -> int | None:
        """The [MASK] id, or None when the vocabulary has no mask token."""
        return self._ids.get("mask_token")

    @property
    def backend(self) -> Tokenizer:
        """The underlying `tokenizers.Tokenizer` (padding and truncation disabled)."""
        return self._tok

    def __repr__(self) -> str:
        return f"BertTokenizer(source={self.source!r}, vocab_size={self.vocab_size})"

    # --- ids -> text ----------------------------------------------------------------------------

    def convert_ids_to_tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Token strings of a 1-D id sequence (e.g. one row of input_ids), for plots and explanations."""
        return [self._tok.id_to_token(i) for i in self._check_ids(ids)]

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        """Text of a 1-D id sequence, WordPiece pieces joined (lowercased text stays lowercased)."""
        return self._tok.decode(self._check_ids(ids), skip_special_tokens=skip_special_tokens)

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

    def __call__(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None,
                 max_length: int | None = None, padding: str = "longest", truncation: str | bool | None = None,
                 style: str = "hf", seq_length: int = 128) -> dict[str, np.ndarray]:
        """Tokenize a text or a batch (optionally paired) into padded [B, T] arrays.

        style="hf": int64 `input_ids`, `attention_mask`, `token_type_ids`, as HF's fast tokenizer.
            padding: "longest" (pad to the batch's longest row) or "max_length" (needs max_length).
            truncation: "longest_first" | "only_first" | "only_second" | "round_robin" | False/None.
                With max_length and truncation None, truncation is "longest_first" (HF's truncation=True).
                With truncation and no max_length, rows are cut to max_position_embeddings.
                With neither, a row over max_position_embeddings is an InputValueError.
        style="tfhub": int32 `input_word_ids`, `input_mask`, `input_type_ids` of fixed length
            seq_length; pairs are trimmed round robin (TF Text RoundRobinTrimmer).
        """
        batch_a = _as_text_list(texts, "texts")
        batch_b = None if text_pairs is None else _as_text_list(text_pairs, "text_pairs")
        if batch_b is not None and len(batch_b) != len(batch_a):
            raise InputValueError(f"text_pairs has {len(batch_b)} items but texts has {len(batch_a)}; "
                                  "they must have the same length")
        plan = self._plan(style, max_length, padding, truncation, seq_length, pair=batch_b is not None)
        ids_a, ids_b, cut = self._encode_segments(batch_a, batch_b, plan)
        rows = [self._fit_row(i, ids_a[i], None if ids_b is None else ids_b[i], plan, cut[i])
                for i in range(len(ids_a))]
        if style == "tfhub":
            return self._to_arrays(rows, plan.pad_to, np.int32,
                                   ("input_word_ids", "input_mask", "input_type_ids"))
        return self._to_arrays(rows, plan.pad_to, np.int64, ("input_ids", "attention_mask", "token_type_ids"))

    def _plan(self, style: str, max_length: Any, padding: Any, truncation: Any, seq_length: Any,
              pair: bool) -> _Plan:
        """Validate the keyword arguments into a `_Plan`."""
        n_special = 3 if pair else 2
        if style not in STYLES:
            raise InputValueError(f"style must be one of {STYLES}, got {style!r}")
        if padding not in PADDING_STRATEGIES:
            raise InputValueError(f"padding must be one of {PADDING_STRATEGIES}, got {padding!r}")
        if not (truncation is None or isinstance(truncation, bool) or truncation in TRUNCATION_STRATEGIES):
            raise InputValueError(f"truncation must be one of {TRUNCATION_STRATEGIES} or False/None, "
                                  f"got {truncation!r}")
        if truncation == "only_second" and not pair:
            raise InputValueError("truncation='only_second' needs text_pairs; use 'longest_first' for single texts")

        if style == "tfhub":
            if max_length is not None:
                raise InputValueError("style='tfhub' takes seq_length=..., not max_length")
            if truncation not in (None, "round_robin"):
                raise InputValueError(f"style='tfhub' always truncates round robin, got truncation={truncation!r}")
            seq_length = self._check_length(seq_length, "seq_length", n_special)
            return _Plan(seq_length, "round_robin", seq_length, f"seq_length={seq_length}", n_special)

        # HF semantics: truncation=True means "longest_first"; max_length alone implies it too.
        if truncation is True or (truncation is None and max_length is not None):
            truncation = "longest_first"
        strategy = truncation or None          # False / None: refuse over-long rows
        if max_length is None:
            if padding == "max_length":
                raise InputValueError("padding='max_length' needs max_length=...")
            limit_name = f"max_position_embeddings={self.max_position_embeddings}"
            return _Plan(self.max_position_embeddings, strategy, None, limit_name, n_special)
        max_length = self._check_length(max_length, "max_length", n_special)
        return _Plan(max_length, strategy, max_length if padding == "max_length" else None,
                     f"max_length={max_length}", n_special)

    def _check_length(self, value: Any, name: str, n_special: int) -> int:
        """A max_length / seq_length must be an int in [n_special, max_position_embeddings]."""
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputTypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < n_special:
            what = "a pair" if n_special == 3 else "a single text"
            raise InputValueError(f"{name}={value} is less than the {n_special} special tokens of {what}")
        if value > self.max_position_embeddings:
            raise InputValueError(f"{name}={value} is more than max_position_embeddings="
                                  f"{self.max_position_embeddings}")
        return int(value)

    # --- encoding -----------------------------------------------------------------------------------

    def _encode_segments(self, batch_a: list[str], batch_b: list[str] | None,
                         plan: _Plan) -> tuple[list[list[int]], list[list[int]] | None, list[bool]]:
        """Token ids of every segment (no special tokens), and whether item i was cut short.

        Long texts are cut first (`_CharCap`), which changes nothing: every strategy keeps at most
        `budget` tokens of a segment and only needs to know whether a segment has more than
        `budget`, so a prefix with at least budget + 1 tokens is as good as the whole text.
        One exception: "longest_first" with an odd budget gives the extra token to the longer
        segment, so when both segments of a pair are over budget and one was cut, that pair is
        re-encoded whole (rare: two very long texts).
        """
        min_tokens = plan.budget + 1
        ids_a, cut = self._encode_capped(batch_a, min_tokens)
        if batch_b is None:
            return ids_a, None, cut
        ids_b, cut_b = self._encode_capped(batch_b, min_tokens)
        cut = [x or y for x, y in zip(cut, cut_b)]
        if plan.strategy == "longest_first" and plan.budget % 2 == 1:
            for i in range(len(ids_a)):
                if cut[i] and len(ids_a[i]) > plan.budget and len(ids_b[i]) > plan.budget:
                    ids_a[i] = self._tok.encode(batch_a[i], add_special_tokens=False).ids
                    ids_b[i] = self._tok.encode(batch_b[i], add_special_tokens=False).ids
                    cut[i] = False
        return ids_a, ids_b, cut

    def _encode_capped(self, texts: list[str], min_tokens: int) -> tuple[list[list[int]], list[bool]]:
        """Encode texts without special tokens; returns the ids and which texts were cut short."""
        cut_texts = [self._char_cap(t, min_tokens) for t in texts] if self._char_cap else texts
        encodings = self._tok.encode_batch_fast(cut_texts, add_special_tokens=False)
        return [e.ids for e in encodings], [len(c) < len(t) for c, t in zip(cut_texts, texts)]

    # --- truncation -----------------------------------------------------------------------------------

    def _fit_row(self, i: int, a: list[int], b: list[int] | None, plan: _Plan,
                 cut: bool = False) -> tuple[list[int], list[int]]:
        """Truncate item i's segments per the plan (or refuse), then add [CLS]/[SEP]: (ids, type_ids).

        `cut`: the texts were cut before tokenizing, so the lengths are lower bounds (for messages).
        """
        n_a, n_b = len(a), 0 if b is None else len(b)
        if n_a + n_b > plan.budget:
            if plan.strategy is None:
                raise InputValueError(_too_long_message(i, n_a + n_b + plan.n_special, b is not None, plan, cut))
            keep_a, keep_b = _truncated_lengths(i, n_a, n_b, b is not None, plan, cut)
            a, b = a[:keep_a], None if b is None else b[:keep_b]
        ids = [self.cls_token_id, *a, self.sep_token_id]
        types = [0] * len(ids)
        if b is not None:
            ids += [*b, self.sep_token_id]
            types += [1] * (len(b) + 1)
        return ids, types

    # --- arrays ---------------------------------------------------------------------------------------

    def _to_arrays(self, rows: list[tuple[list[int], list[int]]], pad_to: int | None, dtype: type,
                   keys: tuple[str, str, str]) -> dict[str, np.ndarray]:
        """Right-pad rows into [B, T] arrays: ids (pad id), mask (1 on tokens), type ids (pad 0)."""
        width = pad_to if pad_to is not None else max(len(ids) for ids, _ in rows)
        ids_arr = np.full((len(rows), width), self.pad_token_id, dtype=dtype)
        mask = np.zeros((len(rows), width), dtype=dtype)
        types = np.zeros((len(rows), width), dtype=dtype)
        for r, (ids, type_ids) in enumerate(rows):
            ids_arr[r, :len(ids)] = ids
            mask[r, :len(ids)] = 1
            types[r, :len(ids)] = type_ids
        return {keys[0]: ids_arr, keys[1]: mask, keys[2]: types}


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

def _as_text_list(value: Any, name: str) -> list[str]:
    """texts / text_pairs as a list of plain str; a bad item is named by index before tokenizers sees it."""
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


def _check_bert_template(tokenizer: Tokenizer, ids: dict[str, int], source: str) -> None:
    """We add [CLS]/[SEP] ourselves; make sure that is what the file's own post-processor does."""
    if tokenizer.post_processor is None:
        return
    a = tokenizer.encode("a", add_special_tokens=False).ids
    b = tokenizer.encode("b", add_special_tokens=False).ids
    pair = tokenizer.encode("a", "b")
    want = [ids["cls_token"], *a, ids["sep_token"], *b, ids["sep_token"]]
    want_types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    if pair.ids != want or pair.type_ids != want_types:
        raise ConfigError(f"{source}: the post-processor does not build BERT's [CLS] A [SEP] B [SEP] "
                          f"template (got ids {pair.ids}, type ids {pair.type_ids})")
