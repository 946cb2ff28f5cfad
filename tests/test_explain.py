"""numpybert.teach.explain: every number of the teaching trace, recomputed here independently."""

import json
import shutil

import numpy as np
import pytest

import numpybert
from conftest import CHECKPOINTS
from numpybert.teach import explain as explain_module
from numpybert.errors import ConfigError, MissingWeightsError
from numpybert.apps.encode import read_settings, sentence_transformers_pooling
from numpybert.teach.explain import SATURATION, cosine, explain

SENTENCE = "A man is playing a guitar on the stage."
PAIR = ("How old are you?", "I am six years old.")
TINY_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", ".", "?", "how", "old", "are", "you", "i", "am"]


def tiny_model_dir(tmp_path, name: str):
    """A copy of a committed tiny checkpoint with a vocab.txt of its vocab_size, so text goes in.
    (The real tokenizer cannot be used: its 30522 ids are outside a tiny model's vocabulary.)"""
    dest = tmp_path / name
    shutil.copytree(CHECKPOINTS / name, dest)
    vocab_size = json.loads((dest / "config.json").read_text())["vocab_size"]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS
    tokens += [f"w{i}" for i in range(vocab_size - len(tokens))]
    (dest / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return dest


@pytest.fixture(scope="module")
def sentence(minilm):
    return explain(minilm, SENTENCE)


def test_tokens_are_the_tokenizers(minilm, sentence):
    ids = minilm.tokenize([SENTENCE])["input_ids"][0]
    assert sentence.tokens == minilm.tokenizer.convert_ids_to_tokens(ids)
    assert sentence.tokens[0] == "[CLS]" and sentence.tokens[-1] == "[SEP]"
    assert sentence.token_type_ids == [0] * len(ids)


def test_h_cls_is_the_first_row_of_last_hidden_state(minilm, sentence):
    out = minilm(**minilm.tokenize([SENTENCE]))
    assert np.array_equal(sentence.h_cls, out.last_hidden_state[0, 0])


def test_z_is_the_pooler_dense_layer_recomputed_in_float64(minilm, sentence):
    W = minilm.flat_params["pooler.dense.weight"].astype(np.float64)
    b = minilm.flat_params["pooler.dense.bias"].astype(np.float64)
    h = sentence.h_cls.astype(np.float64)
    # Rounding bound of a float32 sum of n + 1 products (n = H, plus the bias): (n+1)·u·Σ|terms|, u = 2^-24.
    bound = (W.shape[1] + 1) * np.finfo(np.float32).eps / 2 * (np.abs(W) @ np.abs(h) + np.abs(b))
    assert np.all(np.abs(sentence.pooler.z - (W @ h + b)) <= bound)


def test_pooled_is_tanh_of_z_and_the_models_pooler_output_bit_for_bit(minilm, sentence):
    p = sentence.pooler
    assert np.array_equal(p.pooled, np.tanh(p.z))
    out = minilm(**minilm.tokenize([SENTENCE]))
    assert np.array_equal(p.model_pooled, out.pooler_output[0])
    assert p.bit_for_bit is True


def test_the_bit_for_bit_claim_is_really_checked(minilm, monkeypatch):
    """Move z by one ulp: the reported claim must turn False (it is np.array_equal, not a constant)."""
    real_linear = explain_module.linear
    monkeypatch.setattr(explain_module, "linear", lambda x, w, b: np.nextafter(real_linear(x, w, b), np.inf))
    assert explain(minilm, SENTENCE).pooler.bit_for_bit is False


def test_difference_and_cosine_against_the_cls_row(sentence):
    pooled, h = sentence.pooler.model_pooled.astype(np.float64), sentence.h_cls.astype(np.float64)
    assert sentence.pooler.max_abs_diff_vs_cls == np.abs(pooled - h).max()
    expected_cos = pooled @ h / np.sqrt((pooled @ pooled) * (h @ h))
    assert sentence.pooler.cosine_vs_cls == pytest.approx(expected_cos, abs=1e-12)  # float64 rounding only
    assert sentence.pooler.max_abs_diff_vs_cls > 0.1  # the founding claim: they are different vectors


def test_saturation_count_on_the_real_pooler(sentence):
    assert sentence.pooler.saturated == int((np.abs(sentence.pooler.model_pooled) > SATURATION).sum())


def test_saturation_count_when_the_pooler_saturates(minilm_dir):
    """Scale the pooler's weights so that tanh saturates: the count follows."""
    model = numpybert.load(minilm_dir)
    model.params["pooler"]["dense"]["weight"] = model.params["pooler"]["dense"]["weight"] * 200.0
    p = explain(model, SENTENCE).pooler
    assert p.saturated == int((np.abs(np.tanh(p.z)) > SATURATION).sum())
    assert 0 < p.saturated < len(p.z)


def test_layer_counts_come_from_the_model(minilm, sentence):
    L = minilm.config.num_hidden_layers
    assert (sentence.num_layers, sentence.num_hidden_states, sentence.num_attentions) == (L, L + 1, L)
    assert sentence.embedding_output_is_first and sentence.last_hidden_is_last_state


def test_tfhub_identities(sentence, minilm):
    p = sentence.pooler
    assert p.tfhub_default_is_pooled and p.tfhub_last_encoder_is_sequence
    assert p.tfhub_encoder_outputs == minilm.config.num_hidden_layers


def test_pooler_provenance_numbers(minilm, sentence):
    W, b = minilm.flat_params["pooler.dense.weight"], minilm.flat_params["pooler.dense.bias"]
    assert sentence.pooler.weight_std == pytest.approx(float(W.astype(np.float64).std()), rel=1e-5)  # f32 std
    assert sentence.pooler.bias_max_abs == float(np.abs(b).max())
    assert sentence.pooler.nsp_is_next is None  # all-MiniLM-L6-v2 has no NSP head


def test_sentence_transformers_pooling_is_read_from_the_model_dir(minilm, minilm_dir, tmp_path):
    """explain names the pooling `encode` computes (one reader: apps.encode), in its mode names."""
    config = json.loads((minilm_dir / "1_Pooling" / "config.json").read_text())
    assert config["pooling_mode_mean_tokens"] and not config["pooling_mode_cls_token"]
    assert sentence_transformers_pooling(minilm_dir) == ("mean",) == read_settings(minilm_dir, 512).pooling
    assert explain(minilm, SENTENCE).sentence_pooling == "mean"
    assert sentence_transformers_pooling(tmp_path) is None
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                                                       {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="1_Pooling"):
        sentence_transformers_pooling(tmp_path)


def test_pair_segments(minilm):
    e = explain(minilm, *PAIR)
    batch = minilm.tokenize([PAIR[0]], [PAIR[1]])
    assert e.token_type_ids == batch["token_type_ids"][0].tolist()
    assert e.tokens.count("[SEP]") == 2 and 0 < e.token_type_ids.count(0) < len(e.tokens)
    assert e.pooler.bit_for_bit


def test_tiny_model_counts_its_own_layers(tmp_path):
    model = numpybert.load(tiny_model_dir(tmp_path, "tiny-bert"))
    e = explain(model, "the cat sat on the mat.")
    L = model.config.num_hidden_layers
    assert L != 6  # not MiniLM's numbers by accident
    assert (e.num_hidden_states, e.num_attentions) == (L + 1, L)
    assert e.pooler.bit_for_bit and e.sentence_pooling is None


def test_absent_pooler_gives_the_models_refusal(tmp_path):
    model = numpybert.load(tiny_model_dir(tmp_path, "tiny-no-pooler"))
    e = explain(model, "the cat sat on the mat.")
    out = model(**model.tokenize(["the cat sat on the mat."]))
    with pytest.raises(MissingWeightsError) as refusal:
        out.pooler_output
    assert e.pooler is None
    assert e.pooler_refusal == str(refusal.value) and "no pooler" in e.pooler_refusal
    assert e.num_hidden_states == model.config.num_hidden_layers + 1


def test_nsp_probability_from_the_pretraining_head(tmp_path):
    model = numpybert.load(tiny_model_dir(tmp_path, "tiny-pretraining"))
    e = explain(model, "how old are you?", "i am the cat.")
    W = model.flat_params["cls.seq_relationship.weight"].astype(np.float64)
    b = model.flat_params["cls.seq_relationship.bias"].astype(np.float64)
    logits = W @ e.pooler.model_pooled.astype(np.float64) + b
    p_next = np.exp(logits[0]) / np.exp(logits).sum()  # label 0 = "B follows A"
    assert e.pooler.nsp_is_next == pytest.approx(p_next, abs=1e-12)  # both float64


def test_cosine_helper():
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    assert cosine(np.array([3.0, 4.0], np.float32), np.array([6.0, 8.0])) == pytest.approx(1.0, abs=1e-15)
