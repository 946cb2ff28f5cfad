"""`numpybert explain` on a keras-hub preset: TF Hub's four keys from the preset itself, checks read from the h5."""

import json
import shutil

import numpy as np

import numpybert
from numpybert.teach.explain import explain

from helpers import CHECKPOINTS, run

PRESET = CHECKPOINTS / "keras-tiny-bert"


def test_explain_shows_tf_hubs_four_keys_from_the_preset(capsys):
    code, out, err = run(capsys, "explain", "the cat sat on the mat", "--model", str(PRESET))
    assert code == 0 and not err
    section = out.split("TF Hub's four keys, from this keras-hub preset (BertBackbone, keras-hub 0.32.0; out.tfhub())")[1]
    model = numpybert.load(PRESET)
    batch = model.tokenize(["the cat sat on the mat"])
    keys = model(**batch).tfhub()
    first = " ".join(f"{v:+.4f}" for v in keys["pooled_output"][0, :6])
    assert f"pooled_output    [1, 32]  = keras-hub's \"pooled_output\" (pooled_dense, tanh) [{first} ...]" in section
    assert "sequence_output  [1, 8, 32]" in section and "encoder_outputs  2 × [1, 8, 32]" in section
    assert "default          [1, 32]  = pooled_output, the same array" in section
    assert "runs GELU as gelu_new" in section
    checks = out.split("checked independently (tensors read from model.weights.h5 with h5py")[1]
    assert checks.count(": agrees") == 2 and "DISAGREES" not in out


def test_explain_checks_read_the_h5_and_can_fail(tmp_path):
    """The pooler check recomputes from model.weights.h5: a model whose pooler differs from the file disagrees."""
    model = numpybert.load(PRESET)
    e = explain(model, "the cat sat")
    assert e.keras_preset["class_name"] == "BertBackbone" and e.pooler_check.agrees and e.embedding_check.agrees
    assert "model.weights.h5" in e.pooler_check.inputs
    model.flat_params["pooler.dense.bias"] += 1e-3  # in memory only: the file still holds the original
    assert not explain(model, "the cat sat").pooler_check.agrees


def test_explain_says_when_the_preset_has_the_exact_gelu(tmp_path, capsys):
    dest = tmp_path / "exact"
    shutil.copytree(PRESET, dest)
    config = json.loads((dest / "config.json").read_text())
    config["config"]["activation"] = "gelu"
    (dest / "config.json").write_text(json.dumps(config))
    code, out, _ = run(capsys, "explain", "the cat", "--model", str(dest))
    assert code == 0 and "This preset says it was built with the exact GELU" in " ".join(out.split())
    np.testing.assert_equal(numpybert.load(dest).config.hidden_act, "gelu")
