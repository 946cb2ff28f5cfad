"""`numpybert.audit.write_golden`: the golden format as an interchange (docs/golden-format.md)."""

import numpy as np
import pytest

import numpybert
from numpybert import audit, cli
from numpybert.errors import InputTypeError, InputValueError, OutputError
from helpers import CHECKPOINTS, parse, ROOT, run_block, same_output

TINY = CHECKPOINTS / "tiny-bert"
DOC = ROOT / "docs" / "golden-format.md"


def test_the_doc_runs_and_prints_what_it_says():
    blocks = parse(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    namespace = {"__name__": "__doc__"}
    for block in blocks:
        actual = run_block(block, namespace)
        assert same_output(actual, block.expected), f"line {block.line}: printed\n{actual}\ndoc says\n{block.expected}"


@pytest.fixture
def engine():
    model = numpybert.load(TINY)
    inputs = audit.random_inputs(model.config)
    return model, inputs, model(**inputs, output_hidden_states=True)


def test_outputs_only_golden_audits_on_the_command_line(capsys, tmp_path, engine):
    model, inputs, out = engine
    path = audit.write_golden(tmp_path / "g.safetensors", inputs,
                              outputs={"last_hidden_state": out.last_hidden_state,
                                       "pooler_output": out.pooler_output},
                              metadata={"generator": "test-engine", "build": 7}, model_dir=TINY)
    golden = audit.read_golden(path)
    assert golden.metadata["model_sha256"] == audit.weights_sha256(TINY)
    assert golden.metadata["build"] == "7" and golden.inputs["input_ids"].dtype == np.int64
    code = cli.main(["audit", "--golden", str(path), "--model", str(TINY)])
    out_text = capsys.readouterr().out
    assert code == 0 and "written by test-engine, float32" in out_text
    assert "absent from the reference, not compared" in out_text and "hidden_states.0" in out_text


def test_a_golden_of_other_weights_is_refused(capsys, tmp_path, engine):
    _, inputs, out = engine
    path = audit.write_golden(tmp_path / "g.safetensors", inputs, outputs={"last_hidden_state": out.last_hidden_state},
                              model_dir=CHECKPOINTS / "tiny-f16")  # the same weights rounded: another file
    code = cli.main(["audit", "--golden", str(path), "--model", str(TINY)])
    assert code == 2 and "sha256 mismatch" in capsys.readouterr().err


def test_float64_golden(tmp_path):
    model = numpybert.load(TINY, dtype="float64")
    inputs = audit.random_inputs(model.config)
    out = model(**inputs, record=True)
    path = audit.write_golden(tmp_path / "g.safetensors", inputs, trace={"pooled_output": out.trace["pooled_output"]})
    report = audit.audit(model, audit.read_golden(path))
    assert report.dtype == "float64" and report.passed and [r.name for r in report.tensors] == ["pooled_output"]


def test_bad_input_is_refused_naming_the_culprit(tmp_path, engine):
    _, inputs, out = engine
    h = {"last_hidden_state": out.last_hidden_state}
    target = tmp_path / "g.safetensors"
    with pytest.raises(InputValueError, match="input_ids"):
        audit.write_golden(target, {"attention_mask": inputs["attention_mask"]}, h)
    with pytest.raises(InputValueError, match="unknown inputs"):
        audit.write_golden(target, {**inputs, "position_idz": inputs["input_ids"]}, h)
    with pytest.raises(InputTypeError, match="inputs.input_ids is float32"):
        audit.write_golden(target, {"input_ids": inputs["input_ids"].astype(np.float32)}, h)
    with pytest.raises(InputValueError, match="inputs.attention_mask has shape"):
        audit.write_golden(target, {**inputs, "attention_mask": inputs["attention_mask"][:, :3]}, h)
    with pytest.raises(InputTypeError, match="outputs.last_hidden_state is float16"):
        audit.write_golden(target, inputs, {"last_hidden_state": out.last_hidden_state.astype(np.float16)})
    with pytest.raises(InputValueError, match="mix"):
        audit.write_golden(target, inputs, h, {"pooled_output": out.pooler_output.astype(np.float64)})
    with pytest.raises(InputValueError, match="nothing to compare"):
        audit.write_golden(target, inputs)
    with pytest.raises(InputTypeError, match="metadata 'when'"):
        audit.write_golden(target, inputs, h, metadata={"when": [1, 2]})
    with pytest.raises(OutputError, match="does not exist"):
        audit.write_golden(tmp_path / "no" / "g.safetensors", inputs, h)
    assert not target.exists()


def test_never_overwrites(tmp_path, engine):
    _, inputs, out = engine
    target = tmp_path / "g.safetensors"
    target.write_bytes(b"mine")
    with pytest.raises(OutputError, match="exists"):
        audit.write_golden(target, inputs, {"last_hidden_state": out.last_hidden_state})
    assert target.read_bytes() == b"mine"
