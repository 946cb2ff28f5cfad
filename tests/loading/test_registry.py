"""The family registry (issue 25): every model-type difference is one record of
numpybert/loading/family.py, no other module names a model type, another format's tensors load
through `load_tensors`, and MPNet (the registry's sixth record) loads, runs and explains like BERT.
Its parity with transformers, tensor by tensor on both engines: tests/golden/tiny-mpnet
(tests/engine/test_golden.py); the real all-mpnet-base-v2: tests/loading/test_mpnet_real.py."""

import ast
import importlib

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import numpybert
from numpybert import reference as R
from numpybert.engine import model as M
from numpybert.errors import ConfigError, WeightsError
from numpybert.loading import family
from numpybert.loading.checkpoint import load_params, load_tensors
from numpybert.loading.config import BertConfig
from numpybert.teach.explain import CheckpointFile, check_embedding_row, check_pooler

from helpers import CHECKPOINTS, ROOT

MPNET = CHECKPOINTS / "tiny-mpnet"


def test_model_type_names_are_string_constants_in_the_registry_only():
    """The target of issue 25: at most one module of numpybert/ spells a model type."""
    names = set(family.FAMILIES) | set(family.NOT_SUPPORTED)
    found = {}
    for path in sorted((ROOT / "numpybert").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.setdefault(str(path.relative_to(ROOT)), set()).add(node.value)
    assert set(found) == {"numpybert/loading/family.py"}, found


def test_every_record_names_transformers_classes_that_exist():
    """Each record's base class, task classes and modeling module are transformers' own (the torch
    bridge imports them by these names)."""
    transformers = pytest.importorskip("transformers")  # the test extra installs it: CI never skips
    for f in family.FAMILIES.values():
        module = importlib.import_module(f"transformers.models.{f.modeling}")
        assert hasattr(module, f.base_class), f.model_type
        assert all(hasattr(transformers, cls) for cls in f.heads()), f.model_type
        assert getattr(transformers, f.base_class).config_class.model_type.replace("_", "-") == f.model_type
        assert family.by_base_class(f.base_class) is f and family.by_base_class(f.heads()[0]) is f


@pytest.mark.parametrize("model_type", sorted(family.NOT_SUPPORTED))
def test_refused_types_say_why_in_one_line(model_type):
    with pytest.raises(ConfigError) as e:
        BertConfig.from_dict({"model_type": model_type}, source="m/config.json")
    assert "\n" not in str(e.value) and family.NOT_SUPPORTED[model_type] in str(e.value)
    assert "m/config.json" in str(e.value) and "mpnet" in str(e.value)


def test_relative_position_bucket_is_transformers_float32_arithmetic():
    """The textbook's bucket of every distance a 514-position model meets (and far beyond) equals
    MPNetEncoder.relative_position_bucket's, whose float32 log decides bucket edges (e.g. n = 16, 32)."""
    torch = pytest.importorskip("torch")
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder
    distance = np.arange(-3000, 3001)[None, :]
    expected = MPNetEncoder.relative_position_bucket(torch.from_numpy(distance)).numpy()
    np.testing.assert_array_equal(R.relative_position_bucket(distance), expected)
    assert len(np.unique(expected)) == 31  # every bucket but 16 (distance 0 of the "after" half) is met


def test_load_tensors_takes_another_formats_tensors():
    """A reader of another format hands {checkpoint name: array}; the result is load_params'."""
    config = BertConfig.from_json(str(MPNET / "config.json"))
    tensors = load_file(str(MPNET / "model.safetensors"))
    params, manifest = load_tensors(tensors, config, np.float64, source="tiny.gguf")
    expected, _ = load_params(MPNET, config, np.float64)
    assert params.keys() == expected.keys() and all(np.array_equal(params[k], expected[k]) for k in params)
    assert manifest.files == ["tiny.gguf"] and manifest.converted == {"F32 -> float64": len(tensors)}
    assert ("encoder.layer.0.attention.attn.q.weight", "encoder.layer.0.attention.self.query.weight") \
        in manifest.renamed
    with pytest.raises(WeightsError, match=r"tiny.gguf: tensor 'pooler.dense.bias' is a list"):
        load_tensors(dict(tensors, **{"pooler.dense.bias": [0.0]}), config, source="tiny.gguf")
    del tensors["encoder.relative_attention_bias.weight"]
    with pytest.raises(WeightsError, match=r"missing tensor 'encoder.relative_attention_bias.weight' \[32, 4\]"):
        load_tensors(tensors, config, source="tiny.gguf")


def test_mpnet_config_and_positions():
    config = BertConfig.from_json(str(MPNET / "config.json"))
    assert config.family.relative_attention and not config.family.token_types
    assert (config.type_vocab_size, config.padding_idx, config.max_length) == (0, 1, 64)
    # MPNetEmbeddings hard-codes padding_idx 1, whatever pad_token_id says
    assert BertConfig.from_dict({**config.__dict__, "id2label": None, "pad_token_id": 0}).padding_idx == 1


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_mpnet_skip_padding_and_left_padding_keep_the_real_tokens_values(engine):
    """Relative positions depend on distances only: packing the real tokens (skip_padding, what
    encode runs) or padding on the left leaves them as the padded forward computes them. float64:
    the differences are rounding (measured ≤ 3e-15); 1e-12 leaves room and still catches a wrong bias."""
    model = numpybert.load(MPNET, dtype="float64", engine=engine)
    ids = np.array([[0, 7, 8, 9, 10, 11, 2], [0, 5, 6, 2, 1, 1, 1]])
    mask = (ids != 1).astype(np.int64)
    full = model(ids, mask).last_hidden_state
    packed = model(ids, mask, skip_padding=True).last_hidden_state
    np.testing.assert_allclose(packed[mask == 1], full[mask == 1], rtol=0, atol=1e-12)
    left = model(ids[1:, [4, 5, 6, 0, 1, 2, 3]], mask[1:, [4, 5, 6, 0, 1, 2, 3]]).last_hidden_state
    np.testing.assert_allclose(left[0, 3:], full[1, :4], rtol=0, atol=1e-12)
    assert full.dtype == np.float64


def test_mpnet_engine_position_bias_for_holes_in_the_mask():
    """A mask with a hole in the middle: the packed tokens are not consecutive, so the engine takes
    each sequence's own distances (group_position_bias's second branch), as the padded forward."""
    model = numpybert.load(MPNET, dtype="float64")
    ids = np.array([[0, 7, 8, 9, 10, 11, 2]])
    mask = np.array([[1, 1, 0, 1, 1, 1, 1]])
    full = model(ids, mask).last_hidden_state
    packed = model(ids, mask, skip_padding=True).last_hidden_state
    np.testing.assert_allclose(packed[mask == 1], full[mask == 1], rtol=0, atol=1e-12)
    reference = numpybert.load(MPNET, dtype="float64", engine="reference")(ids, mask).last_hidden_state
    np.testing.assert_allclose(full, reference, rtol=0, atol=1e-12)


def test_mpnet_float32_stays_float32():
    model = numpybert.load(MPNET)
    out = model(np.array([[0, 5, 6, 2]]), output_hidden_states=True, output_attentions=True)
    assert {a.dtype for a in (*out.hidden_states, *out.attentions, out.pooler_output)} == {np.dtype(np.float32)}
    assert M.group_position_bias.__module__ == "numpybert.engine.model"


def test_explain_on_mpnet_checks_its_pooler_from_the_file():
    """MPNet has a real pooler: the founding question on a second family member; the embedding row
    is rechecked without token types, at position padding_idx + 1 = 2."""
    model = numpybert.load(MPNET)  # no tokenizer: the steps of `explain` on ids (the real model: test_mpnet_real)
    batch = {"input_ids": np.array([[0, 7, 8, 2]]), "attention_mask": np.ones((1, 4), np.int64),
             "token_type_ids": np.zeros((1, 4), np.int64)}
    out = model(**batch, output_hidden_states=True)
    file = CheckpointFile(model.model_dir, model.config)
    row = check_embedding_row(file, batch, out.hidden_states[0][0, 0], model)
    assert row.agrees and "position[2]" in row.expression and "token_type" not in row.expression
    pooled = check_pooler(file, out.last_hidden_state[0, 0], out.pooler_output[0], model.dtype)
    assert pooled.agrees and "pooler.dense.weight" in pooled.inputs
    assert "MPNetClassificationHead" in model.config.family.instead_of_pooler


def test_a_checkpoint_without_the_bias_table_is_refused(tmp_path):
    tensors = load_file(str(MPNET / "model.safetensors"))
    del tensors["encoder.relative_attention_bias.weight"]
    (tmp_path / "config.json").write_text((MPNET / "config.json").read_text())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightsError, match="relative_attention_bias"):
        numpybert.load(tmp_path)
