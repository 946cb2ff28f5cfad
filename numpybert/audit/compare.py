"""The parity audit: which operation first diverges between numpybert and a reference, and by how much.

numpybert's forward records every intermediate under a stable name (`model(..., record=True)`,
see `model.Trace`); `torch_bridge` records the same names from PyTorch. This module
compares two such dicts tensor by tensor in forward order, and names the first tensor whose
error is beyond floating-point noise: the first diverging operation.

    report = audit(numpybert.load(d), read_golden(path))              # against a golden file
    report = audit(model, live_reference(d, inputs, "float32"))       # against torch, in-process
    report.first_divergence, report.passed, report_json(report), render_table(report)

Either engine can be audited (`numpybert.load(d, engine="fast"|"reference")`): the report says
which one ran. With an fp64 oracle (numpybert/reference.py run in float64) the report also says
how far numpybert fp32 and torch fp32 each are from the exact answer: an error budget, not just
"close to torch".
`compare_conventions` shows what each convention switch (mask value, GELU form, LayerNorm eps)
does to the outputs: why other BERTs disagree with HuggingFace's.

No torch here: a live reference comes from `torch_bridge` (the golden extra), imported only
when asked for.
"""

import dataclasses
import re

import numpy as np

from .. import __version__
from ..loading.checkpoint import weights_sha256
from ..errors import GoldenError, InputValueError
from .golden import Golden
from ..util import cosine
from .stats import (MASK_MAGNITUDE, STATS_HEAD, TOLERANCES, Stats, Tolerance, cos_cell, error_stats, number,
                    real_positions, sci, stats_cells, stats_json, tolerance_scale)

# ----------------------------------------------------------------------------- comparing

@dataclasses.dataclass(frozen=True)
class TensorReport:
    """One row of the audit: one recorded tensor, at real-token and at all positions."""
    name: str
    shape: tuple
    real: Stats | None
    all: Stats | None
    tolerance: Tolerance  # already scaled for this tensor
    problem: str = ""  # set when the two tensors cannot be compared (missing, other shape)

    @property
    def passed(self) -> bool:  # `<=` is False for NaN, so a NaN fails
        return (not self.problem and self.real.max_abs <= self.tolerance.real
                and self.all.max_abs <= self.tolerance.all)


def compare_tensor(name: str, ours, ref: np.ndarray, attention_mask: np.ndarray, tolerance: Tolerance,
                   scaled: bool) -> TensorReport:
    """Compare one tensor; `scaled` makes the tolerance relative to the reference's size."""
    if ours is None:
        return TensorReport(name, ref.shape, None, None, tolerance, "not recorded by numpybert")
    if ours.shape != ref.shape:
        return TensorReport(name, ref.shape, None, None, tolerance,
                            f"numpybert shape {list(ours.shape)}, reference {list(ref.shape)}")
    tolerance = tolerance.scaled(tolerance_scale(ref)) if scaled else tolerance
    real = real_positions(attention_mask, ref.shape)
    return TensorReport(name, ref.shape, error_stats(ours, ref, real), error_stats(ours, ref), tolerance)


def compare(ours: dict, ref: dict, attention_mask: np.ndarray, dtype: str, scaled: bool = True) -> list:
    """TensorReports in numpybert's forward order, for every tensor the reference holds.
    Tensors only numpybert recorded are left out; tensors numpybert lacks fail."""
    if not set(ours) & set(ref):
        raise GoldenError(f"nothing to compare: the reference holds {sorted(ref)[:4]}..., "
                          f"numpybert recorded {list(ours)[:4]}...")
    tolerance = TOLERANCES[dtype]
    names = [n for n in ours if n in ref] + [n for n in ref if n not in ours]
    return [compare_tensor(n, ours.get(n), ref[n], attention_mask, tolerance, scaled) for n in names]


def first_divergence(rows: list) -> TensorReport | None:
    """The first tensor, in forward order, that fails its tolerance: the first diverging operation."""
    return next((row for row in rows if not row.passed), None)


# ----------------------------------------------------------------------------- the fp64 oracle

_HIDDEN_STATE = re.compile(r"(embeddings\.output|encoder\.layer\.\d+\.output|hidden_states\.\d+|last_hidden_state)$")


def is_hidden_state(name: str) -> bool:
    """The embedding output and each layer's output (HF's hidden_states), by trace or output name."""
    return bool(_HIDDEN_STATE.fullmatch(name))


@dataclasses.dataclass(frozen=True)
class OracleRow:
    """Distance of numpybert fp32 and of the reference (torch) fp32 from the fp64 oracle, at real tokens."""
    name: str
    numpybert: Stats
    torch: Stats

    @property
    def hidden_state(self) -> bool:
        return is_hidden_state(self.name)

    def numpybert_within_torch(self, statistic: str = "max_abs") -> bool:
        """numpybert fp32 is at least as close to the fp64 answer as torch fp32 ("max_abs" or "mean_abs")."""
        return getattr(self.numpybert, statistic) <= getattr(self.torch, statistic)


def oracle_rows(ours32: dict, ref32: dict, ours64: dict, attention_mask: np.ndarray) -> list:
    """One OracleRow per tensor recorded by all three runs, in forward order. Additive-mask
    entries are left out: finfo.min is another number in float64, by design."""
    rows = []
    for name, exact in ours64.items():
        if name in ours32 and name in ref32 and ref32[name].shape == exact.shape:
            where = real_positions(attention_mask, exact.shape) & (np.abs(exact) < MASK_MAGNITUDE)
            rows.append(OracleRow(name, error_stats(ours32[name], exact, where), error_stats(ref32[name], exact, where)))
    return rows


def hidden_states_within_torch(rows: list, statistic: str = "max_abs") -> tuple:
    """(on how many hidden states numpybert fp32 is at least as close to fp64 as torch fp32, of how many)."""
    hidden = [r for r in rows if r.hidden_state]
    return sum(r.numpybert_within_torch(statistic) for r in hidden), len(hidden)


# ----------------------------------------------------------------------------- the report

@dataclasses.dataclass
class AuditReport:
    """Everything one audit found; `report_json` and `render_table` present it."""
    model: str
    dtype: str
    reference: dict  # kind ("golden" | "live"), path, versions, dtype
    conventions: dict  # mask_value, hidden_act, layer_norm_eps numpybert ran under
    inputs: dict  # input_ids, attention_mask (int arrays)
    tensors: list  # TensorReport, forward order
    scaled: bool  # trace tensors: tolerances relative to max(1, max|ref|)
    oracle: list | None = None  # OracleRow, forward order, when an fp64 oracle ran
    absent: list = dataclasses.field(default_factory=list)  # what numpybert recorded and the reference lacks
    engine: str = "fast"  # the numpybert engine audited: "fast" (numpybert/engine/) or "reference"

    @property
    def first_divergence(self) -> TensorReport | None:
        return first_divergence(self.tensors)

    @property
    def passed(self) -> bool:
        return self.first_divergence is None


def model_conventions(model) -> dict:
    return {"mask_value": model.mask_value, "hidden_act": model.config.hidden_act,
            "layer_norm_eps": model.config.layer_norm_eps}


# ----------------------------------------------------------------------------- running the two sides

MODEL_OUTPUTS = ("last_hidden_state", "pooler_output", "hidden_states.", "attentions.")


def output_tensors(out, has_pooler: bool) -> dict:
    """BertModel's outputs under golden names, in forward order (for goldens without a trace)."""
    tensors = {"hidden_states.0": out.hidden_states[0]}
    for i, probs in enumerate(out.attentions):
        tensors[f"attentions.{i}"] = probs
        tensors[f"hidden_states.{i + 1}"] = out.hidden_states[i + 1]
    tensors["last_hidden_state"] = out.last_hidden_state
    if has_pooler:
        tensors["pooler_output"] = out.pooler_output
    return tensors


def numpybert_tensors(model, inputs: dict, traced: bool = True) -> dict:
    """numpybert's tensors for one forward: the trace, or (traced=False) the model outputs.
    NaN from a -inf mask is reported in the audit, so NumPy's warnings about it are silenced."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = model(**inputs, output_hidden_states=True, output_attentions=not traced, record=traced)
    if not traced:
        return output_tensors(out, model.has_pooler)
    tensors = dict(out.trace)
    if not model.has_pooler:  # no pooler runs, so no cls_vector is recorded; torch's hook still sees h[:, 0]
        tensors["cls_vector"] = out.last_hidden_state[:, 0]
    return tensors


def reference_tensors(reference: Golden) -> tuple:
    """(tensors, scaled): the trace when the reference has one, else its base-model outputs."""
    if reference.trace:
        return reference.trace, True
    return {k: v for k, v in reference.outputs.items() if k.startswith(MODEL_OUTPUTS)}, False


def audit(model, reference: Golden, oracle_model=None) -> AuditReport:
    """Run numpybert on the reference's inputs and compare every tensor the reference holds.
    `oracle_model`: the same checkpoint in float64, for the error budget (needs a float32 reference);
    the oracle is the textbook: `numpybert.load(d, dtype="float64", engine="reference")`."""
    dtype = _check_dtypes(model, reference, oracle_model)
    ref, scaled = reference_tensors(reference)
    ours = numpybert_tensors(model, reference.inputs, traced=scaled)
    mask = reference.inputs.get("attention_mask", np.ones_like(reference.inputs["input_ids"]))
    report = AuditReport(str(model.model_dir), dtype, _reference_info(reference), model_conventions(model),
                         {"input_ids": reference.inputs["input_ids"], "attention_mask": mask},
                         compare(ours, ref, mask, dtype, scaled), scaled, engine=model.engine.name)
    report.absent = [name for name in ours if name not in ref]  # a golden written by another engine: partial
    if oracle_model is not None:
        report.oracle = oracle_rows(ours, ref, numpybert_tensors(oracle_model, reference.inputs, scaled), mask)
    return report


def _check_dtypes(model, reference: Golden, oracle_model) -> str:
    """The reference's dtype, after checking numpybert (and the oracle) run in the right ones."""
    dtype = reference.metadata.get("dtype")
    if dtype != model.dtype.name:
        raise GoldenError(f"{reference.path}: a {dtype} reference; load numpybert in {dtype} to compare with it")
    if oracle_model is not None and (dtype != "float32" or oracle_model.dtype != np.float64):
        raise GoldenError(f"the fp64 oracle needs a float32 reference and numpybert in float64; "
                          f"{reference.path} is {dtype}")
    return dtype


def _reference_info(reference: Golden) -> dict:
    keys = ("kind", "case", "model", "dtype", "torch_version", "transformers_version", "attn_implementation",
            "created", "command", "generator")
    info = {k: reference.metadata[k] for k in keys if k in reference.metadata}
    info.setdefault("kind", "golden")
    return {**info, "path": str(reference.path)} if info["kind"] == "golden" else info


def check_golden_model(model_dir, golden: Golden) -> None:
    """Refuse a golden made from other weights than `model_dir`'s (its header holds their sha256)."""
    expected = golden.metadata.get("model_sha256")
    if expected and weights_sha256(model_dir) != expected:
        raise GoldenError(f"{golden.path} was made from {golden.metadata.get('model')!r}, whose weights differ "
                          f"from {model_dir}'s (sha256 mismatch); pass --model with that checkpoint")


# ----------------------------------------------------------------------------- live reference

def live_reference(model_dir, inputs: dict, dtype: str) -> Golden:
    """transformers' BertModel (eager) run now on `inputs`, traced, in a golden file's layout.
    Needs the golden extra: the torch side is `torch_bridge`, imported only here."""
    from . import torch_bridge
    return torch_bridge.live_reference(model_dir, inputs, dtype)


def require_torch_bridge() -> None:
    """Fail now, in one line naming the extra to install, when torch or transformers is missing."""
    from . import torch_bridge  # noqa: F401  (importing it is the check)


# ----------------------------------------------------------------------------- inputs

def random_inputs(config, lengths=(9, 5), seed: int = 0) -> dict:
    """Seeded ids for checkpoints without a tokenizer: one row per length, right-padded with id 0,
    position 0 = id 2 (a stand-in [CLS]), type ids 0, as scripts/export_golden.py's tiny inputs."""
    seq_len = max(lengths)
    mask = (np.arange(seq_len)[None, :] < np.array(lengths)[:, None]).astype(np.int64)  # [B, T]
    ids = np.random.default_rng(seed).integers(1, config.vocab_size, size=mask.shape) * mask
    ids[:, 0] = 2
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def with_fully_masked_row(inputs: dict) -> dict:
    """The batch plus a copy of its first row with an all-zero attention_mask (what a fully
    masked row does depends on the mask convention)."""
    batch = {k: np.concatenate([v, v[:1]]) for k, v in inputs.items()}
    batch["attention_mask"][-1] = 0
    return batch


# ----------------------------------------------------------------------------- conventions

# (label, with_conventions arguments, who computes it that way)
CONVENTION_SWITCHES = (
    ("mask -10000", {"mask_value": "-10000"},
     "google-research/bert, transformers < 4.21, ONNX Runtime: exp(-10000) underflows to 0 as exp(finfo.min) "
     "does, so only a fully masked row changes (it attends by score instead of uniformly)"),
    ("mask -inf", {"mask_value": "-inf"},
     "attention code masking with float('-inf'): the same on rows with a real token; a fully masked row "
     "is 0/0 = NaN (numpybert refuses that row under -inf; shown here as nan)"),
    ("gelu tanh", {"gelu": "tanh"},
     "TF Hub / Model Garden / keras-hub BERT and gelu_new: the tanh approximation of GELU"),
    ("eps 1e-6", {"eps": 1e-6}, "a port that hard-codes LayerNorm eps 1e-6 (BERT uses 1e-12)"),
    ("eps 1e-5", {"eps": 1e-5}, "torch.nn.LayerNorm's default eps, when a port forgets config.layer_norm_eps"),
)


@dataclasses.dataclass(frozen=True)
class Change:
    """How much an output moved: max abs change, and the smallest cosine over its vectors."""
    max_abs: float
    min_cosine: float


@dataclasses.dataclass(frozen=True)
class ConventionRow:
    """What one convention switch does to each output of the same input."""
    switch: str
    explanation: str
    changes: dict  # output name -> Change (or None when the model has no such output)


def convention_outputs(model, inputs: dict) -> dict:
    """The outputs a user compares, as [n, H] stacks of vectors: every real token's
    last_hidden_state, pooler_output and mean-pooled embedding of rows with real tokens, and
    the last_hidden_state / pooler_output of fully masked rows."""
    out = model(**inputs)
    mask = inputs["attention_mask"].astype(bool)  # [B, T]
    rows = mask.any(axis=1)  # [B]: rows with at least one real token
    h = out.last_hidden_state
    mean = (h * mask[:, :, None]).sum(axis=1)[rows] / mask.sum(axis=1)[rows, None]  # [B, T, H] -> [b, H]
    outputs = {"last_hidden_state": h[mask], "pooler_output": out.pooler_output[rows] if model.has_pooler else None,
               "mean_pooled": mean}
    if not rows.all():
        outputs["fully_masked.last_hidden_state"] = h[~rows].reshape(-1, h.shape[-1])
        outputs["fully_masked.pooler_output"] = out.pooler_output[~rows] if model.has_pooler else None
    return outputs


def change(new: np.ndarray | None, base: np.ndarray | None) -> Change | None:
    """Change between two [n, H] stacks of vectors; None when the model lacks that output."""
    if new is None or base is None:
        return None
    a, b = new.astype(np.float64), base.astype(np.float64)
    with np.errstate(invalid="ignore"):
        cosines = [cosine(x, y) for x, y in zip(a, b)]
        return Change(float(np.abs(a - b).max()), float(np.min(cosines)))


def _switched_outputs(model, inputs: dict, base: dict) -> dict:
    """The outputs under a switch. mask_value -inf refuses a fully masked row (its softmax is
    0/0 = NaN, which is what -inf implementations return there): shown as NaN, the rest computed."""
    try:
        return convention_outputs(model, inputs)
    except InputValueError:
        real = inputs["attention_mask"].any(axis=1)  # [B]
        new = convention_outputs(model, {k: v[real] for k, v in inputs.items()})
        new.update({k: np.full_like(v, np.nan) for k, v in base.items() if k.startswith("fully_masked.") and v is not None})
        return new


def compare_conventions(model, inputs: dict) -> list:
    """What each convention switch does to the same input's outputs, against the model as loaded."""
    base = convention_outputs(model, inputs)
    rows = []
    for label, switch, explanation in CONVENTION_SWITCHES:
        new = _switched_outputs(model.with_conventions(**switch), inputs, base)
        rows.append(ConventionRow(label, explanation, {k: change(new[k], base[k]) for k in base}))
    return rows


# ----------------------------------------------------------------------------- JSON

def tensor_json(row: TensorReport) -> dict:
    return {"name": row.name, "shape": list(row.shape), "passed": row.passed, "problem": row.problem or None,
            "tolerance": dataclasses.asdict(row.tolerance), "real": stats_json(row.real), "all": stats_json(row.all)}


def oracle_json(rows: list) -> dict:
    summary = {}
    for statistic in ("max_abs", "mean_abs"):
        within, total = hidden_states_within_torch(rows, statistic)
        summary[statistic] = {"hidden_states": total, "numpybert_within_torch": within, "all": within == total}
    return {"reference": "numpybert reference float64", "positions": "real tokens", "hidden_states": summary,
            "tensors": [{"name": r.name, "hidden_state": r.hidden_state, "numpybert_fp32": stats_json(r.numpybert),
                         "torch_fp32": stats_json(r.torch), "numpybert_within_torch": r.numpybert_within_torch()}
                        for r in rows]}


def report_json(report: AuditReport) -> dict:
    """The whole report as JSON-ready data (strict JSON: no NaN)."""
    first = report.first_divergence
    mask = report.inputs["attention_mask"]
    return {
        "numpybert_version": __version__, "model": report.model, "dtype": report.dtype, "engine": report.engine,
        "reference": report.reference, "conventions": report.conventions,
        "inputs": {"shape": list(mask.shape), "real_tokens": int(mask.sum()),
                   "input_ids": report.inputs["input_ids"].tolist(), "attention_mask": mask.tolist()},
        "tolerance": {**dataclasses.asdict(TOLERANCES[report.dtype]), "scaled": report.scaled},
        "passed": report.passed,
        "first_divergence": None if first is None else {"index": report.tensors.index(first), **tensor_json(first)},
        "tensors": [tensor_json(row) for row in report.tensors],
        "oracle": None if report.oracle is None else oracle_json(report.oracle),
        "absent": report.absent,
    }


def conventions_json(model, inputs: dict, rows: list) -> dict:
    return {"numpybert_version": __version__, "model": str(model.model_dir), "dtype": model.dtype.name,
            "engine": model.engine.name, "base": model_conventions(model), "inputs": {k: v.tolist() for k, v in inputs.items()},
            "switches": [{"switch": r.switch, "explanation": r.explanation,
                          "changes": {k: None if c is None else {"max_abs": number(c.max_abs),
                                                                 "min_cosine": number(c.min_cosine)}
                                      for k, c in r.changes.items()}} for r in rows]}


# ----------------------------------------------------------------------------- tables

def _header_lines(report: AuditReport) -> list:
    ref, mask, c = report.reference, report.inputs["attention_mask"], report.conventions
    source = f"golden file {ref['path']}" if "path" in ref else "transformers run live in this process"
    made_by = (f"torch {ref.get('torch_version', '?')}, transformers {ref.get('transformers_version', '?')}, "
               f"attention {ref.get('attn_implementation', '?')}" if "torch_version" in ref or "kind" in ref and
               ref["kind"] == "live" else f"written by {ref.get('generator', 'an unknown engine')}")
    lines = [f"numpybert audit: {report.model} ({report.dtype}, {report.engine} engine) vs {source}",
             f"reference: {made_by}, {ref.get('dtype')}",
             f"inputs: {mask.shape[0]} row(s) × {mask.shape[1]} tokens, {int(mask.sum())} real",
             f"numpybert conventions: mask {c['mask_value']}, hidden_act {c['hidden_act']}, "
             f"layer_norm_eps {c['layer_norm_eps']:g}"]
    tol = TOLERANCES[report.dtype]
    scale = " × max(1, max|ref|)" if report.scaled else ""
    return lines + [f"pass: max abs ≤ {tol.real:g}{scale} at real tokens and ≤ {tol.all:g}{scale} at all positions"]


def render_table(report: AuditReport) -> str:
    """The readable report: one line per tensor, forward order, first divergence marked."""
    padded = not report.inputs["attention_mask"].all()
    width = max(len(r.name) for r in report.tensors)
    groups = ["real tokens", "all positions"] if padded else ["real tokens (no padding: = all positions)"]
    lines = _header_lines(report) + ["",
                                     f"{'':<{width}}" + "".join(f"  {g:^{len(STATS_HEAD)}}" for g in groups),
                                     f"{'tensor':<{width}}" + f"  {STATS_HEAD}" * len(groups) + f"  {'tol real':>8}  result"]
    first = report.first_divergence
    for row in report.tensors:
        cells = f"{row.name:<{width}}  {stats_cells(row.real)}" + (f"  {stats_cells(row.all)}" if padded else "")
        verdict = "ok" if row.passed else "FAIL" + (" <- first divergence" if row is first else "")
        lines.append(f"{cells}  {sci(row.tolerance.real):>8}  {verdict}" + (f" ({row.problem})" if row.problem else ""))
    lines += ["", _verdict_line(report)]
    if report.absent:
        shown = ", ".join(report.absent[:6]) + (", ..." if len(report.absent) > 6 else "")
        lines.append(f"absent from the reference, not compared: {len(report.absent)} tensor(s) numpybert records "
                     f"({shown})")
    if report.oracle is not None:
        lines += ["", *oracle_lines(report.oracle)]
    return "\n".join(lines)


def _verdict_line(report: AuditReport) -> str:
    first = report.first_divergence
    failed = sum(not r.passed for r in report.tensors)
    if first is None:
        return f"PASS: all {len(report.tensors)} tensors within tolerance"
    detail = first.problem or (f"max abs {sci(first.real.max_abs)} at real tokens (tolerance {sci(first.tolerance.real)}), "
                               f"{sci(first.all.max_abs)} at all positions (tolerance {sci(first.tolerance.all)})")
    return (f"FAIL: {failed} of {len(report.tensors)} tensors; first diverging operation: {first.name}: {detail}"
            + _noise_note(report.oracle or [], first))


def _noise_note(oracle: list, row: TensorReport) -> str:
    """How the divergence compares with torch fp32's own error against fp64 (the rounding noise)."""
    noise = next((r.torch.max_abs for r in oracle if r.name == row.name), None)
    if not noise or row.real is None:
        return ""
    return f"; torch fp32's own error there is {sci(noise)}, so this is {row.real.max_abs / noise:.0f}× that noise"


def oracle_lines(rows: list) -> list:
    """The error budget: numpybert fp32 and torch fp32 against the fp64 oracle (reference.py), at real tokens."""
    width = max(len(r.name) for r in rows)
    lines = ["fp64 oracle: distance from numpybert/reference.py in float64 at real tokens (* = hidden state)",
             f"{'tensor':<{width}}    {'numpybert fp32':>23}  {'torch fp32':>23}  {'ratio':>6}",
             f"{'':<{width}}    {'max abs':>11} {'mean abs':>11}  {'max abs':>11} {'mean abs':>11}"]
    for r in rows:
        ratio = r.numpybert.max_abs / r.torch.max_abs if r.torch.max_abs else float("nan")
        mark = "*" if r.hidden_state else " "
        worse = "" if r.numpybert_within_torch() else "  numpybert further"
        lines.append(f"{r.name:<{width}} {mark}  {sci(r.numpybert.max_abs):>11} {sci(r.numpybert.mean_abs):>11}  "
                     f"{sci(r.torch.max_abs):>11} {sci(r.torch.mean_abs):>11}  {ratio:>6.2f}{worse}")
    (by_max, total), (by_mean, _) = hidden_states_within_torch(rows), hidden_states_within_torch(rows, "mean_abs")
    lines.append(f"hidden states where numpybert fp32 is at least as close to fp64 as torch fp32: "
                 f"{by_max} of {total} by max abs, {by_mean} of {total} by mean abs")
    return lines


CONVENTION_COLUMNS = (("last_hidden_state", "last_hidden_state"), ("pooler_output", "pooler_output"),
                      ("mean_pooled", "mean-pooled"), ("fully_masked.last_hidden_state", "masked row: hidden"),
                      ("fully_masked.pooler_output", "masked row: pooled"))


def render_conventions(model, inputs: dict, rows: list) -> str:
    """One line per switch: max abs change and min cosine of each output, then who uses it."""
    c, mask = model_conventions(model), inputs["attention_mask"]
    columns = [(k, label) for k, label in CONVENTION_COLUMNS if k in rows[0].changes]
    lines = [f"numpybert audit --compare-conventions: {model.model_dir} ({model.dtype.name}, {model.engine.name} engine)",
             f"inputs: {mask.shape[0]} rows × {mask.shape[1]} tokens, {int((~mask.any(axis=1)).sum())} fully masked",
             f"changes against the model as loaded: mask {c['mask_value']}, hidden_act {c['hidden_act']}, "
             f"layer_norm_eps {c['layer_norm_eps']:g} (HuggingFace transformers' conventions)",
             "each cell: max abs change / smallest cosine between old and new vectors", "",
             f"{'switch':<12}" + "".join(f"  {label:>21}" for _, label in columns)]
    for row in rows:
        cells = "".join(f"  {_change_cell(row.changes[k]):>21}" for k, _ in columns)
        lines += [f"{row.switch:<12}{cells}", f"{'':<12}  {row.explanation}"]
    return "\n".join(lines)


def _change_cell(c: Change | None) -> str:
    return "n/a" if c is None else f"{sci(c.max_abs)} / {cos_cell(c.min_cosine)}"
