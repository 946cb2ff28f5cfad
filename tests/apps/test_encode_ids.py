"""Library extensions the server uses (issue 27): `numpybert.apps.encode_ids` (token ids -> sentence
vectors, pooled as `encode` pools) and `classify(function_to_apply=, max_length=)`.

Tolerance for encode_ids vs encode: 1e-6 max abs. The same ids run the same forward; only the
batches differ (length-sorted alike here), measured 0 to 2.4e-7 on these texts."""

import numpy as np
import pytest

import numpybert
from numpybert.apps import encode_ids
from numpybert.apps.heads import classifier_logits
from numpybert.errors import InputValueError

from helpers import CHECKPOINTS, make_text_model

TEXTS = ["A man is playing a guitar.", "Hello world", "short", "The quick brown fox jumps over the lazy dog."]


def ids_of(model, texts):
    batch = model.tokenize(texts, padding=False, truncation=True, max_length=model.max_seq_length)
    return [[int(i) for i in row] for row in batch["input_ids"]]


@pytest.mark.parametrize("name", ["st-tiny-roberta", "st-tiny-distilbert", "st-tiny-xlm-roberta"])
def test_encode_ids_equals_encode_across_the_family(name):
    model = numpybert.load(CHECKPOINTS / name)
    for normalize in (None, False):
        got = encode_ids(model, ids_of(model, TEXTS), normalize=normalize)
        expected = model.encode(TEXTS, normalize=normalize, prompt="")  # no prompt: ids carry none
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-6


def test_encode_ids_on_minilm_small_batches(minilm):
    rows = ids_of(minilm, TEXTS)
    got = encode_ids(minilm, rows, max_batch_tokens=16)  # one row per batch
    assert np.abs(got - minilm.encode(TEXTS)).max() <= 1e-6


@pytest.mark.parametrize("rows, message", [([[1, 2, 10**6]], "rows[0][2] = 1000000 is outside the vocabulary"),
                                           ([[]], "rows[0]: expected 1 to"),
                                           ([[1.5, 2.0]], "integer token ids")])
def test_encode_ids_refuses_bad_rows(minilm, rows, message):
    with pytest.raises(InputValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        encode_ids(minilm, rows)


@pytest.mark.parametrize("name", ["tiny-classifier", "tiny-roberta-classifier", "tiny-distilbert-classifier",
                                  "tiny-electra-classifier"])
def test_classify_function_to_apply_and_max_length(tmp_path, name):
    model = numpybert.load(make_text_model(tmp_path / name, name))
    texts = ["the cat sat", "a dog ran on the mat"]
    logits = model.classify(texts, function_to_apply="none")
    probs = model.classify(texts)
    sig = model.classify(texts, function_to_apply="sigmoid")
    for lg, pr, sg in zip(logits, probs, sig):
        x = {e["label"]: e["score"] for e in lg}
        labels = list(x)
        z = np.array([x[k] for k in labels])
        soft = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        assert np.allclose([{e["label"]: e["score"] for e in pr}[k] for k in labels], soft, atol=1e-12)
        assert np.allclose([{e["label"]: e["score"] for e in sg}[k] for k in labels], 1 / (1 + np.exp(-z)),
                           atol=1e-12)
    long = " ".join(["the cat sat"] * 40)  # over the tiny models' 64-66 positions
    with pytest.raises(InputValueError):
        model.classify([long])
    cut = model.classify([long], max_length=12, function_to_apply="none")[0]
    batch = model.tokenize([long], truncation=True, max_length=12)
    assert batch["input_ids"].shape == (1, 12)
    expected = classifier_logits(model, **batch)[0]  # [labels]
    assert np.allclose([{e["label"]: e["score"] for e in cut}[model.config.id2label[i]] for i in range(len(expected))],
                       expected, atol=1e-12)
    with pytest.raises(InputValueError, match="function_to_apply"):
        model.classify(texts, function_to_apply="relu")
