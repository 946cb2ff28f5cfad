"""`numpybert audit --keras PRESET --model DIR` on the committed tiny preset and the checkpoint it came from."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from numpybert.audit import keras as preset_audit
from numpybert.audit.compare import random_inputs
from numpybert import load

from helpers import CHECKPOINTS, assert_one_error_line, run

PRESET = str(CHECKPOINTS / "keras-tiny-bert")
ORIGINAL = str(CHECKPOINTS / "tiny-bert")


def exact_gelu_preset(tmp_path):
    """The tiny preset as scripts/make_keras_preset.py --exact-gelu writes it: config "activation": "gelu"."""
    dest = tmp_path / "exact"
    shutil.copytree(PRESET, dest)
    config = json.loads((dest / "config.json").read_text())
    config["config"]["activation"] = "gelu"
    (dest / "config.json").write_text(json.dumps(config))
    return str(dest)


def test_audit_names_the_first_gelu_and_explains_it(capsys):
    code, out, err = run(capsys, "audit", "--keras", PRESET, "--model", ORIGINAL)
    assert code == 1 and not err
    assert "weights: 39 tensors compared, all identical" in out
    rows = [line for line in out.splitlines() if line.startswith(("embeddings.", "encoder.", "last_hidden_state"))]
    assert [r.split()[0] for r in rows if r.endswith("ok")][-1] == "encoder.layer.0.intermediate.pre_act"
    first = next(r for r in rows if "FAIL" in r)
    assert first.startswith("encoder.layer.0.intermediate.output") and first.endswith("<- first divergence")
    assert "first divergence: encoder.layer.0.intermediate.output: max abs" in out
    gap = float(out.split("final gap, last_hidden_state (real tokens): max abs ")[1].split(",")[0])
    assert 1e-4 < gap < 1e-2  # the tanh GELU's effect on this random model (measured 5.8e-4)
    assert "cause: the activation. The preset computes GELU as gelu_new (tanh" in out
    assert "the same preset run with the checkpoint's GELU is 0 from it (within the float32 tolerance" in out


def test_audit_json_carries_the_same_verdict(capsys):
    code, out, _ = run(capsys, "audit", "--keras", PRESET, "--model", ORIGINAL, "--json", "--engine", "reference")
    report = json.loads(out)
    assert code == 1 and report["passed"] is False and report["engine"] == "reference"
    assert report["first_divergence"]["name"] == "encoder.layer.0.intermediate.output"
    assert report["hidden_act"] == {"preset": "gelu_new", "model": "gelu"}
    assert report["weights"]["differing"] == [] and report["weights"]["tensors"] == 39
    assert report["final_gap"]["last_hidden_state"]["max_abs"] > 1e-4
    assert report["rerun_with_model_gelu"]["last_hidden_state"]["max_abs"] == 0.0
    assert report["explanation"].startswith("cause: the activation")
    names = [t["name"] for t in report["tensors"]]
    assert names[:2] == ["embeddings.sum", "embeddings.output"] and names[-2:] == ["last_hidden_state", "pooler_output"]


def test_a_preset_converted_with_the_exact_gelu_passes(tmp_path, capsys):
    code, out, _ = run(capsys, "audit", "--keras", exact_gelu_preset(tmp_path), "--model", ORIGINAL)
    assert code == 0, out
    assert "PASS: all 39 weights identical, all 29 tensors within float32 tolerance" in out
    assert "GELU: preset hidden_act gelu (erf), checkpoint hidden_act gelu (erf)" in out and "cause:" not in out


def test_other_weights_are_the_first_divergence(tmp_path, capsys):
    """A checkpoint whose weights differ from the preset's (one LayerNorm bias moved by 1e-3): the audit says so
    before any tensor, and does not blame the activation."""
    other = tmp_path / "other"
    shutil.copytree(ORIGINAL, other)
    tensors = load_file(str(other / "model.safetensors"))
    tensors["encoder.layer.1.output.LayerNorm.bias"] = tensors["encoder.layer.1.output.LayerNorm.bias"] + 1e-3
    save_file(tensors, str(other / "model.safetensors"))
    code, out, _ = run(capsys, "audit", "--keras", PRESET, "--model", str(other), "--json")
    report = json.loads(out)
    assert code == 1 and report["first_divergence"] == {"name": "encoder.layer.1.output.LayerNorm.bias", "kind": "weight"}
    assert report["weights"]["differing"] == ["encoder.layer.1.output.LayerNorm.bias"]
    code, out, _ = run(capsys, "audit", "--keras", PRESET, "--model", str(other))
    assert "FAIL: first divergence: weight encoder.layer.1.output.LayerNorm.bias" in out


def test_tiny_models_without_a_tokenizer_get_fixed_ids():
    inputs = random_inputs(load(ORIGINAL).config)
    report = preset_audit.audit_preset(PRESET, ORIGINAL, inputs)
    assert report.tokenizer.startswith("not compared") and not report.passed
    assert report.first_divergence.name == "encoder.layer.0.intermediate.output"
    np.testing.assert_array_equal(report.inputs["input_ids"], inputs["input_ids"])


@pytest.mark.parametrize("argv, code, fragment", [
    (["--keras", PRESET, "--model", ORIGINAL, "--gelu", "erf"], 2, "--keras takes the preset and the checkpoint"),
    (["--keras", PRESET, "--model", ORIGINAL, "--oracle"], 2, "drop --mask-value/--gelu/--eps/--dtype/--oracle"),
    (["--keras", "/nonexistent/preset", "--model", ORIGINAL], 3, "/nonexistent/preset"),
    (["--keras", ORIGINAL, "--model", ORIGINAL], 2, "not a keras-hub BertBackbone preset"),
])
def test_usage_errors_are_one_line(capsys, argv, code, fragment):
    got, out, err = run(capsys, "audit", *argv)
    assert got == code and not out
    assert_one_error_line(err, "audit", fragment)
