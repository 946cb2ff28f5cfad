"""`numpybert audit --tokenizer`: another deployment's tokenizer.json against the model's tokenizer."""

import json

from numpybert import cli
from numpybert.audit import tokenizer_audit


def tokenizer_file(minilm_dir, tmp_path, change):
    """A copy of MiniLM's tokenizer.json with `change(data)` applied."""
    data = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def run(capsys, *args):
    code = cli.main(["audit", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_same_settings_pass(capsys, minilm_dir, tmp_path):
    def as_the_model_is_used(data):
        data["truncation"]["max_length"] = 256  # sentence_bert_config.json's max_seq_length
        data["padding"] = None
    path = tokenizer_file(minilm_dir, tmp_path, as_the_model_is_used)
    code, out, err = run(capsys, "--tokenizer", str(path), "--model", str(minilm_dir))
    assert code == 0, err
    assert f"PASS: all {len(tokenizer_audit.TRICKY_TEXTS)} texts give the same ids" in out


def test_truncation_that_differs_is_the_first_difference(capsys, minilm_dir):
    """MiniLM's own tokenizer.json stores truncation (and padding) at 128; sentence-transformers uses 256."""
    code, out, _ = run(capsys, "--tokenizer", str(minilm_dir), "--model", str(minilm_dir), "--json")
    report = json.loads(out)
    assert code == 1 and report["differing"] == ["over the max length", "pair over the max length"]
    first = report["first_difference"]
    assert first["position"] == 127 and first["tokenizer"]["tokens"][-1] == "[SEP]"
    assert len(first["model"]["ids"]) == 256 and len(first["tokenizer"]["ids"]) == 128  # padding is not counted
    assert report["stored_settings"]["other"]["padding"]["length"] == 128
    code, out, _ = run(capsys, "--tokenizer", str(minilm_dir / "tokenizer.json"), "--model", str(minilm_dir))
    assert code == 1
    assert "first: over the max length" in out and "truncates at 128 tokens, the model is used with 256" in out
    assert "tokenizer (128 tokens): ... (123 tokens) brown fox jumps over [SEP]" in out


def test_a_cased_normalizer_shows_both_token_lists(capsys, minilm_dir, tmp_path):
    def cased(data):
        data["normalizer"]["lowercase"] = False
        data["truncation"]["max_length"] = 256
    path = tokenizer_file(minilm_dir, tmp_path, cased)
    code, out, _ = run(capsys, "--tokenizer", str(path), "--model", str(minilm_dir), "--json")
    first = json.loads(out)["first_difference"]
    assert code == 1 and first["label"] == "plain" and first["position"] == 1
    assert first["model"]["tokens"][1] == "hello" and first["tokenizer"]["tokens"][1] == "[UNK]"


def test_no_truncation_at_all(capsys, minilm_dir, tmp_path):
    path = tokenizer_file(minilm_dir, tmp_path, lambda d: d.update(truncation=None, padding=None))
    code, out, _ = run(capsys, "--tokenizer", str(path), "--model", str(minilm_dir))
    assert code == 1 and "does not truncate" in out


def test_bad_paths_are_one_line(capsys, minilm_dir, tmp_path):
    code, _, err = run(capsys, "--tokenizer", str(tmp_path / "nothing.json"), "--model", str(minilm_dir))
    assert code == 3 and "no such tokenizer.json" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    code, _, err = run(capsys, "--tokenizer", str(bad), "--model", str(minilm_dir))
    assert code == 2 and "cannot read" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "--tokenizer", str(minilm_dir), "--model", str(minilm_dir), "--text", "hi")
    assert code == 2 and "--text does not apply" in err
