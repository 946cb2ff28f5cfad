"""Golden files: reference tensors exported from PyTorch by scripts/export_golden.py, or written
by any other engine with `write_golden` (the format is documented in docs/golden-format.md).

A golden file is self-contained (as llm.c's): a safetensors file holding the inputs
(`inputs.*`), the reference outputs (`outputs.*`), optionally every intermediate
(`trace.*`), and a header saying how it was made (format version, torch and transformers
versions, attention implementation, dtype, model and its sha256, the regenerate command).
"""

import dataclasses
import datetime
import os

import numpy as np

from ..loading.checkpoint import read_safetensors, weights_sha256
from ..errors import GoldenError, InputTypeError, InputValueError, OutputError

FORMAT = "numpybert-golden"
FORMAT_VERSION = "1"


@dataclasses.dataclass
class Golden:
    path: str
    metadata: dict
    inputs: dict  # input_ids, attention_mask, token_type_ids: int64 [B, T]
    outputs: dict  # last_hidden_state, pooler_output, hidden_states.{i}, attentions.{i}, ...
    trace: dict  # recorded intermediates by name, in forward order

    @property
    def command(self) -> str:
        return self.metadata.get("command", "python scripts/export_golden.py all")


def read_golden(path) -> Golden:
    """Read and check a golden file; a stale format names the command that regenerates it."""
    tensors, metadata = read_safetensors(path)
    command = metadata.get("command", "python scripts/export_golden.py all")
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise GoldenError(f"{path}: golden format {metadata.get('format')!r} version "
                          f"{metadata.get('format_version')!r}, this numpybert reads {FORMAT!r} version "
                          f"{FORMAT_VERSION!r}. Regenerate it: {command}")
    groups = {"inputs": {}, "outputs": {}, "trace": {}}
    for name, (_, array) in tensors.items():
        group, _, rest = name.partition(".")
        if group not in groups:
            raise GoldenError(f"{path}: unexpected tensor {name!r} (expected inputs.*, outputs.*, trace.*)")
        groups[group][rest] = array
    if "input_ids" not in groups["inputs"]:
        raise GoldenError(f"{path}: no inputs.input_ids. Regenerate it: {command}")
    return Golden(path, metadata, **groups)


INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
FLOAT_DTYPES = ("float32", "float64")


def write_golden(path, inputs: dict, outputs: dict | None = None, trace: dict | None = None,
                 metadata: dict | None = None, model_dir=None) -> str:
    """Write a golden file from NumPy arrays, for `numpybert audit --golden FILE`: the way to audit an
    engine numpybert cannot run (TensorFlow, candle, C++). Write the tensors you can produce:

        inputs   {"input_ids": [B, T] ints, "attention_mask": ..., "token_type_ids": ...}
        outputs  {"last_hidden_state": [B, T, H], "pooler_output": [B, H], "hidden_states.0": ..., ...}
        trace    numpybert's intermediate names, e.g. {"encoder.layer.0.output": [B, T, H], ...}
        metadata free-form strings (engine, version, ...); `dtype` is taken from the float arrays
        model_dir the checkpoint the engine ran: its name and weights' sha256 go into the header,
                 so an audit against other weights is refused

    The audit compares what is there and lists what is absent. Refuses to overwrite a file.
    Returns the path written."""
    path = os.fspath(path)
    if os.path.exists(path):
        raise OutputError(f"{path} exists; numpybert does not overwrite files (remove it first)")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OutputError(f"{path}: directory {directory} does not exist")
    tensors = _golden_inputs(inputs)
    floats = {}
    for group, arrays in (("outputs", outputs or {}), ("trace", trace or {})):
        for name, array in arrays.items():
            key = f"{group}.{name}"
            tensors[key] = floats[key] = _float_array(key, array)
    if not floats:
        raise InputValueError("write_golden: no outputs and no trace: nothing to compare")
    dtypes = sorted({a.dtype.name for a in floats.values()})
    if len(dtypes) > 1:
        raise InputValueError(f"write_golden: outputs and trace mix {dtypes}; write one dtype per file")
    header = {str(k): _metadata_value(k, v) for k, v in (metadata or {}).items()}
    header.update({"format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtypes[0],
                   "numpy_version": np.__version__, "kind": "golden",
                   "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
    header.setdefault("generator", "numpybert.audit.write_golden")
    if model_dir is not None:
        header.setdefault("model", os.path.basename(os.path.normpath(os.fspath(model_dir))))
        header["model_sha256"] = weights_sha256(model_dir)
    import safetensors.numpy
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}, tmp,
                                    metadata=header)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _golden_inputs(inputs: dict) -> dict:
    """inputs.* as int64 [B, T] arrays; input_ids required, all of one shape."""
    if not isinstance(inputs, dict) or "input_ids" not in inputs:
        raise InputValueError("write_golden: inputs must be a dict holding at least input_ids")
    unknown = sorted(set(inputs) - set(INPUT_NAMES))
    if unknown:
        raise InputValueError(f"write_golden: unknown inputs {unknown}; expected {list(INPUT_NAMES)}")
    shape = np.shape(inputs["input_ids"])
    tensors = {}
    for name, value in inputs.items():
        array = np.asarray(value)
        if array.dtype.kind not in "iub":
            raise InputTypeError(f"write_golden: inputs.{name} is {array.dtype}, expected integers")
        if array.ndim != 2 or array.shape != shape:
            raise InputValueError(f"write_golden: inputs.{name} has shape {list(array.shape)}, expected "
                                  f"[batch, tokens] like input_ids {list(shape)}")
        tensors[f"inputs.{name}"] = array.astype(np.int64)
    return tensors


def _float_array(key: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.name not in FLOAT_DTYPES:
        raise InputTypeError(f"write_golden: {key} is {array.dtype}, expected float32 or float64")
    return array


def _metadata_value(key, value) -> str:
    if not isinstance(value, (str, int, float, bool)):
        raise InputTypeError(f"write_golden: metadata {key!r} is a {type(value).__name__}; safetensors "
                             "headers hold strings (str, int, float or bool are converted)")
    return str(value)
