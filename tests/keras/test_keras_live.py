"""keras-hub itself, live, without TensorFlow: presets of the real all-MiniLM-L6-v2 made by keras-hub 0.32 on the
torch backend (scripts/test.sh runs scripts/make_keras_preset.py into weights/), and the committed tiny preset
remade here by keras-hub.

Measured 2026-12-06 (keras-hub 0.32.0, keras 3.15.1, torch 2.13 backend): numpybert vs keras-hub's own outputs on
3 texts × 16 tokens, at real tokens, sequence_output 2.1e-6 (fast) / 1.8e-6 (reference), pooled_output 1.7e-7;
with the exact GELU configured 2.4e-6 / 2.2e-7. keras-hub's preset vs the original checkpoint (transformers'
BertModel semantics): sequence_output 3.0e-3, pooled_output 1.8e-4, all of it from the tanh GELU.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

import numpybert

from helpers import CHECKPOINTS, GOLDEN, ROOT, require_minilm, run

TOLERANCE = 1e-5  # the target, float32 at real tokens; measured above (≤ 2.4e-6)
PRESETS = {"tanh": ROOT / "weights" / "all-MiniLM-L6-v2-keras", "erf": ROOT / "weights" / "all-MiniLM-L6-v2-keras-exact-gelu"}


def preset(kind):
    path = PRESETS[kind]
    if not (path / "keras_outputs.safetensors").is_file():
        pytest.fail(f"{path} is missing: scripts/test.sh makes it with keras-hub (bash scripts/test.sh)")
    return path


def test_no_tensorflow_is_installed():
    """The whole keras-hub side runs on torch: the test setup installs no TensorFlow."""
    assert importlib.util.find_spec("keras_hub") is not None
    assert importlib.util.find_spec("tensorflow") is None and importlib.util.find_spec("tensorflow_text") is None


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("kind", ["tanh", "erf"])
def test_real_minilm_preset_equals_keras_hub(kind, engine):
    path = preset(kind)
    g = load_file(str(path / "keras_outputs.safetensors"))
    with safe_open(str(path / "keras_outputs.safetensors"), "np") as f:
        meta = f.metadata()
    assert meta["backend"] == "torch" and meta["activation"] == {"tanh": "gelu_approximate", "erf": "gelu"}[kind]
    model = numpybert.load(path, engine=engine)
    assert model.config.hidden_act == {"tanh": "gelu_new", "erf": "gelu"}[kind]
    keys = model(input_word_ids=g["token_ids"], input_mask=g["padding_mask"], input_type_ids=g["segment_ids"]).tfhub()
    real = g["padding_mask"].astype(bool)
    assert np.abs(keys["sequence_output"] - g["sequence_output"])[real].max() <= TOLERANCE
    assert np.abs(keys["pooled_output"] - g["pooled_output"]).max() <= TOLERANCE
    batch = model.tokenize(["A man is playing a guitar.", "The quick brown fox jumps over the lazy dog by the river "
                            "bank.", "Hello!"], truncation=True)  # the preset's own vocabulary.txt
    np.testing.assert_array_equal(batch["input_ids"], g["token_ids"])


def test_keras_hubs_gap_to_the_original_is_the_gelu():
    """keras-hub's own outputs against transformers' semantics of the original: ~1e-3, not float noise."""
    g = load_file(str(preset("tanh") / "keras_outputs.safetensors"))
    out = numpybert.load(require_minilm())(input_ids=g["token_ids"], attention_mask=g["padding_mask"],
                                           token_type_ids=g["segment_ids"])
    real = g["padding_mask"].astype(bool)
    assert 1e-3 < np.abs(out.last_hidden_state - g["sequence_output"])[real].max() < 1e-2  # measured 3.0e-3
    assert 1e-5 < np.abs(out.pooler_output - g["pooled_output"]).max() < 1e-3  # measured 1.8e-4


def test_audit_on_the_real_preset_fails_at_layer_0s_gelu(capsys):
    code, out, _ = run(capsys, "audit", "--keras", str(preset("tanh")), "--model", str(require_minilm()), "--json")
    report = json.loads(out)
    assert code == 1 and report["first_divergence"]["name"] == "encoder.layer.0.intermediate.output"
    assert report["weights"]["tensors"] == 103 and not report["weights"]["differing"]
    assert 1e-3 < report["final_gap"]["last_hidden_state"]["max_abs"] < 1e-2
    assert report["explanation"].startswith("cause: the activation")
    assert report["tokenizer"] == "the preset's vocabulary gives the same ids on the audit texts"


def test_audit_on_the_exact_gelu_preset_passes(capsys):
    code, out, _ = run(capsys, "audit", "--keras", str(preset("erf")), "--model", str(require_minilm()))
    assert code == 0 and "PASS: all 103 weights identical, all 73 tensors within float32 tolerance" in out


def test_keras_hub_remakes_the_committed_tiny_preset(tmp_path):
    """scripts/make_keras_preset.py, run now with keras-hub, makes the committed tiny preset's outputs again."""
    outputs = tmp_path / "outputs.safetensors"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_keras_preset.py"), "--out",
                           str(tmp_path / "preset"), "--outputs", str(outputs)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    new, committed = load_file(str(outputs)), load_file(str(GOLDEN / "keras-tiny-bert" / "keras_outputs.safetensors"))
    assert set(new) == set(committed)
    for name in committed:  # same keras-hub, same torch: the same float32 numbers to rounding (measured: equal)
        np.testing.assert_allclose(new[name], committed[name], rtol=0, atol=1e-6, err_msg=name)
    made = numpybert.load(tmp_path / "preset")
    for name, array in numpybert.load(CHECKPOINTS / "keras-tiny-bert").flat_params.items():
        np.testing.assert_array_equal(made.flat_params[name], array, err_msg=name)
    for name in ("config.json", "tokenizer.json", "metadata.json"):
        assert (tmp_path / "preset" / name).read_text() == (CHECKPOINTS / "keras-tiny-bert" / name).read_text(), name


def test_a_text_classifier_preset_loads_as_its_backbone(tmp_path):
    """keras-hub's BertTextClassifier.save_to_preset writes the backbone (config.json, model.weights.h5) and the
    task (task.json, task.weights.h5): numpybert loads the backbone and lists the head as not loaded."""
    code = ("import os; os.environ['KERAS_BACKEND'] = 'torch'; import sys, keras_hub; "
            "b = keras_hub.models.BertBackbone.from_preset(sys.argv[1]); "
            "keras_hub.models.BertTextClassifier(b, num_classes=3).save_to_preset(sys.argv[2])")
    proc = subprocess.run([sys.executable, "-c", code, str(CHECKPOINTS / "keras-tiny-bert"), str(tmp_path / "clf")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = numpybert.load(tmp_path / "clf")
    assert ("task.weights.h5", "the BertTextClassifier head of task.json: not loaded (the backbone only)") in \
        model.manifest.ignored
    for name, array in numpybert.load(CHECKPOINTS / "keras-tiny-bert").flat_params.items():
        np.testing.assert_array_equal(model.flat_params[name], array, err_msg=name)
