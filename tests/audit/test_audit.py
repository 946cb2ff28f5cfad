"""The parity audit (`numpybert audit`, numpybert/audit/compare.py): the first-divergence finder, the
error statistics, the JSON report, the exit codes, the fp64 oracle and the convention switches.

Everything here runs against golden files or synthetic dicts: no torch. The live mode
(`--live`, transformers in-process) is tested in test_torch_bridge.py and test_live_audits.py.
Expected numbers are recomputed in the test from the arrays, never copied from a run.
"""

import json
import math

import numpy as np
import pytest

import numpybert
from helpers import CHECKPOINTS, GOLDEN
from numpybert import audit, cli
from numpybert.audit.golden import read_golden

TINY = CHECKPOINTS / "tiny-bert"
TINY_GOLDEN = GOLDEN / "tiny-bert" / "one_sentence.float32.safetensors"
TINY_GOLDEN_64 = GOLDEN / "tiny-bert" / "one_sentence.float64.safetensors"
MINILM_GOLDEN = GOLDEN / "all-MiniLM-L6-v2" / "one_sentence.float32.safetensors"
GELU_OUTPUT = "encoder.layer.0.intermediate.output"  # the first op a tanh GELU changes


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `numpybert ARGV`, in-process."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str) -> dict:
    """json.loads that refuses NaN / Infinity, which strict JSON does not have."""
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------------------- synthetic dicts

def synthetic(seed=0):
    """A forward-ordered dict of named tensors in the trace's shapes, and a padded mask."""
    rng = np.random.default_rng(seed)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])  # [B=2, T=4], row 1 padded
    names = {"embeddings.output": (2, 4, 8), "encoder.layer.0.attention.self.probs": (2, 2, 4, 4),
             "encoder.layer.0.attention.output": (2, 4, 8), "encoder.layer.0.intermediate.output": (2, 4, 16), "encoder.layer.0.output": (2, 4, 8),
             "pooled_output": (2, 8)}
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in names.items()}, mask


def perturbed(tensors, name, delta, index=(0, 0, 0)):
    """A copy of `tensors` with `delta` added to one element of `name`."""
    out = {k: v.copy() for k, v in tensors.items()}
    out[name][index] += np.float32(delta)
    return out


def test_identical_dicts_pass():
    ref, mask = synthetic()
    rows = audit.compare({k: v.copy() for k, v in ref.items()}, ref, mask, "float32")
    assert [r.name for r in rows] == list(ref)
    assert audit.first_divergence(rows) is None
    assert all(r.real.max_abs == 0 and r.all.max_abs == 0 for r in rows)


def test_first_divergence_is_the_earliest_failing_tensor_in_numpybert_order():
    """Two tensors fail; the one earlier in forward order is named, whatever order the
    reference stores its keys in (a golden file's keys are sorted: attention.output first)."""
    ref, mask = synthetic()
    first, later = "encoder.layer.0.attention.self.probs", "encoder.layer.0.attention.output"
    ours = perturbed(perturbed(ref, later, 1e-2), first, 1e-2, (0, 0, 0, 0))
    assert sorted(ref).index(later) < sorted(ref).index(first)
    rows = audit.compare(ours, dict(sorted(ref.items())), mask, "float32")
    assert [r.name for r in rows] == list(ours)
    assert audit.first_divergence(rows).name == first
    assert [r.name for r in rows if not r.passed] == [first, later]


def test_error_within_tolerance_passes_and_beyond_fails():
    ref, mask = synthetic()
    tol = audit.TOLERANCES["float32"].real * audit.tolerance_scale(ref["embeddings.output"])
    assert audit.first_divergence(audit.compare(perturbed(ref, "embeddings.output", 0.5 * tol), ref, mask,
                                                "float32")) is None
    rows = audit.compare(perturbed(ref, "embeddings.output", 3 * tol), ref, mask, "float32")
    assert audit.first_divergence(rows).name == "embeddings.output"


def test_padded_positions_have_their_own_looser_bound():
    """Row 1 is padded from position 2: an error there counts only against the all-positions
    bound (10x the real-token one in float32)."""
    ref, mask = synthetic()
    name, padded = "encoder.layer.0.output", (1, 3, 0)
    scale = audit.tolerance_scale(ref[name])
    tol = audit.TOLERANCES["float32"]
    small = audit.compare(perturbed(ref, name, 3 * tol.real * scale, padded), ref, mask, "float32")
    row = next(r for r in small if r.name == name)
    assert row.passed and row.real.max_abs == 0 and row.all.max_abs > tol.real * scale
    big = audit.compare(perturbed(ref, name, 3 * tol.all * scale, padded), ref, mask, "float32")
    assert audit.first_divergence(big).name == name


def test_nan_fails_unless_the_reference_has_the_same_nan():
    ref, mask = synthetic()
    ours = perturbed(ref, "encoder.layer.0.output", np.nan)
    row = next(r for r in audit.compare(ours, ref, mask, "float32") if r.name == "encoder.layer.0.output")
    assert math.isnan(row.real.max_abs) and not row.passed
    both = {k: v.copy() for k, v in ours.items()}
    assert audit.first_divergence(audit.compare(ours, both, mask, "float32")) is None


def test_missing_and_misshapen_tensors_fail_with_a_reason():
    ref, mask = synthetic()
    ours = {k: v for k, v in ref.items() if k != "encoder.layer.0.output"}
    ours["pooled_output"] = ref["pooled_output"][:, :4]
    rows = audit.compare(ours, ref, mask, "float32")
    failed = {r.name: r.problem for r in rows if not r.passed}
    assert failed == {"pooled_output": "numpybert shape [2, 4], reference [2, 8]",
                      "encoder.layer.0.output": "not recorded by numpybert"}
    assert audit.first_divergence(rows).name == "pooled_output"  # numpybert's order first, then reference-only


def test_mask_entries_do_not_inflate_the_tolerance():
    """masked_scores holds finfo.min on padded keys; the bound scales with the scores, not with it."""
    ref, mask = synthetic()
    scores = ref["encoder.layer.0.attention.self.probs"] * 10  # stand-in scores, |x| <~ 40
    keep = np.broadcast_to(mask[:, None, None, :] == 1, scores.shape)
    masked = np.where(keep, scores, np.finfo(np.float32).min).astype(np.float32)
    assert audit.tolerance_scale(masked) == float(np.abs(scores[keep]).max())
    ours = {"masked_scores": masked.copy()}
    ours["masked_scores"][0, 0, 0, 0] += 1e-2  # far above 1e-5 x max|scores|
    assert not audit.compare(ours, {"masked_scores": masked}, mask, "float32")[0].passed


def test_error_stats_match_their_definitions():
    """max rel only over |ref| > 1e-3 (a tiny reference element would otherwise dominate)."""
    ref = np.array([2.0, -0.5, 1e-6, 4.0], np.float32)
    ours = np.array([2.002, -0.5, 2e-6, 3.99], np.float32)
    s = audit.error_stats(ours, ref)
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    assert s.max_abs == diff.max() and s.mean_abs == pytest.approx(diff.mean())
    assert s.max_rel == pytest.approx(max(diff[0] / 2.0, diff[3] / 4.0))
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    assert s.cosine == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-15)
    assert s.count == 4


def test_real_positions_follow_each_shape():
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    assert audit.real_positions(mask, (2, 5)).all(axis=1).tolist() == [True, True]  # position 0 of each row
    assert audit.real_positions(mask, (2, 3, 7))[:, :, 0].tolist() == mask.astype(bool).tolist()
    four = audit.real_positions(mask, (2, 4, 3, 3))  # [B, N, T(query), T(key)]
    assert four[1, 2, 0].all() and not four[1, 2, 1].any() and four.sum() == mask.sum() * 4 * 3


# ----------------------------------------------------------------------------- golden audits

def test_json_report_schema_and_exit_0_on_a_passing_golden(capsys):
    code, out, err = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--json")
    assert code == 0, err
    report = strict_json(out)
    assert report["passed"] is True and report["first_divergence"] is None and report["oracle"] is None
    assert {"model", "dtype", "reference", "conventions", "inputs", "tolerance", "tensors"} <= set(report)
    assert report["reference"]["kind"] == "golden" and report["reference"]["dtype"] == "float32"
    assert report["conventions"] == {"mask_value": "finfo-min", "hidden_act": "gelu", "layer_norm_eps": 1e-12}
    golden = read_golden(TINY_GOLDEN)
    assert report["inputs"]["input_ids"] == golden.inputs["input_ids"].tolist()
    trace = numpybert.load(TINY)(**golden.inputs, record=True).trace
    assert [t["name"] for t in report["tensors"]] == list(trace) and set(trace) == set(golden.trace)
    for t in report["tensors"]:
        assert set(t) == {"name", "shape", "passed", "problem", "tolerance", "real", "all"}
        assert set(t["real"]) == {"max_abs", "max_rel", "mean_abs", "cosine", "count"}
        assert t["shape"] == list(golden.trace[t["name"]].shape)
        assert t["real"]["max_abs"] <= t["tolerance"]["real"] and t["passed"]


def test_engine_option_audits_the_chosen_engine(capsys):
    """--engine reference audits numpybert/reference.py instead of the fast engine: the report
    names the engine, and its numbers are that engine's own errors against the golden."""
    golden = read_golden(TINY_GOLDEN)
    errors = {}
    for engine in ("fast", "reference"):
        code, out, err = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--engine", engine, "--json")
        assert code == 0, err
        report = strict_json(out)
        assert report["engine"] == engine and report["passed"]
        trace = numpybert.load(TINY, engine=engine)(**golden.inputs, record=True).trace
        errors[engine] = [t["real"]["max_abs"] for t in report["tensors"]]
        assert errors[engine] == [np.abs(trace[t["name"]].astype(np.float64) - golden.trace[t["name"]]).max()
                                  for t in report["tensors"]]
    assert errors["fast"] != errors["reference"]  # two computations, both within tolerance
    code, out, _ = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--json")
    assert code == 0 and strict_json(out)["engine"] == "fast"  # the default
    code, out, _ = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--engine", "reference")
    assert code == 0 and "(float32, reference engine)" in out.splitlines()[0]
    code, out, _ = run(capsys, "audit", "--compare-conventions", "--model", TINY, "--engine", "reference", "--json")
    assert code == 0 and strict_json(out)["engine"] == "reference"
    code, _, err = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--engine", "slow")
    assert code == 2 and "invalid choice: 'slow'" in err


def test_gelu_switch_fails_with_exit_1_and_names_the_activation(capsys):
    """tiny-bert is an erf-GELU checkpoint: numpybert under tanh GELU must diverge first at
    layer 0's activation, and everything before it must still match."""
    code, out, _ = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--gelu", "tanh", "--json")
    assert code == 1
    report = strict_json(out)
    first = report["first_divergence"]
    assert report["passed"] is False and first["name"] == GELU_OUTPUT and not first["passed"]
    names = [t["name"] for t in report["tensors"]]
    assert first["index"] == names.index(GELU_OUTPUT)
    assert all(t["passed"] for t in report["tensors"][:first["index"]])
    assert report["conventions"]["hidden_act"] == "gelu_new"


def test_table_marks_the_first_divergence(capsys):
    code, out, _ = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--gelu", "tanh")
    assert code == 1
    marked = [line for line in out.splitlines() if "<- first divergence" in line]
    assert len(marked) == 1 and marked[0].startswith(GELU_OUTPUT + " ")
    assert f"first diverging operation: {GELU_OUTPUT}" in out


def test_minilm_tanh_gelu_against_its_golden_names_layer_0_activation(minilm_dir):
    """The real case: all-MiniLM-L6-v2 (erf GELU) under the tanh convention vs the committed golden."""
    golden = read_golden(MINILM_GOLDEN)
    model = numpybert.load(minilm_dir)
    assert audit.audit(model, golden).passed
    report = audit.audit(model.with_conventions(gelu="tanh"), golden)
    assert report.first_divergence.name == GELU_OUTPUT
    assert audit.report_json(report)["first_divergence"]["name"] == GELU_OUTPUT


def test_golden_without_trace_is_audited_on_its_outputs(capsys):
    path = GOLDEN / "tiny-bert" / "padded_batch.float64.safetensors"
    code, out, err = run(capsys, "audit", "--golden", path, "--model", TINY, "--json")
    assert code == 0, err
    report = strict_json(out)
    golden = read_golden(path)
    assert {t["name"] for t in report["tensors"]} == {k for k in golden.outputs if k.startswith(audit.MODEL_OUTPUTS)}
    assert report["tolerance"] == {"real": 1e-10, "all": 1e-10, "scaled": False}
    mask = golden.inputs["attention_mask"]
    assert report["inputs"]["real_tokens"] == mask.sum() < mask.size  # padded: both position sets differ


def test_mask_switch_diverges_only_on_the_fully_masked_row(capsys):
    """-10000 vs finfo.min: identical on rows with a real token, different on a fully masked one,
    so real tokens pass and all positions fail."""
    path = GOLDEN / "tiny-bert" / "fully_masked.float32.safetensors"
    code, out, _ = run(capsys, "audit", "--golden", path, "--model", TINY, "--mask-value", "-10000", "--json")
    assert code == 1
    first = strict_json(out)["first_divergence"]
    assert first["name"] == "attentions.0"
    assert first["real"]["max_abs"] <= first["tolerance"]["real"] < first["all"]["max_abs"]


def test_oracle_on_a_golden(capsys):
    """--oracle: per tensor, how far numpybert fp32 and the golden's torch fp32 are from the textbook
    model (numpybert/reference.py) in fp64."""
    code, out, err = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--oracle", "--json")
    assert code == 0, err
    oracle = strict_json(out)["oracle"]
    golden = read_golden(TINY_GOLDEN)
    exact = numpybert.load(TINY, dtype="float64", engine="reference")(**golden.inputs, record=True).trace
    assert [t["name"] for t in oracle["tensors"]] == list(exact)
    L = numpybert.load(TINY).config.num_hidden_layers
    hidden = [t["name"] for t in oracle["tensors"] if t["hidden_state"]]
    assert hidden == ["embeddings.output"] + [f"encoder.layer.{i}.output" for i in range(L)]
    row = next(t for t in oracle["tensors"] if t["name"] == "encoder.layer.1.output")
    torch_err = np.abs(golden.trace["encoder.layer.1.output"].astype(np.float64) - exact["encoder.layer.1.output"])
    assert row["torch_fp32"]["max_abs"] == torch_err.max() > 0
    assert row["numpybert_within_torch"] == (row["numpybert_fp32"]["max_abs"] <= row["torch_fp32"]["max_abs"])
    within = sum(t["numpybert_within_torch"] for t in oracle["tensors"] if t["hidden_state"])
    assert oracle["hidden_states"]["max_abs"] == {"hidden_states": L + 1, "numpybert_within_torch": within,
                                                  "all": within == L + 1}


def test_oracle_table_and_noise_note(capsys):
    code, out, _ = run(capsys, "audit", "--golden", TINY_GOLDEN, "--model", TINY, "--oracle", "--gelu", "tanh")
    assert code == 1
    assert "fp64 oracle" in out and "hidden states where numpybert fp32 is at least as close" in out
    assert "torch fp32's own error there is" in out


# ----------------------------------------------------------------------------- exit codes 2 and 3

@pytest.mark.parametrize("argv,message", [
    ((), "choose what to compare with"),
    (("--golden", TINY_GOLDEN, "--model", TINY, "--text", "hi"), "--golden uses the golden file's inputs"),
    (("--golden", TINY_GOLDEN_64, "--model", TINY, "--oracle"), "float32"),
    (("--live", "--oracle", "--dtype", "float64"), "--oracle compares a float32 audit"),
    (("--compare-conventions", "--gelu", "tanh"), "--compare-conventions tries every switch itself"),
    (("--golden", TINY_GOLDEN, "--model", CHECKPOINTS / "tiny-classifier"), "weights differ"),
])
def test_bad_usage_exits_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, "audit", *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_golden_file_exits_3(capsys, tmp_path):
    code, _, err = run(capsys, "audit", "--golden", tmp_path / "nope.safetensors", "--model", TINY)
    assert code == 3 and "nope.safetensors" in err


# ----------------------------------------------------------------------------- conventions

@pytest.fixture(scope="module")
def conventions():
    model = numpybert.load(TINY)
    inputs = audit.with_fully_masked_row(audit.random_inputs(model.config))
    return model, inputs, {r.switch: r for r in audit.compare_conventions(model, inputs)}


def test_conventions_batch_has_padding_and_a_fully_masked_row(conventions):
    _, inputs, _ = conventions
    mask = inputs["attention_mask"]
    assert not mask[-1].any() and mask[:-1].any(axis=1).all() and not mask[:-1].all()


def test_mask_switches_change_only_the_fully_masked_row(conventions):
    _, _, rows = conventions
    # -10000 runs the same batch: bit-identical on rows with a real token. -inf refuses the fully
    # masked row, so its other rows are recomputed as a smaller batch: BLAS rounding only (≤ 1e-6).
    for switch, bound in (("mask -10000", 0.0), ("mask -inf", 1e-6)):
        changes = rows[switch].changes
        assert all(changes[k].max_abs <= bound for k in ("last_hidden_state", "pooler_output", "mean_pooled")), switch
    assert rows["mask -10000"].changes["fully_masked.last_hidden_state"].max_abs > 1e-3
    assert math.isnan(rows["mask -inf"].changes["fully_masked.last_hidden_state"].max_abs)


def test_gelu_and_eps_switches_change_every_output(conventions):
    model, inputs, rows = conventions
    tanh = model.with_conventions(gelu="tanh")(**inputs).last_hidden_state
    base = model(**inputs).last_hidden_state
    real = inputs["attention_mask"].astype(bool)
    expected = float(np.abs(tanh[real].astype(np.float64) - base[real]).max())
    assert expected > 0 and rows["gelu tanh"].changes["last_hidden_state"].max_abs == pytest.approx(expected, rel=1e-12)
    assert rows["eps 1e-5"].changes["mean_pooled"].max_abs > rows["eps 1e-6"].changes["mean_pooled"].max_abs > 0


def test_compare_conventions_command_table_and_json(capsys):
    code, out, err = run(capsys, "audit", "--compare-conventions", "--model", TINY)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines if line.startswith(("mask ", "gelu ", "eps "))] == [
        label.split() for label, _, _ in audit.CONVENTION_SWITCHES]
    assert "nan / nan" in next(line for line in lines if line.startswith("mask -inf"))
    code, out, _ = run(capsys, "audit", "--compare-conventions", "--model", TINY, "--json")
    report = strict_json(out)
    assert code == 0 and [s["switch"] for s in report["switches"]] == [s for s, _, _ in audit.CONVENTION_SWITCHES]
    assert report["switches"][1]["changes"]["fully_masked.last_hidden_state"]["max_abs"] == "nan"


def test_text_needs_a_tokenizer(capsys):
    code, _, err = run(capsys, "audit", "--compare-conventions", "--model", TINY, "--text", "hello")
    assert code == 2 and "no tokenizer.json or vocab.txt" in err
