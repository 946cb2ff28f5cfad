"""llama.cpp itself as a peer (issue 26): numpybert on the same GGUF files as llama.cpp's own tokens and
embeddings, committed by scripts/export_llamacpp_golden.py (llama-cpp-python 0.3.36 built from its sdist;
not in CI). What differs is llama.cpp's kernels (tanh-approximated GELU, its own float32 reductions, f16
matrix products for F16/Q8_0 weights) against the file's exact arithmetic."""

import hashlib
import json

import numpy as np
import pytest

import numpybert
from helpers import ROOT, require_gguf

GOLDEN = json.loads((ROOT / "tests" / "gguf" / "llamacpp_golden.json").read_text(encoding="utf-8"))
TOKENS = ROOT / "tests" / "gguf" / "llamacpp_golden.npz"
# The worst cosine between numpybert's and llama.cpp's pooled embeddings, per outtype over every file and text
# of the golden, measured 2026-12-06: f32 0.9999989, f16 0.9999987, q8_0 0.9997318 (MiniLM; tiny files closer);
# the bounds keep a margin of ~10x the measured gap for other machines' float32 noise.
MIN_COSINE = {"f32": 0.9999, "f16": 0.9999, "q8_0": 0.999}


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module", params=sorted(GOLDEN["files"]))
def peer(request):
    name = request.param
    path = require_gguf(name)
    entry = GOLDEN["files"][name]
    assert sha256(path) == entry["sha256"], (
        f"{path} is not the file llama.cpp's goldens were made from: rerun scripts/make_gguf.py, or regenerate with "
        f"{GOLDEN['command']}")
    return name, numpybert.load(path), entry


def test_token_ids_equal_llamacpps(peer):
    name, model, entry = peer
    for item in entry["texts"]:
        assert model.tokenizer.encode(item["text"]) == item["ids"], f"{name}: {item['text']!r}"


def test_pooled_embeddings_match_llamacpps(peer, capsys):
    name, model, entry = peer
    texts = [item["text"] for item in entry["texts"]]
    ours = model.encode(texts, normalize=False)
    theirs = np.array([item["embedding"] for item in entry["texts"]], np.float32)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    with capsys.disabled():
        print(f"\n{name}: numpybert vs llama.cpp pooled: min cosine {cos.min():.7f}, "
              f"max abs {np.abs(ours - theirs).max():.1e}")
    assert cos.min() >= MIN_COSINE[name.rsplit(".", 2)[-2]]


def test_token_vectors_match_llamacpps(peer):
    """llama.cpp's per-token output (pooling none) is last_hidden_state at the real tokens."""
    name, model, entry = peer
    with np.load(TOKENS) as arrays:
        for i, item in enumerate(entry["texts"]):
            theirs = arrays[f"{name}/{i}"]
            batch = model.tokenize([item["text"]])
            ours = model(**batch).last_hidden_state[0]
            assert ours.shape == theirs.shape
            cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
            assert cos.min() >= MIN_COSINE[name.rsplit(".", 2)[-2]] - 1e-3, f"{name}: {item['text']!r}"
