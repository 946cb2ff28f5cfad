"""Reading a BERT checkpoint: safetensors files -> parameters keyed by the checkpoint's names.

Two layers:
1. `read_safetensors(path)`: a strict reader of the safetensors format (8-byte header length,
   JSON header, data section). The `safetensors` library accepts duplicate tensor names, hangs
   on a FIFO and can kill the process with SIGBUS when a memory-mapped file is truncated; this
   reader checks everything, names the culprit, and reads the data section once into memory
   that numpybert owns (one copy, no memory map, so nothing can change under it).
2. `load_params(model_dir, config, dtype)`: the strict loader, as nanoGPT's `from_pretrained`:
   every expected tensor present, every shape checked against the config, leftovers reported,
   and a `Manifest` of everything renamed, ignored or converted. No silent fixes.
"""

import dataclasses
import json
import os
import stat
import struct

import numpy as np

from .config import BertConfig
from .errors import WeightsError, WeightsNotFoundError

HEADER_CAP = 16 * 1024 * 1024  # a BERT header is tens of KB; a larger one is corrupt or hostile
FLOAT_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16"}
OTHER_DTYPES = {"I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


# ----------------------------------------------------------------------------- safetensors format

def _regular_file(path):
    """Refuse anything but a regular file before opening it (a FIFO would block forever)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise WeightsNotFoundError(f"weights file not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise WeightsError(f"{path}: not a regular file (a FIFO, device or directory cannot hold weights)")
    return st.st_size


def _no_duplicates(pairs, path):
    seen = {}
    for name, value in pairs:
        if name in seen:
            raise WeightsError(f"{path}: header names tensor {name!r} twice (the safetensors library "
                               "would silently keep the last one)")
        seen[name] = value
    return seen


def _read_header(f, path, size):
    if size < 8:
        raise WeightsError(f"{path}: truncated ({size} bytes; a safetensors file starts with an 8-byte header length)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > HEADER_CAP:
        raise WeightsError(f"{path}: header length {n} exceeds the {HEADER_CAP}-byte cap (corrupt file?)")
    if 8 + n > size:
        raise WeightsError(f"{path}: header length {n} is larger than the file ({size} bytes): truncated or corrupt")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=lambda p: _no_duplicates(p, path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, 8 + n


def _check_entry(name, entry, path, data_size):
    """Validate one header entry; returns (dtype, shape, begin, end)."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise WeightsError(f"{path}: tensor {name!r}: header entry must have exactly dtype, shape, data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in FLOAT_DTYPES and dtype not in OTHER_DTYPES:
        raise WeightsError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
    ints = lambda v: isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)
    if not ints(shape):
        raise WeightsError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    if not ints(offsets) or len(offsets) != 2 or not offsets[0] <= offsets[1] <= data_size:
        raise WeightsError(f"{path}: tensor {name!r} has data_offsets {offsets!r} outside the data section "
                           f"({data_size} bytes)")
    itemsize = 2 if dtype == "BF16" else np.dtype(FLOAT_DTYPES.get(dtype) or OTHER_DTYPES[dtype]).itemsize
    if offsets[1] - offsets[0] != int(np.prod(shape, dtype=np.int64)) * itemsize:
        raise WeightsError(f"{path}: tensor {name!r}: {offsets[1] - offsets[0]} bytes do not hold "
                           f"shape {shape} of {dtype}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _check_overlaps(entries, path):
    spans = sorted((b, e, name) for name, (_, _, b, e) in entries.items() if e > b)
    for (_, end1, name1), (begin2, _, name2) in zip(spans, spans[1:]):
        if begin2 < end1:
            raise WeightsError(f"{path}: tensors {name1!r} and {name2!r} overlap in the data section")


def _as_array(buf, dtype, shape):
    """View raw little-endian bytes as an array (BF16 becomes float32: exact, a 16-bit shift)."""
    if dtype == "BF16":
        u16 = buf.view("<u2").reshape(shape)
        return (u16.astype(np.uint32) << 16).view(np.float32)
    np_dtype = np.dtype(FLOAT_DTYPES.get(dtype) or OTHER_DTYPES[dtype]).newbyteorder("<")
    return buf.view(np_dtype).reshape(shape)


def read_safetensors(path):
    """Read one .safetensors file strictly. Returns ({name: (stored dtype str, array)}, metadata)."""
    size = _regular_file(path)
    with open(path, "rb") as f:
        header, metadata, data_start = _read_header(f, path, size)
        data_size = size - data_start
        entries = {name: _check_entry(name, e, path, data_size) for name, e in header.items()}
        _check_overlaps(entries, path)
        data = np.empty(data_size, dtype=np.uint8)  # one copy, owned by us: no SIGBUS if the file changes
        if f.readinto(memoryview(data)) != data_size:
            raise WeightsError(f"{path}: file shrank while being read")
    tensors = {name: (dtype, _as_array(data[b:e], dtype, shape)) for name, (dtype, shape, b, e) in entries.items()}
    return tensors, metadata


# ----------------------------------------------------------------------------- which files

def weight_files(model_dir):
    """The safetensors file(s) of a model directory: model.safetensors, or a sharded index."""
    if not os.path.isdir(model_dir):
        raise WeightsNotFoundError(f"model directory not found: {model_dir}")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(index):
        return _sharded_files(index)
    if os.path.exists(single):
        return [single], None
    pickles = sorted(f for f in os.listdir(model_dir) if f.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise WeightsError(f"{model_dir}: only pickle checkpoints ({', '.join(pickles)}); numpybert refuses them "
                           "because unpickling can run arbitrary code. Convert once with torch and "
                           "safetensors.torch.save_file into model.safetensors.")
    raise WeightsNotFoundError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")


def _sharded_files(index):
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise WeightsError(f"{index}: not a valid shard index ({type(e).__name__}: {e})") from None
    for name in files:
        if not isinstance(name, str) or os.path.basename(name) != name:
            raise WeightsError(f"{index}: shard file name {name!r} must be a plain file name in the directory")
    folder = os.path.dirname(index)
    return [os.path.join(folder, name) for name in files], weight_map


# ----------------------------------------------------------------------------- the strict loader

@dataclasses.dataclass
class Manifest:
    """What the loader did to get from the file(s) to the parameters. `print(model.manifest)`."""
    files: list = dataclasses.field(default_factory=list)
    renamed: list = dataclasses.field(default_factory=list)  # (name in file, name used)
    ignored: list = dataclasses.field(default_factory=list)  # (name, reason)
    converted: dict = dataclasses.field(default_factory=dict)  # "BF16 -> float32": count
    missing: list = dataclasses.field(default_factory=list)  # (name or group, consequence)
    dtype: str = "float32"

    def __str__(self):
        lines = [f"files: {', '.join(self.files)}", f"dtype: {self.dtype}"]
        lines.append("converted: " + (", ".join(f"{k} ({v} tensors)" for k, v in self.converted.items()) or "nothing"))
        lines.append(f"renamed: {len(self.renamed)}" + "".join(f"\n  {a} -> {b}" for a, b in self.renamed))
        lines.append(f"ignored: {len(self.ignored)}" + "".join(f"\n  {a}: {why}" for a, why in self.ignored))
        lines.append(f"missing: {len(self.missing)}" + "".join(f"\n  {a}: {why}" for a, why in self.missing))
        return "\n".join(lines)


def expected_shapes(config: BertConfig):
    """Every tensor BertModel needs (without the optional pooler), with its [out, in] shape."""
    H, I = config.hidden_size, config.intermediate_size
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, H),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, H),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, H),
        "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,),
    }
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (H, H), (H,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (I, H), (I,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (H, I), (H,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (H,), (H,)
    return shapes


def optional_groups(config: BertConfig):
    """Parts a checkpoint may have or lack: each group is all-or-nothing."""
    H, V = config.hidden_size, config.vocab_size
    groups = {
        "pooler": {"pooler.dense.weight": (H, H), "pooler.dense.bias": (H,)},
        "mlm": {"cls.predictions.transform.dense.weight": (H, H), "cls.predictions.transform.dense.bias": (H,),
                "cls.predictions.transform.LayerNorm.weight": (H,), "cls.predictions.transform.LayerNorm.bias": (H,),
                "cls.predictions.bias": (V,)},
        "nsp": {"cls.seq_relationship.weight": (2, H), "cls.seq_relationship.bias": (2,)},
    }
    if config.id2label:
        n = len(config.id2label)
        groups["classifier"] = {"classifier.weight": (n, H), "classifier.bias": (n,)}
    return groups


TIED = {  # may be absent from the file: tied to another tensor, as transformers ties them
    "cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # old checkpoints save these; not weights


def canonical_name(name):
    """The BertModel name of a checkpoint key, or the key itself: drop the `bert.` prefix of
    BertFor* checkpoints, and map legacy `LayerNorm.gamma/beta` (under LayerNorm only)."""
    if name.startswith("bert."):
        name = name[len("bert."):]
    for legacy, new in ((".LayerNorm.gamma", ".LayerNorm.weight"), (".LayerNorm.beta", ".LayerNorm.bias")):
        if name.endswith(legacy):
            name = name[: -len(legacy)] + new
    return name


def read_checkpoint(model_dir):
    """All tensors of a model directory, from one file or all shards: {name: (dtype str, array, file)}."""
    files, weight_map = weight_files(model_dir)
    tensors = {}
    for path in files:
        for name, (dtype, array) in read_safetensors(path)[0].items():
            if name in tensors:
                raise WeightsError(f"tensor {name!r} is in both {tensors[name][2]} and {path}")
            if weight_map is not None and os.path.join(model_dir, weight_map.get(name, "")) != path:
                raise WeightsError(f"{path}: tensor {name!r} is not listed for this shard in the index")
            tensors[name] = (dtype, array, path)
    if weight_map is not None:
        absent = sorted(set(weight_map) - set(tensors))
        if absent:
            raise WeightsError(f"{model_dir}: the shard index lists tensors that no shard holds: {absent[:5]}")
    return files, tensors


def _convert(name, dtype_str, array, dtype, path, manifest):
    """Cast a float tensor to the model dtype, refusing non-float and non-finite weights."""
    if dtype_str not in FLOAT_DTYPES:
        raise WeightsError(f"{path}: tensor {name!r} has dtype {dtype_str}; a weight must be a float (F16, BF16, F32, F64)")
    if dtype_str == "F32" and dtype == np.float32:
        out = array
    else:
        out = array.astype(dtype)
        key = f"{dtype_str} -> {np.dtype(dtype).name}"
        manifest.converted[key] = manifest.converted.get(key, 0) + 1
    if not np.isfinite(out).all():
        raise WeightsError(f"{path}: tensor {name!r} contains NaN or Inf")
    return out


def load_params(model_dir, config: BertConfig, dtype=np.float32, strict=True):
    """Strictly load every parameter of a BertModel (and any heads) as a flat {name: array}."""
    files, raw = read_checkpoint(model_dir)
    manifest = Manifest(files=[os.path.relpath(f, model_dir) for f in files], dtype=np.dtype(dtype).name)
    params, problems = {}, []
    expected = expected_shapes(config)
    groups = optional_groups(config)
    known = dict(expected, **{n: s for g in groups.values() for n, s in g.items()})
    known.update({n: known[t] for n, t in TIED.items()})
    for name, (dtype_str, array, path) in raw.items():
        new = canonical_name(name)
        if new in BUFFERS:
            manifest.ignored.append((name, "a buffer, not a weight (positions/token types are inputs)"))
            continue
        if new not in known:
            problems.append(f"unexpected tensor {name!r} {list(array.shape)} in {os.path.basename(path)}")
            continue
        if tuple(array.shape) != known[new]:
            problems.append(f"tensor {name!r} has shape {list(array.shape)}, config.json implies {list(known[new])}")
            continue
        if new != name:
            manifest.renamed.append((name, new))
        if new in params:
            problems.append(f"tensor {new!r} appears twice (as {name!r} and another spelling)")
            continue
        params[new] = _convert(name, dtype_str, array, dtype, path, manifest)
    problems += [f"missing tensor {n!r} {list(s)}" for n, s in expected.items() if n not in params]
    problems += _check_groups(params, groups, manifest)
    _tie(params, manifest)
    if problems and strict:
        raise WeightsError(f"{model_dir}: the checkpoint does not match config.json:\n  " + "\n  ".join(problems))
    manifest.ignored += [(p, "strict=False") for p in problems]
    return params, manifest


def _check_groups(params, groups, manifest):
    problems = []
    for group, names in groups.items():
        present = [n for n in names if n in params]
        if not present:
            manifest.missing.append((group, _MISSING_GROUP[group]))
        elif len(present) < len(names):
            problems += [f"missing tensor {n!r} (the {group} is incomplete)" for n in names if n not in params]
    return problems


_MISSING_GROUP = {
    "pooler": "no pooler in the checkpoint: pooler_output is refused (transformers would use random weights)",
    "mlm": "no masked-LM head", "nsp": "no next-sentence head", "classifier": "no classifier head",
}


def _tie(params, manifest):
    """Tie the MLM decoder to the word embeddings (and its bias to cls.predictions.bias) when absent."""
    if "cls.predictions.bias" not in params:
        return
    for name, source in TIED.items():
        if name not in params:
            params[name] = params[source]
            manifest.renamed.append((source, f"{name} (tied)"))


def nest(flat):
    """{"encoder.layer.0.attention.self.query.weight": w} -> params["encoder"]["layer"][0]...["weight"].
    A level whose keys are all digits becomes a list (the layers)."""
    tree = {}
    for name, value in flat.items():
        node = tree
        *path, leaf = name.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return _lists(tree)


def _lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[str(i)]) for i in range(len(node))]
    return {k: _lists(v) for k, v in node.items()}
