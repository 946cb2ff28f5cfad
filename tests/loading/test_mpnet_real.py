"""The real all-mpnet-base-v2 (issue 25), fetched by scripts/test.sh (`numpybert fetch all-mpnet-base-v2`):
numpybert's first real base-sized checkpoint, 12 layers, 768 wide, with relative position buckets.
Every hidden state, attention map and the pooler against transformers' MPNetModel (float32 and
float64, both engines), `encode` against sentence-transformers (a text past its 384-token limit
included), the live audit with the float64 oracle, `explain`, fetch's idempotence and the names
`load` resolves. Cost: ~60-90 s on 2 idle cores (model loads dominate)."""

import numpy as np
import pytest

import numpybert
from numpybert import cli
from numpybert.audit import torch_bridge as bridge
from numpybert.loading import fetch as fetch_module

from helpers import require_mpnet, run

TEXTS = ["A man is playing a guitar.",
         "The new movie is awesome, and the soundtrack was written by a famous composer from Vienna.",
         "Paris", "How do I bake bread at home without yeast?"]
LONG = " ".join(["The river rose slowly through the night while the villagers slept."] * 60)  # ~780 tokens


@pytest.fixture(scope="module")
def mpnet_dir():
    return str(require_mpnet())


@pytest.fixture(scope="module")
def batch(mpnet_dir):
    return numpybert.load(mpnet_dir, engine="reference").tokenize(TEXTS)


@pytest.fixture(scope="module")
def torch_outputs(mpnet_dir, batch):
    """transformers' MPNetModel (eager) on the padded batch, traced, float32 and float64."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    return {dtype: bridge.live_reference(mpnet_dir, inputs, dtype) for dtype in ("float32", "float64")}


# Targets of issue 25, measured 2026-12-06 (see README's parity table): float32 hidden states at real
# tokens ≤ 1e-4 of transformers (measured ≤ 1.3e-5: 12 layers, values up to ~|10|), pooler ≤ 1e-5
# (measured ≤ 1.2e-6), attentions ≤ 1e-5; float64 ≤ 1e-9 (measured ~1e-13).
TOL = {"float32": {"hidden": 1e-4, "pooler": 1e-5, "attention": 1e-5}, "float64": {"hidden": 1e-9, "pooler": 1e-9,
                                                                                  "attention": 1e-9}}


@pytest.mark.parametrize("dtype, engine", [("float32", "fast"), ("float64", "fast"), ("float64", "reference")])
def test_every_output_matches_transformers(mpnet_dir, batch, torch_outputs, dtype, engine):
    """(The reference engine's float32 is the tiny goldens' business; its float64 here is the audit's oracle.)"""
    model = numpybert.load(mpnet_dir, dtype=dtype, engine=engine)
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    golden, tol = torch_outputs[dtype].outputs, TOL[dtype]
    real = batch["attention_mask"].astype(bool)
    assert len(out.hidden_states) == 13 and len(out.attentions) == 12
    for i, h in enumerate(out.hidden_states):
        assert h.dtype == np.dtype(dtype)
        err = np.abs(h - golden[f"hidden_states.{i}"])[real].max()
        assert err <= tol["hidden"], f"hidden_states.{i}: {err:.2e}"
    for i, a in enumerate(out.attentions):
        err = np.abs(a - golden[f"attentions.{i}"]).transpose(0, 2, 1, 3)[real].max()  # [B, T, N, T] at real queries
        assert err <= tol["attention"], f"attentions.{i}: {err:.2e}"
    err = np.abs(out.pooler_output - golden["pooler_output"]).max()
    assert err <= tol["pooler"], f"pooler_output: {err:.2e}"
    print(f"{engine} {dtype}: hidden {max(np.abs(h - golden[f'hidden_states.{i}'])[real].max() for i, h in enumerate(out.hidden_states)):.1e}"
          f" pooler {err:.1e}")


def test_encode_matches_sentence_transformers_past_its_384_token_limit(mpnet_dir):
    """model.encode cuts at max_seq_length 384 (sentence_bert_config.json), mean-pools and normalises as
    SentenceTransformer.encode does. Tolerance 1e-5 (issue 25's target; measured ≤ 3e-7 on unit vectors)."""
    texts = TEXTS + [LONG]
    expected, info = bridge.sentence_embeddings(mpnet_dir, texts)
    assert info["max_seq_length"] == "384"
    model = numpybert.load(mpnet_dir)
    assert model.sentence.max_seq_length == 384 and model.tokenize([LONG], max_length=512)["input_ids"].shape[1] == 512
    got = model.encode(texts)
    assert got.dtype == np.float32 and got.shape == (5, 768)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_the_hub_names_resolve_to_the_fetched_copy(mpnet_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: the fetched copy serves
    for name in ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"):
        assert numpybert.load(name, mmap=True).config.model_type == "mpnet"


def test_fetch_is_idempotent_and_refuses_an_unknown_name(mpnet_dir, capsys):
    said = []
    assert fetch_module.fetch(mpnet_dir, log=said.append, name="all-mpnet-base-v2") == mpnet_dir
    assert said == [f"{mpnet_dir}: already complete (sha256 verified)"]
    code, out, err = run(capsys, "fetch", "bert-large")
    assert code == 2 and "invalid choice: 'bert-large'" in err


def test_live_audit_passes_with_the_oracle(mpnet_dir, capsys):
    """`numpybert audit --live --oracle` on the real model: every operation against transformers."""
    import json
    code = cli.main(["audit", "--live", "--json", "--oracle", "--model", mpnet_dir, "--text", "A short one."])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["passed"], report["first_divergence"]
    names = [t["name"] for t in report["tensors"]]
    assert names[-1] == "pooled_output" and sum(n.startswith("encoder.layer.11.") for n in names) >= 10


def test_explain_on_mpnet(mpnet_dir, capsys):
    """The founding question on a second real model with a trained pooler: both file checks agree."""
    code, out, err = run(capsys, "explain", "A man is playing a guitar.", "--model", mpnet_dir)
    assert code == 0 and err == ""
    assert out.count(": agrees") == 2 and "position[2]" in out and "token_type" not in out.split("4. checked")[1][:400]
    assert "12 layers, H=768, 12 heads" in out
