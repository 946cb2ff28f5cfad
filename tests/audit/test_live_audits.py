"""The parity checks CI used to run beside pytest (issue 19), now part of the one test command.

Live audits: numpybert against transformers' BertModel run in this process (the golden extra),
on the real all-MiniLM-L6-v2 with the float64 oracle and on a tiny BERT in float64, for both
engines; a deliberately broken convention (tanh GELU) must fail and name the first operation it
changes. Stale goldens: every committed golden is re-exported into a temporary directory and
compared (scripts/export_golden.py verify).
"""

import json
import subprocess
import sys

import pytest

from helpers import CHECKPOINTS, ROOT
from numpybert import cli

TINY = CHECKPOINTS / "tiny-bert"


def live_audit(capsys, *argv):
    """(exit code, JSON report, stderr) of `numpybert audit --live --json ARGV`, in-process."""
    code = cli.main(["audit", "--live", "--json", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_live_audit_of_minilm_passes_with_the_oracle(capsys, minilm_dir, engine):
    code, report, err = live_audit(capsys, "--model", minilm_dir, "--engine", engine, "--oracle")
    assert code == 0 and report["passed"], report["first_divergence"]
    assert report["reference"]["kind"] == "live"
    # every hidden state, attention map and output of the 6-layer model is compared, not a sample
    names = [t["name"] for t in report["tensors"]]
    assert names[:2] == ["embeddings.sum", "embeddings.output"] and names[-1] == "pooled_output"
    assert sum(n.startswith("encoder.layer.5.") for n in names) >= 10
    oracle = report["oracle"]  # --oracle: numpybert fp32 and torch fp32 against the float64 textbook
    assert oracle["reference"] == "numpybert reference float64" and len(oracle["tensors"]) == len(names)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_live_audit_of_a_tiny_bert_in_float64_passes(capsys, engine):
    code, report, _ = live_audit(capsys, "--model", TINY, "--dtype", "float64", "--engine", engine)
    assert code == 0 and report["passed"], report["first_divergence"]
    assert report["dtype"] == "float64"


def test_tanh_gelu_fails_at_the_first_intermediate_output(capsys, minilm_dir):
    """A broken convention must fail (exit 1) and name the first operation it changes: the GELU
    of layer 0's feed-forward block, not some later tensor where the difference has grown."""
    code, report, _ = live_audit(capsys, "--model", minilm_dir, "--gelu", "tanh")
    assert code == 1 and not report["passed"]
    assert report["first_divergence"]["name"] == "encoder.layer.0.intermediate.output"


def test_committed_goldens_are_what_the_export_script_makes_today():
    """Stale goldens cannot pass: re-export every target with transformers and compare (~1 min)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_golden.py"), "verify"],
                          capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-xlm-roberta", "tiny-distilbert", "tiny-electra"])
@pytest.mark.parametrize("engine, dtype", [("fast", "float32"), ("reference", "float64")])
def test_live_audit_of_the_bert_family_passes(capsys, name, engine, dtype):
    """The BERT family (issue 21): transformers' RobertaModel / XLMRobertaModel / DistilBertModel /
    ElectraModel against numpybert, every traced tensor (DistilBERT's own module names, ELECTRA's
    embeddings_project)."""
    code, report, _ = live_audit(capsys, "--model", CHECKPOINTS / name, "--dtype", dtype, "--engine", engine)
    assert code == 0 and report["passed"], report["first_divergence"]
    names = [t["name"] for t in report["tensors"]]
    assert "encoder.layer.1.output" in names and ("embeddings_project.output" in names) == (name == "tiny-electra")
