"""Audit another deployment's tokenizer against the model's: silent tokenizer differences are a
common cause of "my ONNX embeddings differ".

    report = audit_tokenizer("deployed/tokenizer.json", "weights/all-MiniLM-L6-v2")
    print(render(report))

The model's side is numpybert's tokenizer of `model_dir` as the model is used: truncated at the
model's max length (sentence_bert_config.json's max_seq_length, else tokenizer_config.json's
model_max_length, capped at max_position_embeddings: as sentence-transformers and transformers do).
The other side is the deployment's file loaded the way deployments load it,
`tokenizers.Tokenizer.from_file`, which KEEPS the padding and truncation stored in tokenizer.json.
Each built-in tricky text (accents, CJK, emoji, control characters, very long words, literal
special tokens, pairs, texts over the max length) is encoded by both; ids are compared at real
tokens (padding is harmless while the attention mask goes with it, and is reported as a setting).
"""

import dataclasses
import json
import os

from ..errors import ConfigError, WeightsNotFoundError

LONG_TEXT = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 60  # ~900 tokens
TRICKY_TEXTS = (
    ("plain", "Hello, how are you today?", None),
    ("accents", "Café naïve résumé — déjà vu à la Zoë, ÅNGSTRÖM façade.", None),
    ("CJK", "北京是中国的首都。東京は日本の首都です。서울은 한국의 수도입니다", None),
    ("emoji", "I love pizza 🍕🍕 and 🤖 robots! 👍🏽", None),
    ("control characters", "hello\x00world tab\tnew\nline\u200bzero-width control\x07bell\x1bescape", None),
    ("very long word", "Pneumonoultramicroscopicsilicovolcanoconiosis " + "x" * 120 + " end", None),
    ("literal special tokens", "a literal [SEP] inside and [CLS] too [MASK] [PAD] [UNK]", None),
    ("mixed case and symbols", "UPPER lower MiXeD 12345 3.14159 $100 #hashtag @user e-mail@example.com", None),
    ("empty", "", None),
    ("pair", "How old are you?", "I am six years old."),
    ("pair, empty second", "The cat sat on the mat.", ""),
    ("over the max length", LONG_TEXT, None),
    ("pair over the max length", LONG_TEXT, "Is the fox quick? " * 40),
)


@dataclasses.dataclass(frozen=True)
class TextResult:
    label: str
    text: str
    pair: str | None
    model_ids: list  # real tokens only
    other_ids: list
    model_tokens: list
    other_tokens: list

    @property
    def same(self) -> bool:
        return self.model_ids == self.other_ids

    @property
    def first_difference(self) -> int | None:
        """The first position whose id differs (or where one list ends), None when equal."""
        if self.same:
            return None
        return next((i for i, (a, b) in enumerate(zip(self.model_ids, self.other_ids)) if a != b),
                    min(len(self.model_ids), len(self.other_ids)))


@dataclasses.dataclass
class TokenizerReport:
    model: str
    other: str
    max_length: int
    max_length_source: str
    settings: dict  # the other tokenizer's stored padding/truncation, and the model file's
    results: list  # TextResult, in TRICKY_TEXTS order

    @property
    def first_difference(self) -> TextResult | None:
        return next((r for r in self.results if not r.same), None)

    @property
    def passed(self) -> bool:
        return self.first_difference is None


def other_tokenizer(path):
    """The deployment's tokenizer as deployments load it: tokenizer.json with its stored settings."""
    from tokenizers import Tokenizer
    path = os.fspath(path)
    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise WeightsNotFoundError(f"{file}: no such tokenizer.json (pass a tokenizer.json or a directory "
                                   "holding one)")
    try:
        return Tokenizer.from_file(file), file
    except Exception as e:  # tokenizers raises a bare Exception on bad JSON
        raise ConfigError(f"cannot read {file} as a tokenizer: {str(e)[:200]}") from None


def stored_settings(tokenizer) -> dict:
    """Padding and truncation a tokenizer.json carries (None when off)."""
    return {"padding": tokenizer.padding, "truncation": tokenizer.truncation}


def model_max_length(model) -> tuple:
    """(max length, where it comes from): as the model is used (numpybert.apps.st_config's settings)."""
    from ..apps.st_config import read_settings
    settings = read_settings(model.model_dir, model.config.max_length)
    source = ("sentence_bert_config.json max_seq_length" if "sentence-transformers" in settings.source
              else "tokenizer_config.json model_max_length / max_position_embeddings")
    return settings.max_seq_length, source


def encode_model(model, text, pair, max_length) -> list:
    batch = model.tokenize([text], None if pair is None else [pair], max_length=max_length,
                           truncation="longest_first")
    return [int(i) for i, m in zip(batch["input_ids"][0], batch["attention_mask"][0]) if m]


def encode_other(tokenizer, text, pair) -> list:
    encoding = tokenizer.encode(text, pair) if pair is not None else tokenizer.encode(text)
    return [i for i, m in zip(encoding.ids, encoding.attention_mask) if m]


def tokens(tokenizer, ids) -> list:
    return [tokenizer.id_to_token(i) or f"<id {i}>" for i in ids]


def audit_tokenizer(other_path, model_dir) -> TokenizerReport:
    """Encode every built-in tricky text with both tokenizers and compare the ids."""
    from .. import load
    model = load(model_dir)
    other, file = other_tokenizer(other_path)
    max_length, source = model_max_length(model)
    mine = model.tokenizer.backend
    results = []
    for label, text, pair in TRICKY_TEXTS:
        a, b = encode_model(model, text, pair, max_length), encode_other(other, text, pair)
        results.append(TextResult(label, text, pair, a, b, tokens(mine, a), tokens(other, b)))
    model_json = os.path.join(os.fspath(model_dir), "tokenizer.json")
    settings = {"other": stored_settings(other)}
    if os.path.isfile(model_json):
        settings["model_file"] = stored_settings(other_tokenizer(model_json)[0])
    return TokenizerReport(str(model_dir), file, max_length, source, settings, results)


# ----------------------------------------------------------------------------- presenting it

def causes(report: TokenizerReport) -> list:
    """Likely causes read from the stored settings (a difference they do not explain is the vocabulary
    or the normalizer: the token lists show which)."""
    truncation = report.settings["other"]["truncation"]
    found = []
    if truncation is None:
        found.append(f"cause: {report.other} does not truncate; the model is used with {report.max_length} tokens "
                     "at most (max_position_embeddings is a hard limit)")
    elif truncation.get("max_length") != report.max_length:
        found.append(f"cause: {report.other} truncates at {truncation.get('max_length')} tokens, the model is used "
                     f"with {report.max_length} ({report.max_length_source})")
    return found


def report_json(report: TokenizerReport) -> dict:
    first = report.first_difference
    return {"model": report.model, "tokenizer": report.other, "max_length": report.max_length,
            "max_length_source": report.max_length_source, "stored_settings": report.settings,
            "passed": report.passed, "texts": len(report.results),
            "differing": [r.label for r in report.results if not r.same],
            "first_difference": None if first is None else {
                "label": first.label, "text": first.text, "pair": first.pair, "position": first.first_difference,
                "model": {"ids": first.model_ids, "tokens": first.model_tokens},
                "tokenizer": {"ids": first.other_ids, "tokens": first.other_tokens}}}


def _setting(value) -> str:
    return "off" if value is None else json.dumps(value, ensure_ascii=False)


def _window(tokens_: list, at: int, before: int = 4, after: int = 8) -> str:
    """The tokens around position `at`, with how many are left out on either side."""
    lo, hi = max(0, at - before), min(len(tokens_), at + after)
    head = f"... ({lo} tokens) " if lo else ""
    tail = f" ... ({len(tokens_) - hi} more)" if hi < len(tokens_) else ""
    return head + " ".join(tokens_[lo:hi]) + tail


def render(report: TokenizerReport) -> str:
    other, model_file = report.settings["other"], report.settings.get("model_file")
    lines = [f"numpybert audit --tokenizer: {report.other} vs {report.model}'s tokenizer",
             f"model: truncation at {report.max_length} tokens ({report.max_length_source}), no padding",
             f"{report.other} stored settings (kept, as Tokenizer.from_file keeps them): "
             f"truncation {_setting(other['truncation'])}, padding {_setting(other['padding'])}"]
    if model_file is not None and model_file != other:
        lines.append(f"(the model's own tokenizer.json stores truncation {_setting(model_file['truncation'])}, "
                     f"padding {_setting(model_file['padding'])})")
    lines.append("")
    width = max(len(r.label) for r in report.results)
    for r in report.results:
        verdict = "same" if r.same else f"DIFFERENT at token {r.first_difference}"
        lines.append(f"{r.label:<{width}}  {len(r.model_ids):>4} / {len(r.other_ids):>4} tokens  {verdict}")
    first = report.first_difference
    lines.append("")
    if first is None:
        lines.append(f"PASS: all {len(report.results)} texts give the same ids at real tokens")
        return "\n".join(lines)
    n = sum(not r.same for r in report.results)
    text = first.text if len(first.text) <= 80 else first.text[:77] + "..."
    lines += [f"FAIL: {n} of {len(report.results)} texts differ; first: {first.label}: {text!r}"
              + (f" + {first.pair[:40]!r}" if first.pair is not None else ""),
              f"  model     ({len(first.model_ids)} tokens): {_window(first.model_tokens, first.first_difference)}",
              f"  tokenizer ({len(first.other_ids)} tokens): {_window(first.other_tokens, first.first_difference)}",
              f"  ids at token {first.first_difference}: model "
              f"{first.model_ids[first.first_difference:first.first_difference + 4]}, tokenizer "
              f"{first.other_ids[first.first_difference:first.first_difference + 4]}"]
    return "\n".join(lines + causes(report))
