"""numpybert/audit/torch_bridge.py: the one module that imports torch, and its three users
(`numpybert audit --live`, `numpybert bench`, scripts/export_golden.py).

With torch (CI installs the golden extra): the live audit passes on the tiny checkpoints, the
bridge reproduces a committed golden, and the bench's torch worker runs as a module from any
directory. Without torch (hidden via sys.modules, or in a subprocess): each user says in one
line which extra to install, and exits 2.
"""

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import numpybert.audit
from helpers import CHECKPOINTS, GOLDEN, ROOT
from numpybert import audit, cli
from numpybert.audit.golden import read_golden

TINY = CHECKPOINTS / "tiny-bert"
INSTALL = "pip install -e '.[golden]' in a checkout of numpybert, or pip install 'numpybert-0.1.0-py3-none-any.whl[golden]'"
HIDE_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `numpybert ARGV`, in-process."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_torch(monkeypatch):
    """`import torch` / `import transformers` raise ImportError; the bridge must be imported anew."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "numpybert.audit.torch_bridge", raising=False)
    monkeypatch.delattr(numpybert.audit, "torch_bridge", raising=False)


# ----------------------------------------------------------------------------- without torch

def test_live_audit_without_torch_names_the_extra_in_one_line(capsys, no_torch):
    code, out, err = run(capsys, "audit", "--live", "--model", TINY)
    assert code == 2 and out == ""
    assert INSTALL in err and "torch" in err and len(err.strip().splitlines()) == 1


def test_bench_without_torch_names_the_extra_and_no_torch(capsys, no_torch, tmp_path):
    code, out, err = run(capsys, "bench", "--minilm", TINY, "--reps", "1", "--cold-runs", "0",
                         "--out", tmp_path / "bench")
    assert code == 2 and out == ""
    assert INSTALL in err and "--no-torch" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bench").exists()  # refused before any work


def test_export_script_without_torch_names_the_extra(tmp_path):
    code = HIDE_TORCH + (f"import runpy; sys.argv = ['export_golden.py', 'verify']; "
                         f"runpy.run_path({str(ROOT / 'scripts' / 'export_golden.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert INSTALL in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bridge_module_without_torch_raises_missing_extra_error(no_torch):
    with pytest.raises(numpybert.errors.MissingExtraError, match=re.escape(INSTALL)):
        from numpybert.audit import torch_bridge  # noqa: F401
    with pytest.raises(ImportError):  # and it is an ImportError, as callers may expect
        audit.require_torch_bridge()


def test_numpybert_and_its_cli_never_import_torch():
    code = ("import sys, numpybert, numpybert.cli, numpybert.audit, numpybert.bench; numpybert.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"


def test_only_the_bridge_imports_torch_in_the_package():
    pattern = re.compile(r"^\s*(import|from)\s+(torch|transformers|sentence_transformers)\b", re.M)
    package = ROOT / "numpybert"
    importers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if pattern.search(p.read_text()))
    assert importers == ["audit/torch_bridge.py"]


# ----------------------------------------------------------------------------- with torch (the golden extra)

@pytest.mark.parametrize("checkpoint", ["tiny-bert", "tiny-no-pooler", "tiny-classifier", "tiny-pretraining"])
def test_live_audit_passes_on_the_tiny_checkpoints(capsys, checkpoint):
    """The bridge finds each checkpoint's architecture and pooler (config.json, weights) itself."""
    code, out, err = run(capsys, "audit", "--live", "--model", CHECKPOINTS / checkpoint, "--json")
    report = json.loads(out)
    assert code == 0 and err == "" and report["passed"], report["first_divergence"]
    assert report["reference"]["kind"] == "live" and report["reference"]["attn_implementation"] == "eager"
    assert len(report["tensors"]) > 20  # the trace, not just the outputs


@pytest.mark.parametrize("name", ["tiny-bert/one_sentence.float32.safetensors",
                                  "tiny-pretraining/padded_batch.float64.safetensors"])
def test_live_reference_reproduces_the_committed_golden(name):
    """Same inputs, same recipe: the bridge's tensors equal the golden's within export_golden's
    VERIFY_TOL (fp32 1e-5, fp64 1e-12 of max(1, max|x|); measured 0 on the exporting machine)."""
    from numpybert.audit import torch_bridge
    golden = read_golden(GOLDEN / name)
    dtype = golden.metadata["dtype"]
    live = torch_bridge.live_reference(CHECKPOINTS / golden.metadata["model"], golden.inputs, dtype)
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    for group in ("outputs", "trace"):
        expected, got = getattr(golden, group), getattr(live, group)
        assert set(expected) <= set(got), sorted(set(expected) - set(got))
        for key, ref in expected.items():
            bound = tol * max(1.0, float(np.abs(ref).max()))
            assert np.abs(got[key].astype(np.float64) - ref).max() <= bound, f"{group}.{key}"


def test_bench_torch_worker_runs_as_a_module_from_any_directory(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "numpybert.audit.torch_bridge", "worker", str(TINY), "1", "5", "1", "0"],
                          input="run\nquit\n", capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info, seconds = (json.loads(line) for line in proc.stdout.splitlines())
    assert info["engine"] == "torch" and info["attn_implementation"] == "eager" and info["threads"] == 1
    assert 0 < seconds < 60


def test_bridge_module_usage_error_exits_2(capsys):
    from numpybert.audit import torch_bridge
    assert torch_bridge.main(["worker", str(TINY)]) == 2
    assert "usage:" in capsys.readouterr().err


def test_bench_times_torch_and_numpybert(capsys, tmp_path):
    out_dir = tmp_path / "bench"
    code, out, err = run(capsys, "bench", "--minilm", TINY, "--shapes", "minilm:1x5,minilm:4x16:padded",
                         "--memory-shapes", "minilm:4x32", "--corpus-runs", "0", "--threads", "1", "--reps", "2",
                         "--warmup", "0", "--cold-runs", "0", "--out", out_dir)
    assert code == 0, err
    result = json.loads((out_dir / "bench.json").read_text())
    engines = result["shapes"][0]["engines"]
    both = {"numpybert", "torch", "numpy GEMM floor"}  # the floor: NumPy's GEMMs alone for the same forward
    assert set(engines) == both and engines["torch"]["runs"] == 2
    assert engines["numpybert"]["ratio_to_torch"] > 0
    assert result["shapes"][-1]["padded"] and set(result["shapes"][-1]["engines"]) == both
    memory = result["memory"][0]  # the torch worker's `mem` command, in a fresh process
    assert set(memory["growth_mb"]) == {"numpybert", "torch"} and memory["ratio_to_torch"] > 0


def test_bench_st_corpus_runs_as_a_module(minilm_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "numpybert.audit.torch_bridge", "st-corpus", str(minilm_dir), "20", "1"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["engine"] == "sentence-transformers" and result["texts"] == 20 and result["seconds"] > 0
