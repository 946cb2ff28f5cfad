"""Parity with PyTorch, tensor by tensor, on the committed golden files.

One test per (golden file, tensor), so a failure names the tensor and prints its max abs
and max rel error. Tolerances (measured on this machine, see README "Parity"):
- float32, real-token positions: 1e-5 abs. Measured worst: ~5e-6 (MiniLM hidden states);
  float32 rounding differences between two correct implementations accumulate to a few 1e-6
  over the layers (torch sdpa vs torch eager differ by 2.7e-6 on the same model).
- float32, all positions: 1e-4 abs. Padded positions attend only to real tokens but their
  own values are not used by anything; their rounding noise is larger (measured ~9e-5 at
  worst on MiniLM's padded rows, whose LayerNorm inputs are larger).
- float64, everywhere: 1e-10 abs. Measured ≤ 1.5e-13.
Intermediates (`trace.*`) have values up to ~50 (scores, pre-activations), so their bound is
relative to the tensor's scale: tolerance · max(1, max|ref|), mask entries excluded from the max.
The numbers live in `numpybert.audit.TOLERANCES`, shared with `numpybert audit`.
"""

import functools
import json

import numpy as np
import pytest
from safetensors import safe_open

import numpybert
from numpybert.audit import TOLERANCES, real_positions, tolerance_scale
from numpybert.audit.golden import FORMAT_VERSION, read_golden

from conftest import GOLDEN, model_dir

MODEL_OUTPUTS = ("last_hidden_state", "pooler_output", "hidden_states.", "attentions.")
TOL = {dtype: (t.real, t.all) for dtype, t in TOLERANCES.items()}  # shared with `numpybert audit`


def golden_files():
    files = sorted(p for p in GOLDEN.glob("*/*.safetensors") if p.name.count(".") == 2)  # <case>.<dtype>.safetensors
    if not files:
        pytest.fail("no golden files under tests/golden: run `python scripts/export_golden.py all`", pytrace=False)
    return files


def tensor_params():
    """(file, kind, name) for every output and trace tensor of every golden file."""
    params = []
    for path in golden_files():
        with safe_open(path, "np") as f:
            for key in f.keys():
                group, _, name = key.partition(".")
                if group == "outputs" and name.startswith(MODEL_OUTPUTS) or group == "trace":
                    rel = path.relative_to(GOLDEN)
                    params.append(pytest.param(path, group, name, id=f"{rel}::{key}"))
    return params


@functools.lru_cache(maxsize=None)
def load_model(name, dtype):
    return numpybert.load(model_dir(name), dtype=dtype)


@functools.lru_cache(maxsize=4)
def run(path):
    """numpybert on the golden's inputs, with everything recorded."""
    golden = read_golden(path)
    model = load_model(golden.metadata["model"], golden.metadata["dtype"])
    out = model(**golden.inputs, output_hidden_states=True, output_attentions=True, record=bool(golden.trace))
    ours = {"last_hidden_state": out.last_hidden_state, **out.trace} if out.trace else {"last_hidden_state": out.last_hidden_state}
    if model.has_pooler:
        ours["pooler_output"] = out.pooler_output
    elif out.trace:  # no pooler, so the forward records no pooler input; torch's hook still saw h[:, 0]
        ours["cls_vector"] = out.last_hidden_state[:, 0]
    ours.update({f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states)})
    ours.update({f"attentions.{i}": a for i, a in enumerate(out.attentions)})
    return golden, ours


def errors(ours, ref, where):
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))[where]
    rel = diff / np.maximum(np.abs(ref.astype(np.float64))[where], 1e-3)
    return (float(diff.max()), float(rel.max())) if diff.size else (0.0, 0.0)


@pytest.mark.parametrize("path,group,name", tensor_params())
def test_tensor_matches_torch(path, group, name):
    golden, ours = run(path)
    ref = (golden.outputs if group == "outputs" else golden.trace)[name]
    assert name in ours, f"numpybert does not produce {group}.{name}"
    mine = ours[name]
    assert mine.shape == ref.shape, f"{name}: shape {mine.shape}, torch {ref.shape}"
    dtype = golden.metadata["dtype"]
    assert mine.dtype == np.dtype(dtype), f"{name}: dtype {mine.dtype}, expected {dtype}"
    tol_real, tol_all = TOL[dtype]
    scale = tolerance_scale(ref) if group == "trace" else 1.0
    real = real_positions(golden.inputs["attention_mask"], ref.shape)
    abs_real, rel_real = errors(mine, ref, real)
    abs_all, rel_all = errors(mine, ref, np.ones(ref.shape, bool))
    assert not np.isnan(mine).any(), f"{name}: NaN in numpybert output"
    assert abs_real <= tol_real * scale, f"{name}: real tokens max abs {abs_real:.3g} (rel {rel_real:.3g}) > {tol_real * scale:.3g}"
    assert abs_all <= tol_all * scale, f"{name}: all positions max abs {abs_all:.3g} (rel {rel_all:.3g}) > {tol_all * scale:.3g}"


def test_golden_headers_are_complete():
    """Every golden says how it was made, so a stale one can be traced and regenerated."""
    keys = ("format", "format_version", "generator", "command", "torch_version", "transformers_version",
            "attn_implementation", "dtype", "model", "model_sha256", "case", "created")
    for path in golden_files():
        metadata = read_golden(path).metadata
        missing = [k for k in keys if not metadata.get(k)]
        assert not missing, f"{path}: header lacks {missing}"
        assert metadata["attn_implementation"] == "eager", path


def test_golden_of_another_format_version_is_refused(tmp_path):
    """A golden of another format version fails with the command that regenerates it."""
    from safetensors.numpy import save_file
    from numpybert.errors import GoldenError
    path = tmp_path / "old.float32.safetensors"
    command = "python scripts/export_golden.py minilm"
    save_file({"inputs.input_ids": np.zeros((1, 2), np.int64)}, str(path),
              metadata={"format": "numpybert-golden", "format_version": "0", "command": command})
    with pytest.raises(GoldenError, match="Regenerate it: python scripts/export_golden.py minilm"):
        read_golden(path)
    assert FORMAT_VERSION != "0"


def test_committed_goldens_stay_small():
    """All goldens and tiny checkpoints together stay well under 20 MB (they are in git)."""
    size = sum(p.stat().st_size for d in ("golden", "checkpoints") for p in (GOLDEN.parent / d).rglob("*") if p.is_file())
    assert size < 20e6, f"tests/golden + tests/checkpoints are {size / 1e6:.1f} MB"


def test_golden_models_are_the_committed_ones():
    """A golden's model_sha256 matches the checkpoint it will be compared against."""
    import hashlib
    for path in golden_files():
        metadata = read_golden(path).metadata
        directory = model_dir(metadata["model"])
        index = directory / "model.safetensors.index.json"
        names = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
        digest = hashlib.sha256()
        for n in names:
            digest.update((directory / n).read_bytes())
        assert digest.hexdigest() == metadata["model_sha256"] or \
            metadata["model_sha256"] == "".join(hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in names), \
            f"{path}: made from a different {metadata['model']} (sha256 mismatch); regenerate: {metadata['command']}"


def golden_model_outputs():
    return [pytest.param(p, id=str(p.relative_to(GOLDEN))) for p in golden_files()]


@pytest.mark.parametrize("path", golden_model_outputs())
def test_skip_padding_matches_torch_at_real_tokens(path):
    """The packed forward (skip_padding=True, what encode/embed run): every output within the
    real-token tolerance of torch at real tokens (attentions: real queries × real keys; torch
    gives the padded keys exactly 0), and 0 where it computes nothing."""
    golden = read_golden(path)
    model = load_model(golden.metadata["model"], golden.metadata["dtype"])
    out = model(**golden.inputs, output_hidden_states=True, output_attentions=True, skip_padding=True)
    tol_real = TOL[golden.metadata["dtype"]][0]
    mask = golden.inputs["attention_mask"].astype(bool)
    ours = {"last_hidden_state": out.last_hidden_state}
    ours.update({f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states)})
    ours.update({f"attentions.{i}": a for i, a in enumerate(out.attentions)})
    if model.has_pooler and mask[:, 0].all():
        ours["pooler_output"] = out.pooler_output
    checked = 0
    for name, mine in ours.items():
        ref = golden.outputs.get(name)
        if ref is None:
            continue
        real = real_positions(mask, ref.shape)
        if name.startswith("attentions."):
            real = real & np.broadcast_to(mask[:, None, None, :], ref.shape)
        assert mine.dtype == ref.dtype and mine.shape == ref.shape
        assert errors(mine, ref, real)[0] <= tol_real, f"{name}: real tokens differ from torch"
        if mine.ndim >= 3:
            assert not mine[~real].any(), f"{name}: padded positions are not 0"
        checked += 1
    assert checked >= 2
