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
import math
import mmap as mmap_module
import os
import struct

import numpy as np

from .config import BertConfig, open_regular, parse_json, read_json
from . import family as families
from .files import sha256_files
from ..errors import WeightsError, WeightsNotFoundError

HEADER_CAP = 1024 * 1024  # bert-large's header is ~50 KB; a longer one is corrupt or hostile
MAX_NDIM = 8  # BERT weights are 1-D or 2-D, golden tensors at most 4-D
MAX_BYTES = 2**48  # no tensor is 256 TB, even counting zero dimensions as 1 (NumPy refuses those too)
DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
          "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
          "U8": np.dtype("u1"), "BOOL": np.dtype("?")}  # safetensors name -> how its bytes are stored
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


# ----------------------------------------------------------------------------- safetensors format

def _short(value, limit=80):
    """repr() cut to one short line, for error messages about hostile values."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _read_header(f, path, size):
    """The 8-byte little-endian header length, then that many bytes of JSON.
    Returns (tensor entries, metadata, where the data section starts)."""
    if size < 8:
        raise WeightsError(f"{path}: truncated ({size} bytes); a safetensors file starts with an 8-byte header length")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > HEADER_CAP:
        raise WeightsError(f"{path}: header length {n} exceeds the {HEADER_CAP}-byte cap (a BERT header is "
                           "tens of KB): corrupt, or not a safetensors file")
    if 8 + n > size:
        raise WeightsError(f"{path}: header length {n} is larger than the file ({size} bytes): truncated or corrupt")
    header = parse_json(f.read(n), f"{path}: header", WeightsError)
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: header is not a JSON object, got {_short(header)}")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsError(f"{path}: __metadata__ must map strings to strings, got {_short(metadata)}")
    return header, metadata, 8 + n


def _naturals(value):
    """A JSON list of non-negative integers (not floats, not booleans)?"""
    return isinstance(value, list) and all(type(i) is int and i >= 0 for i in value)


def _check_shape(name, shape, itemsize, path):
    """A list of at most MAX_NDIM sizes that NumPy can hold (zero dimensions counted as 1)."""
    if not _naturals(shape) or len(shape) > MAX_NDIM:
        raise WeightsError(f"{path}: tensor {name!r} has an invalid shape {_short(shape)} (expected a list of "
                           f"at most {MAX_NDIM} non-negative integers)")
    if math.prod(max(d, 1) for d in shape) * itemsize > MAX_BYTES:
        raise WeightsError(f"{path}: tensor {name!r} has shape {_short(shape)}: more than 2**48 bytes, larger "
                           "than any file")


def _check_entry(name, entry, path, data_size):
    """Validate one header entry; returns (dtype, shape, begin, end)."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise WeightsError(f"{path}: tensor {name!r}: a header entry is an object with exactly dtype, shape "
                           f"and data_offsets, got {_short(entry)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise WeightsError(f"{path}: tensor {name!r} has unsupported dtype {_short(dtype)} "
                           f"(numpybert reads {', '.join(DTYPES)})")
    itemsize = DTYPES[dtype].itemsize
    _check_shape(name, shape, itemsize, path)
    if not _naturals(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise WeightsError(f"{path}: tensor {name!r} has invalid data_offsets {_short(offsets)} (expected "
                           "[begin, end], integers with begin <= end)")
    if offsets[1] > data_size:
        raise WeightsError(f"{path}: tensor {name!r} has data_offsets {offsets}, past the end of the data "
                           f"section ({data_size} bytes): truncated or corrupt")
    nbytes = math.prod(shape) * itemsize  # Python ints: no overflow (np.prod would wrap around)
    if offsets[1] - offsets[0] != nbytes:
        raise WeightsError(f"{path}: tensor {name!r}: data_offsets {offsets} span {offsets[1] - offsets[0]} bytes, "
                           f"but shape {shape} of {dtype} needs {nbytes}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _check_layout(header, path, data_size):
    """Check every entry, then that the tensors tile the data section exactly, as the format
    requires: no overlap, no unused bytes, nothing after the last tensor."""
    entries = {name: _check_entry(name, entry, path, data_size) for name, entry in header.items()}
    end, previous = 0, None
    for begin, stop, name in sorted((b, e, name) for name, (_, _, b, e) in entries.items()):
        if begin < end:
            raise WeightsError(f"{path}: tensors {previous!r} and {name!r} overlap in the data section")
        if begin > end:
            raise WeightsError(f"{path}: {begin - end} unused bytes before tensor {name!r} in the data section")
        end, previous = stop, name
    if end != data_size:
        raise WeightsError(f"{path}: {data_size - end} bytes after the last tensor: the data section is "
                           "longer than the header says")
    return entries


def _read_exactly(f, n, path):
    """Read the data section into memory numpybert owns: one copy and no memory map, so a file
    truncated or rewritten later can neither kill the process (SIGBUS) nor change the weights."""
    data = np.empty(n, dtype=np.uint8)
    got = f.readinto(memoryview(data))
    if got != n:
        raise WeightsError(f"{path}: the file changed size while being read (expected {n} data bytes, read {got})")
    return data


def _as_array(buf, dtype, shape):
    """View raw little-endian bytes as an array (BF16 becomes float32: exact, a 16-bit shift)."""
    array = buf.view(DTYPES[dtype]).reshape(shape)
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _map(path, offset, n):
    """Memory-map the data section read-only: nothing is copied, and pages are read from the page
    cache only when touched. The file must then not be truncated or rewritten while the weights are
    in use: the kernel answers a read past the new end with SIGBUS, which kills the process."""
    if not n:
        return np.empty(0, np.uint8)
    return np.asarray(np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(n,)))  # a plain ndarray view


def read_safetensors(path, mmap=False):
    """Read one .safetensors file strictly. Returns ({name: (stored dtype str, array)}, metadata).
    By default the data is copied into memory numpybert owns; `mmap=True` maps it instead."""
    with open_regular(path, "weights file", WeightsError) as f:
        size = os.fstat(f.fileno()).st_size
        header, metadata, data_start = _read_header(f, path, size)
        entries = _check_layout(header, path, size - data_start)
        data = _map(path, data_start, size - data_start) if mmap else _read_exactly(f, size - data_start, path)
    tensors = {name: (dtype, _as_array(data[b:e], dtype, shape)) for name, (dtype, shape, b, e) in entries.items()}
    return tensors, metadata


# ----------------------------------------------------------------------------- which files

def weight_files(model_dir):
    """The safetensors file(s) of a model directory: model.safetensors, or a sharded index.
    (`lexists`: a broken symlink or a FIFO under those names is reported when opened.)"""
    if not os.path.isdir(model_dir):
        raise WeightsNotFoundError(f"model directory not found: {model_dir}")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.lexists(index):
        return _sharded_files(index)
    if os.path.lexists(single):
        return [single], None
    pickles = sorted(f for f in os.listdir(model_dir) if f.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise WeightsError(f"{model_dir}: only pickle checkpoints ({', '.join(pickles)}); numpybert refuses them "
                           "because unpickling can run arbitrary code. Convert once with torch and "
                           "safetensors.torch.save_file into model.safetensors.")
    raise WeightsNotFoundError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")


def weights_sha256(model_dir) -> str:
    """sha256 of a model's weights: the bytes of its safetensors file(s) (`weight_files`),
    concatenated in file-name order. Golden files record it as `model_sha256`."""
    return sha256_files(*sorted(weight_files(os.fspath(model_dir))[0]))


def _sharded_files(index):
    """The shard files named by model.safetensors.index.json, and its {tensor name: file} map."""
    content = read_json(index, "shard index", WeightsError)
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict):
        raise WeightsError(f'{index}: expected {{"weight_map": {{tensor name: shard file}}}}, got {_short(content)}')
    for name, file in weight_map.items():
        if not isinstance(file, str) or os.path.basename(file) != file or file in ("", ".", ".."):
            raise WeightsError(f"{index}: tensor {name!r}: shard file name {_short(file)} must be a plain file "
                               "name in the model directory")
    folder = os.path.dirname(index)
    return [os.path.join(folder, file) for file in sorted(set(weight_map.values()))], weight_map


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
    """Every tensor BertModel needs (without the optional pooler), with its [out, in] shape.
    The family's differences: no token-type table (DistilBERT), embeddings of width E and the
    `embeddings_project` E -> H (ELECTRA)."""
    H, I, E = config.hidden_size, config.intermediate_size, config.embedding_dim
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, E),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, E),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, E),
        "embeddings.LayerNorm.weight": (E,), "embeddings.LayerNorm.bias": (E,),
    }
    if not config.type_vocab_size:
        del shapes["embeddings.token_type_embeddings.weight"]
    if E != H:
        shapes["embeddings_project.weight"], shapes["embeddings_project.bias"] = (H, E), (H,)
    if config.family.relative_attention:  # MPNet: one bias table [buckets, N] for every layer
        shapes["encoder.relative_attention_bias.weight"] = (config.relative_attention_num_buckets,
                                                             config.num_attention_heads)
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
    """Parts a checkpoint may have or lack: each group is all-or-nothing. The masked-LM head maps
    RoBERTa's lm_head, DistilBERT's vocab_* and ELECTRA's generator head (H -> E) onto BERT's names;
    the classifier is one Linear on the pooled output (BERT) or dense + out_proj on the first token."""
    H, V, E = config.hidden_size, config.vocab_size, config.embedding_dim
    groups = {
        "pooler": {"pooler.dense.weight": (H, H), "pooler.dense.bias": (H,)},
        "mlm": {"cls.predictions.transform.dense.weight": (E, H), "cls.predictions.transform.dense.bias": (E,),
                "cls.predictions.transform.LayerNorm.weight": (E,), "cls.predictions.transform.LayerNorm.bias": (E,),
                "cls.predictions.bias": (V,)},
        "nsp": {"cls.seq_relationship.weight": (2, H), "cls.seq_relationship.bias": (2,)},
    }
    if not config.family.nsp:
        del groups["nsp"]
    if config.id2label:
        n = len(config.id2label)
        groups["classifier"] = ({"classifier.weight": (n, H), "classifier.bias": (n,)}
                                if config.family.classifier == "pooled" else {"classifier.dense.weight": (H, H), "classifier.dense.bias": (H,),
                                      "classifier.out_proj.weight": (n, H), "classifier.out_proj.bias": (n,)})
    return groups


TIED = {  # may be absent from the file: tied to another tensor, as transformers ties them
    "cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # old checkpoints save these; not weights


def canonical_name(name, config: BertConfig | None = None):
    """The BertModel name of a checkpoint key, or the key itself: drop the base-model prefix of
    *For* checkpoints (the family registry's: `bert.`, `roberta.`, ...), map legacy
    `LayerNorm.gamma/beta` (under LayerNorm only) and the family's own module names."""
    family = families.get(families.DEFAULT if config is None else config.model_type)
    prefix = family.prefix
    if name.startswith(prefix):
        name = name[len(prefix):]
    for legacy, new in ((".LayerNorm.gamma", ".LayerNorm.weight"), (".LayerNorm.beta", ".LayerNorm.bias")):
        if name.endswith(legacy):
            name = name[: -len(legacy)] + new
    for theirs, ours in family.names:
        head = ours.startswith(("cls.", "classifier."))  # a head: the whole prefix, first match only
        if head and name.startswith(theirs):
            return ours + name[len(theirs):]
        if not head and theirs in name:
            name = name.replace(theirs, ours, 1)
    return name


def read_checkpoint(model_dir, mmap=False):
    """All tensors of a model directory, from one file or all shards: {name: (dtype str, array, file)}."""
    files, weight_map = weight_files(model_dir)
    tensors = {}
    for path in files:
        for name, (dtype, array) in read_safetensors(path, mmap)[0].items():
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


def _not_finite(name, stored, converted, key, path):
    """The error for a weight holding NaN or Inf: how many, the first index, and whether the
    conversion to the model dtype made them (a float64 value beyond float32's range)."""
    bad = np.argwhere(~np.isfinite(converted))
    where = "[" + ", ".join(str(int(i)) for i in bad[0]) + "]"
    cause = f" after {key} (the stored value overflows)" if key and np.isfinite(stored).all() else ""
    return WeightsError(f"{path}: tensor {name!r} contains NaN or Inf{cause}: {len(bad)} of {converted.size} "
                        f"values, first at {where}")


def _convert(name, dtype_str, array, dtype, path, manifest):
    """Cast a float tensor to the model dtype, refusing non-float and non-finite weights."""
    if dtype_str not in FLOAT_DTYPES:
        raise WeightsError(f"{path}: tensor {name!r} has dtype {dtype_str}; a weight must be a float "
                           f"({', '.join(FLOAT_DTYPES)})")
    key = None
    out = array
    if not (dtype_str == "F32" and dtype == np.float32):
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: reported below
            out = array.astype(dtype)
        key = f"{dtype_str} -> {np.dtype(dtype).name}"
        manifest.converted[key] = manifest.converted.get(key, 0) + 1
    if not np.isfinite(out).all():  # ~5 ms for MiniLM's 91 MB; chunked or min/max variants were no faster
        raise _not_finite(name, array, out, key, path)
    return out


def _problem(name, new, array, path, known, params):
    """Why the tensor `name` (BertModel name `new`) cannot be used, or None if it can."""
    if new not in known:
        return f"unexpected tensor {name!r} {list(array.shape)} in {os.path.basename(path)}"
    if tuple(array.shape) != known[new]:
        return f"tensor {name!r} has shape {list(array.shape)}, config.json implies {list(known[new])}"
    if new in params:
        return f"tensor {new!r} appears twice (as {name!r} and another spelling)"
    return None


def _one_line(model_dir, problems, shown=5):
    more = f"; (+{len(problems) - shown} more)" if len(problems) > shown else ""
    return f"{model_dir}: the checkpoint does not match config.json: " + "; ".join(problems[:shown]) + more


def load_params(model_dir, config: BertConfig, dtype=np.float32, strict=True, mmap=False):
    """Strictly load every parameter of a BertModel (and any heads) as a flat {name: array}.
    strict=False tolerates unexpected tensors and incomplete heads (dropped, listed in the
    manifest), never a missing or mis-shaped encoder tensor. mmap=True: see `_map`."""
    files, raw = read_checkpoint(model_dir, mmap)
    return load_tensors(raw, config, dtype, strict, source=model_dir, mmap=mmap,
                        files=[os.path.relpath(f, model_dir) for f in files])


STORED = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}


def load_tensors(tensors, config: BertConfig, dtype=np.float32, strict=True, source="tensors", mmap=False,
                 files=None):
    """The strict loader over tensors already read, for any file format: `tensors` maps each name
    (the checkpoint's own, e.g. `roberta.encoder.layer.0...`, or BertModel's) to an array, or to
    (safetensors dtype string, array, file) as `read_checkpoint` gives. The family registry maps the
    names; shapes are checked against `config`; the result is `load_params`'s (params, Manifest).
    A reader of another format (GGUF, Keras) renames its tensors to checkpoint names and calls this."""
    raw = {name: entry if isinstance(entry, tuple) else (_stored_dtype(name, entry, source), entry, source)
           for name, entry in tensors.items()}
    manifest = Manifest(files=list(files or [source]), dtype=np.dtype(dtype).name)
    params, problems, seen = {}, [], set()
    expected, groups = expected_shapes(config), optional_groups(config)
    known = dict(expected, **{n: s for g in groups.values() for n, s in g.items()})
    known.update({n: known[t] for n, t in TIED.items()})
    for name, (dtype_str, array, path) in raw.items():
        new = canonical_name(name, config)
        seen.add(new)
        if new in BUFFERS:
            manifest.ignored.append((name, "a buffer, not a weight (positions/token types are inputs)"))
        elif ignored := next((why for head, why in config.family.ignored if new.startswith(head)), None):
            manifest.ignored.append((name, ignored))
        elif problem := _problem(name, new, array, path, known, params):
            problems.append(problem)
        else:
            manifest.renamed += [(name, new)] if new != name else []
            params[new] = _convert(name, dtype_str, array, dtype, path, manifest)
            if mmap:  # the finiteness check touched every page of the tensor: give them back
                release_pages([array])
    absent = [n for n in expected if n not in params]  # missing or refused: the encoder cannot run
    problems += [f"missing tensor {n!r} {list(expected[n])}" for n in absent if n not in seen]
    problems += _check_groups(params, groups, seen, manifest, config)
    _tie(params, manifest)
    if problems and (strict or absent):
        raise WeightsError(_one_line(source, problems))
    manifest.ignored += [(p, "strict=False") for p in problems]
    return params, manifest


def _stored_dtype(name, array, source):
    """The safetensors dtype string of an array handed to `load_tensors` (integers pass: refused later)."""
    if not isinstance(array, np.ndarray):
        raise WeightsError(f"{source}: tensor {name!r} is a {type(array).__name__}, not a NumPy array")
    return STORED.get(array.dtype, {"i": "I64", "u": "U8", "b": "BOOL"}.get(array.dtype.kind, str(array.dtype)))


def release_pages(arrays):
    """Hand the mapped pages back to the page cache (MADV_DONTNEED), so that memory holds only
    what the forward pass touches (e.g. a few rows of the 30522-row word embeddings)."""
    for mapping in {id(m): m for m in map(_mapping_of, arrays) if m is not None}.values():
        mapping.madvise(mmap_module.MADV_DONTNEED)


def _mapping_of(array):
    """The mmap behind an array that views a mapped file, or None."""
    while array is not None and not isinstance(array, np.memmap):
        array = array.base
    return None if array is None else array._mmap


def _check_groups(params, groups, seen, manifest, config):
    """Each optional group (pooler, heads) is all-or-nothing. An absent group is noted in the
    manifest; an incomplete one is a problem, and its loaded tensors are dropped, so that
    strict=False never leaves half a head behind."""
    problems = []
    for group, names in groups.items():
        loaded = [n for n in names if n in params]
        if len(loaded) == len(names):
            continue
        why = _MISSING_GROUP[group]
        if group == "pooler" and not config.family.pooler:
            why = f"{config.model_type} has no pooler: pooler_output is refused"
        manifest.missing.append((group, why))
        if loaded:  # tensors in the file but refused (shape) are already reported
            problems += [f"missing tensor {n!r} (the {group} is incomplete)" for n in names if n not in seen]
        for n in loaded:
            del params[n]
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
