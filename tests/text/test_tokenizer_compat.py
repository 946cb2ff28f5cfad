"""The tokenizer called as transformers' tokenizer `__call__` (issue 12), compared with
transformers' fast tokenizer (`BertTokenizerFast` on all-MiniLM-L6-v2, the golden extra:
missing = FAIL) on the committed tricky texts, for every option combination below.
Equality is exact: ids, masks, offsets and mappings are integers.
"""

import itertools
import json

import numpy as np
import pytest

import numpybert
from numpybert.errors import InputValueError
from numpybert.text.tokenizer import BertTokenizer

from helpers import ROOT

TRICKY = json.loads((ROOT / "tests" / "data" / "tricky_texts.json").read_text())
SINGLE = TRICKY["single"]
PAIRS = [tuple(p) for p in TRICKY["pairs"]]
LONG = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
KEYS = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "offset_mapping",
        "overflow_to_sample_mapping", "length")


@pytest.fixture(scope="module")
def ours(minilm_dir):
    return BertTokenizer.from_dir(minilm_dir, 512)


@pytest.fixture(scope="module")
def theirs(minilm_dir):
    from transformers import BertTokenizerFast  # the golden extra; missing = FAIL
    return BertTokenizerFast.from_pretrained(str(minilm_dir))


def same(ours_out, theirs_out):
    """Every key transformers returned is ours too, with equal values (rows compared un-padded when ragged)."""
    assert set(ours_out) == set(theirs_out), (sorted(ours_out), sorted(theirs_out))
    for key in theirs_out:
        want, got = theirs_out[key], ours_out[key]
        if isinstance(got, list):
            assert [np.asarray(g).tolist() for g in got] == [np.asarray(w).tolist() for w in want], key
        else:
            np.testing.assert_array_equal(got, np.asarray(want), err_msg=key)
            assert got.dtype == np.int64, key


PADDINGS = [True, "longest", "max_length"]
TRUNCATIONS = [True, "longest_first", "only_first", "only_second", False, "do_not_truncate"]


@pytest.mark.parametrize("padding, truncation, max_length", [
    (p, t, m) for p, t, m in itertools.product(PADDINGS, TRUNCATIONS, [None, 12])
    if not (p == "max_length" and m is None) and not (t in ("only_first", "only_second") and m is None)])
@pytest.mark.parametrize("pair", [False, True])
def test_padding_and_truncation_match(ours, theirs, padding, truncation, max_length, pair):
    if pair:
        a, b = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    else:
        a, b = SINGLE, None
    if truncation in (False, "do_not_truncate") and max_length is not None:
        a = [t[:20] for t in a]  # no truncation: keep within max_length
        b = None if b is None else [t[:8] for t in b]
    kwargs = dict(padding=padding, truncation=truncation, max_length=max_length, return_tensors="np")
    if truncation == "only_second" and not pair:  # the one refusal of this grid (measured): so do we
        with pytest.raises(Exception, match="Second sequence not provided"):
            theirs(a, b, **kwargs)
        with pytest.raises(InputValueError, match="only_second"):
            ours(a, b, **kwargs)
        return
    want = theirs(a, b, **kwargs)  # anything else transformers raises is a failure, not a pass
    if truncation in (False, "do_not_truncate") and max_length is not None and \
            max(len(r) for r in want["input_ids"]) > max_length:
        with pytest.raises(InputValueError, match="max_length"):  # a deliberate difference (README):
            ours(a, b, **kwargs)  # transformers ignores max_length here; numpybert refuses the long row
        return
    same(ours(a, b, **kwargs), dict(want))


@pytest.mark.parametrize("options", [
    {"return_offsets_mapping": True},
    {"return_special_tokens_mask": True},
    {"return_length": True},
    {"return_attention_mask": False},
    {"return_token_type_ids": False},
    {"return_offsets_mapping": True, "return_special_tokens_mask": True, "padding_side": "left"},
    {"padding": "max_length", "max_length": 64, "padding_side": "left", "return_special_tokens_mask": True},
    {"pad_to_multiple_of": 8},
    {"add_special_tokens": False},
    {"max_length": 7, "truncation": True, "return_offsets_mapping": True},
])
@pytest.mark.parametrize("pair", [False, True])
def test_return_options_match(ours, theirs, options, pair):
    a, b = ([p[0] for p in PAIRS], [p[1] for p in PAIRS]) if pair else (SINGLE, None)
    options = {"padding": True, **options}
    same(ours(a, b, **options), dict(theirs(a, b, return_tensors="np", **options)))


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("max_length, stride", [(6, 0), (6, 1), (8, 3), (16, 2)])
def test_overflowing_windows_match(ours, theirs, side, max_length, stride):
    texts = [LONG, "short", SINGLE[2], SINGLE[5]]
    options = dict(max_length=max_length, stride=stride, truncation=True, padding=True,
                   return_overflowing_tokens=True, return_offsets_mapping=True)
    theirs.truncation_side = side  # transformers takes it as the tokenizer's attribute
    try:
        want = dict(theirs(texts, return_tensors="np", **options))
    finally:
        theirs.truncation_side = "right"
    same(ours(texts, truncation_side=side, **options), want)


@pytest.mark.parametrize("strategy", ["only_first", "only_second"])
def test_overflowing_windows_of_pairs_match(ours, theirs, strategy):
    a, b = ["a question?", LONG], [LONG, "answer"]
    if strategy == "only_first":
        a, b = b, a
    options = dict(max_length=12, stride=2, truncation=strategy, padding=True, return_overflowing_tokens=True)
    same(ours(a[:1], b[:1], **options), dict(theirs(a[:1], b[:1], return_tensors="np", **options)))


def test_overflow_of_pairs_with_longest_first_is_a_clear_error(ours):
    with pytest.raises(InputValueError, match="only_first' or 'only_second"):
        ours(["a"], ["b"], max_length=8, truncation=True, return_overflowing_tokens=True)


def test_stride_too_large_is_a_clear_error(ours):
    """transformers' fast tokenizer panics in Rust here; numpybert names the item."""
    with pytest.raises(InputValueError, match=r"stride=4 must be less than the 4 tokens.*item 0"):
        ours([LONG], max_length=6, stride=4, truncation=True, return_overflowing_tokens=True)


def test_is_split_into_words_matches(ours, theirs):
    words = [["Hello", "world"], ["Café", "naïve", "résumé"], ["北京", "是"], ["a"]]
    options = dict(is_split_into_words=True, padding=True, return_offsets_mapping=True)
    same(ours(words, **options), dict(theirs(words, return_tensors="np", **options)))
    same(ours(words[0], **options), dict(theirs(words[0], return_tensors="np", **options)))  # one text: [1, T]


def test_no_padding_gives_rows_as_transformers(ours, theirs):
    out = ours(["a", "b c"], padding=False)
    assert [r.tolist() for r in out["input_ids"]] == theirs(["a", "b c"], padding=False)["input_ids"]
    same(ours(["a b", "c d"], padding="do_not_pad"), dict(theirs(["a b", "c d"], return_tensors="np")))


@pytest.mark.parametrize("kind", ["pt", "tf", "jax"])
def test_return_tensors_other_than_numpy_is_one_line(ours, kind):
    with pytest.raises(InputValueError, match="numpybert returns NumPy") as info:
        ours("a", return_tensors=kind)
    assert "\n" not in str(info.value)


def test_object_methods_match(ours, theirs):
    for text in SINGLE[:8]:
        assert ours.tokenize(text) == theirs.tokenize(text)
        assert ours.encode(text) == theirs.encode(text)
        ids = theirs.encode(text)
        assert ours.decode(ids) == theirs.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
        assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
        assert ours.convert_tokens_to_ids(theirs.convert_ids_to_tokens(ids)) == ids
    assert ours.encode("How old are you?", "I am six.") == theirs.encode("How old are you?", "I am six.")
    rows = theirs(SINGLE[:4], padding=True)["input_ids"]
    assert ours.batch_decode(rows) == theirs.batch_decode(rows)
    assert ours.convert_ids_to_tokens(7592) == theirs.convert_ids_to_tokens(7592)
    assert ours.convert_tokens_to_ids("zzzqqq") == theirs.convert_tokens_to_ids("zzzqqq") == ours.unk_token_id
    for name in ("model_max_length", "vocab_size", "cls_token", "sep_token", "pad_token", "unk_token", "mask_token",
                 "cls_token_id", "sep_token_id", "pad_token_id", "unk_token_id", "mask_token_id"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert len(ours) == len(theirs)
    assert sorted(ours.all_special_tokens) == sorted(theirs.all_special_tokens)
    assert sorted(ours.all_special_ids) == sorted(theirs.all_special_ids)


# ----------------------------------------------------------------------------- a vocabulary without [PAD]

@pytest.fixture
def no_pad_dir(tmp_path, minilm_dir):
    """MiniLM with its vocab.txt only, [PAD] renamed (ids unchanged), as in google-research/bert vocabularies."""
    dest = tmp_path / "no-pad"
    dest.mkdir()
    for name in ("config.json", "model.safetensors"):
        (dest / name).symlink_to((minilm_dir / name).resolve())
    vocab = (minilm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    (dest / "vocab.txt").write_text("\n".join("[unused_pad]" if v == "[PAD]" else v for v in vocab), encoding="utf-8")
    (dest / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return dest


def test_vocab_without_pad_loads_and_refuses_only_padding(no_pad_dir, minilm):
    model = numpybert.load(no_pad_dir)
    assert model.tokenizer.pad_token_id is None and model.tokenizer.pad_token is None
    one = model.tokenize("Hello world")
    np.testing.assert_array_equal(one["input_ids"], minilm.tokenize("Hello world")["input_ids"])
    same_length = model.tokenize(["hello world", "hello there"])  # nothing to pad
    assert same_length["input_ids"].shape == (2, 4)
    np.testing.assert_allclose(model(**one).last_hidden_state, minilm(**one).last_hidden_state, atol=0)
    with pytest.raises(InputValueError, match=r"cannot pad, the vocabulary has no pad token \(\[PAD\]\)"):
        model.tokenize(["Hello world", "a much longer second text"])
    rows = model.tokenize(["Hello world", "a much longer second text"], padding=False)
    assert [len(r) for r in rows["input_ids"]] == [4, 7]


def test_transformers_refuses_padding_without_pad_token_too(no_pad_dir):
    from transformers import BertTokenizerFast
    theirs = BertTokenizerFast.from_pretrained(str(no_pad_dir), pad_token=None)
    with pytest.raises(ValueError, match="padding token"):
        theirs(["Hello world", "a much longer second text"], padding=True)


def test_encode_of_a_long_text_without_max_length_returns_every_id_with_a_warning(ours, theirs):
    """transformers' encode(text) without max_length returns every id and warns (the model would
    fail on it later); the tokenizer call itself keeps numpybert's error (README's differences)."""
    text = " ".join(["word"] * 600)
    want = theirs.encode(text)
    assert len(want) == 602
    with pytest.warns(UserWarning, match=r"602 > 512"):
        got = ours.encode(text)
    assert got == want
    with pytest.warns(UserWarning, match=r"604 > 512"):
        assert ours.encode(text, "word") == theirs.encode(text, "word")
    assert ours.encode(text, max_length=10) == theirs.encode(text, max_length=10, truncation=True)
    with pytest.raises(InputValueError, match="602 tokens"):
        ours(text)


def test_model_tokenize_passes_options(minilm):
    out = minilm.tokenize(["a b c", "d"], padding="max_length", max_length=8, return_special_tokens_mask=True,
                          return_tensors="np")
    assert out["input_ids"].shape == (2, 8) and out["special_tokens_mask"][1].tolist() == [1, 0, 1, 1, 1, 1, 1, 1]
    np.testing.assert_array_equal(minilm(out["input_ids"], out["attention_mask"]).last_hidden_state.shape, (2, 8, 384))
