"""Audit a keras-hub BERT preset against the checkpoint it was converted from: where do they part ways?

    report = audit_preset("minilm-keras/", "weights/all-MiniLM-L6-v2", inputs)
    print(render_keras_report(report)); report_keras_json(report)

Both sides run through numpybert on the same token ids: the preset as keras-hub computes it (its
weights from model.weights.h5, its GELU: keras-hub's BertBackbone builds every layer with the tanh
approximation) and the original checkpoint (its config.json's hidden_act), each in float32, with the
original in float64 through the textbook (numpybert/reference.py) as the exact answer. Compared:
  * every weight: the preset's, renamed and reshaped (numpybert/loading/keras.py), against the file's;
  * every recorded intermediate, in forward order, at real tokens with numpybert's float32 tolerances
    (padded positions reported, not judged, as `audit --onnx` does); each tensor's error against
    float64 next to the original float32's own (the rounding noise);
  * the final outputs' gap, and, when the first divergence is an activation output and the two GELUs
    differ, the same preset rerun with the checkpoint's GELU: a one-line explanation with numbers.
No keras, TensorFlow or torch here: keras-hub's own outputs are checked by the tests
(tests/keras/), this audit explains them.
"""

import dataclasses
import os

import numpy as np

from ..errors import NumpybertError
from ..loading import keras as keras_loading
from .onnx import GraphRow, compare_row, reference_tensors, rows_table
from .stats import TOLERANCES, error_stats, number, real_positions, sci, stats_json

GELU_FORMS = {"gelu": "erf", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}  # hidden_act -> with_conventions


class KerasAuditError(NumpybertError, ValueError):
    """A keras-hub preset that cannot be audited against the checkpoint given."""


@dataclasses.dataclass(frozen=True)
class Gap:
    """Final output `name`: preset vs original float32 at real tokens."""
    name: str
    max_abs: float
    mean_abs: float
    cosine: float


@dataclasses.dataclass
class KerasReport:
    preset: str
    model: str
    engine: str
    activations: dict  # side ("preset", "model") -> hidden_act
    inputs: dict
    weights: dict  # {"tensors": n, "max_abs": x, "differing": [names]}
    tokenizer: str  # what the preset's tokenizer did on the audit texts
    rows: list  # GraphRow, forward order
    gaps: list  # Gap of last_hidden_state and pooler_output
    explanation: str  # one line when the first divergence is the activation, else ""
    rerun_gaps: list  # Gap of the preset rerun with the checkpoint's GELU (when explained)

    @property
    def first_divergence(self):
        """The first differing weight (a name), else the first failing tensor row, else None."""
        if self.weights["differing"]:
            return self.weights["differing"][0]
        return next((r for r in self.rows if not r.passed), None)

    @property
    def passed(self) -> bool:
        return self.first_divergence is None


def load(path, dtype, engine):
    from .. import load as load_model
    return load_model(path, dtype=dtype, engine=engine)


def compare_weights(preset, model) -> dict:
    """Every checkpoint tensor of the original against the preset's (renamed, reshaped) copy."""
    ours, theirs = preset.flat_params, model.flat_params
    names = [n for n in theirs if n in ours]
    if not names:
        raise KerasAuditError(f"{preset.model_dir} and {model.model_dir} share no tensor name")
    differing, worst = [], 0.0
    for name in names:
        if ours[name].shape != theirs[name].shape:
            raise KerasAuditError(f"{preset.model_dir}: {name} is {list(ours[name].shape)}, {model.model_dir}'s "
                                  f"{list(theirs[name].shape)}: the preset was not converted from this checkpoint")
        diff = float(np.abs(ours[name].astype(np.float64) - theirs[name]).max()) if ours[name].size else 0.0
        worst = max(worst, diff)
        if diff > 0:
            differing.append(name)
    only = sorted(set(theirs) - set(ours))
    return {"tensors": len(names), "max_abs": worst, "differing": differing, "only_in_model": only}


def gap(name, ours, ref, mask) -> Gap:
    s = error_stats(ours, ref, real_positions(mask, ref.shape))
    return Gap(name, s.max_abs, s.mean_abs, s.cosine)


def final_gaps(a: dict, b: dict, mask) -> list:
    return [gap(n, a[n], b[n], mask) for n in ("last_hidden_state", "pooler_output") if n in a and n in b]


def tokenizer_line(preset, model, texts) -> str:
    """Whether the preset's own vocabulary (assets/tokenizer/vocabulary.txt) tokenizes the texts as the model's."""
    if not texts:
        return "not compared (no texts: fixed random ids)"
    try:
        ours = preset.tokenize(list(texts), truncation=True)["input_ids"]
    except NumpybertError as e:
        return f"the preset has no usable tokenizer ({e})"
    theirs = model.tokenize(list(texts), truncation=True)["input_ids"]
    same = ours.shape == theirs.shape and bool((ours == theirs).all())
    return ("the preset's vocabulary gives the same ids on the audit texts" if same else
            "the preset's vocabulary gives OTHER ids than the model's on the audit texts")


def audit_preset(preset_dir, model_dir, inputs: dict, texts=None, engine="fast") -> KerasReport:
    """The preset and the original checkpoint, both through numpybert, tensor by tensor."""
    if os.path.isdir(preset_dir) and not keras_loading.is_preset(preset_dir):
        raise KerasAuditError(f"{preset_dir}: not a keras-hub BertBackbone preset (its config.json names no keras_hub "
                              "module); pass the preset directory to --keras and the original checkpoint to --model")
    preset, model = load(preset_dir, "float32", engine), load(model_dir, "float32", engine)
    oracle = load(model_dir, "float64", "reference")
    weights = compare_weights(preset, model)
    mask = inputs["attention_mask"]
    ours, ref32, ref64 = (reference_tensors(m, inputs) for m in (preset, model, oracle))
    if "pooler_output" not in ours:
        ref32.pop("pooler_output", None)
    rows = [compare_row(n, "preset", ours[n], ref32[n], ref64[n], mask) for n in ref32 if n in ours]
    acts = {"preset": preset.config.hidden_act, "model": model.config.hidden_act}
    report = KerasReport(str(preset_dir), str(model_dir), engine, acts,
                         {k: inputs[k] for k in ("input_ids", "attention_mask")}, weights,
                         tokenizer_line(preset, model, texts), rows, final_gaps(ours, ref32, mask), "", [])
    first = report.first_divergence
    if isinstance(first, GraphRow) and first.name.endswith("intermediate.output") and \
            GELU_FORMS.get(acts["preset"]) != GELU_FORMS.get(acts["model"]) and acts["model"] in GELU_FORMS:
        rerun = reference_tensors(preset.with_conventions(gelu=GELU_FORMS[acts["model"]]), inputs)
        report.rerun_gaps = final_gaps(rerun, ref32, mask)
        report.explanation = explain_gelu(report)
    return report


def explain_gelu(report: KerasReport) -> str:
    a, lhs, rerun = report.activations, report.gaps[0], report.rerun_gaps[0]
    tol = next(r.tolerance for r in report.rows if r.name == lhs.name)
    return (f"cause: the activation. The preset computes GELU as {a['preset']} ({GELU_FORMS[a['preset']]}: keras-hub's "
            f"BertBackbone builds every layer with gelu_approximate), the checkpoint was trained with hidden_act "
            f"{a['model']} ({GELU_FORMS[a['model']]}); everything before the first GELU matches. That choice moves "
            f"last_hidden_state by {sci(lhs.max_abs)}; the same preset run with the checkpoint's GELU is "
            f"{sci(rerun.max_abs)} from it ({'within' if rerun.max_abs <= tol else 'still beyond'} the float32 "
            f"tolerance {sci(tol)}).")


# ----------------------------------------------------------------------------- presenting it

def row_json(row: GraphRow) -> dict:
    return {"name": row.name, "shape": list(row.shape), "passed": row.passed, "problem": row.problem or None,
            "tolerance": row.tolerance, "real": stats_json(row.real), "padded": stats_json(row.padded),
            "fp64": {"preset": stats_json(row.graph_vs_fp64), "model_fp32": stats_json(row.numpybert_vs_fp64)}}


def gap_json(gaps: list) -> dict:
    return {g.name: {"max_abs": number(g.max_abs), "mean_abs": number(g.mean_abs), "cosine": number(g.cosine)}
            for g in gaps}


def report_keras_json(report: KerasReport) -> dict:
    """The report as strict-JSON-ready data."""
    from .. import __version__
    first, mask = report.first_divergence, report.inputs["attention_mask"]
    if isinstance(first, GraphRow):
        first_json = {"index": report.rows.index(first), **row_json(first)}
    else:
        first_json = None if first is None else {"name": first, "kind": "weight"}
    return {"numpybert_version": __version__, "preset": report.preset, "model": report.model,
            "engine": report.engine, "hidden_act": report.activations,
            "inputs": {"shape": list(mask.shape), "real_tokens": int(mask.sum()),
                       "input_ids": report.inputs["input_ids"].tolist(), "attention_mask": mask.tolist()},
            "tolerance": {"real": TOLERANCES["float32"].real, "scaled": True, "padded": "reported, not judged"},
            "weights": {**report.weights, "max_abs": number(report.weights["max_abs"])},
            "tokenizer": report.tokenizer, "passed": report.passed, "first_divergence": first_json,
            "tensors": [row_json(r) for r in report.rows], "final_gap": gap_json(report.gaps),
            "explanation": report.explanation or None,
            "rerun_with_model_gelu": gap_json(report.rerun_gaps) if report.rerun_gaps else None}


def render_keras_report(report: KerasReport) -> str:
    """The readable report: header, weights, one line per tensor, verdict, final gap, explanation."""
    mask, w, a = report.inputs["attention_mask"], report.weights, report.activations
    lines = [f"numpybert audit --keras: {report.preset} (keras-hub preset) vs {report.model} (the checkpoint), "
             f"both through numpybert ({report.engine} engine, float32); float64 oracle: {report.model} "
             "through numpybert/reference.py",
             f"GELU: preset hidden_act {a['preset']} ({GELU_FORMS.get(a['preset'], '?')}), checkpoint hidden_act "
             f"{a['model']} ({GELU_FORMS.get(a['model'], '?')})",
             f"weights: {w['tensors']} tensors compared, "
             + ("all identical" if not w["differing"] else f"{len(w['differing'])} differ (max abs "
                                                            f"{sci(w['max_abs'])}), first {w['differing'][0]}")
             + (f"; only in the checkpoint: {', '.join(w['only_in_model'])}" if w["only_in_model"] else ""),
             f"tokenizer: {report.tokenizer}",
             f"inputs: {mask.shape[0]} row(s) × {mask.shape[1]} tokens, {int(mask.sum())} real",
             f"pass: max abs ≤ {TOLERANCES['float32'].real:g} × max(1, max|ref|) at real tokens against the checkpoint "
             "float32; padded positions shown, not judged", ""]
    lines += rows_table(report.rows, report.first_divergence, sides=("preset", "checkpoint"))
    lines += ["", verdict_line(report)]
    lines += [f"final gap, {g.name} (real tokens): max abs {sci(g.max_abs)}, mean abs {sci(g.mean_abs)}, "
              f"cosine {g.cosine:.9f}" for g in report.gaps]
    if report.explanation:
        lines.append(report.explanation)
    return "\n".join(lines)


def verdict_line(report: KerasReport) -> str:
    first = report.first_divergence
    if first is None:
        return f"PASS: all {report.weights['tensors']} weights identical, all {len(report.rows)} tensors within " \
               "float32 tolerance at real tokens"
    if isinstance(first, str):
        return f"FAIL: first divergence: weight {first}: the preset's copy differs from the checkpoint's"
    failed = sum(not r.passed for r in report.rows)
    detail = first.problem or f"max abs {sci(first.real.max_abs)} at real tokens (tolerance {sci(first.tolerance)})"
    return f"FAIL: {failed} of {len(report.rows)} tensors; first divergence: {first.name}: {detail}"
