"""Sentence embeddings (numpybert/apps/encode.py): parity with sentence-transformers, the pooling
math, the settings read from a sentence-transformers directory, and batching that never
changes the answer.

Tolerances:
- sentence-transformers parity (all-MiniLM-L6-v2, golden from `SentenceTransformer.encode`):
  cosine ≥ 0.999999 and max abs ≤ 1e-5 per embedding (the issue's bar). Measured: cosine
  1 - 6e-8, max abs 2.2e-7 (float32 rounding of two correct forwards, see tests/engine/test_golden.py).
- A text embedded alone vs in a padded, length-sorted batch: 1e-5. Padded keys get exactly zero
  attention; only the float32 summation order of the GEMMs changes (measured ≤ 1e-6).
"""

import hashlib
import json

import numpy as np
import pytest

import numpybert
from numpybert.loading.checkpoint import read_safetensors
from numpybert.apps.batching import embed_texts
from numpybert.apps.pooling import l2_normalize, pool
from numpybert.apps.st_config import encode_settings, read_settings
from numpybert.errors import ConfigError, InputTypeError, InputValueError, MissingWeightsError

from helpers import GOLDEN, make_text_model, require_minilm, ROOT

TEXTS = ["the man plays the guitar", "a dog runs", "", "paris is the capital of france!", "x",
         "the dark river runs in the bright city and the cat reads a book in the house", "music",
         "zebras quietly juggle", "the the the the the the the the the", "capital"]


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return numpybert.load(tiny_dir)


# ----------------------------------------------------------------------------- sentence-transformers parity

def test_sentence_transformers_parity():
    """numpybert's encode with the directory's defaults vs SentenceTransformer(...).encode."""
    minilm = require_minilm()
    path = GOLDEN / "all-MiniLM-L6-v2" / "sentence_embeddings.safetensors"
    if not path.is_file():
        pytest.fail(f"{path} missing: run `python scripts/export_golden.py sentences`", pytrace=False)
    sentences_file = ROOT / "tests" / "data" / "sentences.json"
    tensors, metadata = read_safetensors(path)
    assert metadata["sentences_sha256"] == hashlib.sha256(sentences_file.read_bytes()).hexdigest(), \
        f"{sentences_file} changed since the golden was made: {metadata['command']}"
    sentences = json.loads(sentences_file.read_text())["sentences"]
    expected = tensors["outputs.embeddings"][1]
    got = numpybert.load(minilm).encode(sentences)
    assert got.dtype == np.float32 and got.shape == expected.shape == (len(sentences), 384)
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.999999, f"worst cosine {cosine.min()} (sentence {cosine.argmin()})"
    worst = np.abs(got - expected).max(axis=1)
    assert worst.max() <= 1e-5, f"max abs {worst.max()} (sentence {worst.argmax()})"


def test_minilm_defaults_come_from_its_directory():
    """all-MiniLM-L6-v2 ships modules.json (Transformer, Pooling, Normalize), mean pooling and
    max_seq_length 256: the issue's stated defaults."""
    minilm = require_minilm()
    settings = read_settings(minilm, 512)
    assert (settings.pooling, settings.normalize, settings.max_seq_length) == (("mean",), True, 256)


# ----------------------------------------------------------------------------- pooling math

def _masked_batch(seed=0, B=5, T=7, H=6):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((B, T, H)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T  # one unpadded row
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    return h, mask, lengths


@pytest.mark.parametrize("mode", ["cls", "mean", "max", "mean_sqrt_len"])
def test_pool_matches_a_loop_over_real_tokens(mode):
    h, mask, lengths = _masked_batch()
    expect = []
    for row, n in zip(h, lengths):
        real = row[:n].astype(np.float64)
        expect.append({"cls": real[0], "mean": real.sum(0) / n, "max": real.max(0),
                       "mean_sqrt_len": real.sum(0) / np.sqrt(n)}[mode])
    got = pool(h, mask, mode)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.array(expect), rtol=0, atol=1e-6)  # float32 sums of 7 values ~1


def test_pool_ignores_whatever_padding_holds():
    h, mask, _ = _masked_batch(seed=1)
    noisy = np.where(mask[:, :, None] == 1, h, 1e6).astype(np.float32)
    for mode in ("cls", "mean", "max", "mean_sqrt_len"):
        np.testing.assert_array_equal(pool(noisy, mask, mode), pool(h, mask, mode))


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


# ----------------------------------------------------------------------------- settings

@pytest.mark.parametrize("pooling_config, expected", [
    ({"pooling_mode_cls_token": True}, ("cls",)),
    ({"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}, ("max", "mean")),  # ST's order
    ({"pooling_mode_mean_sqrt_len_tokens": True}, ("mean_sqrt_len",)),
    ({}, ("mean",)),  # no mode set: sentence-transformers falls back to mean
    ({"pooling_mode": "max"}, ("max",)),  # the sentence-transformers >= 5 key
    ({"pooling_mode": ["cls", "mean"]}, ("cls", "mean")),
])
def test_pooling_read_from_sentence_transformers_config(tmp_path, pooling_config, expected):
    d = make_text_model(tmp_path / "m", sentence_transformers={"pooling": pooling_config, "max_seq_length": 16,
                                                               "normalize": True})
    settings = read_settings(d, 64)
    assert (settings.pooling, settings.normalize, settings.max_seq_length) == (expected, True, 16)


def test_plain_checkpoint_defaults_to_mean_without_normalize(tiny_dir):
    settings = read_settings(tiny_dir, 64)
    assert (settings.pooling, settings.normalize, settings.max_seq_length) == (("mean",), False, 64)


@pytest.mark.parametrize("st, message", [
    ({"pooling": {"pooling_mode_weightedmean_tokens": True}}, "weightedmean"),
    ({"modules": ["Transformer", "Pooling", "Dense"]}, "Dense"),
    ({"modules": ["Transformer"]}, "no Pooling module"),
])
def test_unsupported_sentence_transformers_setups_are_refused(tmp_path, st, message):
    d = make_text_model(tmp_path / "m", sentence_transformers=st)
    with pytest.raises(ConfigError, match=message):
        read_settings(d, 64)


def test_overrides_are_checked(tiny):
    with pytest.raises(InputValueError, match="pooling='median'"):
        tiny.encode(["a"], pooling="median")
    with pytest.raises(InputValueError, match="max_seq_length=65"):
        tiny.encode(["a"], max_seq_length=65)
    with pytest.raises(InputValueError, match="batch_size=0"):
        tiny.encode(["a"], batch_size=0)


# ----------------------------------------------------------------------------- encode

def _alone(model, text, mode="mean", max_length=None):
    """One text through the plain forward pass, pooled by the loop above: no batching involved."""
    batch = model.tokenize([text], max_length=max_length)
    out = model(**batch)
    n = int(batch["attention_mask"].sum())
    real = out.last_hidden_state[0, :n]
    return {"mean": real.mean(0), "cls": real[0], "max": real.max(0), "pooler": out.pooler_output[0]}[mode]


def test_results_come_back_in_input_order(tiny):
    """Batches are sorted by length inside; each row must still be its own text's embedding."""
    got = tiny.encode(TEXTS, batch_size=3)
    expect = np.stack([_alone(tiny, t) for t in TEXTS])
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-5)  # alone vs padded batch (docstring)


@pytest.mark.parametrize("mode", ["cls", "max", "pooler"])
def test_each_pooling_mode_in_encode(tiny, mode):
    got = tiny.encode(TEXTS, pooling=mode, batch_size=4)
    np.testing.assert_allclose(got, np.stack([_alone(tiny, t, mode) for t in TEXTS]), rtol=0, atol=1e-5)


def test_pooler_mode_refused_without_a_pooler(tmp_path):
    model = numpybert.load(make_text_model(tmp_path / "m", "tiny-no-pooler"))
    with pytest.raises(MissingWeightsError, match="no pooler"):
        model.encode(["a"], pooling="pooler")


def test_normalize_and_concatenated_modes(tiny):
    raw = tiny.encode(TEXTS, pooling=("cls", "mean"))
    assert raw.shape == (len(TEXTS), 2 * 32)
    np.testing.assert_array_equal(raw[:, :32], tiny.encode(TEXTS, pooling="cls"))
    normalized = tiny.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(normalized, l2_normalize(tiny.encode(TEXTS)), atol=1e-7)


def test_truncation_at_max_seq_length(tiny):
    long_text = TEXTS[5]
    got = tiny.encode([long_text], max_seq_length=6)
    np.testing.assert_allclose(got[0], _alone(tiny, long_text, max_length=6), rtol=0, atol=1e-5)
    assert not np.allclose(got, tiny.encode([long_text]), atol=1e-3)  # the cut mattered


def test_sentence_transformers_do_lower_case(tmp_path):
    d = make_text_model(tmp_path / "m", sentence_transformers={"do_lower_case": True})
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))  # a cased tokenizer
    model = numpybert.load(d)
    np.testing.assert_array_equal(model.encode(["The DOG"]), model.encode(["the dog"]))


def test_shapes_single_text_and_empty_list(tiny):
    assert tiny.encode("a dog").shape == (32,)
    np.testing.assert_array_equal(tiny.encode("a dog"), tiny.encode(["a dog"])[0])
    empty = tiny.encode([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32


def test_bad_items_are_named_by_index(tiny):
    with pytest.raises(InputTypeError, match=r"sentences\[2\] is None"):
        tiny.encode(["a", "b", None])
    with pytest.raises(InputValueError, match=r"sentences\[1\] has a lone surrogate"):
        tiny.encode(["a", "b\ud800"])


def test_window_boundaries_give_bit_identical_results(tiny):
    """A text's embedding depends only on its window: embedding whole windows separately (as the
    corpus runner and Dask partitions do) is bit-for-bit one call."""
    texts = TEXTS * 7  # 70 texts
    whole = embed_texts(tiny, texts, encode_settings(tiny.model_dir, tiny.config), batch_size=4, window=16)
    parts = [tiny.encode(texts[i:i + 16], batch_size=4, window=16) for i in range(0, len(texts), 16)]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_float64_model_encodes_in_float64(tiny_dir):
    model = numpybert.load(tiny_dir, dtype="float64")
    got = model.encode(TEXTS)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, numpybert.load(tiny_dir).encode(TEXTS), atol=1e-5)


def test_progress_bar_on_stderr(tiny, capsys):
    """tqdm comes with the `cli` extra; without it, asking for a bar is a clear error."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install 'numpybert\\[cli\\]'"):
            tiny.encode(TEXTS, show_progress_bar=True)
        return
    tiny.encode(TEXTS, show_progress_bar=True)
    err = capsys.readouterr().err
    assert f"{len(TEXTS)}/{len(TEXTS)}" in err and "text/s" in err


def test_max_batch_tokens_caps_each_batch():
    from numpybert.apps.batching import length_sorted_batches
    batches = length_sorted_batches([10, 300, 5, 200, 150], batch_size=32, max_batch_tokens=400)
    assert [list(b) for b in batches] == [[1], [3, 4], [0, 2]]  # 300 alone; 2 × 200 ≤ 400; then 40 × 10
    assert [list(b) for b in length_sorted_batches([10, 300], 32, 100)] == [[1], [0]]  # too long: alone


def test_max_batch_tokens_does_not_change_the_embeddings(minilm):
    texts = ["short", "a somewhat longer sentence about nothing in particular", "mid length text here"] * 3
    a = minilm.encode(texts)
    b = minilm.encode(texts, max_batch_tokens=20)  # one text per batch
    assert np.abs(a - b).max() <= 1e-6  # different GEMM shapes only (measured ~1e-7)
    with pytest.raises(numpybert.InputValueError):
        minilm.encode(texts, max_batch_tokens=0)


def test_token_budget_packs_short_texts_and_keeps_the_memory_cap():
    """A batch takes batch_size full-length texts' worth of tokens (batch_size × max_seq_length),
    never more token positions than max_batch_tokens (texts × the batch's longest)."""
    from numpybert.apps.batching import length_sorted_batches
    lengths = [10] * 100 + [256] * 40
    batches = length_sorted_batches(lengths, 32, 16384, token_budget=32 * 256)
    assert [len(b) for b in batches] == [32, 64, 44]  # 32 long; 8 long + 56 short (64 × 256 positions); the rest
    assert sorted(np.concatenate(batches).tolist()) == list(range(140))
    assert all(sum(lengths[i] for i in b) <= 32 * 256 for b in batches)
    assert [list(b) for b in length_sorted_batches([5, 7, 3], 1, 100, token_budget=10)] == [[1], [0, 2]]
    assert [list(b) for b in length_sorted_batches([5, 3, 2], 1, 100, token_budget=10)] == [[0, 1, 2]]


def test_encode_with_the_defaults_runs_short_texts_in_fewer_forwards(tiny, monkeypatch):
    """sentence-transformers would run 100 short texts in 4 forwards of batch_size 32; numpybert's
    token budget (32 × max_seq_length tokens) takes them in one, with the same answers."""
    from numpybert.apps import batching
    texts = [TEXTS[i % len(TEXTS)] + f" {i}" for i in range(100)]
    calls, forward = [], batching.forward_batch
    monkeypatch.setattr(batching, "forward_batch", lambda model, batch, *a: calls.append(len(batch["input_ids"]))
                        or forward(model, batch, *a))
    got = tiny.encode(texts)
    assert calls == [100]
    alone = np.stack([_alone(tiny, t) for t in texts[:10]])
    np.testing.assert_allclose(got[:10], alone, rtol=0, atol=1e-5)  # alone vs batch, as test_results_come_back_in_input_order
