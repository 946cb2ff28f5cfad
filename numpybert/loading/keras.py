"""keras-hub BERT presets (TF Hub's BERTs today): config.json + model.weights.h5 -> what the strict loader reads.

A keras-hub preset directory (`BertBackbone.save_to_preset(DIR)`, or a `BertTextClassifier` preset, whose
config.json is its backbone's) holds config.json `{"module": "keras_hub...", "class_name": "BertBackbone",
"config": {vocabulary_size, num_layers, ...}}`, model.weights.h5 (Keras 3's HDF5 layout: one group per
layer, `vars/0`, `vars/1` in the order the layer created them, the layer's name in the group's `name`
attribute) and, with a tokenizer, tokenizer.json (a Keras config, not Hugging Face's) and
assets/tokenizer/vocabulary.txt.

`read_preset(dir)` returns (a Hugging Face style config dict, {checkpoint name: (dtype, array, file)}):
the tables below rename and reshape every variable, and numpybert's one strict loader
(`loading.checkpoint.load_tensors`) checks them as it checks a safetensors file. `manifest_notes` lists
each mapping and reshape for `model.manifest`. h5py (the `keras` extra) is imported only here, on use.
"""

import os

import numpy as np

from ..errors import ConfigError, MissingExtraError, NumpybertError, WeightsError, WeightsNotFoundError, install_hint
from . import family
from .config import read_json_object

INSTALL = install_hint("keras")
WEIGHTS_FILE = "model.weights.h5"
VOCABULARY = os.path.join("assets", "tokenizer", "vocabulary.txt")
BACKBONES = ("BertBackbone",)  # config.json's class_name of the presets read here

# keras-hub BertBackbone config field -> Hugging Face BertConfig field.
CONFIG_FIELDS = {"vocabulary_size": "vocab_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
                 "hidden_dim": "hidden_size", "intermediate_dim": "intermediate_size",
                 "max_sequence_length": "max_position_embeddings", "num_segments": "type_vocab_size"}
# What bert_backbone.py fixes in code rather than in config.json: its TransformerEncoders use
# `activation=gelu_approximate` (the tanh form, transformers' gelu_new) and LayerNorm epsilon 1e-12.
FIXED_FIELDS = {"model_type": family.KERAS_BACKBONE, "hidden_act": "gelu_new", "layer_norm_eps": 1e-12, "pad_token_id": 0}
# keras-hub's BertBackbone has no activation argument; a converter that built its encoder with the exact
# GELU says so with config "activation": keras' name -> transformers' hidden_act.
ACTIVATIONS = {"gelu_approximate": "gelu_new", "gelu": "gelu"}

# The NAME MAP: keras variable path ({i} = layer) -> (checkpoint name, how the array becomes torch's layout).
# Shapes: H hidden, N heads, D head size (N·D = H), I intermediate. Keras Dense kernels are [in, out],
# torch Linear weights [out, in]; MultiHeadAttention keeps the heads as their own axis.
KERAS_NAMES = (
    ("token_embedding/embeddings", "embeddings.word_embeddings.weight", "copy"),
    ("position_embedding/embeddings", "embeddings.position_embeddings.weight", "copy"),
    ("segment_embedding/embeddings", "embeddings.token_type_embeddings.weight", "copy"),
    ("embeddings_layer_norm/gamma", "embeddings.LayerNorm.weight", "copy"),
    ("embeddings_layer_norm/beta", "embeddings.LayerNorm.bias", "copy"),
    ("transformer_layer_{i}/self_attention_layer/query/kernel", "encoder.layer.{i}.attention.self.query.weight", "heads_in"),
    ("transformer_layer_{i}/self_attention_layer/query/bias", "encoder.layer.{i}.attention.self.query.bias", "heads_bias"),
    ("transformer_layer_{i}/self_attention_layer/key/kernel", "encoder.layer.{i}.attention.self.key.weight", "heads_in"),
    ("transformer_layer_{i}/self_attention_layer/key/bias", "encoder.layer.{i}.attention.self.key.bias", "heads_bias"),
    ("transformer_layer_{i}/self_attention_layer/value/kernel", "encoder.layer.{i}.attention.self.value.weight", "heads_in"),
    ("transformer_layer_{i}/self_attention_layer/value/bias", "encoder.layer.{i}.attention.self.value.bias", "heads_bias"),
    ("transformer_layer_{i}/self_attention_layer/attention_output/kernel",
     "encoder.layer.{i}.attention.output.dense.weight", "heads_out"),
    ("transformer_layer_{i}/self_attention_layer/attention_output/bias", "encoder.layer.{i}.attention.output.dense.bias",
     "copy"),
    ("transformer_layer_{i}/self_attention_layer_norm/gamma", "encoder.layer.{i}.attention.output.LayerNorm.weight", "copy"),
    ("transformer_layer_{i}/self_attention_layer_norm/beta", "encoder.layer.{i}.attention.output.LayerNorm.bias", "copy"),
    ("transformer_layer_{i}/feedforward_intermediate_dense/kernel", "encoder.layer.{i}.intermediate.dense.weight",
     "transpose"),
    ("transformer_layer_{i}/feedforward_intermediate_dense/bias", "encoder.layer.{i}.intermediate.dense.bias", "copy"),
    ("transformer_layer_{i}/feedforward_output_dense/kernel", "encoder.layer.{i}.output.dense.weight", "transpose"),
    ("transformer_layer_{i}/feedforward_output_dense/bias", "encoder.layer.{i}.output.dense.bias", "copy"),
    ("transformer_layer_{i}/feedforward_layer_norm/gamma", "encoder.layer.{i}.output.LayerNorm.weight", "copy"),
    ("transformer_layer_{i}/feedforward_layer_norm/beta", "encoder.layer.{i}.output.LayerNorm.bias", "copy"),
    ("pooled_dense/kernel", "pooler.dense.weight", "transpose"),
    ("pooled_dense/bias", "pooler.dense.bias", "copy"),
)
RESHAPES = {  # how: (what it does, in the manifest's words; the function)
    "copy": ("", lambda a: a),
    "transpose": ("[in, out] -> [out, in]", lambda a: a.T),
    "heads_in": ("[H, N, D] -> [H, N·D] -> [N·D, H]", lambda a: a.reshape(a.shape[0], -1).T),
    "heads_bias": ("[N, D] -> [N·D]", lambda a: a.reshape(-1)),
    "heads_out": ("[N, D, H] -> [N·D, H] -> [H, N·D]", lambda a: a.reshape(-1, a.shape[-1]).T),
}
# A Keras layer's variables in creation order (`vars/0`, `vars/1`), by the kind of layer holding them.
VARIABLE_NAMES = {"embedding": ("embeddings",), "layer_norm": ("gamma", "beta"), "": ("kernel", "bias")}
H5_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64"}  # as the loader names them


def h5py():
    """h5py, imported on first use: the optional `keras` extra."""
    try:
        import h5py
    except ImportError as e:
        raise MissingExtraError(f"reading a keras-hub preset (model.weights.h5) needs h5py ({e}); install the keras "
                                f"extra: {INSTALL}") from None
    return h5py


def keras_config(model_dir):
    """config.json of a keras-hub preset ({"module", "class_name", "config"}), or None for any other directory."""
    path = os.path.join(os.fspath(model_dir), "config.json")
    if not os.path.isfile(path):
        return None
    try:
        data = read_json_object(path, "config.json")
    except NumpybertError:  # not readable here: the transformers path reports it, in its own words
        return None
    return data if str(data.get("module", "")).startswith("keras_hub") else None


def is_preset(model_dir) -> bool:
    return keras_config(model_dir) is not None


def hf_config(preset: dict, source: str) -> dict:
    """A keras-hub BertBackbone config.json as transformers' BertConfig fields (the ones numpybert reads)."""
    if preset.get("class_name") not in BACKBONES or not isinstance(preset.get("config"), dict):
        raise ConfigError(f"{source}: a keras-hub {preset.get('class_name')!r} preset; numpybert reads "
                          f"{', '.join(BACKBONES)} presets (a BertTextClassifier preset's config.json is its backbone's)")
    fields = preset["config"]
    missing = [k for k in CONFIG_FIELDS if k not in fields]
    if missing:
        raise ConfigError(f"{source}: config field(s) {', '.join(missing)} missing from the BertBackbone config")
    config = dict(FIXED_FIELDS, **{hf: fields[k] for k, hf in CONFIG_FIELDS.items()})
    activation = fields.get("activation", "gelu_approximate")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"{source}: config field activation={activation!r}: expected one of {tuple(ACTIVATIONS)}")
    config["hidden_act"] = ACTIVATIONS[activation]
    dtype = fields.get("dtype")
    policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if policy not in (None, "float32", "float64", "float16"):
        raise ConfigError(f"{source}: dtype policy {policy!r}: numpybert reads float32, float16 and float64 presets")
    return config


def variables(path) -> dict:
    """Every variable of a Keras 3 model.weights.h5 by its Keras path ("transformer_layer_0/.../kernel")."""
    try:
        f = h5py().File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: not a Keras weights file ({e})") from None
    found = {}
    with f:
        if "layers" not in f:
            raise WeightsError(f"{path}: no 'layers' group: not a Keras 3 model.weights.h5")

        def visit(group, names):
            for key, item in group.items():
                if key == "vars":
                    kind = next(k for k in VARIABLE_NAMES if k in os.path.basename(group.name))
                    var = VARIABLE_NAMES[kind]
                    for index, array in item.items():
                        if not hasattr(array, "dtype"):
                            raise WeightsError(f"{path}: {array.name} is a group; Keras stores a variable there")
                        name = var[int(index)] if index.isdigit() and int(index) < len(var) else index
                        found["/".join(names + [name])] = (array[()], f"{array.name}")
                elif hasattr(item, "items"):
                    name = item["vars"].attrs.get("name", key) if "vars" in item else key
                    visit(item, names + [str(name)])
        visit(f["layers"], [])
    return found


def read_preset(model_dir) -> tuple:
    """(transformers-style config dict, {checkpoint name: (dtype str, array, file)}, manifest lines)."""
    model_dir = os.fspath(model_dir)
    config = hf_config(keras_config(model_dir), os.path.join(model_dir, "config.json"))
    path = os.path.join(model_dir, WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise WeightsNotFoundError(f"{model_dir}: no {WEIGHTS_FILE} (a keras-hub preset keeps its weights there)")
    found = variables(path)
    tensors, notes = {}, []
    for keras_path, name, how in expand(config["num_hidden_layers"]):
        if keras_path not in found:
            continue  # the strict loader reports the checkpoint name as missing
        array, where = found.pop(keras_path)
        if array.dtype not in H5_DTYPES:
            raise WeightsError(f"{path}: variable {keras_path} ({where}) has dtype {array.dtype}; numpybert reads "
                               "float16, float32 and float64")
        what, reshape = RESHAPES[how]
        tensors[name] = (H5_DTYPES[array.dtype], np.ascontiguousarray(reshape(array)), path)
        notes.append((f"{keras_path} {list(array.shape)}", f"{name}" + (f" ({what})" if what else "")))
    for keras_path, (array, where) in found.items():  # unknown variables: the strict loader refuses them
        tensors[keras_path] = (H5_DTYPES.get(array.dtype, "F32"), array, path)
    return config, tensors, notes


def task_note(model_dir):
    """(file, why) for the manifest when the preset is a task's (task.json: e.g. BertTextClassifier), else None."""
    task = read_json_object(os.path.join(os.fspath(model_dir), "task.json"), "task.json", absent={})
    if not task:
        return None
    return "task.weights.h5", f"the {task.get('class_name', 'task')} head of task.json: not loaded (the backbone only)"


def expand(num_layers: int) -> list:
    """KERAS_NAMES with {i} filled in, in forward order: the embeddings, each layer's rows, the pooler."""
    per_layer = [row for row in KERAS_NAMES if "{i}" in row[0]]
    first = KERAS_NAMES.index(per_layer[0])
    rows = list(KERAS_NAMES[:first])
    rows += [(k.format(i=i), n.format(i=i), how) for i in range(num_layers) for k, n, how in per_layer]
    return rows + list(KERAS_NAMES[first + len(per_layer):])


def tokenizer_files(model_dir):
    """(vocabulary.txt path, tokenizer_config-style flags) of a keras-hub preset's BertTokenizer, or None."""
    vocab = os.path.join(os.fspath(model_dir), VOCABULARY)
    if keras_config(model_dir) is None or not os.path.isfile(vocab):
        return None
    keras_tokenizer = read_json_object(os.path.join(model_dir, "tokenizer.json"), "tokenizer.json", absent={})
    fields = keras_tokenizer.get("config", {}) if isinstance(keras_tokenizer.get("config"), dict) else {}
    return vocab, {"do_lower_case": bool(fields.get("lowercase", False)),
                   "strip_accents": bool(fields.get("strip_accents", False))}
