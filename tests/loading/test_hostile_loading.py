"""Hostile files through `numpybert.load`: each gets a numpybert error naming the culprit.

Every bad file is built in tmp_path from a tiny valid checkpoint (tests/helpers.py).
Each test asserts the error class (a NumpybertError that is also the matching built-in)
and that the message names the file, tensor or config field at fault.
"""

import contextlib
import errno
import io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest

import numpybert
from numpybert import ConfigError, NumpybertError, WeightsError, WeightsNotFoundError
from numpybert.loading.checkpoint import HEADER_CAP, _read_exactly, read_safetensors
from helpers import join, split, TINY_CONFIG, tiny_tensors, write_model


@pytest.fixture
def model_dir(tmp_path):
    return write_model(tmp_path / "tiny")


def refused(model_dir, error, *fragments):
    """Load, expect `error`, check it is a NumpybertError whose message holds every fragment."""
    with pytest.raises(error) as info:
        numpybert.load(model_dir)
    message = str(info.value)
    assert isinstance(info.value, NumpybertError)
    assert "\n" not in message, "an error is one line"
    for fragment in fragments:
        assert str(fragment) in message
    return message


@contextlib.contextmanager
def no_hang(seconds=5):
    """Fail (instead of hanging the suite) if the body blocks, e.g. opening a FIFO."""
    def timeout(*_):
        raise TimeoutError(f"blocked for {seconds} s")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def corrupt(model_dir, edit):
    """Rewrite model.safetensors as edit(header, data) -> bytes."""
    path = model_dir / "model.safetensors"
    header, data = split(path.read_bytes())
    path.write_bytes(edit(header, data))
    return path


def first_tensor(header):
    return next(name for name in header if name != "__metadata__")


# ----------------------------------------------------------------------------- the valid baseline

def test_the_tiny_checkpoint_loads(model_dir):
    model = numpybert.load(model_dir)
    out = model(np.array([[2, 5, 7, 3]]))
    assert out.last_hidden_state.shape == (1, 4, 32) and np.isfinite(out.last_hidden_state).all()


# ----------------------------------------------------------------------------- paths and file kinds

def test_missing_directory_says_not_found(tmp_path):
    refused(tmp_path / "nope", WeightsNotFoundError, "not found", "nope")


def test_hub_name_is_not_looked_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused("bert-base-uncased", WeightsNotFoundError, "not found", "bert-base-uncased")


def test_directory_without_config(model_dir):
    (model_dir / "config.json").unlink()
    refused(model_dir, WeightsNotFoundError, "config.json", "not found")


def test_directory_without_weights(model_dir):
    (model_dir / "model.safetensors").unlink()
    refused(model_dir, WeightsNotFoundError, "model.safetensors", str(model_dir))


@pytest.mark.parametrize("target", ["model.safetensors", "config.json", "model.safetensors.index.json"])
def test_fifo_does_not_hang(model_dir, target):
    if target == "model.safetensors.index.json":
        (model_dir / "model.safetensors").unlink()
    else:
        (model_dir / target).unlink()
    os.mkfifo(model_dir / target)
    with no_hang():
        refused(model_dir, NumpybertError, target, "FIFO")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_device_in_place_of_weights(model_dir, device):
    (model_dir / "model.safetensors").unlink()
    os.symlink(device, model_dir / "model.safetensors")
    with no_hang():
        refused(model_dir, WeightsError, "model.safetensors", "character device")


def test_directory_in_place_of_weights(model_dir):
    (model_dir / "model.safetensors").unlink()
    (model_dir / "model.safetensors").mkdir()
    refused(model_dir, WeightsError, "model.safetensors", "directory")


def test_directory_in_place_of_config(model_dir):
    (model_dir / "config.json").unlink()
    (model_dir / "config.json").mkdir()
    refused(model_dir, ConfigError, "config.json", "directory")


def test_symlink_loop(model_dir):
    (model_dir / "model.safetensors").unlink()
    os.symlink("model.safetensors", model_dir / "model.safetensors")
    refused(model_dir, WeightsError, "model.safetensors", "symbolic links")


def test_dangling_symlink(model_dir):
    (model_dir / "model.safetensors").unlink()
    os.symlink("gone.safetensors", model_dir / "model.safetensors")
    refused(model_dir, WeightsNotFoundError, "model.safetensors", "not found")


def test_permission_denied_is_reported(model_dir, monkeypatch):
    """Simulated: the suite may run as root, where chmod 000 does not block reads. This checks
    how an EACCES from open() is reported, not that the OS denies the read."""
    real_open = os.open

    def deny(path, *args, **kwargs):
        if str(path).endswith("model.safetensors"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", deny)
    refused(model_dir, WeightsError, "model.safetensors", "Permission denied")


def test_weights_file_passed_as_the_directory(model_dir):
    refused(model_dir / "model.safetensors", NumpybertError, "model.safetensors")


# ----------------------------------------------------------------------------- pickle checkpoints

class _Payload:
    """Unpickling this would create a file: proves the loader never unpickles."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_checkpoint_is_refused_and_never_opened(model_dir):
    (model_dir / "model.safetensors").unlink()
    marker = model_dir / "pwned"
    (model_dir / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    refused(model_dir, WeightsError, "pytorch_model.bin", "pickle")
    assert not marker.exists()


# ----------------------------------------------------------------------------- the safetensors format

@pytest.mark.parametrize("keep", [0, 5, 8, 20, -1])
def test_truncated_file(model_dir, keep):
    path = model_dir / "model.safetensors"
    raw = path.read_bytes()
    path.write_bytes(raw[:keep] if keep >= 0 else raw[:-4])
    refused(model_dir, WeightsError, "model.safetensors")


def test_empty_file(model_dir):
    (model_dir / "model.safetensors").write_bytes(b"")
    refused(model_dir, WeightsError, "model.safetensors", "0 bytes")


def test_header_length_larger_than_file(model_dir):
    path = model_dir / "model.safetensors"
    raw = path.read_bytes()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw[8:])
    refused(model_dir, WeightsError, "model.safetensors", "header length", "larger than the file")


@pytest.mark.parametrize("length", [HEADER_CAP + 1, 2**63, 2**64 - 1])
def test_header_length_above_cap(model_dir, length):
    path = model_dir / "model.safetensors"
    path.write_bytes(struct.pack("<Q", length) + path.read_bytes()[8:])
    refused(model_dir, WeightsError, "model.safetensors", str(length), "cap")


def test_header_cap_is_sane():
    assert 100_000 <= HEADER_CAP <= 16 * 2**20  # bert-large's header is ~50 KB


@pytest.mark.parametrize("header", [b"{not json", b"\xff\xfe{}", b"[1, 2]", b"null", b"[" * 100_000,
                                    b'{"a": 1' + b"0" * 5000 + b"}"],
                         ids=["syntax", "not-utf8", "array", "null", "deep-nesting", "huge-int"])
def test_malformed_header(model_dir, header):
    (model_dir / "model.safetensors").write_bytes(join(header))
    refused(model_dir, WeightsError, "model.safetensors", "header")


def test_duplicate_tensor_names(model_dir):
    def duplicate(header, data):
        name = first_tensor(header)
        text = json.dumps(header)
        entry = json.dumps({name: header[name]})[1:-1]
        return join((text[:-1] + ", " + entry + "}").encode(), data)
    path = corrupt(model_dir, duplicate)
    name = first_tensor(split(path.read_bytes())[0])
    refused(model_dir, WeightsError, "model.safetensors", repr(name), "twice")


@pytest.mark.parametrize("metadata", [[1, 2], {"format": 3}, "pt", {"a": None}])
def test_metadata_must_map_str_to_str(model_dir, metadata):
    corrupt(model_dir, lambda h, d: join(dict(h, __metadata__=metadata), d))
    refused(model_dir, WeightsError, "model.safetensors", "__metadata__")


def edit_entry(model_dir, field, value):
    """Set header[first tensor][field] = value; returns the tensor's name."""
    names = []

    def edit(header, data):
        name = first_tensor(header)
        names.append(name)
        header[name] = dict(header[name], **{field: value}) if field else value
        return join(header, data)
    corrupt(model_dir, edit)
    return names[0]


@pytest.mark.parametrize("value", [[0, 10**9], [-4, 8], [8, 4], [0], [0, 1, 2], "0-8", [0.0, 8.0], [False, True],
                                   None, [0, 2**64]])
def test_bad_data_offsets(model_dir, value):
    name = edit_entry(model_dir, "data_offsets", value)
    refused(model_dir, WeightsError, "model.safetensors", repr(name), "data_offsets")


def test_overlapping_offsets(model_dir):
    names = []

    def overlap(header, data):
        tensors = sorted((e["data_offsets"], n) for n, e in header.items() if n != "__metadata__")
        (b1, e1), first = tensors[0]
        (_, e2), second = tensors[1]
        header[second]["data_offsets"] = [b1, b1 + e2 - tensors[1][0][0]]  # starts where the first starts
        names.extend([first, second])
        return join(header, data)
    corrupt(model_dir, overlap)
    message = refused(model_dir, WeightsError, "model.safetensors", "overlap")
    assert repr(names[0]) in message or repr(names[1]) in message


def test_gap_in_data_section(model_dir):
    def gap(header, data):
        for entry in (e for n, e in header.items() if n != "__metadata__"):
            entry["data_offsets"] = [entry["data_offsets"][0] + 4, entry["data_offsets"][1] + 4]
        return join(header, bytes(4) + data)
    corrupt(model_dir, gap)
    refused(model_dir, WeightsError, "model.safetensors", "4 unused bytes before tensor")


def test_trailing_bytes(model_dir):
    corrupt(model_dir, lambda h, d: join(h, d + bytes(16)))
    refused(model_dir, WeightsError, "model.safetensors", "16 bytes after the last tensor")


@pytest.mark.parametrize("dtype", ["F8_E4M3", "F8_E5M2", "F4", "F6_E2M3", "E8M0", "C64", "U64", "float32", "",
                                   7, None, ["F32"], {"F32": 1}])
def test_unsupported_dtype(model_dir, dtype):
    name = edit_entry(model_dir, "dtype", dtype)
    refused(model_dir, WeightsError, "model.safetensors", repr(name), "dtype", repr(dtype))


@pytest.mark.parametrize("shape", [[2**40, 2**40], [2**64, 2**64, 0], [-1, 5], [3.0], "32", None, [[1]], [True]])
def test_bad_shape(model_dir, shape):
    name = edit_entry(model_dir, "shape", shape)
    refused(model_dir, WeightsError, "model.safetensors", repr(name), "shape")


@pytest.mark.parametrize("entry", [[], "x", None, {"dtype": "F32", "shape": [1]},
                                   {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}])
def test_bad_header_entry(model_dir, entry):
    name = edit_entry(model_dir, None, entry)
    refused(model_dir, WeightsError, "model.safetensors", repr(name))


def test_huge_shape_with_zero_bytes_does_not_allocate(tmp_path):
    """2**40 · 2**40 overflows int64 to 0, which would match a 0-byte tensor: must be refused."""
    path = tmp_path / "x.safetensors"
    path.write_bytes(join({"big": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 0]}}))
    with pytest.raises(WeightsError, match="'big'"):
        read_safetensors(path)


# ----------------------------------------------------------------------------- dtypes and values

def replace_tensor(model_dir, name, array):
    tensors = tiny_tensors()
    tensors[name] = array
    write_model(model_dir, tensors)


@pytest.mark.parametrize("dtype, stored", [(np.int64, "I64"), (np.int32, "I32"), (np.bool_, "BOOL"),
                                           (np.uint8, "U8")])
def test_integer_or_bool_float_weight(model_dir, dtype, stored):
    name = "encoder.layer.1.output.dense.bias"
    replace_tensor(model_dir, name, np.ones(32, dtype))
    refused(model_dir, WeightsError, repr(name), stored, "float")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_non_finite_weights(model_dir, bad, dtype):
    name = "encoder.layer.0.attention.self.key.weight"
    weight = tiny_tensors()[name].astype(dtype)
    weight[3, 7] = bad
    replace_tensor(model_dir, name, weight)
    refused(model_dir, WeightsError, repr(name), "NaN or Inf", "[3, 7]")


def test_non_finite_bf16(model_dir):
    name = "embeddings.LayerNorm.bias"
    bits = np.zeros(32, np.uint16)
    bits[5] = 0x7FC0  # bfloat16 NaN
    replace_tensor(model_dir, name, bits)
    corrupt(model_dir, lambda h, d: join(dict(h, **{name: dict(h[name], dtype="BF16")}), d))
    refused(model_dir, WeightsError, repr(name), "NaN or Inf", "[5]")


def test_float64_overflowing_float32(model_dir):
    name = "pooler.dense.bias"
    bias = np.zeros(32)
    bias[1] = 1e300
    replace_tensor(model_dir, name, bias)
    refused(model_dir, WeightsError, repr(name), "F64 -> float32")
    assert numpybert.load(model_dir, dtype="float64").flat_params[name][1] == 1e300


# ----------------------------------------------------------------------------- tensors vs config.json

def test_missing_tensor(model_dir):
    tensors = tiny_tensors()
    del tensors["encoder.layer.1.attention.self.value.bias"]
    write_model(model_dir, tensors)
    refused(model_dir, WeightsError, "missing tensor 'encoder.layer.1.attention.self.value.bias'")


def test_unexpected_tensor(model_dir):
    write_model(model_dir, dict(tiny_tensors(), **{"encoder.layer.2.output.dense.bias": np.zeros(32, np.float32)}))
    refused(model_dir, WeightsError, "unexpected tensor 'encoder.layer.2.output.dense.bias'")


def test_misshaped_tensor(model_dir):
    tensors = dict(tiny_tensors(), **{"embeddings.word_embeddings.weight": np.zeros((98, 32), np.float32)})
    write_model(model_dir, tensors)
    refused(model_dir, WeightsError, "'embeddings.word_embeddings.weight'", "[98, 32]", "[99, 32]")


def test_same_tensor_under_two_spellings(model_dir):
    tensors = tiny_tensors()
    tensors["bert.embeddings.LayerNorm.gamma"] = tensors["embeddings.LayerNorm.weight"]
    write_model(model_dir, tensors)
    refused(model_dir, WeightsError, "'embeddings.LayerNorm.weight'", "twice")


def test_many_problems_stay_one_line(model_dir):
    write_model(model_dir, config=dict(TINY_CONFIG, hidden_size=64))
    message = refused(model_dir, WeightsError, "does not match config.json", "more")
    assert len(message) < 2000


# ----------------------------------------------------------------------------- config.json

def write_config(model_dir, text):
    (model_dir / "config.json").write_text(text)


@pytest.mark.parametrize("text, fragment", [
    ("{bad json", "not valid JSON"), ("[1, 2]", "JSON object"), ("", "not valid JSON"),
    ("[" * 100_000, "not valid JSON"), ('{"hidden_act": "gelu", "hidden_act": "relu"}', "'hidden_act' appears twice"),
])
def test_invalid_config_json(model_dir, text, fragment):
    write_config(model_dir, text)
    refused(model_dir, ConfigError, "config.json", fragment)


@pytest.mark.parametrize("field, value, fragment", [
    ("num_attention_heads", 5, "not divisible"), ("hidden_act", "swish", "hidden_act='swish'"),
    ("hidden_act", ["gelu"], "hidden_act=['gelu']"),
    ("position_embedding_type", "relative_key", "position_embedding_type='relative_key'"),
    ("hidden_size", 32.0, "hidden_size=32.0"), ("num_hidden_layers", 0, "num_hidden_layers=0"),
    ("num_hidden_layers", 10**9, "num_hidden_layers=1000000000"),
    ("vocab_size", True, "vocab_size=True"), ("layer_norm_eps", float("nan"), "layer_norm_eps=nan"),
    ("layer_norm_eps", "1e-12", "layer_norm_eps='1e-12'"), ("model_type", "albert", "model_type 'albert' is not supported: ALBERT"),
    ("model_type", "gpt2", "model_type='gpt2'"), ("model_type", ["bert"], "model_type=['bert']"),
    ("is_decoder", True, "is_decoder"), ("id2label", {"zero": "A"}, "id2label"), ("id2label", ["A"], "id2label"),
    ("id2label", {"0": "A", "2": "B"}, "id2label"), ("pad_token_id", "0", "pad_token_id='0'"),
])
def test_unsupported_config_field(model_dir, field, value, fragment):
    write_config(model_dir, json.dumps(dict(TINY_CONFIG, **{field: value})))
    refused(model_dir, ConfigError, "config.json", fragment)


def test_oversized_config(model_dir):
    write_config(model_dir, json.dumps(dict(TINY_CONFIG, padding="x" * 5_000_000)))
    refused(model_dir, ConfigError, "config.json", "bytes")


# ----------------------------------------------------------------------------- sharded checkpoints

def write_shards(model_dir, index=None):
    """Split the tiny checkpoint into two shards with model.safetensors.index.json."""
    import safetensors.numpy
    tensors = tiny_tensors()
    names = sorted(tensors)
    halves = {"model-1.safetensors": names[:10], "model-2.safetensors": names[10:]}
    for file, group in halves.items():
        safetensors.numpy.save_file({n: tensors[n] for n in group}, str(model_dir / file))
    (model_dir / "model.safetensors").unlink()
    weight_map = {n: f for f, group in halves.items() for n in group}
    index = {"metadata": {}, "weight_map": weight_map} if index is None else index(weight_map)
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    return weight_map


@pytest.mark.parametrize("index, fragment", [
    (lambda m: [m], "weight_map"), (lambda m: {"weight_map": "x"}, "weight_map"),
    (lambda m: {"weight_map": dict(m, extra=["a"])}, "shard file name"),
    (lambda m: {"weight_map": dict(m, extra="../model-1.safetensors")}, "'../model-1.safetensors'"),
    (lambda m: {"weight_map": dict(m, extra="model-3.safetensors")}, "model-3.safetensors"),
    (lambda m: {"weight_map": dict(m, extra="model-1.safetensors")}, "'extra'"),
    (lambda m: {"weight_map": {n: "model-2.safetensors" if n == min(m) else f for n, f in m.items()}},
     "not listed for this shard"),
    (lambda m: {"weight_map": {n: "model-1.safetensors" for n in m}}, "no shard holds"),
])
def test_bad_shard_index(model_dir, index, fragment):
    write_shards(model_dir, index)
    refused(model_dir, NumpybertError, fragment)


# ----------------------------------------------------------------------------- the file changes under us

def test_truncating_after_load_does_not_affect_the_model(model_dir):
    """The reader copies the data section into memory it owns (no memory map): a file
    truncated or rewritten after load() cannot SIGBUS the process or change the weights."""
    model = numpybert.load(model_dir)
    ids = np.array([[2, 11, 17, 3]])
    before = model(ids).last_hidden_state
    path = model_dir / "model.safetensors"
    with open(path, "r+b") as f:
        f.truncate(100)
    after = model(ids).last_hidden_state
    np.testing.assert_array_equal(before, after)
    path.write_bytes(bytes(200))
    np.testing.assert_array_equal(model(ids).last_hidden_state, before)


def test_file_shrinking_while_read_is_detected():
    """A file that shrinks between fstat and the read gives a short read: detected, not zero-filled."""
    with pytest.raises(WeightsError, match="x.safetensors: the file changed size while being read"):
        _read_exactly(io.BytesIO(bytes(10)), 64, "x.safetensors")


def test_loader_does_not_use_the_safetensors_library(model_dir):
    """numpybert reads safetensors itself (the library keeps duplicates, hangs on FIFOs, can SIGBUS):
    importing numpybert and loading a model must not import it."""
    code = ("import sys, numpybert; numpybert.load(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'safetensors'))")
    result = subprocess.run([sys.executable, "-c", code, str(model_dir)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_incomplete_head_is_refused_or_dropped_whole(model_dir):
    """Half a pooler is an error; with strict=False the whole pooler is dropped (never half a head)."""
    tensors = tiny_tensors()
    del tensors["pooler.dense.bias"]
    write_model(model_dir, tensors)
    refused(model_dir, WeightsError, "missing tensor 'pooler.dense.bias'", "pooler is incomplete")
    model = numpybert.load(model_dir, strict=False)
    assert not model.has_pooler and "pooler.dense.weight" not in model.flat_params
    with pytest.raises(numpybert.MissingWeightsError, match="no pooler"):
        model(np.array([[2, 3]])).pooler_output


def test_strict_false_still_needs_every_encoder_tensor(model_dir):
    tensors = tiny_tensors()
    tensors["encoder.layer.0.output.dense.bias"] = np.zeros(31, np.float32)
    tensors["extra.weight"] = np.zeros(3, np.float32)
    write_model(model_dir, tensors)
    with pytest.raises(WeightsError, match=r"'encoder.layer.0.output.dense.bias' has shape \[31\]"):
        numpybert.load(model_dir, strict=False)
    del tensors["encoder.layer.0.output.dense.bias"]
    write_model(model_dir, tensors)
    with pytest.raises(WeightsError, match="missing tensor 'encoder.layer.0.output.dense.bias'"):
        numpybert.load(model_dir, strict=False)
