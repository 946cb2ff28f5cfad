"""RoBERTa-style GGUF files (issue 26): llama.cpp's converter writes RoBERTa as a "bert" file with a byte-level
BPE vocabulary (tokenizer.ggml.model "gpt2", merges) and its position table cut by pad_token_id + 1 rows, and a
sequence classifier's head as cls / cls.output (RoBERTa's classifier.dense / out_proj, DistilBERT's
pre_classifier / classifier). Files made by scripts/make_gguf.py from the committed st-tiny-roberta and
classifiers built on it and on tiny-distilbert-wp; the originals are the safetensors folders they came from."""

import numpy as np
import pytest

import numpybert
from helpers import GGUF_DIR, ROOT, require_gguf, rewrite_gguf
from numpybert.errors import ConfigError

ST_ROBERTA = ROOT / "tests" / "checkpoints" / "st-tiny-roberta"
TEXTS = ["A man is playing a guitar.", "UPPERCASE INPUT SHOULD NOT COLLAPSE", "Café naïve résumé — ÅNGSTRÖM 北京 🍕",
         "  spaces\tand\nnewlines  ", "<mask> and </s> inside a text", "hello"]
PAIRS = [("Where is the river?", "The river runs by the bank."), ("UPPER", "lower")]


def logits(model, texts, pairs=None):
    from numpybert.apps.heads import classifier_logits
    return classifier_logits(model, **model.tokenize(texts, pairs))


def test_a_byte_level_bpe_gguf_is_roberta_with_its_positions_restored():
    model = numpybert.load(require_gguf("tiny-roberta-bpe.f32.gguf"))
    original = numpybert.load(ST_ROBERTA)
    assert model.config.model_type == "roberta" and model.config.pad_token_id == 1
    assert model.config.max_position_embeddings == original.config.max_position_embeddings == 66
    assert "position_embd: 2 rows the converter cut (below padding_idx + 1) -> zeros" in str(model.manifest)
    table = model.flat_params["embeddings.position_embeddings.weight"]
    assert not table[:2].any()
    assert np.array_equal(table[2:], original.flat_params["embeddings.position_embeddings.weight"][2:])


def test_f32_encode_equals_the_safetensors_original():
    model, original = numpybert.load(require_gguf("tiny-roberta-bpe.f32.gguf")), numpybert.load(ST_ROBERTA)
    assert model.sentence.settings.pooling == original.sentence.settings.pooling == ("mean",)
    got, expected = model.encode(TEXTS), original.encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5  # the same float32 weights and arithmetic (measured 0.0)


def test_q8_0_stays_close_to_the_original():
    model, original = numpybert.load(require_gguf("tiny-roberta-bpe.q8_0.gguf")), numpybert.load(ST_ROBERTA)
    got, expected = model.encode(TEXTS), original.encode(TEXTS)
    cosines = (got * expected).sum(1)  # both unit vectors
    assert cosines.min() >= 0.99 and np.abs(got - expected).max() > 1e-6  # quantized: close, not equal


@pytest.mark.parametrize("name", ["tiny-roberta-cls", "tiny-distilbert-cls"])
def test_a_classifier_gguf_classifies_like_its_original(name):
    original = numpybert.load(GGUF_DIR / name)
    model = numpybert.load(require_gguf(f"{name}.f32.gguf"))
    assert model.config.model_type == original.config.model_type
    assert model.config.id2label == original.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    got, expected = logits(model, TEXTS), logits(original, TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 3)
    assert np.abs(got - expected).max() <= 1e-5  # cls -> classifier.dense, cls.output -> out_proj (measured 0.0)
    firsts, seconds = [a for a, _ in PAIRS], [b for _, b in PAIRS]  # a cross-encoder's (query, passage) pairs
    assert np.abs(logits(model, firsts, seconds) - logits(original, firsts, seconds)).max() <= 1e-5
    assert model.classify(TEXTS) == original.classify(TEXTS)


def test_a_classifier_gguf_without_labels_gets_transformers_default_names(tmp_path):
    """The converter writes no output_labels for a config.json whose id2label is transformers' default
    (LABEL_0, LABEL_1: a cross-encoder's usual case); the head still loads, named as transformers names it."""
    path = rewrite_gguf(require_gguf("tiny-roberta-cls.f32.gguf"), tmp_path / "no-labels.gguf",
                        meta={"bert.classifier.output_labels": None})
    model, original = numpybert.load(path), numpybert.load(GGUF_DIR / "tiny-roberta-cls")
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert np.abs(logits(model, TEXTS) - logits(original, TEXTS)).max() <= 1e-5  # measured 0.0


def test_a_q8_0_classifier_keeps_the_originals_labels():
    original = numpybert.load(GGUF_DIR / "tiny-roberta-cls")
    model = numpybert.load(require_gguf("tiny-roberta-cls.q8_0.gguf"))
    got, expected = logits(model, TEXTS), logits(original, TEXTS)
    assert (got.argmax(1) == expected.argmax(1)).all() and 0 < np.abs(got - expected).max() <= 0.5


def test_a_bert_classifier_gguf_is_refused_it_has_no_pooler(tmp_path):
    path = rewrite_gguf(require_gguf("tiny-bert-wp.f32.gguf"), tmp_path / "bert-cls.gguf",
                        add={"cls.output.weight": np.ones((3, 32), np.float32),
                             "cls.output.bias": np.zeros(3, np.float32)})
    with pytest.raises(ConfigError, match="sequence classifier reads pooled_output, and llama.cpp's converter drops "
                                          "the pooler") as e:
        numpybert.load(path)
    assert "bert-cls.gguf" in str(e.value) and "\n" not in str(e.value)


def test_a_unigram_t5_tokenizer_is_refused_saying_why(tmp_path):
    path = rewrite_gguf(require_gguf("tiny-bert-wp.f32.gguf"), tmp_path / "xlmr.gguf",
                        meta={"tokenizer.ggml.model": "t5"})
    with pytest.raises(ConfigError, match="tokenizer.ggml.model='t5' is not supported: XLM-RoBERTa's SentencePiece "
                                          "Unigram") as e:
        numpybert.load(path)
    assert "xlmr.gguf" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("change, message", [
    ({"tokenizer.ggml.merges": None}, "'tokenizer.ggml.merges' is missing"),
    ({"tokenizer.ggml.merges": ["x y z"]}, r"tokenizer.ggml.merges\[0\] 'x y z' is not two tokens"),
])
def test_broken_bpe_metadata_is_one_clear_error(change, message, tmp_path):
    from numpybert.loading.gguf import read_header
    from numpybert.text.gguf_vocab import gguf_tokenizer
    meta = dict(read_header(require_gguf("tiny-roberta-bpe.f32.gguf"))[0], **change)
    with pytest.raises(ConfigError, match=message):
        gguf_tokenizer({k: v for k, v in meta.items() if v is not None}, "x.gguf")


def test_audit_gguf_passes_the_f32_roberta_and_names_a_tensor_on_q8_0(capsys):
    from helpers import run
    code, out, err = run(capsys, "audit", "--gguf", str(require_gguf("tiny-roberta-bpe.f32.gguf")),
                         "--model", str(ST_ROBERTA))
    assert code == 0, out + err
    assert "PASS: all" in out and "the same ids on every text" in out
    code, out, err = run(capsys, "audit", "--gguf", str(require_gguf("tiny-roberta-cls.q8_0.gguf")),
                         "--model", str(GGUF_DIR / "tiny-roberta-cls"))
    assert code == 1 and "first diverging tensor: embeddings.sum" in out, out + err
