"""The loader on real checkpoint quirks: what it renames, ignores, converts and refuses.
(Malformed and hostile files are tests/loading/test_hostile_loading.py.)"""

import gc
import json

import numpy as np
import pytest

import numpybert
from numpybert.loading.checkpoint import canonical_name, read_safetensors
from numpybert.errors import WeightsError

from helpers import CHECKPOINTS


def load(name, **kw):
    return numpybert.load(CHECKPOINTS / name, **kw)


def test_prefixed_legacy_checkpoint_loads_with_every_rename_listed():
    model = load("tiny-pretraining")
    renamed = dict(model.manifest.renamed)
    assert renamed["bert.embeddings.LayerNorm.gamma"] == "embeddings.LayerNorm.weight"
    assert renamed["bert.encoder.layer.1.output.LayerNorm.beta"] == "encoder.layer.1.output.LayerNorm.bias"
    assert renamed["cls.predictions.transform.LayerNorm.gamma"] == "cls.predictions.transform.LayerNorm.weight"
    assert ("bert.embeddings.position_ids" in dict(model.manifest.ignored))
    assert "bert.embeddings.position_ids" not in model.flat_params
    # the decoder is tied to the word embeddings, as transformers ties it
    assert model.flat_params["cls.predictions.decoder.weight"] is model.flat_params["embeddings.word_embeddings.weight"]


def test_only_layernorm_gamma_beta_are_renamed():
    """transformers once renamed any key containing gamma/beta and broke other models."""
    assert canonical_name("bert.encoder.layer.0.output.LayerNorm.gamma") == "encoder.layer.0.output.LayerNorm.weight"
    assert canonical_name("encoder.layer.0.attention.gamma") == "encoder.layer.0.attention.gamma"
    assert canonical_name("cls.predictions.beta_scale") == "cls.predictions.beta_scale"
    assert canonical_name("bertology.weight") == "bertology.weight"


@pytest.mark.parametrize("name,stored", [("tiny-f16", "F16"), ("tiny-bf16", "BF16"), ("tiny-f64", "F64")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reduced_and_double_precision_weights_are_converted_exactly(name, stored, dtype):
    model = load(name, dtype=dtype)
    tensors, _ = read_safetensors(CHECKPOINTS / name / "model.safetensors")
    assert {d for d, _ in tensors.values()} == {stored}
    key = f"{stored} -> {dtype}"
    assert model.manifest.converted[key] == len(tensors)
    w = model.flat_params["encoder.layer.0.attention.self.query.weight"]
    assert w.dtype == np.dtype(dtype)
    if stored == "BF16":  # BF16 is the top half of a float32: the low 16 bits are zero, nothing rounded
        assert np.all((w.astype(np.float32).view(np.uint32) & 0xFFFF) == 0)
    elif stored == "F16":
        np.testing.assert_array_equal(w.astype(np.float16).astype(dtype), w)


def test_bf16_decodes_to_the_float32_with_the_same_top_bits(tmp_path):
    """Our BF16 decode equals float32 rounding of the same bits, computed another way."""
    bits = np.array([0x3F80, 0xBF80, 0x4049, 0x0001, 0x7F7F], dtype=np.uint16)  # 1, -1, ~3.14, tiny, large
    header = json.dumps({"w": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    (_, w), = read_safetensors(path)[0].values()
    expected = [float(np.frombuffer((int(b) << 16).to_bytes(4, "little"), np.float32)[0]) for b in bits]
    assert w.dtype == np.float32 and w.tolist() == expected


def test_sharded_checkpoint_reads_every_shard():
    """tiny-sharded is tiny-bert's tensors split over two files: every tensor read, the same model."""
    model = load("tiny-sharded")
    assert len(model.manifest.files) == 2
    index = json.loads((CHECKPOINTS / "tiny-sharded" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(model.flat_params)
    assert set(index["weight_map"].values()) == set(model.manifest.files)  # both shards read
    whole = load("tiny-bert")
    assert set(whole.flat_params) == set(model.flat_params)
    for name, value in whole.flat_params.items():
        np.testing.assert_array_equal(model.flat_params[name], value, err_msg=name)
    ids = np.array([[2, 5, 7, 3]])
    np.testing.assert_array_equal(model(ids).pooler_output, whole(ids).pooler_output)


def test_manifest_prints_what_happened():
    text = str(load("tiny-pretraining").manifest)
    for needle in ("files: model.safetensors", "renamed:", "LayerNorm.gamma", "ignored: 1", "position_ids"):
        assert needle in text


def test_pickle_checkpoints_are_refused_with_the_reason(tmp_path):
    (tmp_path / "config.json").write_text((CHECKPOINTS / "tiny-bert" / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(WeightsError, match="pickle.*arbitrary code"):
        numpybert.load(tmp_path)


def test_mismatched_shapes_missing_and_unexpected_are_listed_together(tmp_path):
    from safetensors.numpy import save_file
    tensors = {k: a for k, (_, a) in read_safetensors(CHECKPOINTS / "tiny-bert" / "model.safetensors")[0].items()}
    del tensors["encoder.layer.1.output.dense.bias"]
    tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros((5, 32), np.float32)
    tensors["qa_outputs.weight"] = np.zeros((2, 32), np.float32)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((CHECKPOINTS / "tiny-bert" / "config.json").read_text())
    with pytest.raises(WeightsError) as e:
        numpybert.load(tmp_path)
    message = str(e.value)
    assert "missing tensor 'encoder.layer.1.output.dense.bias'" in message
    assert "'encoder.layer.0.intermediate.dense.weight' has shape [5, 32]" in message
    assert "unexpected tensor 'qa_outputs.weight'" in message


def test_mmap_load_equals_the_owned_copy(minilm_dir):
    """mmap=True maps the file instead of copying it: same weights, same outputs, plain ndarrays."""
    copied, mapped = numpybert.load(minilm_dir), numpybert.load(minilm_dir, mmap=True)
    assert set(copied.flat_params) == set(mapped.flat_params)
    for name, w in mapped.flat_params.items():
        assert type(w) is np.ndarray and np.array_equal(w, copied.flat_params[name]), name
    ids = np.array([[101, 7592, 2088, 102]])
    np.testing.assert_array_equal(mapped(ids).last_hidden_state, copied(ids).last_hidden_state)


def _resident_kb(path):
    """Resident KiB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if "-" in line.split(" ", 1)[0]:  # a mapping's header line: address range, perms, ..., path
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def test_mmap_load_leaves_no_file_pages_resident(minilm_dir):
    """After mmap=True loading, the pages the loader and the fast engine read (the finiteness check,
    the Q|K|V copy) are handed back: a mapped model holds only what a forward touches."""
    path = (minilm_dir / "model.safetensors").resolve()
    gc.collect()  # a mapped model another test left for the collector has its own mapping of the file:
    before = _resident_kb(path)  # count only what this model's mapping adds (the suite failed once on 43 MB)
    model = numpybert.load(minilm_dir, mmap=True)
    size_kb = path.stat().st_size / 1024
    assert _resident_kb(path) - before < 0.05 * size_kb
    model(np.array([[101, 7592, 2088, 102]]))
    assert _resident_kb(path) - before < 0.6 * size_kb  # the encoder's weights (MiniLM: 46%), a few embedding rows


def test_mmap_still_checks_every_weight(tmp_path):
    from safetensors.numpy import save_file
    tensors = {k: a.copy() for k, (_, a) in read_safetensors(CHECKPOINTS / "tiny-bert" / "model.safetensors")[0].items()}
    tensors["encoder.layer.1.output.dense.weight"][3, 4] = np.nan
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((CHECKPOINTS / "tiny-bert" / "config.json").read_text())
    with pytest.raises(WeightsError, match="'encoder.layer.1.output.dense.weight' contains NaN"):
        numpybert.load(tmp_path, mmap=True)
