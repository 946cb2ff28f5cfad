"""numpybert.load("model.gguf") on files made by llama.cpp's own converter (scripts/make_gguf.py, issue 26):
the weights, the pooling, the refused pooler, the manifest, bad files."""

import json
import subprocess
import sys

import numpy as np
import pytest

import numpybert
from helpers import GGUF_DIR, ROOT, require_gguf, require_minilm
from numpybert.errors import ConfigError, MissingWeightsError, WeightsError, WeightsNotFoundError

TEXTS = ["A man is playing a guitar.", "The quick brown fox jumps over the lazy dog by the river bank.",
         "UPPERCASE INPUT SHOULD NOT COLLAPSE", "Café naïve résumé — ÅNGSTRÖM 北京 🍕", "hello"]
TINY_ST = GGUF_DIR / "tiny-distilbert-wp"  # made by scripts/make_gguf.py: mean pooling
TINY_BERT = GGUF_DIR / "tiny-bert-wp"  # CLS pooling


@pytest.fixture(scope="module")
def st_minilm():
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(require_minilm()), device="cpu")


def dequantized_state_dict(path):
    """The file's tensors dequantized by the gguf package itself, under transformers' names."""
    import gguf
    from numpybert.loading.gguf import hf_name
    reader = gguf.GGUFReader(str(path))
    return {hf_name(t.name): np.array(gguf.quants.dequantize(t.data, t.tensor_type), np.float32).reshape(
        tuple(int(d) for d in reversed(t.shape.tolist()))) for t in reader.tensors}


def torch_embeddings(config_dir, state, texts, model):
    """transformers' BertModel in float32 on the given weights; mean pooling over real tokens, normalized."""
    import torch
    import transformers
    config = transformers.AutoConfig.from_pretrained(str(config_dir))
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()
    missing, unexpected = bert.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    assert not unexpected and set(missing) <= {"embeddings.position_ids", "embeddings.token_type_ids"}, missing
    batch = model.tokenize(texts)
    with torch.no_grad():
        h = bert(input_ids=torch.from_numpy(batch["input_ids"]),
                 attention_mask=torch.from_numpy(batch["attention_mask"])).last_hidden_state.numpy()
    m = batch["attention_mask"][..., None].astype(np.float32)
    pooled = (h * m).sum(1) / m.sum(1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_f32_gguf_encode_equals_sentence_transformers(st_minilm):
    model = numpybert.load(require_gguf("all-MiniLM-L6-v2.f32.gguf"))
    ours = model.encode(TEXTS)
    theirs = st_minilm.encode(TEXTS, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(TEXTS), 384)
    # measured 1.6e-7 (float32 rounding of unit vectors); the target is 1e-5
    assert np.abs(ours - theirs).max() <= 1e-5


@pytest.mark.parametrize("outtype, min_cosine", [("f16", 0.9999), ("q8_0", 0.999)])
def test_quantized_gguf_equals_float32_bert_on_its_dequantized_weights(outtype, min_cosine, st_minilm, capsys):
    path = require_gguf(f"all-MiniLM-L6-v2.{outtype}.gguf")
    model = numpybert.load(path)
    ours = model.encode(TEXTS)
    theirs = torch_embeddings(require_minilm(), dequantized_state_dict(path), TEXTS, model)
    # numpybert vs transformers on the same dequantized weights: float32 rounding only (measured ≤ 2.0e-7)
    assert np.abs(ours - theirs).max() <= 1e-5
    original = st_minilm.encode(TEXTS, convert_to_numpy=True)
    cosines = (ours * original).sum(1)  # unit vectors
    with capsys.disabled():
        print(f"\n{outtype}: cosine to the original per text: {np.round(cosines, 7).tolist()}")
    # the quantization's own cost, measured: f16 min 0.9999998, q8_0 min 0.9997290 (these texts)
    assert cosines.min() >= min_cosine and cosines.min() < 1.0 - 1e-9


def test_the_manifest_says_the_tensor_types_and_what_was_dequantized():
    model = numpybert.load(require_gguf("all-MiniLM-L6-v2.q8_0.gguf"))
    manifest = str(model.manifest)
    assert "GGUF, tensor types: F32" in manifest and "Q8_0" in manifest
    assert "Q8_0 -> float32 (dequantized as gguf.quants does)" in manifest and "drops the pooler" in manifest
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert model.config.layer_norm_eps == pytest.approx(1e-12) and model.config.max_position_embeddings == 512
    assert model.flat_params["encoder.layer.0.attention.self.query.weight"].dtype == np.float32


def test_float64_and_the_reference_engine_compute_the_same_file():
    path = require_gguf("all-MiniLM-L6-v2.f16.gguf")
    fast = numpybert.load(path)
    exact = numpybert.load(path, dtype="float64", engine="reference")
    a, b = fast.encode(TEXTS), exact.encode(TEXTS)
    assert b.dtype == np.float64 and np.abs(a - b).max() <= 1e-5  # float32 rounding (measured 1.1e-7)


def test_pooler_output_is_refused_in_one_line_naming_the_converter():
    model = numpybert.load(require_gguf("all-MiniLM-L6-v2.f32.gguf"))
    out = model(**model.tokenize(["hello"]))
    with pytest.raises(MissingWeightsError, match="llama.cpp's converter drops") as e:
        out.pooler_output
    assert "\n" not in str(e.value) and "all-MiniLM-L6-v2.f32.gguf" in str(e.value)
    assert not model.has_pooler and "pooler_output" not in out.keys()


def test_pooling_type_cls_becomes_encodes_pooling():
    """tiny-bert-wp pools the CLS token: the converter writes pooling_type 2, encode follows it."""
    from sentence_transformers import SentenceTransformer
    model = numpybert.load(require_gguf("tiny-bert-wp.f32.gguf"))
    assert model.sentence.settings.pooling == ("cls",) and model.gguf["pooling_type"] == 2
    theirs = SentenceTransformer(str(TINY_BERT), device="cpu").encode(TEXTS, convert_to_numpy=True)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)  # no Normalize module; the GGUF's encode normalizes
    assert np.abs(model.encode(TEXTS) - theirs).max() <= 1e-5  # float32 rounding (measured 1.6e-7)


def test_a_gguf_without_token_types_is_distilberts_encoder():
    from sentence_transformers import SentenceTransformer
    model = numpybert.load(require_gguf("tiny-distilbert-wp.f32.gguf"))
    assert model.config.model_type == "distilbert" and model.config.type_vocab_size == 0
    assert "token_types.weight" not in model.gguf["types"] and model.sentence.settings.pooling == ("mean",)
    theirs = SentenceTransformer(str(TINY_ST), device="cpu").encode(TEXTS, convert_to_numpy=True)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    assert np.abs(model.encode(TEXTS) - theirs).max() <= 1e-5  # float32 rounding (measured 8.9e-8)


def test_minilm_pooling_is_mean():
    model = numpybert.load(require_gguf("all-MiniLM-L6-v2.q8_0.gguf"))
    assert model.sentence.settings.pooling == ("mean",) and model.sentence.settings.normalize
    assert model.gguf["pooling_type"] == 1


def test_cli_takes_a_gguf_file_as_the_model(capsys):
    from numpybert import cli
    path = require_gguf("tiny-bert-wp.q8_0.gguf")
    code = cli.main(["encode", "A man is playing a guitar.", "--model", str(path), "--output", "embedding",
                     "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    vector = np.array(json.loads(out)["outputs"]["embedding"][0])
    expected = numpybert.load(path).encode(["A man is playing a guitar."])[0]
    assert np.abs(vector - expected).max() <= 1e-6


# ----------------------------------------------------------------------------- bad files

def test_a_file_that_is_not_gguf_is_one_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(WeightsError, match="not a readable GGUF file") as e:
        numpybert.load(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_a_truncated_gguf_is_one_clear_error(tmp_path):
    good = require_gguf("tiny-distilbert-wp.q8_0.gguf").read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(WeightsError, match="cut.gguf"):
        numpybert.load(bad)


def test_a_missing_gguf_says_not_found(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nothing.gguf"):
        numpybert.load(tmp_path / "nothing.gguf")


def test_an_unsupported_architecture_is_refused_naming_it(tmp_path):
    import gguf
    path = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConfigError, match="general.architecture='llama' is not supported"):
        numpybert.load(path)


def test_cli_error_is_one_line_and_exit_2_or_3(tmp_path, capsys):
    from numpybert import cli
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 20)
    code = cli.main(["encode", "hi", "--model", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "x.gguf" in err


def test_import_numpybert_does_not_load_gguf():
    code = ("import sys, numpybert, numpybert.audit, numpybert.cli; numpybert.cli.build_parser(); "
            "sys.exit('gguf' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_explain_on_a_gguf_says_why_there_is_no_pooler(capsys):
    from helpers import run
    code, out, err = run(capsys, "explain", "--model", str(require_gguf("tiny-bert-wp.q8_0.gguf")), "Hello world")
    assert code == 0, err
    text = " ".join(out.split())
    assert "the pooler is ABSENT" in text and "llama.cpp's converter drops pooler.dense.*" in text
    assert "numpybert audit --gguf FILE --model DIR" in text  # what it can check instead
