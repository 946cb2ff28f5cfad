"""numpybert.text.tokenizer: HF parity, the vocab.txt path, TF Hub style, truncation, bad inputs, the char cap.

Needs the real all-MiniLM-L6-v2 tokenizer (FAILS, never skips, when missing: run `numpybert fetch`)
and the golden tests/golden/all-MiniLM-L6-v2/tokens.json (`python scripts/export_golden.py tokens`).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

import numpybert.text.char_cap as capmod
import numpybert.text.tokenizer as tokmod
from numpybert.errors import (ConfigError, InputTypeError, InputValueError, NumpybertError,
                              WeightsNotFoundError)
from numpybert.text.tokenizer import BertTokenizer, round_robin_lengths

from helpers import ROOT

TRICKY = ROOT / "tests" / "data" / "tricky_texts.json"
GOLDEN_TOKENS = ROOT / "tests" / "golden" / "all-MiniLM-L6-v2" / "tokens.json"
MAX_POS = 512   # all-MiniLM-L6-v2's max_position_embeddings
HF_KEYS = ("input_ids", "attention_mask", "token_type_ids")
TFHUB_KEYS = ("input_word_ids", "input_mask", "input_type_ids")


# --- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok_dir(minilm_dir) -> Path:
    """The real model directory; missing tokenizer files FAIL the test like missing weights do."""
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        if not (minilm_dir / name).is_file():
            pytest.fail(f"{minilm_dir / name} missing; run: numpybert fetch", pytrace=False)
    return minilm_dir


@pytest.fixture(scope="module")
def tok(tok_dir) -> BertTokenizer:
    return BertTokenizer.from_dir(tok_dir, MAX_POS)


@pytest.fixture(scope="module")
def vocab_only_dir(tok_dir, tmp_path_factory) -> Path:
    """vocab.txt + tokenizer_config.json, no tokenizer.json."""
    d = tmp_path_factory.mktemp("vocab_only")
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(tok_dir / name, d / name)
    return d


@pytest.fixture(scope="module")
def small_tok(tok) -> BertTokenizer:
    """The same vocabulary with max_position_embeddings=12, to hit the length limit with short texts."""
    return BertTokenizer(Tokenizer.from_str(tok.backend.to_str()), dict(tokmod.DEFAULT_SPECIAL_TOKENS), 12)


@pytest.fixture(scope="module")
def backend(tok_dir) -> Tokenizer:
    """The raw `tokenizers` reference, padding/truncation off."""
    t = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    t.no_padding()
    t.no_truncation()
    return t


@pytest.fixture(scope="module")
def golden_cases() -> list[dict]:
    if not GOLDEN_TOKENS.is_file():
        pytest.fail(f"golden {GOLDEN_TOKENS} missing; produce it with: python scripts/export_golden.py tokens",
                    pytrace=False)
    data = json.loads(GOLDEN_TOKENS.read_text(encoding="utf-8"))
    assert set(data) >= {"header", "cases"}, f"{GOLDEN_TOKENS}: expected keys header, cases"
    return data["cases"]


def _tricky_cases() -> list[dict]:
    """The committed tricky list as golden-style case keys: kind, text, pair, max_length."""
    data = json.loads(TRICKY.read_text(encoding="utf-8"))
    cases = [{"kind": "single", "text": t, "pair": None, "max_length": None} for t in data["single"]]
    cases += [{"kind": "pair", "text": a, "pair": b, "max_length": None} for a, b in data["pairs"]]
    cases += [{"kind": "truncated", "text": c["text"], "pair": c["pair"], "max_length": c["max_length"]}
              for c in data["truncated"]]
    return cases


TRICKY_CASES = _tricky_cases()


def _case_id(case: dict) -> str:
    return f"{case['kind']}:{case['text'][:40]!r}" + (f"+{case['pair'][:20]!r}" if case["pair"] is not None else "")


def _encode_case(tokenizer: BertTokenizer, case: dict) -> dict[str, np.ndarray]:
    return tokenizer(case["text"], case["pair"], max_length=case["max_length"])


@contextmanager
def char_cap(enabled: bool):
    """Force the char cap on for every text (scan threshold 0), or off entirely."""
    old = capmod._CAP_SCAN_MIN_CHARS
    capmod._CAP_SCAN_MIN_CHARS = 0 if enabled else 10**18
    try:
        yield
    finally:
        capmod._CAP_SCAN_MIN_CHARS = old


def _outcome(fn):
    """Result arrays as lists, or the exception type: to compare two code paths."""
    try:
        return {k: v.tolist() for k, v in fn().items()}
    except NumpybertError as exc:
        return type(exc)


# --- parity with HuggingFace's fast tokenizer (golden) -------------------------------------------------

@pytest.mark.parametrize("case", TRICKY_CASES, ids=_case_id)
def test_golden_parity(tok, golden_cases, case):
    keys = ("kind", "text", "pair", "max_length")
    match = [g for g in golden_cases if all(g[k] == case[k] for k in keys)]
    assert match, f"golden {GOLDEN_TOKENS} has no case for {case['text']!r} (pair {case['pair']!r}); re-export it"
    gold = match[0]
    assert gold["truncation"] == ("longest_first" if case["max_length"] else None)
    if case["pair"] == "":
        # transformers' single-string call drops an empty text_pair (`if text_pair:`), its batched call
        # and tokenizers keep it as an empty segment B; numpybert keeps it too.
        assert gold["token_type_ids"][-1] == 1, (
            f"golden {GOLDEN_TOKENS} encodes the empty pair of {case['text']!r} as a single text: export it "
            "with the batched call tok([text], [pair]) (transformers' tok(text, '') drops an empty pair)")
    out = _encode_case(tok, case)
    assert out["input_ids"][0].tolist() == gold["input_ids"], f"input_ids differ for {case['text']!r}"
    assert out["token_type_ids"][0].tolist() == gold["token_type_ids"]
    assert out["attention_mask"][0].tolist() == gold["attention_mask"]
    assert tok.convert_ids_to_tokens(out["input_ids"][0]) == gold["tokens"]


def test_golden_covers_tricky_list(golden_cases):
    assert len(golden_cases) >= len(TRICKY_CASES)


def test_batch_equals_one_by_one(tok):
    singles = [c["text"] for c in TRICKY_CASES if c["kind"] == "single"]
    batch = tok(singles)
    assert all(batch[k].dtype == np.int64 for k in HF_KEYS)
    for i, text in enumerate(singles):
        one = tok(text)
        n = one["input_ids"].shape[1]
        assert batch["input_ids"][i, :n].tolist() == one["input_ids"][0].tolist(), text
        assert batch["attention_mask"][i].sum() == n
        assert (batch["input_ids"][i, n:] == tok.pad_token_id).all()
        assert (batch["token_type_ids"][i, n:] == 0).all()
    assert batch["input_ids"].shape[1] == max(batch["attention_mask"].sum(axis=1))


def test_backend_parity_on_tricky_list(tok, backend):
    """Same ids as `tokenizers` itself (special tokens added by its own post-processor)."""
    for case in TRICKY_CASES:
        if case["max_length"]:
            continue
        want = backend.encode(case["text"], case["pair"])
        out = _encode_case(tok, case)
        assert out["input_ids"][0].tolist() == want.ids, case["text"]
        assert out["token_type_ids"][0].tolist() == want.type_ids, case["text"]


# --- the vocab.txt path ---------------------------------------------------------------------------------

def test_vocab_txt_path_matches_tokenizer_json(tok, vocab_only_dir):
    vtok = BertTokenizer.from_dir(vocab_only_dir, MAX_POS)
    assert vtok.source.endswith("vocab.txt")
    assert (vtok.vocab_size, vtok.cls_token_id, vtok.sep_token_id, vtok.pad_token_id, vtok.unk_token_id,
            vtok.mask_token_id) == (tok.vocab_size, tok.cls_token_id, tok.sep_token_id, tok.pad_token_id,
                                    tok.unk_token_id, tok.mask_token_id)
    for case in TRICKY_CASES:
        a, b = _encode_case(tok, case), _encode_case(vtok, case)
        for k in HF_KEYS:
            assert a[k].tolist() == b[k].tolist(), f"{k} differ for {case['text']!r}"


def test_vocab_txt_respects_do_lower_case(tok_dir, tmp_path):
    shutil.copy(tok_dir / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    cased = BertTokenizer.from_dir(tmp_path, MAX_POS)
    (tmp_path / "tokenizer_config.json").unlink()
    default = BertTokenizer.from_dir(tmp_path, MAX_POS)     # no config: lowercase
    assert cased.convert_ids_to_tokens(cased("HELLO")["input_ids"][0]) == ["[CLS]", "[UNK]", "[SEP]"]
    assert default.convert_ids_to_tokens(default("HELLO")["input_ids"][0]) == ["[CLS]", "hello", "[SEP]"]


def test_vocab_missing_special_token_is_config_error(tok_dir, tmp_path):
    lines = (tok_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    (tmp_path / "vocab.txt").write_text("\n".join(t if t != "[CLS]" else "[unused_cls]" for t in lines),
                                        encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[CLS\]") as info:
        BertTokenizer.from_dir(tmp_path, MAX_POS)
    assert isinstance(info.value, ValueError) and isinstance(info.value, NumpybertError)


def test_missing_dir_and_missing_files(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nope"):
        BertTokenizer.from_dir(tmp_path / "nope", MAX_POS)
    with pytest.raises(WeightsNotFoundError, match=str(tmp_path.name)) as info:
        BertTokenizer.from_dir(tmp_path, MAX_POS)
    assert isinstance(info.value, FileNotFoundError)


def test_the_files_post_processor_makes_the_template(tok_dir, tmp_path):
    """Special tokens and pair layout come from tokenizer.json's post-processor (as transformers' fast
    tokenizers do), so other templates (RoBERTa's <s> A </s></s> B </s>) need no code here; the
    truncation budget counts what that template adds."""
    from tokenizers import processors
    t = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    t.post_processor = processors.TemplateProcessing(single="[CLS] $A", pair="[CLS] $A $B:1",
                                                     special_tokens=[("[CLS]", 101)])
    t.save(str(tmp_path / "tokenizer.json"))
    tok = BertTokenizer.from_dir(tmp_path, MAX_POS)
    t.no_padding()
    t.no_truncation()
    out = tok("hello world", "a b c")
    assert out["input_ids"][0].tolist() == t.encode("hello world", "a b c").ids
    assert out["token_type_ids"][0].tolist() == [0, 0, 0, 1, 1, 1]
    cut = tok("hello world", "a b c", max_length=4)["input_ids"][0]  # 1 special token: 3 text tokens kept
    assert len(cut) == 4 and cut[0] == 101


def test_bad_tokenizer_config_is_config_error(tok_dir, tmp_path):
    shutil.copy(tok_dir / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="tokenizer_config.json"):
        BertTokenizer.from_dir(tmp_path, MAX_POS)


# --- baked-in padding / truncation (tokenizer.json says Fixed 128) are overridden -------------------------

def test_baked_in_truncation_is_dropped(tok):
    text = " ".join(["word"] * 300)
    assert tok(text)["input_ids"].shape == (1, 302)


def test_baked_in_padding_is_dropped(tok):
    out = tok("short text")
    assert out["input_ids"].shape == (1, 4)
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1]]


# --- padding and truncation modes ---------------------------------------------------------------------------

def test_padding_max_length(tok):
    out = tok(["a b", "c"], max_length=10, padding="max_length")
    assert out["input_ids"].shape == (2, 10)
    assert out["attention_mask"].sum(axis=1).tolist() == [4, 3]
    assert (out["input_ids"][1, 3:] == tok.pad_token_id).all()


def test_padding_max_length_needs_max_length(tok):
    with pytest.raises(InputValueError, match="max_length"):
        tok("a", padding="max_length")


def test_max_length_defaults_to_longest_first(tok):
    text = "one two three four five six seven eight nine ten"
    out = tok(text, max_length=6)
    assert tok.convert_ids_to_tokens(out["input_ids"][0]) == ["[CLS]", "one", "two", "three", "four", "[SEP]"]


def test_truncation_false_refuses_long_rows(tok):
    with pytest.raises(InputValueError, match=r"texts\[1\] has 12 tokens.*max_length=6"):
        tok(["a", "one two three four five six seven eight nine ten"], max_length=6, truncation=False)
    assert tok("a b", max_length=6, truncation=False)["input_ids"].shape == (1, 4)


def test_truncation_without_max_length_cuts_at_max_position(tok):
    out = tok(" ".join(["word"] * 600), truncation="longest_first")
    assert out["input_ids"].shape == (1, MAX_POS)


def test_too_long_without_max_length_names_item_length_and_fix(tok):
    with pytest.raises(InputValueError, match=r"texts\[2\] has 602 tokens.*512.*max_length=") as info:
        tok(["a", "b", " ".join(["word"] * 600)])
    assert isinstance(info.value, ValueError)
    with pytest.raises(InputValueError, match=r"texts\[0\] \+ text_pairs\[0\] has 603 tokens"):
        tok(" ".join(["word"] * 300), " ".join(["word"] * 300))


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_a=st.integers(0, 20), n_b=st.integers(0, 20), max_length=st.integers(3, 30))
def test_pair_truncation_matches_tokenizers(tok, backend, strategy, n_a, n_b, max_length):
    """Our strategies on id lists == tokenizers' own truncation (one token per word "a"/"b")."""
    text_a, text_b = " ".join(["a"] * n_a), " ".join(["b"] * n_b)
    backend.enable_truncation(max_length, strategy=strategy)
    try:
        want = backend.encode(text_a, text_b).ids
    except Exception:
        want = None
    finally:
        backend.no_truncation()
    if want is None:
        with pytest.raises(InputValueError, match=r"item 0"):
            tok(text_a, text_b, max_length=max_length, truncation=strategy)
    else:
        assert tok(text_a, text_b, max_length=max_length, truncation=strategy)["input_ids"][0].tolist() == want


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 30), max_length=st.integers(2, 30), strategy=st.sampled_from(["longest_first", "only_first"]))
def test_single_truncation_matches_tokenizers(tok, backend, n, max_length, strategy):
    text = " ".join(["a"] * n)
    backend.enable_truncation(max_length, strategy=strategy)
    try:
        want = backend.encode(text).ids
    except Exception:
        want = None
    finally:
        backend.no_truncation()
    assert want is not None     # tokenizers never refuses a single text
    assert tok(text, max_length=max_length, truncation=strategy)["input_ids"][0].tolist() == want


def test_only_first_cannot_fit_names_item(tok):
    long_b = " ".join(["b"] * 20)
    pattern = r"only_first.*item 1.*text_pairs\[1\] \(20 tokens.*no room for texts\[1\]"
    with pytest.raises(InputValueError, match=pattern):
        tok(["a", "a a"], ["b", long_b], max_length=10, truncation="only_first")


def test_only_second_cannot_fit_names_item(tok):
    pattern = r"only_second.*item 0.*texts\[0\] \(20 tokens.*no room for text_pairs\[0\]"
    with pytest.raises(InputValueError, match=pattern):
        tok(" ".join(["a"] * 20), "b", max_length=10, truncation="only_second")


def test_only_second_needs_pairs(tok):
    with pytest.raises(InputValueError, match="text_pairs"):
        tok("a", max_length=10, truncation="only_second")


@pytest.mark.parametrize("kwargs, pattern", [
    ({"max_length": 1}, r"max_length=1 is less than the 2 special tokens"),
    ({"max_length": 513}, r"max_length=513 is more than max_position_embeddings=512"),
    ({"padding": "pad_everything"}, r"padding must be True/False or one of"),
    ({"truncation": "longest"}, r"truncation must be one of"),
    ({"truncation": 1}, r"truncation must be one of"),
    ({"style": "tf"}, r"style must be one of"),
    ({"style": "tfhub", "max_length": 8}, r"seq_length"),
    ({"style": "tfhub", "truncation": "only_first"}, r"round robin"),
    ({"style": "tfhub", "seq_length": 1}, r"seq_length=1 is less than"),
    ({"style": "tfhub", "seq_length": 600}, r"seq_length=600 is more than"),
])
def test_bad_keyword_values(tok, kwargs, pattern):
    with pytest.raises(InputValueError, match=pattern):
        tok("hello", **kwargs)


def test_pair_max_length_below_three_special_tokens(tok):
    with pytest.raises(InputValueError, match=r"max_length=2 is less than the 3 special tokens of a pair"):
        tok("a", "b", max_length=2)
    assert tok("a", "b", max_length=3)["input_ids"].tolist() == [[tok.cls_token_id, tok.sep_token_id,
                                                                  tok.sep_token_id]]


@pytest.mark.parametrize("max_length", [2.0, "8", True])
def test_max_length_must_be_int(tok, max_length):
    with pytest.raises(InputTypeError, match="max_length must be an int"):
        tok("a", max_length=max_length)


# --- round robin / TF Hub style ---------------------------------------------------------------------------

def _round_robin_reference(n_a: int, n_b: int, budget: int) -> tuple[int, int]:
    """The TF Text RoundRobinTrimmer loop, literally."""
    keep = [0, 0]
    sizes = [n_a, n_b]
    while budget > 0 and (keep[0] < sizes[0] or keep[1] < sizes[1]):
        for s in (0, 1):
            if budget > 0 and keep[s] < sizes[s]:
                keep[s] += 1
                budget -= 1
    return keep[0], keep[1]


@given(n_a=st.integers(0, 40), n_b=st.integers(0, 40), budget=st.integers(0, 40))
def test_round_robin_lengths_match_the_loop(n_a, n_b, budget):
    want = _round_robin_reference(n_a, n_b, budget)
    got = round_robin_lengths(n_a, n_b, budget) if n_a + n_b > budget else (n_a, n_b)
    assert got == want


def test_longest_first_lengths_tokenizers_table(tok):
    """The table of tokenizers' own unit test (budget 7 = max_length 10 minus 3 special tokens, lengths
    0/2/4/8, one token per word): what the call keeps of each segment."""
    table = {(0, 8): (0, 7), (2, 8): (2, 5), (4, 4): (3, 4), (4, 8): (3, 4), (8, 0): (7, 0),
             (8, 2): (5, 2), (8, 4): (4, 3), (8, 8): (3, 4), (2, 4): (2, 4)}
    for (n_a, n_b), want in table.items():
        types = tok(" ".join(["a"] * n_a), " ".join(["b"] * n_b), max_length=10)["token_type_ids"][0].tolist()
        assert (types.count(0) - 2, types.count(1) - 1) == want, (n_a, n_b)


def test_tfhub_keys_dtypes_fixed_length(tok):
    out = tok(["hello world", "a"], style="tfhub", seq_length=16)
    assert set(out) == set(TFHUB_KEYS)
    assert all(out[k].dtype == np.int32 and out[k].shape == (2, 16) for k in TFHUB_KEYS)
    assert out["input_mask"].sum(axis=1).tolist() == [4, 3]
    assert out["input_word_ids"][1].tolist() == [tok.cls_token_id, 1037, tok.sep_token_id] + [0] * 13
    assert tok("hi", style="tfhub")["input_word_ids"].shape == (1, 128)      # default seq_length


def test_tfhub_pair_round_robin_hand_computed(tok):
    # Budget 12 - 3 = 9, A has 10 one-token words, B has 3: round robin gives A 1,B 1,A 1,B 1,A 1,B 1
    # (B exhausted), then A takes the remaining 3 -> A keeps 6, B keeps 3.
    a = "one two three four five six seven eight nine ten"
    b = "alpha beta gamma"
    out = tok(a, b, style="tfhub", seq_length=12)
    tokens = tok.convert_ids_to_tokens(out["input_word_ids"][0])
    assert tokens == ["[CLS]", "one", "two", "three", "four", "five", "six", "[SEP]",
                      "alpha", "beta", "gamma", "[SEP]"]
    assert out["input_type_ids"][0].tolist() == [0] * 8 + [1] * 4
    # Both long, odd budget 7 (seq_length 10): A gets 4, B gets 3 (A is served first).
    out = tok(a, "alpha beta gamma delta epsilon zeta", style="tfhub", seq_length=10)
    tokens = tok.convert_ids_to_tokens(out["input_word_ids"][0])
    assert tokens == ["[CLS]", "one", "two", "three", "four", "[SEP]", "alpha", "beta", "gamma", "[SEP]"]


def test_tfhub_padding_has_type_zero(tok):
    out = tok(["a"], ["b"], style="tfhub", seq_length=8)
    assert out["input_type_ids"][0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert out["input_mask"][0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert out["input_word_ids"][0, 5:].tolist() == [tok.pad_token_id] * 3


def test_tfhub_single_is_prefix(tok):
    out = tok("one two three four five six", style="tfhub", seq_length=5)
    assert tok.convert_ids_to_tokens(out["input_word_ids"][0]) == ["[CLS]", "one", "two", "three", "[SEP]"]


def test_hf_round_robin_same_trimming_as_tfhub(tok):
    a, b = "one two three four five six seven eight nine ten", "alpha beta gamma"
    hf = tok(a, b, max_length=12, truncation="round_robin")
    tf = tok(a, b, style="tfhub", seq_length=12)
    assert hf["input_ids"].dtype == np.int64
    assert hf["input_ids"].tolist() == tf["input_word_ids"].tolist()
    assert hf["token_type_ids"].tolist() == tf["input_type_ids"].tolist()


# --- bad inputs: caught before tokenizers, named by index ------------------------------------------------------

@pytest.mark.parametrize("bad, type_name", [(None, "None"), (b"bytes", "bytes"), (3, "int"),
                                            (["nested"], "list"), (1.5, "float")])
def test_non_str_item_is_type_error_naming_index(tok, bad, type_name):
    with pytest.raises(InputTypeError, match=rf"texts\[2\] is {type_name}, expected str") as info:
        tok(["a", "b", bad, "d"])
    assert isinstance(info.value, TypeError) and isinstance(info.value, NumpybertError)
    with pytest.raises(InputTypeError, match=rf"text_pairs\[1\] is {type_name}, expected str"):
        tok(["a", "b"], ["c", bad])


@pytest.mark.parametrize("bad", [None, b"x", 5, {"a": 1}])
def test_texts_not_str_or_list_is_type_error(tok, bad):
    with pytest.raises(InputTypeError, match="texts must be a str or a list of str"):
        tok(bad)


def test_lone_surrogate_names_index_and_position(tok):
    with pytest.raises(InputValueError, match=r"texts\[1\].*U\+D800.*character 3") as info:
        tok(["fine", "abc\ud800def"])
    assert isinstance(info.value, ValueError) and isinstance(info.value, NumpybertError)
    with pytest.raises(InputValueError, match=r"text_pairs\[0\].*character 0"):
        tok(["fine"], ["\udfff"])


def test_empty_list_is_value_error(tok):
    with pytest.raises(InputValueError, match="texts is empty") as info:
        tok([])
    assert isinstance(info.value, ValueError)
    with pytest.raises(InputValueError, match="text_pairs is empty"):
        tok(["a"], [])


def test_pair_length_mismatch(tok):
    with pytest.raises(InputValueError, match="text_pairs has 1 items but texts has 2") as info:
        tok(["a", "b"], ["c"])
    assert isinstance(info.value, ValueError) and isinstance(info.value, NumpybertError)
    with pytest.raises(InputValueError, match="text_pairs has 1 items but texts has 2"):
        tok(["a", "b"], "c")


def test_numpy_str_items_accepted(tok):
    want = tok(["hello world", "b"])["input_ids"].tolist()
    assert tok([np.str_("hello world"), np.str_("b")])["input_ids"].tolist() == want
    assert tok(np.array(["hello world", "b"]))["input_ids"].tolist() == want
    assert tok(np.str_("hello world"))["input_ids"][0, :4].tolist() == want[0]


def test_numpy_bytes_array_rejected(tok):
    with pytest.raises(InputTypeError, match=r"texts\[0\] is bytes_"):
        tok(np.array([b"a", b"b"]))


# --- ids -> tokens / text ----------------------------------------------------------------------------------

def test_convert_ids_to_tokens_and_decode(tok):
    ids = tok("Hello, world!")["input_ids"][0]
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    assert tok.decode(ids, skip_special_tokens=True) == "hello, world!"
    assert tok.decode(ids).startswith("[CLS]")  # transformers' default keeps special tokens
    assert tok.convert_ids_to_tokens([]) == []


def test_bad_ids(tok):
    with pytest.raises(InputValueError, match=r"ids\[1\] = 99999"):
        tok.convert_ids_to_tokens([101, 99999])
    with pytest.raises(InputValueError, match=r"ids\[0\] = -1"):
        tok.decode([-1])
    with pytest.raises(InputTypeError, match="integers"):
        tok.convert_ids_to_tokens([1.5])
    with pytest.raises(InputValueError, match="1-D"):
        tok.convert_ids_to_tokens([[1, 2]])


# --- the char cap: long texts are cut before tokenizing, never changing the result --------------------------------
# "Fast" is CPU time (time.process_time, every thread of this process): a capped 10 MB text costs milliseconds, an
# uncapped one seconds of CPU; wall time also counts the waits of a loaded machine (a 0.5 s wall bound failed at
# load average 10 on the 2-core CI machine while the CPU spent was a fraction of it).

def test_ten_megabyte_text_is_fast(tok):
    words = "The quick brown fox jumps over the lazy dog, again and again. "
    text = (words * (10_000_000 // len(words) + 1))[:10_000_000]
    tok("warm up", max_length=128)
    start = time.process_time()
    out = tok(text, max_length=128)
    elapsed = time.process_time() - start
    assert elapsed < 0.5, f"10 MB text took {elapsed:.2f} s"
    assert out["input_ids"].shape == (1, 128)
    with char_cap(False):                      # uncapped, on a text that is still long but cheap
        want = tok(text[:20_000], max_length=128)
    assert out["input_ids"].tolist() == want["input_ids"].tolist()
    start = time.process_time()
    with pytest.raises(InputValueError, match=r"texts\[0\] has at least \d+ tokens.*max_length="):
        tok(text)
    assert time.process_time() - start < 0.5
    start = time.process_time()
    out = tok(text, text, style="tfhub")
    assert time.process_time() - start < 0.5
    assert out["input_mask"].sum() == 128


@pytest.mark.parametrize("name, text", [
    ("no spaces, punctuation", "word." * 2_000_000),
    ("Chinese without spaces", "北京是中国的首都" * 1_250_000),
    ("spaces", "hello world " * 833_334),
])
def test_long_texts_of_several_shapes_are_fast(tok, name, text):
    start = time.process_time()
    out = tok(text, max_length=64)
    assert time.process_time() - start < 0.5, name
    with char_cap(False):
        want = tok(text[:5000], max_length=64)
    assert out["input_ids"].tolist() == want["input_ids"].tolist()


def test_cap_keeps_longest_first_odd_budget_order(tok):
    """Both segments over budget, odd budget: the longer FULL text gets the extra token."""
    a = " ".join(["a"] * 4000)            # longer in full; both caps stop at the same budget + 1 tokens
    b = " ".join(["b"] * 3000)
    with char_cap(True):
        capped = tok(a, b, max_length=10)["token_type_ids"][0].tolist()
    with char_cap(False):
        full = tok(a, b, max_length=10)["token_type_ids"][0].tolist()
    assert full == [0] * 6 + [1] * 4      # budget 7: the longer A keeps 4, B keeps 3
    assert capped == full


# Texts as runs joined by separators. Pieces include what the normalizer deletes (\x00, \x07, \x85, \x0b,
# U+200B, U+FFFD, combining marks), which str.isspace() wrongly calls whitespace (\x85, \x0b), words over
# 100 chars, special-token literals and their halves: a wrong cut or a wrong "sure token" shows up here.
_PIECES = ["a", "B", "word", "Ünï", "é", "ΑΣ", "中", "日本語", "한국", "كتاب", "ไทย", "ｶ",
           ".", ",", "'", "$", "+", "-", "_", "|", "~", "(", ")", "\\", "{", "@", "#",
           "[SEP]", "[CLS]", "[SE", "P]", "x" * 120, "🍕",
           "\x00", "\x07", "\x85", "\x0b", "\u0301", "\u200b", "\ufffd", "\u2019", "\U000e0001"]
_SEPARATORS = [" ", " ", "  ", "\t", "\n", "\r\n", "\u3000", "\x85", "\x0b", " \u0301 ", " \x00 ", ""]
_runs = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=3).map("".join)
_texts = st.lists(st.tuples(_runs, st.sampled_from(_SEPARATORS)), max_size=30).map(
    lambda parts: "".join(run + sep for run, sep in parts))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_texts, min_tokens=st.integers(1, 12))
def test_char_cap_invariant(tok, backend, text, min_tokens):
    """The cap's contract: the prefix's tokens are the first tokens of the text, and there are at
    least min_tokens of them (or all of them)."""
    with char_cap(True):
        prefix = tok._char_cap(text, min_tokens)
    assert text.startswith(prefix)
    full = backend.encode(text, add_special_tokens=False).ids
    part = backend.encode(prefix, add_special_tokens=False).ids
    assert part == full[:len(part)]
    assert len(part) >= min(min_tokens, len(full))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_texts, b=st.one_of(st.none(), _texts), max_length=st.integers(3, 16),
       truncation=st.sampled_from([None, False, "longest_first", "only_first", "only_second", "round_robin"]),
       style=st.sampled_from(["hf", "tfhub"]))
def test_char_cap_never_changes_the_result(tok, a, b, max_length, truncation, style):
    if style == "tfhub":
        kwargs = {"style": "tfhub", "seq_length": max_length}
    else:
        if truncation == "only_second" and b is None:
            truncation = "only_first"
        kwargs = {"max_length": max_length, "truncation": truncation}
    with char_cap(True):
        capped = _outcome(lambda: tok(a, b, **kwargs))
    with char_cap(False):
        full = _outcome(lambda: tok(a, b, **kwargs))
    assert capped == full


@pytest.mark.parametrize("truncation", [None, "longest_first"])
def test_char_cap_keeps_which_pair_text_is_longer(tok, truncation):
    """Found by hypothesis: with an odd budget longest_first gives the extra token to the longer whole
    text; 'a a a a aworda' (7 tokens) cut to 2 tokens would look shorter than '한국' (6 jamo pieces)."""
    a, b = "a a a a aworda ", "한국 "
    with char_cap(True):
        capped = _outcome(lambda: tok(a, b, max_length=4, truncation=truncation))
    with char_cap(False):
        full = _outcome(lambda: tok(a, b, max_length=4, truncation=truncation))
    assert capped == full == {"input_ids": [[101, 1037, 102, 102]], "attention_mask": [[1, 1, 1, 1]],
                              "token_type_ids": [[0, 0, 0, 1]]}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_texts, b=st.one_of(st.none(), _texts))
def test_char_cap_without_max_length(small_tok, a, b):
    """No max_length: the cap only decides 'too long' early; with a small max_position it must agree."""
    small = small_tok
    with char_cap(True):
        capped = _outcome(lambda: small(a, b))
    with char_cap(False):
        full = _outcome(lambda: small(a, b))
    assert capped == full


def test_threads_with_different_settings_share_one_tokenizer(tok):
    """Truncation and padding live in a configured copy per setting (a tokenizers.Tokenizer holds them as
    shared state): concurrent calls with different settings each get their own answer, and the
    wrapped tokenizer itself is never changed."""
    import threading
    texts = [" ".join(["word"] * n) for n in range(1, 40)]
    settings = [dict(max_length=8), dict(max_length=20, padding="max_length"), dict(max_length=12,
                truncation_side="left"), dict(padding=False, max_length=30)]
    want = [tok(texts, **kw) for kw in settings]
    errors = []

    def as_lists(value):  # an array, or a list of 1-D arrays (padding=False)
        return [np.asarray(row).tolist() for row in value]

    def run(k):
        for _ in range(20):
            got = tok(texts, **settings[k])
            if any(as_lists(got[key]) != as_lists(want[k][key]) for key in want[k]):
                errors.append(k)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(settings))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert tok.backend.truncation is None and tok.backend.padding is None


def test_configured_copies_are_bounded(tok_dir):
    """One configured copy per setting, the oldest dropped past CONFIGURED_COPIES (each holds a vocabulary)."""
    tok = BertTokenizer.from_dir(tok_dir, MAX_POS)
    for max_length in range(4, 4 + tokmod.CONFIGURED_COPIES + 5):
        assert len(tok("a b c d e f", max_length=max_length)["input_ids"][0]) == min(max_length, 8)
    assert len(tok._configured) == tokmod.CONFIGURED_COPIES
