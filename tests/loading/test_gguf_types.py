"""The GGUF tensor types (numpybert/loading/gguf.py): the converter's types (F32, F16, BF16, Q8_0) are read
without importing the `gguf` package (a cold start's ~0.1 s), Q8_0 with a formula proven bit-equal to
gguf.quants.dequantize here; every other type goes to the gguf package, whose dequantization is the truth."""

import subprocess
import sys

import numpy as np
import pytest

import numpybert
from helpers import ROOT, require_gguf, rewrite_gguf
from numpybert.errors import MissingExtraError
from numpybert.loading.gguf import DIRECT_TYPES, dequantize_q8_0, hf_name, read_header

# tensor name suffix -> the type it gets in the mixed file (all else stays F32; ffn_down's rows of 37 are no
# whole blocks, so it is F16)
MIXED = {"token_embd.weight": "Q4_0", "attn_q.weight": "Q4_1", "attn_k.weight": "Q5_0", "attn_v.weight": "Q5_1",
         "attn_output.weight": "Q8_0", "ffn_up.weight": "BF16", "ffn_down.weight": "F16"}


def raw_tensors(path):
    """{GGUF name: (type id, numpy shape, the tensor's bytes)} straight from the file."""
    import gguf
    meta, infos, start, data = read_header(path)
    out = {}
    for name, type_id, ne, offset in infos:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(type_id)]
        shape = tuple(int(d) for d in reversed(ne))
        nbytes = int(np.prod(shape)) // block * size
        out[name] = (type_id, shape, np.array(data[start + offset:start + offset + nbytes]))
    return meta, out


def gguf_dequantized(type_id, shape, raw):
    """What the gguf package itself makes of a tensor's bytes: float32 in the tensor's shape."""
    import gguf
    kind = gguf.GGMLQuantizationType(type_id)
    block, size = gguf.GGML_QUANT_SIZES[kind]
    rows = raw.reshape(shape[:-1] + (shape[-1] // block * size,))
    return np.asarray(gguf.quants.dequantize(rows, kind), np.float32).reshape(shape)


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory):
    """tiny-bert-wp.f32.gguf rewritten by the gguf package's writer with one tensor type per weight (MIXED)."""
    import gguf

    def retype(name, array):
        kind = next((k for suffix, k in MIXED.items() if name.endswith(suffix)), "F32")
        if kind in ("F32", "F16"):
            return array.astype(np.float16 if kind == "F16" else np.float32)
        qtype = gguf.GGMLQuantizationType[kind]
        return gguf.quants.quantize(array, qtype), qtype

    path = tmp_path_factory.mktemp("gguf") / "tiny-bert-wp.mixed.gguf"
    return rewrite_gguf(require_gguf("tiny-bert-wp.f32.gguf"), path, retype=retype)


def test_the_types_read_here_are_named_and_sized_as_the_gguf_package_says():
    import gguf
    for type_id, (name, block, size) in DIRECT_TYPES.items():
        kind = gguf.GGMLQuantizationType(type_id)
        assert kind.name == name and gguf.GGML_QUANT_SIZES[kind] == (block, size)


def test_q8_0_is_bit_equal_to_gguf_quants_on_every_float16_scale():
    import gguf
    rng = np.random.default_rng(0)
    blocks = np.empty((65536, 34), np.uint8)
    blocks[:, :2] = np.arange(65536, dtype="<u2").view(np.uint8).reshape(-1, 2)  # every scale: subnormal, inf, NaN
    blocks[:, 2:] = rng.integers(0, 256, (65536, 32), dtype=np.uint8)  # int8 -128..127
    blocks[:2, 2:] = [[0x80], [0x7F]]  # the extremes, -128 and 127, whole blocks
    ours = dequantize_q8_0(blocks.reshape(-1))
    with np.errstate(invalid="ignore"):  # inf scales times 0: NaN on both sides, compared below
        theirs = np.asarray(gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType.Q8_0), np.float32).reshape(-1)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (65536 * 32,)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))  # bit for bit, NaN payloads too


def test_q8_0_minilm_loads_bit_equal_to_gguf_quants():
    path = require_gguf("all-MiniLM-L6-v2.q8_0.gguf")
    _, tensors = raw_tensors(path)
    model = numpybert.load(path)
    q8 = {name: t for name, t in tensors.items() if t[0] == 8}
    assert len(q8) == 37
    for name, tensor in q8.items():
        ours = model.flat_params[hf_name(name)]
        assert ours.dtype == np.float32 and np.array_equal(ours, gguf_dequantized(*tensor)), name


def test_every_type_in_one_file_equals_the_gguf_packages_dequantization(mixed_file):
    _, tensors = raw_tensors(mixed_file)
    model = numpybert.load(mixed_file)
    seen = set()
    for name, (type_id, shape, raw) in tensors.items():
        ours = model.flat_params[hf_name(name)]
        assert ours.dtype == np.float32 and np.array_equal(ours, gguf_dequantized(type_id, shape, raw)), name
        seen.add(type_id)
    assert seen == {0, 1, 2, 3, 6, 7, 8, 30}  # F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 BF16
    manifest = str(model.manifest)
    for kind in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
        assert f"{kind} -> float32 (dequantized as gguf.quants does)" in manifest
    assert model.encode(["a mixed file"]).dtype == np.float32


def test_the_converters_types_load_without_importing_gguf():
    code = ("import sys, numpybert; m = numpybert.load(sys.argv[1]); v = m.encode(['hello world']); "
            "assert v.shape == (1, 32), v.shape; sys.exit(3 if 'gguf' in sys.modules else 0)")
    for name in ("tiny-bert-wp.q8_0.gguf", "tiny-bert-wp.f16.gguf"):
        done = subprocess.run([sys.executable, "-c", code, str(require_gguf(name))], cwd=ROOT, capture_output=True)
        assert done.returncode == 0, (name, done.stderr.decode()[-2000:])


def test_without_the_gguf_extra_another_type_says_install_it_naming_the_tensor(mixed_file, monkeypatch, capsys):
    from numpybert import cli
    monkeypatch.setitem(sys.modules, "gguf", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"tensor 'token_embd.weight' \(GGML type 2\) needs the 'gguf' extra"):
        numpybert.load(mixed_file)
    code = cli.main(["encode", "hi", "--model", str(mixed_file)])
    err = capsys.readouterr().err
    assert code == 2 and "pip install -e '.[gguf]'" in err and len(err.strip().splitlines()) == 1
    assert numpybert.load(require_gguf("tiny-bert-wp.q8_0.gguf")).encode(["hi"]).shape == (1, 32)  # no gguf needed
