"""The BERT family (issue 21): RoBERTa / XLM-R, DistilBERT and ELECTRA load with BERT's strictness,
their names mapped in loading, unsupported encoders refused in one line, and the textbook's few
differing lines (positions from the ids, no token types, embeddings_project) behave as transformers'.
Parity with transformers tensor by tensor is tests/test_golden.py (tests/golden/tiny-{roberta,...}),
both engines against each other tests/test_reference.py, the heads tests/test_heads.py."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import numpybert
from numpybert import reference as R
from numpybert.engine import model as M
from numpybert.errors import ConfigError, InputValueError, MissingWeightsError, WeightsError
from numpybert.loading import family
from numpybert.loading.config import BertConfig

from helpers import CHECKPOINTS

FAMILY = ["tiny-roberta", "tiny-xlm-roberta", "tiny-distilbert", "tiny-electra"]


@pytest.mark.parametrize("model_type, name", [("albert", "ALBERT"), ("deberta-v2", "DeBERTa"), ("modernbert", "ModernBERT"),
                                              ("gpt2", None), ("t5", None)])
def test_unsupported_model_types_are_refused_in_one_line(model_type, name):
    with pytest.raises(ConfigError) as e:
        BertConfig.from_dict({"model_type": model_type}, source="x/config.json")
    message = str(e.value)
    assert "\n" not in message and f"model_type {model_type!r}" in message or f"model_type={model_type!r}" in message
    assert "x/config.json" in message and "roberta" in message
    if name:
        assert name in message


def test_distilbert_config_fields_are_mapped():
    config = BertConfig.from_json(str(CHECKPOINTS / "tiny-distilbert" / "config.json"))
    raw = json.loads((CHECKPOINTS / "tiny-distilbert" / "config.json").read_text())
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == \
        (raw["dim"], raw["n_layers"], raw["n_heads"], raw["hidden_dim"])
    assert config.type_vocab_size == 0 and config.layer_norm_eps == 1e-12 and config.padding_idx is None


def test_roberta_max_length_leaves_room_for_the_offset():
    config = numpybert.load(CHECKPOINTS / "tiny-roberta").config
    assert (config.max_position_embeddings, config.padding_idx, config.max_length) == (66, 1, 64)
    model = numpybert.load(CHECKPOINTS / "tiny-roberta")
    model(np.full((1, 64), 5))  # 64 tokens: positions 2..65
    with pytest.raises(InputValueError, match="65 tokens, more than 64 .*roberta"):
        model(np.full((1, 65), 5))


@pytest.mark.parametrize("name", FAMILY)
def test_family_checkpoints_load_strictly(name, tmp_path):
    """An unexpected tensor and a missing one are errors naming them, as for BERT."""
    model_dir = tmp_path / name
    shutil.copytree(CHECKPOINTS / name, model_dir)
    tensors = load_file(str(model_dir / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("output.dense.weight") or k.endswith("ffn.lin2.weight"))
    save_file({**tensors, "surprise.weight": np.zeros(3, np.float32)}, str(model_dir / "model.safetensors"))
    with pytest.raises(WeightsError, match="unexpected tensor 'surprise.weight'"):
        numpybert.load(model_dir)
    save_file({k: v for k, v in tensors.items() if k != key}, str(model_dir / "model.safetensors"))
    with pytest.raises(WeightsError, match="missing tensor 'encoder.layer"):
        numpybert.load(model_dir)


def test_distilbert_names_are_mapped_and_listed_in_the_manifest():
    model = numpybert.load(CHECKPOINTS / "tiny-distilbert-classifier")
    renamed = dict(model.manifest.renamed)
    assert renamed["distilbert.transformer.layer.0.attention.q_lin.weight"] == "encoder.layer.0.attention.self.query.weight"
    assert renamed["distilbert.transformer.layer.1.ffn.lin2.bias"] == "encoder.layer.1.output.dense.bias"
    assert renamed["distilbert.transformer.layer.0.sa_layer_norm.weight"] == "encoder.layer.0.attention.output.LayerNorm.weight"
    assert renamed["pre_classifier.weight"] == "classifier.dense.weight"
    assert renamed["classifier.weight"] == "classifier.out_proj.weight"
    assert "token_type_embeddings" not in model.params["embeddings"]


def test_electra_discriminator_head_is_ignored_not_dropped_silently(tmp_path):
    model_dir = tmp_path / "electra-disc"
    shutil.copytree(CHECKPOINTS / "tiny-electra", model_dir)
    tensors = load_file(str(model_dir / "model.safetensors"))
    tensors = {f"electra.{k}": v for k, v in tensors.items()}
    tensors["discriminator_predictions.dense.weight"] = np.zeros((32, 32), np.float32)
    save_file(tensors, str(model_dir / "model.safetensors"))
    model = numpybert.load(model_dir)
    assert ("discriminator_predictions.dense.weight",
            "ELECTRA's replaced-token-detection head (not computed by numpybert)") in model.manifest.ignored


def test_roberta_positions_count_real_tokens_from_padding_idx_plus_one():
    """transformers' create_position_ids_from_input_ids, and sequential ones for inputs_embeds."""
    positions = family.position_ids  # both engines get them as inputs (check_inputs fills them)
    ids = np.array([[0, 7, 8, 2, 1, 1], [1, 1, 0, 9, 2, 1]])  # right and left padding (pad id 1)
    assert positions(ids, ids.shape, 1).tolist() == [[2, 3, 4, 5, 1, 1], [1, 1, 2, 3, 4, 1]]
    assert positions(None, (2, 3), 1).tolist() == [[2, 3, 4], [2, 3, 4]]
    assert positions(ids, ids.shape, None).tolist() == [list(range(6))] * 2


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_roberta_left_padding_gives_the_real_tokens_right_paddings_values(engine):
    """Positions come from the ids, so padding on the left changes nothing at real tokens."""
    model = numpybert.load(CHECKPOINTS / "tiny-roberta", dtype="float64", engine=engine)
    ids = np.array([[0, 7, 8, 9, 2]])
    right = model(np.array([[0, 7, 8, 9, 2, 1, 1]]), np.array([[1, 1, 1, 1, 1, 0, 0]])).last_hidden_state[0, :5]
    left = model(np.array([[1, 1, 0, 7, 8, 9, 2]]), np.array([[0, 0, 1, 1, 1, 1, 1]])).last_hidden_state[0, 2:]
    alone = model(ids).last_hidden_state[0]
    assert np.abs(left - alone).max() < 1e-12 and np.abs(right - alone).max() < 1e-12


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_electra_inputs_embeds_are_embedding_size_wide(engine):
    model = numpybert.load(CHECKPOINTS / "tiny-electra", dtype="float64", engine=engine)
    ids = np.array([[2, 5, 6, 7]])
    embeds = model.params["embeddings"]["word_embeddings"]["weight"][ids]  # [1, 4, E=16]
    by_ids, by_embeds = model(ids).last_hidden_state, model(inputs_embeds=embeds).last_hidden_state
    assert by_ids.shape == (1, 4, 32) and np.abs(by_ids - by_embeds).max() < 1e-12
    with pytest.raises(InputValueError, match="embedding_size=16"):
        model(inputs_embeds=np.zeros((1, 4, 32)))


@pytest.mark.parametrize("name", ["tiny-distilbert", "tiny-electra", "tiny-xlm-roberta"])
def test_no_pooler_is_the_clear_error(name):
    model = numpybert.load(CHECKPOINTS / name)
    out = model(np.array([[2, 5, 6]]))
    assert "pooler_output" not in out.keys()
    with pytest.raises(MissingWeightsError, match="no pooled_output"):
        out.pooler_output


def test_distilbert_ignores_token_type_ids_as_transformers_has_none():
    model = numpybert.load(CHECKPOINTS / "tiny-distilbert")
    ids = np.array([[2, 5, 6, 7]])
    a = model(ids).last_hidden_state
    b = model(ids, token_type_ids=np.array([[0, 0, 1, 1]])).last_hidden_state
    assert np.array_equal(a, b)
