"""A GGUF's own tokenizer (numpybert/text/gguf_vocab.py): llama.cpp's phantom-space vocabulary and flags turned
back into WordPiece give tokenizer.json's ids on hostile text (issue 26)."""

import json
import warnings

import pytest
from tokenizers import Tokenizer

import numpybert
from helpers import GGUF_DIR, ROOT, require_gguf, require_minilm
from numpybert.audit.tokenizer_audit import TRICKY_TEXTS
from numpybert.errors import ConfigError
from numpybert.text.gguf_vocab import gguf_tokenizer, original_piece

TRICKY = json.loads((ROOT / "tests" / "data" / "tricky_texts.json").read_text(encoding="utf-8"))
CASES = ([(t, None) for t in TRICKY["single"]] + [tuple(p) for p in TRICKY["pairs"]]
         + [(text, pair) for _, text, pair in TRICKY_TEXTS]
         + [("UPPERCASE INPUT SHOULD NOT COLLAPSE", None), ("ÀÉÎÕÜ àéîõü ñ ç ß ø å", None),
            ("x" * 150, None), ("naïve" * 30, None)])
FILES = {"all-MiniLM-L6-v2.q8_0.gguf": None, "tiny-distilbert-wp.f32.gguf": GGUF_DIR / "tiny-distilbert-wp",
         "tiny-roberta-bpe.q8_0.gguf": ROOT / "tests" / "checkpoints" / "st-tiny-roberta"}  # byte-level BPE ("gpt2")


def original(name):
    folder = FILES[name] or require_minilm()
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


@pytest.fixture(scope="module", params=list(FILES))
def pair(request):
    theirs = original(request.param)
    theirs.no_truncation()
    theirs.no_padding()
    return numpybert.load(require_gguf(request.param)), theirs


def test_the_vocabulary_is_tokenizer_jsons_id_for_id(pair):
    model, theirs = pair
    assert model.tokenizer.backend.get_vocab() == theirs.get_vocab()


def test_ids_equal_tokenizer_json_on_hostile_text(pair):
    model, theirs = pair
    for i, (text, text_pair) in enumerate(CASES):
        expected = theirs.encode(text, text_pair).ids if text_pair is not None else theirs.encode(text).ids
        with warnings.catch_warnings():  # the long texts are longer than the model takes: ids only here
            warnings.simplefilter("ignore")
            got = model.tokenizer.encode(text, text_pair)  # every id, no truncation (as transformers' encode)
        assert got == expected, f"case {i}: {text[:40]!r}"


def test_the_phantom_space_form_is_undone():
    assert original_piece("\u2581hello", 1) == "hello"
    assert original_piece("ing", 1) == "##ing"
    assert original_piece("[CLS]", 3) == "[CLS]"


def metadata_of(name):
    return numpybert.load(require_gguf(name)).gguf["metadata"]


def test_the_flags_the_file_states_are_followed():
    """A file that says lowercase=false (as a drifted deployment might) tokenizes uppercase differently:
    the flag is read, not assumed."""
    meta = dict(metadata_of("tiny-distilbert-wp.f32.gguf"))
    assert meta["tokenizer.ggml.normalizer.lowercase"] is True
    lower, _, notes = gguf_tokenizer(meta, "x.gguf")
    meta["tokenizer.ggml.normalizer.lowercase"] = False
    cased, _, _ = gguf_tokenizer(meta, "x.gguf")
    assert lower.encode("THE CAT").ids != cased.encode("THE CAT").ids  # cased: [UNK]s (an uncased vocabulary)
    assert lower.encode("the cat").ids == cased.encode("the cat").ids
    assert any("Chinese" in n for n in notes)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("tokenizer.ggml.tokens"), "'tokenizer.ggml.tokens' is missing"),
    (lambda m: m.update({"tokenizer.ggml.token_type": [1]}), "one type per token"),
    (lambda m: m.update({"tokenizer.ggml.bos_token_id": 10**6}), "outside the vocabulary"),
    (lambda m: m.update({"tokenizer.ggml.model": "t5"}), "tokenizer.ggml.model='t5' is not supported"),
])
def test_broken_tokenizer_metadata_is_one_clear_error(change, message):
    meta = dict(metadata_of("tiny-distilbert-wp.f32.gguf"))
    change(meta)
    with pytest.raises(ConfigError, match=message) as e:
        gguf_tokenizer(meta, "x.gguf")
    assert "x.gguf" in str(e.value) and "\n" not in str(e.value)
