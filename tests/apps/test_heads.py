"""Task heads (numpybert/apps/heads.py): parity with transformers' BertForPreTraining and
BertForSequenceClassification on the committed goldens, clear refusals, and the text-level
answers (fill-mask, next sentence, classify) and their commands.

Tolerances (logits of magnitude ≤ ~4):
- float32: 1e-5 abs at every position, the issue's bar. Measured worst 3.6e-6 (MLM logits on a
  padded position of the pair case), the same float32 noise as the encoder's (tests/engine/test_golden.py).
- float64: 1e-10 abs. Measured ≤ 4.3e-15.
"""

import json

import numpy as np
import pytest

import numpybert
from numpybert import cli
from numpybert.api import ENGINES
from numpybert.apps import heads
from numpybert.errors import InputValueError, MissingWeightsError
from numpybert.audit.golden import read_golden

from helpers import CHECKPOINTS, GOLDEN, make_text_model, VOCAB

TOL = {"float32": 1e-5, "float64": 1e-10}
HEAD_OUTPUTS = {  # golden model -> (numpybert function, transformers output name)
    "tiny-pretraining": [(heads.mlm_logits, "prediction_logits"), (heads.nsp_logits, "seq_relationship_logits")],
    "tiny-classifier": [(heads.classifier_logits, "logits")],
    # the BERT family (issue 21): RoBERTa's lm_head (exact gelu) and two-layer classifier on <s> (tanh),
    # DistilBERT's vocab_transform/vocab_layer_norm/vocab_projector and pre_classifier (ReLU),
    # ELECTRA's generator head (H -> E, tied E-wide decoder) and classifier (gelu)
    **{f"tiny-{family}-mlm" if family != "electra" else "tiny-electra-generator": [(heads.mlm_logits, "prediction_logits")]
       for family in ("roberta", "distilbert", "electra")},
    **{f"tiny-{family}-classifier": [(heads.classifier_logits, "logits")] for family in ("roberta", "distilbert", "electra")},
}


def head_cases():
    cases = []
    for model, outputs in HEAD_OUTPUTS.items():
        files = sorted((GOLDEN / model).glob("*.safetensors"))
        if not files:
            pytest.fail(f"no goldens under {GOLDEN / model}: run `python scripts/export_golden.py tiny`", pytrace=False)
        for path in files:
            for fn, name in outputs:
                cases += [pytest.param(model, path, fn, name, engine, id=f"{model}/{path.name}::{engine}::{name}")
                          for engine in ENGINES]
    return cases


@pytest.mark.parametrize("model_name, path, fn, output, engine", head_cases())
def test_head_logits_match_transformers(model_name, path, fn, output, engine):
    """Both engines (numpybert/engine/ and numpybert/reference.py) on every head golden."""
    golden = read_golden(path)
    dtype = golden.metadata["dtype"]
    model = _load(model_name, dtype, engine)
    got = fn(model, **golden.inputs)
    expected = golden.outputs[output]
    assert got.shape == expected.shape and got.dtype == np.dtype(dtype)
    err = np.abs(got - expected).max()
    assert err <= TOL[dtype], f"{output}: max abs {err:.3g} > {TOL[dtype]:g}"


_MODELS = {}


def _load(name, dtype, engine="fast"):
    if (name, dtype, engine) not in _MODELS:
        _MODELS[name, dtype, engine] = numpybert.load(CHECKPOINTS / name, dtype=dtype, engine=engine)
    return _MODELS[name, dtype, engine]


# ----------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("checkpoint, fn, names", [
    ("tiny-bert", heads.mlm_logits, "cls.predictions"),
    ("tiny-bert", heads.nsp_logits, "cls.seq_relationship"),
    ("tiny-pretraining", heads.classifier_logits, "classifier"),
    ("tiny-classifier", heads.mlm_logits, "cls.predictions"),
])
def test_asking_for_an_absent_head_is_a_clear_error(checkpoint, fn, names):
    model = _load(checkpoint, "float32")
    with pytest.raises(MissingWeightsError, match=rf"{checkpoint}: the checkpoint has no .*\({names}\.\*\)"):
        fn(model, np.array([[2, 5, 3]]))


def test_available_heads_lists_what_the_checkpoint_has():
    assert heads.available_heads(_load("tiny-pretraining", "float32")) == ["mlm", "nsp"]
    assert heads.available_heads(_load("tiny-classifier", "float32")) == ["classifier"]
    assert heads.available_heads(_load("tiny-bert", "float32")) == []


# ----------------------------------------------------------------------------- text in, answers out

@pytest.fixture(scope="module")
def pretraining(tmp_path_factory):
    return numpybert.load(make_text_model(tmp_path_factory.mktemp("heads") / "pre", "tiny-pretraining"))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    return make_text_model(tmp_path_factory.mktemp("heads") / "clf", "tiny-classifier")


def _softmax64(x):
    e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_fill_mask_ranks_the_softmax_of_the_mlm_logits(pretraining):
    text = "the [MASK] plays the [MASK] ."
    got = heads.fill_mask(pretraining, text, top_k=4)
    batch = pretraining.tokenize([text])
    positions = np.flatnonzero(batch["input_ids"][0] == VOCAB.index("[MASK]"))
    probs = _softmax64(heads.mlm_logits(pretraining, **batch)[0, positions])  # golden-checked logits
    assert len(got) == 2
    for candidates, p in zip(got, probs):
        best = np.argsort(-p)[:4]
        assert [c["token_id"] for c in candidates] == list(best)
        # vocab.txt has 96 tokens, the model 99 ids: ids 96-98 have no token (a padded vocab_size)
        assert [c["token"] for c in candidates] == [VOCAB[i] if i < len(VOCAB) else None for i in best]
        np.testing.assert_allclose([c["score"] for c in candidates], p[best], rtol=1e-5)  # float32 logits


def test_fill_mask_refusals(pretraining):
    with pytest.raises(InputValueError, match="no \\[MASK\\]"):
        heads.fill_mask(pretraining, "no mask here")
    with pytest.raises(InputValueError, match="top_k=0"):
        heads.fill_mask(pretraining, "a [MASK]", top_k=0)


def test_next_sentence_is_the_softmax_of_the_nsp_logits(pretraining):
    got = pretraining.next_sentence("the man plays", "the dog runs")
    logits = heads.nsp_logits(pretraining, **pretraining.tokenize(["the man plays"], ["the dog runs"]))
    p = _softmax64(logits)[0]
    assert got == pytest.approx({"is_next": p[0], "not_next": p[1]}, rel=1e-6)


def test_classify_names_labels_from_id2label(classifier_dir):
    model = numpybert.load(classifier_dir)
    texts = ["a dog runs", "the dark river"]
    got = model.classify(texts)
    p = _softmax64(heads.classifier_logits(model, **model.tokenize(texts)))
    labels = ["negative", "neutral", "positive"]  # tests/checkpoints/tiny-classifier/config.json
    for row, probs in zip(got, p):
        assert [x["label"] for x in row] == [labels[i] for i in np.argsort(-probs)]
        np.testing.assert_allclose([x["score"] for x in row], np.sort(probs)[::-1], rtol=1e-6)


def test_multi_label_classifier_uses_a_sigmoid(tmp_path, classifier_dir):
    config = json.loads((classifier_dir / "config.json").read_text())
    d = make_text_model(tmp_path / "m", "tiny-classifier")
    (d / "config.json").write_text(json.dumps(config | {"problem_type": "multi_label_classification"}))
    model = numpybert.load(d)
    logits = heads.classifier_logits(model, **model.tokenize(["a dog"])).astype(np.float64)[0]
    scores = {x["label"]: x["score"] for x in model.classify(["a dog"])[0]}
    sigmoid = 1 / (1 + np.exp(-logits))
    assert [scores[k] for k in ("negative", "neutral", "positive")] == pytest.approx(sigmoid, rel=1e-6)


# ----------------------------------------------------------------------------- commands

def test_fill_mask_command(pretraining, capsys):
    assert cli.main(["fill-mask", "the [MASK] runs", "--top-k", "3", "--json", "--model", pretraining.model_dir]) == 0
    assert json.loads(capsys.readouterr().out) == heads.fill_mask(pretraining, "the [MASK] runs", 3)
    assert cli.main(["fill-mask", "the [MASK] runs", "--top-k", "2", "--model", pretraining.model_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[MASK] 1 of 1:" and len(lines) == 3


def test_nsp_and_classify_commands(pretraining, classifier_dir, capsys):
    assert cli.main(["nsp", "the man", "a dog", "--json", "--model", pretraining.model_dir]) == 0
    assert json.loads(capsys.readouterr().out) == pretraining.next_sentence("the man", "a dog")
    assert cli.main(["classify", "a dog", "the cat", "--json", "--model", str(classifier_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["labels"] for r in out] == numpybert.load(classifier_dir).classify(["a dog", "the cat"])


def test_command_on_a_checkpoint_without_the_head_fails_in_one_line(tmp_path, capsys):
    d = make_text_model(tmp_path / "m", "tiny-bert")
    assert cli.main(["fill-mask", "a [MASK]", "--model", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no masked-LM head (cls.predictions.*)" in err
