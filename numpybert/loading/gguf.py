"""A llama.cpp GGUF file as one more name map into the strict loader.

    config, checkpoint, info = read_gguf("all-minilm.q8_0.gguf")
    params, manifest = load_params(path, BertConfig.from_dict(config), checkpoint=checkpoint)

llama.cpp's converter (`convert_hf_to_gguf.py`, `conversion/bert.py`) renames BertModel's tensors
(`TENSOR_NAMES` below), writes the config as `{arch}.*` metadata (`CONFIG_KEYS`), the WordPiece
vocabulary as `tokenizer.ggml.*` (phantom-space form: numpybert/text/gguf_vocab.py undoes it), the
sentence-transformers pooling as `{arch}.pooling_type` (`POOLING_TYPES`), and drops the pooler ("we are
only using BERT for embeddings") and the masked-LM / next-sentence heads. This module only reads: the
tensors, dequantized to float32 (the `gguf` package's NumPy `dequantize` is the file's exact arithmetic),
go through `numpybert.loading.checkpoint.load_params` like a safetensors checkpoint's.

The header (metadata, tensor infos) is read here, straight from the memory-mapped file. So are the types
llama.cpp's converter writes for BERT (F32, F16, BF16, Q8_0: `DIRECT_TYPES`, Q8_0 with gguf.quants' own
formula, bit-equal by test), so a cold start does not import the `gguf` package; every other type (Q4_K, ...)
imports it then (the `gguf` extra; this is the only module that does) and is dequantized by it.
"""

import math
import mmap
import os
import re
import struct

import numpy as np

from ..errors import ConfigError, MissingExtraError, WeightsError, install_hint
from . import family

# The name map: llama.cpp's tensor name -> the checkpoint's (BertModel's) name; {i} is the layer.
TENSOR_NAMES = {
    "token_embd.weight": "embeddings.word_embeddings.weight",
    "position_embd.weight": "embeddings.position_embeddings.weight",
    "token_types.weight": "embeddings.token_type_embeddings.weight",
    "token_embd_norm.weight": "embeddings.LayerNorm.weight",
    "token_embd_norm.bias": "embeddings.LayerNorm.bias",
    "blk.{i}.attn_q.weight": "encoder.layer.{i}.attention.self.query.weight",
    "blk.{i}.attn_q.bias": "encoder.layer.{i}.attention.self.query.bias",
    "blk.{i}.attn_k.weight": "encoder.layer.{i}.attention.self.key.weight",
    "blk.{i}.attn_k.bias": "encoder.layer.{i}.attention.self.key.bias",
    "blk.{i}.attn_v.weight": "encoder.layer.{i}.attention.self.value.weight",
    "blk.{i}.attn_v.bias": "encoder.layer.{i}.attention.self.value.bias",
    "blk.{i}.attn_output.weight": "encoder.layer.{i}.attention.output.dense.weight",
    "blk.{i}.attn_output.bias": "encoder.layer.{i}.attention.output.dense.bias",
    "blk.{i}.attn_output_norm.weight": "encoder.layer.{i}.attention.output.LayerNorm.weight",
    "blk.{i}.attn_output_norm.bias": "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "blk.{i}.ffn_up.weight": "encoder.layer.{i}.intermediate.dense.weight",
    "blk.{i}.ffn_up.bias": "encoder.layer.{i}.intermediate.dense.bias",
    "blk.{i}.ffn_down.weight": "encoder.layer.{i}.output.dense.weight",
    "blk.{i}.ffn_down.bias": "encoder.layer.{i}.output.dense.bias",
    "blk.{i}.layer_output_norm.weight": "encoder.layer.{i}.output.LayerNorm.weight",
    "blk.{i}.layer_output_norm.bias": "encoder.layer.{i}.output.LayerNorm.bias",
    # a sequence classifier / cross-encoder (RobertaForSequenceClassification: dense -> tanh -> out_proj)
    "cls.weight": "classifier.dense.weight",
    "cls.bias": "classifier.dense.bias",
    "cls.output.weight": "classifier.out_proj.weight",
    "cls.output.bias": "classifier.out_proj.bias",
}
LABELS = "{arch}.classifier.output_labels"  # id2label's values, in id order
# The config: BertConfig's field <- llama.cpp's metadata key ({arch} is general.architecture).
CONFIG_KEYS = {
    "hidden_size": "{arch}.embedding_length",
    "num_hidden_layers": "{arch}.block_count",
    "num_attention_heads": "{arch}.attention.head_count",
    "intermediate_size": "{arch}.feed_forward_length",
    "layer_norm_eps": "{arch}.attention.layer_norm_epsilon",
    "max_position_embeddings": "{arch}.context_length",
}
ARCHITECTURES = family.GGUF_ARCHITECTURES  # general.architecture -> the family member (with, without token types)
POOLING_TYPES = {0: None, 1: "mean", 2: "cls"}  # {arch}.pooling_type -> encode's pooling (0: none stated)
INSTALL = install_hint("gguf")
_PATTERNS = [(re.compile("^" + re.escape(g).replace(r"\{i\}", r"(\d+)") + "$"), h) for g, h in TENSOR_NAMES.items()]


def hf_name(name: str) -> str:
    """The checkpoint name of a GGUF tensor name, or the name itself when the map does not know it
    (the strict loader then reports it as unexpected)."""
    for pattern, target in _PATTERNS:
        if m := pattern.match(name):
            return target.format(i=m.group(1)) if m.groups() else target
    return name


# GGUF's value types (gguf.GGUFValueType): id -> struct format; 8 is a string, 9 an array
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}


class _Header:
    """GGUF's header (magic, version, metadata, tensor infos), read straight from the mapped bytes.
    gguf.GGUFReader parses the same but builds NumPy views item by item (~2 s for MiniLM's 30522 tokens);
    this reads them in ~0.05 s."""

    def __init__(self, buf):
        self.buf, self.at = buf, 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.buf, self.at)
        self.at += struct.calcsize(fmt)
        return value[0]

    def string(self):
        n = self.take("<Q")
        raw = self.buf[self.at:self.at + n]
        if len(raw) != n:
            raise ValueError("a string runs past the end of the file")
        self.at += n
        return raw.decode("utf-8", errors="replace")

    def strings(self, n):
        """An array of n strings (the vocabulary: 30522 for MiniLM) in one tight loop."""
        buf, at, size, out = self.buf, self.at, len(self.buf), []
        length = struct.Struct("<Q").unpack_from
        for _ in range(min(n, size)):
            k = length(buf, at)[0]
            at += 8
            out.append(buf[at:at + k].decode("utf-8", errors="replace"))
            at += k
        if at > size or n > size:
            raise ValueError("a string array runs past the end of the file")
        self.at = at
        return out

    def value(self, kind):
        if kind in SCALARS:
            return self.take(SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind != 9:
            raise ValueError(f"unknown value type {kind}")
        item, n = self.take("<I"), self.take("<Q")
        if item == 8:
            return self.strings(n)
        if item in NUMPY:
            size = np.dtype(NUMPY[item]).itemsize * n
            values = np.frombuffer(self.buf[self.at:self.at + size], NUMPY[item]).tolist()  # a copy: mmap closes
            if len(values) != n:
                raise ValueError("an array runs past the end of the file")
            self.at += size
            return values
        if n > len(self.buf):
            raise ValueError(f"an array of {n} items is longer than the file")
        return [self.value(item) for _ in range(n)]


def read_header(path):
    """(metadata {key: value}, [(name, type id, ne dims, offset in the data section)], data start, mapped file)."""
    from .config import open_regular
    with open_regular(path, "GGUF file", WeightsError) as f:  # missing / FIFO / directory: one clear line
        size = os.fstat(f.fileno()).st_size
    if size < 24:
        raise WeightsError(f"{path}: not a readable GGUF file ({size} bytes)")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    with open(path, "rb") as f:  # the header through mmap (bytes slices are cheap); the tensors through `data`
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    header = _Header(mapped)
    try:
        if mapped[:4] != b"GGUF":
            raise ValueError("no GGUF magic")
        header.at = 4
        version, n_tensors, n_kv = header.take("<I"), header.take("<Q"), header.take("<Q")
        if version not in (2, 3) or n_tensors > size or n_kv > size:
            raise ValueError(f"version {version}, {n_tensors} tensors, {n_kv} fields")
        meta = {}
        for _ in range(n_kv):
            key = header.string()
            meta[key] = header.value(header.take("<I"))
        infos = []
        for _ in range(n_tensors):
            name, n_dims = header.string(), header.take("<I")
            dims = [header.take("<Q") for _ in range(n_dims)]
            infos.append((name, header.take("<I"), dims, header.take("<Q")))
    except (struct.error, ValueError, OverflowError, MemoryError) as e:
        raise WeightsError(f"{path}: not a readable GGUF file ({e})") from None
    finally:
        end = header.at
        mapped.close()
    align = meta.get("general.alignment", 32)
    return meta, infos, -(-end // align) * align, data


def _gguf(why):
    try:
        import gguf
    except ImportError as e:
        raise MissingExtraError(f"{why} needs the 'gguf' extra ({e.name} is missing): {INSTALL}") from None
    return gguf


def _field(meta, key, path, kind=(int, float)):
    if key not in meta:
        raise ConfigError(f"{path}: metadata field {key!r} is missing (a BERT GGUF from llama.cpp's converter has it)")
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{path}: metadata field {key!r}={value!r}: expected a number")
    return value


def config_dict(meta: dict, tensors: dict, path) -> dict:
    """config.json's fields (with model_type) from the GGUF metadata and the tables' shapes."""
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise ConfigError(f"{path}: general.architecture={arch!r} is not supported (numpybert reads "
                          f"{', '.join(ARCHITECTURES)} GGUF files: BERT's encoder as llama.cpp converts it)")
    config = {field: _field(meta, key.format(arch=arch), path) for field, key in CONFIG_KEYS.items()}
    with_types, without_types = ARCHITECTURES[arch]
    config["model_type"] = family.GGUF_TOKENIZER_MEMBERS.get(
        meta.get("tokenizer.ggml.model"), with_types if "token_types.weight" in tensors else without_types)
    config["hidden_act"] = "gelu"  # llama.cpp's BERT graph has one FFN activation, GELU (the checkpoints' erf GELU)
    config["vocab_size"] = len(meta.get("tokenizer.ggml.tokens") or []) or _rows(tensors, "token_embd.weight", path)
    types = tensors.get("token_types.weight")
    config["type_vocab_size"] = int(types.shape[0]) if types is not None else int(
        meta.get("tokenizer.ggml.token_type_count", 2))
    pad = meta.get("tokenizer.ggml.padding_token_id")
    if isinstance(pad, int):
        config["pad_token_id"] = pad
    member = family.get(config["model_type"])  # its config.json may spell the sizes its own way (DistilBERT's dim)
    if "cls.output.weight" in tensors and member.classifier == "pooled":
        raise ConfigError(f"{path}: a {member.name} sequence classifier reads pooled_output, and llama.cpp's converter "
                          "drops the pooler (its cls.output alone cannot give the original's logits)")
    labels = meta.get(LABELS.format(arch=arch))
    if isinstance(labels, list) and labels:
        config["id2label"] = dict(enumerate(labels))
    elif "cls.output.weight" in tensors:  # the converter writes no labels for transformers' default LABEL_i names
        config["id2label"] = {i: f"LABEL_{i}" for i in range(tensors["cls.output.weight"].shape[0])}
    if offset := position_offset(member, config):  # the converter cut the rows below padding_idx + 1
        config["max_position_embeddings"] += offset
    spelling = {ours: theirs for theirs, ours in member.config_fields}
    config = {spelling.get(k, k): v for k, v in config.items() if member.token_types or k != "type_vocab_size"}
    return config


def _own_head_name(member, name):
    """A classifier tensor under the member's own checkpoint name (DistilBERT's pre_classifier.*,
    classifier.*), which the loader's family map takes back to BERT's classifier.dense / out_proj."""
    if name.startswith("classifier."):
        for theirs, ours in member.names:
            if name.startswith(ours):
                return theirs + name[len(ours):]
    return name


def position_offset(member, config) -> int:
    """How many position rows llama.cpp's converter cut from a member whose positions count from
    padding_idx + 1 (RoBERTa: pad_token_id + 1); 0 for the others."""
    if not member.positions_from_ids:
        return 0
    padding_idx = member.fixed_padding_idx if member.fixed_padding_idx is not None else config.get("pad_token_id")
    return padding_idx + 1 if isinstance(padding_idx, int) else 0


def _restore_positions(tensors, offset, path):
    """The cut rows back as zeros, so position ids index the table as the original's (a real token's position
    is >= padding_idx + 1; only padding reads row padding_idx, and padding is masked)."""
    name = "embeddings.position_embeddings.weight"
    if offset and name in tensors:
        dtype_str, array, where = tensors[name]
        tensors[name] = (dtype_str, np.concatenate([np.zeros((offset,) + array.shape[1:], array.dtype), array]), where)


def _rows(tensors, name, path):
    if name not in tensors:
        raise WeightsError(f"{path}: no tensor {name!r} and no tokenizer.ggml.tokens: cannot tell the vocabulary size")
    return int(tensors[name].shape[0])


# The types read here without importing the `gguf` package (~0.1 s of a cold start): id -> (name, block
# elements, block bytes), as gguf.GGMLQuantizationType / GGML_QUANT_SIZES state them (tests/loading/
# test_gguf_types.py checks both, and that dequantize_q8_0 is bit-equal to gguf.quants.dequantize).
# Every other type is the gguf package's: imported then, and dequantized by gguf.quants.dequantize.
DIRECT_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 8: ("Q8_0", 32, 34), 30: ("BF16", 1, 2)}


def dequantize_q8_0(raw: np.ndarray) -> np.ndarray:
    """Q8_0 blocks (bytes: a float16 scale d, then 32 int8 q) -> float32 d * q, flat. gguf.quants.Q8_0's
    own arithmetic (int8 and float16 widened to float32, one float32 product), on the whole tensor at once."""
    blocks = raw.reshape(-1, 34)
    scale = blocks[:, :2].view(np.float16).astype(np.float32)  # [blocks, 1]
    values = blocks[:, 2:].view(np.int8).astype(np.float32)  # [blocks, 32]
    with np.errstate(invalid="ignore"):  # an inf scale times 0 is NaN: the loader's finiteness check names it
        return np.multiply(values, scale, out=values).reshape(-1)  # [blocks * 32]


def _kind(name, type_id, path):
    """(type name, block elements, block bytes, gguf's type or None when read here)."""
    if type_id in DIRECT_TYPES:
        return (*DIRECT_TYPES[type_id], None)
    gguf = _gguf(f"{path}: tensor {name!r} (GGML type {type_id})")
    try:
        kind = gguf.GGMLQuantizationType(type_id)
    except ValueError:
        raise WeightsError(f"{path}: tensor {name!r} has unknown GGML type {type_id}") from None
    return (kind.name, *gguf.GGML_QUANT_SIZES[kind], kind)


def _array(info, data, start, path, mmap):
    """A tensor as the checkpoint holds it: (dtype string for the loader, array, stored type name).
    F32 stays a view of the mapped file (copied unless mmap); F16 is viewed as float16 (the loader
    converts it); BF16 is widened exactly; Q8_0 is dequantized here (dequantize_q8_0), every other
    type to float32 by gguf.quants.dequantize."""
    name, type_id, ne, offset = info
    type_name, block, size, kind = _kind(name, type_id, path)
    shape = tuple(int(d) for d in reversed(ne))  # GGUF lists ne innermost first
    n = math.prod(shape)
    nbytes = n // block * size
    begin = start + offset
    if n % block or begin + nbytes > data.size:
        raise WeightsError(f"{path}: tensor {name!r} ({type_name}, shape {list(shape)}) lies past the end of the file "
                           "(truncated?)" if n % block == 0 else f"{path}: tensor {name!r}: shape {list(shape)} is not "
                           f"whole {type_name} blocks")
    raw = data[begin:begin + nbytes]
    if type_name == "F32":
        array = raw.view(np.float32).reshape(shape)
        return "F32", (np.asarray(array) if mmap else np.array(array)), type_name
    if type_name == "F16":
        return "F16", raw.view(np.float16).reshape(shape), type_name
    if type_name == "BF16":
        bits = raw.view(np.dtype("<u2")).reshape(shape)
        return "BF16", (bits.astype(np.uint32) << 16).view(np.float32), type_name  # exact: a 16-bit shift
    if type_name == "Q8_0":
        return "F32", dequantize_q8_0(raw).reshape(shape), type_name
    try:
        rows = raw.reshape(shape[:-1] + (shape[-1] // block * size,))
        return "F32", _gguf(path).quants.dequantize(rows, kind).reshape(shape), type_name
    except NotImplementedError:
        raise WeightsError(f"{path}: tensor {name!r} has type {type_name}, which the gguf package cannot "
                           "dequantize") from None


def read_gguf(path, mmap=False):
    """(config dict, (files, {checkpoint name: (dtype str, array, path)}), info) of a GGUF file.
    info: metadata (the tokenizer's fields among them), {GGUF name: stored type}, pooling."""
    path = os.fspath(path)
    meta, infos, start, data = read_header(path)
    shapes = {name: _Shape(ne) for name, _, ne, _ in infos}
    if len(shapes) != len(infos):
        raise WeightsError(f"{path}: a tensor name appears twice")
    config = config_dict(meta, shapes, path)
    tensors, types = {}, {}
    for info in infos:
        dtype_str, array, kind = _array(info, data, start, path, mmap)
        tensors[hf_name(info[0])] = (dtype_str, array, path)
        types[info[0]] = kind
    member = family.get(config["model_type"])
    tensors = {_own_head_name(member, name): entry for name, entry in tensors.items()}
    offset = position_offset(member, config)
    _restore_positions(tensors, offset, path)
    key = f"{meta.get('general.architecture')}.pooling_type"
    pooling = meta.get(key)
    if pooling is not None and pooling not in POOLING_TYPES:
        raise ConfigError(f"{path}: metadata field {key!r}={pooling!r}: numpybert computes none (0), mean (1) "
                          "and CLS (2) pooling")
    info = {"path": path, "metadata": meta, "types": types, "pooling": POOLING_TYPES.get(pooling),
            "pooling_type": pooling, "position_rows_restored": offset}
    return config, ([path], tensors), info


class _Shape:
    """A tensor's numpy-order shape without reading its data (for config_dict)."""
    def __init__(self, ne):
        self.shape = tuple(int(d) for d in reversed(ne))


def note_types(manifest, info):
    """The manifest says the file's tensor types and what was dequantized (loader conversions stay)."""
    counts = {}
    for kind in info["types"].values():
        counts[kind] = counts.get(kind, 0) + 1
    for kind, n in sorted(counts.items()):
        if kind not in ("F32", "F16", "BF16"):
            manifest.converted[f"{kind} -> float32 (dequantized as gguf.quants does)"] = n
    manifest.files = [f"{os.path.basename(info['path'])} (GGUF, tensor types: " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items())) + ")"]
    manifest.missing.append(("GGUF", "llama.cpp's converter drops the pooler and the pretraining heads"))
    if rows := info.get("position_rows_restored"):
        manifest.converted[f"position_embd: {rows} rows the converter cut (below padding_idx + 1) -> zeros"] = 1
    return manifest
