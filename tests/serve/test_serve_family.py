"""Every family's classifier behind /predict, /rerank and POST / (in-process, starlette's TestClient):
the server calls `model.classify`, so RoBERTa/DistilBERT/ELECTRA heads (first-token classifiers) work
as BERT's (once all refused with 422), and every family's embeddings come from `model.encode` /
`encode_ids`. Scores equal the library's to 1e-9 (the same float64 call; JSON keeps 17 digits)."""

import time

import numpy as np
import pytest
from starlette.testclient import TestClient

import numpybert
from numpybert.serve import Options, create_app
from numpybert.serve.model import ServeModel

from helpers import CHECKPOINTS, make_text_model


def client_for(d):
    app = create_app(Options(model=str(d), name=d.name), lambda: ServeModel(numpybert.load(d), d.name))
    c = TestClient(app)
    c.__enter__()
    deadline = time.monotonic() + 30
    while c.get("/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    return c


def scores(rows):
    return {e["label"]: e["score"] for e in rows}


@pytest.mark.parametrize("name", ["tiny-classifier", "tiny-roberta-classifier", "tiny-distilbert-classifier",
                                  "tiny-electra-classifier"])
def test_predict_and_rerank_for_every_family(tmp_path, name):
    d = make_text_model(tmp_path / name, name)
    model = numpybert.load(d)
    c = client_for(d)
    try:
        texts = ["the cat sat", "a dog ran on the mat"]
        got = c.post("/predict", json={"inputs": texts}).json()
        for g, e in zip(got, model.classify(texts)):
            assert [x["label"] for x in g] == [x["label"] for x in e]
            assert np.allclose([x["score"] for x in g], [x["score"] for x in e], atol=1e-9)
        raw = c.post("/predict", json={"inputs": texts[0], "raw_scores": True}).json()
        logits = scores(model.classify([texts[0]], function_to_apply="none")[0])
        assert np.allclose([x["score"] for x in raw], [logits[x["label"]] for x in raw], atol=1e-9)
        assert c.post("/", json={"inputs": texts[0]}).json() == c.post("/predict", json={"inputs": texts[0]}).json()
        if model.config.type_vocab_size < 2:  # this test's BERT vocab.txt gives a pair's B tokens type 1, which
            return                             # RoBERTa has not (its own tokenizer.json gives 0): no pairs here
        ranked = c.post("/rerank", json={"query": "the cat", "texts": texts}).json()
        last = model.config.id2label[len(model.config.id2label) - 1]
        expected = [scores(r)[last] for r in model.classify(["the cat"] * 2, texts)]
        assert sorted(r["index"] for r in ranked) == [0, 1]
        for r in ranked:
            assert r["score"] == pytest.approx(expected[r["index"]], abs=1e-9)
    finally:
        c.__exit__(None, None, None)


@pytest.mark.parametrize("name", ["st-tiny-roberta", "st-tiny-distilbert", "st-tiny-xlm-roberta"])
def test_family_embeddings_from_text_and_from_tokenize_ids(name):
    d = CHECKPOINTS / name
    model = numpybert.load(d)
    c = client_for(d)
    try:
        texts = ["A man is playing a guitar.", "Hello world"]
        got = np.asarray(c.post("/embed", json={"inputs": texts}).json())
        assert np.abs(got - model.encode(texts)).max() <= 1e-6
        tokens = c.post("/tokenize", json={"inputs": texts[1]}).json()[0]
        ids = [t["id"] for t in tokens]
        from_ids = np.asarray(c.post("/embed", json={"inputs": [ids]}).json())
        assert np.abs(from_ids - model.encode([texts[1]], prompt="")).max() <= 1e-6  # ids carry no prompt
        for t in tokens:
            assert t["special"] or t["text"] == texts[1][t["start"]:t["stop"]]
        if name != "st-tiny-xlm-roberta":  # SentencePiece's lone "▁" token spans the next character too
            assert "".join(t["text"] for t in tokens if not t["special"]) == texts[1].replace(" ", "")
    finally:
        c.__exit__(None, None, None)
