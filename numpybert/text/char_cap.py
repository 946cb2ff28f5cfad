"""Cutting a very long text before tokenizing, where that provably cannot change its first tokens.

The tokenizer only needs a segment's first budget + 1 tokens to truncate it (or to know it is too
long), but `tokenizers` tokenizes the whole text first: a 10 MB line costs ~9 s. `CharCap` cuts
the text to a prefix whose tokens are the text's first >= min_tokens tokens, in milliseconds.
"""

import re

from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece

# Characters that survive every BertNormalizer setting (clean_text deletes control, format and
# unassigned characters and U+FFFD; strip_accents deletes combining marks after NFD, which keeps the
# base letter): printable ASCII, Latin-1 letters, and the basic letters of Greek, Cyrillic, Hebrew,
# Arabic, Devanagari, Thai, Hiragana, Katakana, CJK ideographs and Hangul, all in Unicode since
# 1.1/2.0, so no Unicode table treats them as unassigned. See `CharCap`.
_SURE_CHARS = ("!-~\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0391-\u03a1\u03a3-\u03a9\u03b1-\u03c9"
               "\u0410-\u044f\u05d0-\u05ea\u0621-\u063a\u0641-\u064a\u0905-\u0939\u0e01-\u0e2e"
               "\u3041-\u3093\u30a1-\u30fa\u4e00-\u9fa5\uac00-\ud7a3")
_CJK = "\u4e00-\u9fa5"          # CJK Unified Ideographs (Unicode 1.1), each its own word in BERT
_ASCII_PUNCT = "".join(chr(c) for c in range(0x21, 0x7f) if not chr(c).isalnum())
# Texts shorter than this are tokenized whole: scanning them would cost more than it saves.
_CAP_SCAN_MIN_CHARS = 4096


class CharCap:
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
    def for_tokenizer(cls, tokenizer: Tokenizer) -> "CharCap | None":
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

    def cut(self, texts: list, min_tokens: int) -> tuple:
        """(each text cut as `self(text, min_tokens)` does, whether it was cut): one call per batch."""
        capped = [self(t, min_tokens) for t in texts]
        return capped, [len(c) < len(t) for c, t in zip(capped, texts)]

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
