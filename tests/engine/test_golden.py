"""Parity with PyTorch, tensor by tensor, on the committed golden files, for BOTH engines.

One test per (golden file, engine, tensor), so a failure names the tensor and prints its errors.
Each golden is run by the fast engine (numpybert/engine/) and by the textbook
(numpybert/reference.py), in the golden's dtype (float32 and float64 files), against the same
tolerances: the audit's (`numpybert.audit.TOLERANCES`, measured, reasons written there), compared
by the audit's own functions (`numpybert_tensors`, `compare_tensor`) under the audit's names, so
`numpybert audit --golden FILE --engine E` and this test cannot disagree.
- outputs (`outputs.*`): the absolute tolerance.
- intermediates (`trace.*`, values up to ~50): tolerance · max(1, max|ref|), mask entries excluded.
"""

import functools

import numpy as np
import pytest
from safetensors import safe_open

import numpybert
from numpybert import audit
from numpybert.api import ENGINES
from numpybert.audit.golden import FORMAT_VERSION, read_golden

from helpers import GOLDEN, model_dir


def golden_files():
    files = sorted(p for p in GOLDEN.glob("*/*.safetensors") if p.name.count(".") == 2)  # <case>.<dtype>.safetensors
    if not files:
        pytest.fail("no golden files under tests/golden: run `python scripts/export_golden.py all`", pytrace=False)
    return files


def tensor_params():
    """(file, engine, group, name) for every base-model output and trace tensor of every golden file."""
    params = []
    for path in golden_files():
        with safe_open(path, "np") as f:
            keys = [k.partition(".") for k in f.keys()]
        keys = [(group, name) for group, _, name in keys
                if group == "outputs" and name.startswith(audit.MODEL_OUTPUTS) or group == "trace"]
        rel = path.relative_to(GOLDEN)
        params += [pytest.param(path, engine, group, name, id=f"{rel}::{engine}::{group}.{name}")
                   for engine in ENGINES for group, name in keys]
    return params


@functools.lru_cache(maxsize=None)
def load_model(name, dtype, engine="fast"):
    return numpybert.load(model_dir(name), dtype=dtype, engine=engine)


@functools.lru_cache(maxsize=2)
def run(path, engine):
    """The golden, and numpybert's tensors on its inputs as the audit collects them:
    {"outputs": model outputs under golden names, "trace": every recorded intermediate}."""
    golden = read_golden(path)
    model = load_model(golden.metadata["model"], golden.metadata["dtype"], engine)
    ours = {"outputs": audit.numpybert_tensors(model, golden.inputs, traced=False)}
    if golden.trace:
        ours["trace"] = audit.numpybert_tensors(model, golden.inputs, traced=True)
    return golden, ours


@pytest.mark.parametrize("path,engine,group,name", tensor_params())
def test_tensor_matches_torch(path, engine, group, name):
    golden, ours = run(path, engine)
    ref, mine = getattr(golden, group)[name], ours[group].get(name)
    dtype = golden.metadata["dtype"]
    row = audit.compare_tensor(name, mine, ref, golden.inputs["attention_mask"], audit.TOLERANCES[dtype],
                               scaled=group == "trace")
    assert not row.problem, f"{engine} engine, {group}.{name}: {row.problem}"
    assert mine.dtype == np.dtype(dtype), f"{engine} engine, {name}: dtype {mine.dtype}, expected {dtype}"
    assert row.passed, (f"{engine} engine, {group}.{name}: max abs {row.real.max_abs:.3g} at real tokens "
                        f"(tolerance {row.tolerance.real:.3g}), {row.all.max_abs:.3g} at all positions "
                        f"(tolerance {row.tolerance.all:.3g}); max rel {row.real.max_rel}")


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
    """A golden of another format version fails with the command that regenerates it; the same
    file with this numpybert's version is read."""
    from safetensors.numpy import save_file
    from numpybert.errors import GoldenError
    command = "python scripts/export_golden.py minilm"
    for version in (str(int(FORMAT_VERSION) + 1), FORMAT_VERSION):
        path = tmp_path / f"v{version}.float32.safetensors"
        save_file({"inputs.input_ids": np.zeros((1, 2), np.int64)}, str(path),
                  metadata={"format": "numpybert-golden", "format_version": version, "command": command})
        if version == FORMAT_VERSION:
            assert read_golden(path).inputs["input_ids"].shape == (1, 2)
        else:
            with pytest.raises(GoldenError, match=f"version '{version}'.*Regenerate it: {command}"):
                read_golden(path)


def test_committed_goldens_stay_small():
    """All goldens and tiny checkpoints together stay well under 20 MB (they are in git)."""
    size = sum(p.stat().st_size for d in ("golden", "checkpoints") for p in (GOLDEN.parent / d).rglob("*") if p.is_file())
    assert size < 20e6, f"tests/golden + tests/checkpoints are {size / 1e6:.1f} MB"


def test_golden_models_are_the_committed_ones():
    """A golden's model_sha256 is the hash `numpybert audit` checks (one rule: the weight files'
    bytes concatenated in name order, as scripts/export_golden.py writes it) of the checkpoint
    it will be compared against."""
    for path in golden_files():
        metadata = read_golden(path).metadata
        assert audit.weights_sha256(model_dir(metadata["model"])) == metadata["model_sha256"], \
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
    tol_real = audit.TOLERANCES[golden.metadata["dtype"]].real
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
        real = audit.real_positions(mask, ref.shape)
        if name.startswith("attentions."):
            real = real & np.broadcast_to(mask[:, None, None, :], ref.shape)
        assert mine.dtype == ref.dtype and mine.shape == ref.shape
        worst = float(np.abs(mine.astype(np.float64) - ref.astype(np.float64))[real].max())
        assert worst <= tol_real, f"{name}: real tokens max abs {worst:.3g} from torch"
        if mine.ndim >= 3:
            assert not mine[~real].any(), f"{name}: padded positions are not 0"
        checked += 1
    assert checked >= 2
