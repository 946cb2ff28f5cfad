"""`numpybert audit --gguf FILE --model DIR` (numpybert/audit/gguf.py, issue 26): the GGUF deployment against
its original checkpoint, both through numpybert, with the float64 budget, embedding cosine and tokenizer."""

import json

import pytest

import numpybert
from helpers import GGUF_DIR, require_gguf, require_minilm, run
from numpybert.audit import gguf as gguf_audit
from numpybert.text.gguf_vocab import gguf_tokenizer
from numpybert.text.tokenizer import BertTokenizer

TINY_ST = GGUF_DIR / "tiny-distilbert-wp"  # made by scripts/make_gguf.py: mean pooling
TINY_BERT = GGUF_DIR / "tiny-bert-wp"  # CLS pooling


def test_f32_passes_with_exit_0(capsys):
    code, out, err = run(capsys, "audit", "--gguf", str(require_gguf("all-MiniLM-L6-v2.f32.gguf")),
                         "--model", str(require_minilm()))
    assert code == 0, out + err
    assert "PASS: all" in out and "tokenizer: " in out and "PASS, the same ids on every text" in out
    assert "GGUF tensor types: F32" in out and "pooling mean" in out


def test_q8_0_fails_with_exit_1_naming_the_first_tensor(capsys):
    code, out, err = run(capsys, "audit", "--gguf", str(require_gguf("all-MiniLM-L6-v2.q8_0.gguf")),
                         "--model", str(require_minilm()))
    assert code == 1, out + err
    verdict = next(line for line in out.splitlines() if line.startswith("FAIL:"))
    assert "first diverging tensor: " in verdict
    first = verdict.split("first diverging tensor: ")[1].split(":")[0]
    assert first.startswith(("embeddings.", "encoder.layer.0.")), first  # q8_0 word embeddings or layer 0's Q
    assert "sentence embeddings (cosine, GGUF vs original)" in out and "<- first divergence" in out


def test_json_report_holds_every_part(capsys):
    code, out, _ = run(capsys, "audit", "--gguf", str(require_gguf("tiny-bert-wp.f16.gguf")),
                       "--model", str(TINY_BERT), "--json", "--text", "A man is playing a guitar.")
    report = json.loads(out)
    assert code == (0 if report["passed"] else 1)
    assert report["tensor_types"]["F16"] > 0 and report["pooling"] == "cls"
    assert report["embeddings"]["texts"] == ["A man is playing a guitar."]
    assert 0.999 < report["embeddings"]["min_cosine"] <= 1.0  # f16 rounding of the weights only
    assert report["tokenizer"]["passed"] and report["tokenizer"]["texts"] >= 10
    names = [t["name"] for t in report["tensors"]]
    assert names[:2] == ["embeddings.sum", "embeddings.output"] and names[-2:] == ["encoder.layer.1.output", "cls_vector"]
    assert len(names) == 2 + 2 * 11 + 1  # the embeddings, 11 per layer, the [CLS] row (no pooler in a GGUF)
    assert {"gguf", "original_float32"} <= set(report["oracle"][0])


def test_a_family_member_gguf_passes(capsys):
    code, out, err = run(capsys, "audit", "--gguf", str(require_gguf("tiny-distilbert-wp.f32.gguf")),
                         "--model", str(TINY_ST), "--text", "the cat sat on the mat.")
    assert code == 0, out + err
    assert "pooling mean" in out and "distilbert" not in err


def test_a_drifted_tokenizer_is_named_text_and_token():
    """The GGUF's flags say what llama.cpp should do; a deployment that keeps case (ollama #13942's symptom
    class) gives other ids, and the audit names the first text and token."""
    deployed = numpybert.load(require_gguf("tiny-distilbert-wp.f32.gguf"))
    original = numpybert.load(TINY_ST)
    assert all(r.same for r in gguf_audit.tokenizer_results(deployed, original))
    meta = dict(deployed.gguf["metadata"], **{"tokenizer.ggml.normalizer.lowercase": False})
    tokenizer, special, _ = gguf_tokenizer(meta, "drifted.gguf")
    deployed.tokenizer = BertTokenizer(tokenizer, special, deployed.config.max_length)
    results = gguf_audit.tokenizer_results(deployed, original)
    first = next(r for r in results if not r.same)
    assert first.first_difference is not None and first.model_ids != first.other_ids


@pytest.mark.parametrize("switch", [["--gelu", "tanh"], ["--oracle"], ["--dtype", "float64"],
                                    ["--engine", "reference"]])
def test_switches_that_do_not_apply_are_refused(capsys, switch):
    code, _, err = run(capsys, "audit", "--gguf", str(require_gguf("tiny-distilbert-wp.f32.gguf")),
                       "--model", str(TINY_ST), *switch)
    assert code == 2 and "drop --mask-value" in err and len(err.strip().splitlines()) == 1


def test_a_missing_gguf_is_exit_3(capsys, tmp_path):
    code, _, err = run(capsys, "audit", "--gguf", str(tmp_path / "absent.gguf"), "--model", str(TINY_ST))
    assert code == 3 and "absent.gguf" in err and len(err.strip().splitlines()) == 1
