"""keras-hub BertBackbone presets through `numpybert.load(PRESET_DIR)`, on the committed tiny preset.

tests/checkpoints/keras-tiny-bert was made by keras-hub 0.32 on the torch backend from tests/checkpoints/tiny-bert
(`python scripts/make_keras_preset.py`), with keras-hub's own sequence_output / pooled_output on fixed ids in
tests/golden/keras-tiny-bert/keras_outputs.safetensors. No keras or TensorFlow is needed here (h5py only).
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

import numpybert
from numpybert.errors import ConfigError, MissingExtraError, WeightsError, WeightsNotFoundError
from numpybert.loading import keras as keras_loading

from helpers import CHECKPOINTS, GOLDEN, ROOT, assert_one_error_line, run

PRESET = CHECKPOINTS / "keras-tiny-bert"
OUTPUTS = GOLDEN / "keras-tiny-bert" / "keras_outputs.safetensors"
# keras-hub float32 (torch backend) vs numpybert float32 on the same weights: measured 1.1e-6 (sequence_output,
# every position: keras-hub masks padded keys as transformers does) and 5.7e-7 (pooled_output) on 2026-12-06,
# float32 rounding of two different operation orders; the target is 1e-5 at real tokens.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def keras_outputs():
    return load_file(str(OUTPUTS))


def copy_preset(tmp_path, name="preset"):
    dest = tmp_path / name
    shutil.copytree(PRESET, dest)
    return dest


def edit_config(preset, **fields):
    path = preset / "config.json"
    config = json.loads(path.read_text())
    config["config"].update(fields)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_preset_outputs_equal_keras_hubs(keras_outputs, engine):
    """TF Hub's keys from numpybert equal keras-hub's BertBackbone outputs, both engines."""
    g = keras_outputs
    model = numpybert.load(PRESET, engine=engine)
    keys = model(input_word_ids=g["token_ids"], input_mask=g["padding_mask"], input_type_ids=g["segment_ids"]).tfhub()
    real = g["padding_mask"].astype(bool)
    assert keys["sequence_output"].dtype == np.float32 and keys["pooled_output"].dtype == np.float32
    assert np.abs(keys["sequence_output"] - g["sequence_output"])[real].max() <= TOLERANCE
    assert np.abs(keys["sequence_output"] - g["sequence_output"]).max() <= TOLERANCE  # padded positions too
    assert np.abs(keys["pooled_output"] - g["pooled_output"]).max() <= TOLERANCE
    assert keys["default"] is keys["pooled_output"]
    assert len(keys["encoder_outputs"]) == 2  # L, without the embedding output
    np.testing.assert_array_equal(keys["encoder_outputs"][-1], keys["sequence_output"])


def test_outputs_file_says_who_made_it():
    with safe_open(str(OUTPUTS), "np") as f:
        meta = f.metadata()
    assert meta["backend"] == "torch" and meta["keras_hub_version"] == "0.32.0"
    assert meta["activation"] == "gelu_approximate" and meta["source"] == "tests/checkpoints/tiny-bert"


def test_preset_is_the_checkpoint_it_was_converted_from_with_keras_hubs_gelu():
    """Every weight equals tiny-bert's after renaming and reshaping; only the activation differs."""
    preset, original = numpybert.load(PRESET), numpybert.load(CHECKPOINTS / "tiny-bert")
    assert preset.config.hidden_act == "gelu_new" and original.config.hidden_act == "gelu"
    assert preset.config == original.config.__class__(**{**original.config.__dict__, "hidden_act": "gelu_new"})
    assert set(preset.flat_params) == set(original.flat_params)
    for name, array in original.flat_params.items():
        np.testing.assert_array_equal(preset.flat_params[name], array, err_msg=name)


def test_manifest_lists_every_variable_with_its_mapping_and_reshape():
    manifest = numpybert.load(PRESET).manifest
    import h5py
    with h5py.File(PRESET / "model.weights.h5") as f:
        stored = []
        f.visititems(lambda name, item: stored.append(name) if isinstance(item, h5py.Dataset) else None)
    assert len(manifest.renamed) == len(stored) == 39  # 5 embeddings + 2 layers x 16 + pooler 2
    assert manifest.files == ["model.weights.h5"] and not manifest.ignored
    mapping = dict(manifest.renamed)
    assert mapping["transformer_layer_1/self_attention_layer/query/kernel [32, 4, 8]"] == \
        "encoder.layer.1.attention.self.query.weight ([H, N, D] -> [H, N·D] -> [N·D, H])"
    assert mapping["transformer_layer_0/self_attention_layer/attention_output/kernel [4, 8, 32]"] == \
        "encoder.layer.0.attention.output.dense.weight ([N, D, H] -> [N·D, H] -> [H, N·D])"
    assert mapping["transformer_layer_0/self_attention_layer/key/bias [4, 8]"] == \
        "encoder.layer.0.attention.self.key.bias ([N, D] -> [N·D])"
    assert mapping["pooled_dense/kernel [32, 32]"] == "pooler.dense.weight ([in, out] -> [out, in])"
    assert mapping["embeddings_layer_norm/gamma [32]"] == "embeddings.LayerNorm.weight"
    assert "model.weights.h5" in str(manifest) and "token_embedding/embeddings [99, 32]" in str(manifest)


def test_every_table_row_is_used_by_the_tiny_preset():
    """The name table has no dead rows: each (keras path, checkpoint name) occurs in the manifest."""
    names = {b.split(" (")[0] for _, b in numpybert.load(PRESET).manifest.renamed}
    for _, name, _ in keras_loading.KERAS_NAMES:
        assert name.format(i=0) in names


def test_float64_load_converts_every_tensor():
    model = numpybert.load(PRESET, dtype="float64")
    assert model.manifest.converted == {"F32 -> float64": 39}
    assert model(input_ids=np.array([[2, 7, 8, 3]])).last_hidden_state.dtype == np.float64


def test_the_presets_vocabulary_and_lowercase_flag_are_used():
    model = numpybert.load(PRESET)
    vocabulary = (PRESET / "assets" / "tokenizer" / "vocabulary.txt").read_text().split()
    batch = model.tokenize(["The CAT sat on the mat"])
    tokens = [vocabulary[i] for i in batch["input_ids"][0]]
    assert tokens == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]  # lowercase: true in tokenizer.json
    assert model.tokenizer.source.endswith("assets/tokenizer/vocabulary.txt")


def test_exact_gelu_configured_is_read(tmp_path):
    preset = copy_preset(tmp_path)
    edit_config(preset, activation="gelu")
    assert numpybert.load(preset).config.hidden_act == "gelu"
    edit_config(preset, activation="swish")
    with pytest.raises(ConfigError, match=r"config.json: config field activation='swish'"):
        numpybert.load(preset)


def test_refusals_name_the_culprit(tmp_path):
    preset = copy_preset(tmp_path, "no-weights")
    (preset / "model.weights.h5").unlink()
    with pytest.raises(WeightsNotFoundError, match="no-weights: no model.weights.h5"):
        numpybert.load(preset)
    preset = copy_preset(tmp_path, "corrupt")
    (preset / "model.weights.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError, match=r"corrupt/model.weights.h5: not a Keras weights file"):
        numpybert.load(preset)
    preset = copy_preset(tmp_path, "task")
    config = json.loads((preset / "config.json").read_text())
    (preset / "config.json").write_text(json.dumps(dict(config, class_name="GPT2Backbone")))
    with pytest.raises(ConfigError, match="keras-hub 'GPT2Backbone' preset; numpybert reads BertBackbone"):
        numpybert.load(preset)
    preset = copy_preset(tmp_path, "missing-field")
    config = json.loads((preset / "config.json").read_text())
    del config["config"]["num_heads"]
    (preset / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="num_heads missing"):
        numpybert.load(preset)


def test_a_variable_of_the_wrong_shape_or_unknown_is_refused_by_the_strict_loader(tmp_path):
    import h5py
    preset = copy_preset(tmp_path)
    with h5py.File(preset / "model.weights.h5", "r+") as f:
        group = f["layers/dense/vars"]  # pooled_dense
        del group["1"]
        group["1"] = np.zeros(31, np.float32)
    with pytest.raises(WeightsError, match=r"tensor 'pooler.dense.bias' has shape \[31\], config.json implies \[32\]"):
        numpybert.load(preset)
    preset = copy_preset(tmp_path, "extra")
    with h5py.File(preset / "model.weights.h5", "r+") as f:
        f["layers/dense/vars"]["2"] = np.zeros(3, np.float32)
    with pytest.raises(WeightsError, match=r"unexpected tensor 'pooled_dense/2'"):
        numpybert.load(preset)


def test_without_h5py_one_line_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingExtraError, match=r"needs h5py .*pip install -e '\.\[keras\]'"):
        numpybert.load(PRESET)
    code, out, err = run(capsys, "info", "--model", str(PRESET))
    assert code == 2 and not out
    assert_one_error_line(err, "info", "pip install -e '.[keras]'")


def test_import_numpybert_and_loading_a_safetensors_model_never_import_h5py():
    code = ("import sys, numpybert; numpybert.load('tests/checkpoints/tiny-bert'); "
            "sys.exit(bool([m for m in ('h5py', 'keras', 'keras_hub') if m in sys.modules]))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_info_and_encode_work_on_a_preset(capsys):
    code, out, _ = run(capsys, "info", "--model", str(PRESET))
    assert code == 0 and "act=gelu_new" in out and "transformer_layer_0/self_attention_layer/query/kernel" in out
    code, out, _ = run(capsys, "encode", "the cat sat", "--output", "tfhub", "--format", "json", "--model", str(PRESET))
    assert code == 0
    keys = json.loads(out)
    assert {"sequence_output", "pooled_output", "default", "encoder_outputs"} <= set(json.dumps(keys).split('"'))
