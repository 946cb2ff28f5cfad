"""The fast paths of numpybert/engine compute the same numbers as the plain ones.

A traced forward vs an untraced one (the same path), several threads vs one, the sequences
split between threads vs one share, the few-rows product (W·xᵀ)ᵀ vs x·Wᵀ.
"""

import contextlib
import os

import numpy as np
import pytest

import numpybert
from numpybert.engine import blocks as B, model as M
from numpybert.loading.checkpoint import read_safetensors
from numpybert.errors import InputValueError
from numpybert.text.inputs import check_inputs


def inputs(model, B, T, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 20000, (B, T))
    mask = np.ones((B, T), np.int64)
    mask[1, T // 3:] = 0  # one padded sequence
    return check_inputs(model.config, ids, mask)


def forward(model, trace=M.NO_TRACE, B=4, T=40):
    ids, mask, types, positions = inputs(model, B, T)
    return M.bert(ids, types, positions, mask, model.params, model.config, trace=trace)


@pytest.fixture
def serial():
    """Restore one thread after a test that changes it."""
    yield
    B.set_threads(1)


def assert_same(a, b, atol):
    """Two forwards' (hidden states, attentions, pooled) are equal within atol, tensor by tensor:
    the same number of each (a missing layer is a failure, not a shorter comparison)."""
    assert (len(a[0]), len(a[1])) == (len(b[0]), len(b[1])), "a different number of hidden states or attentions"
    assert len(a[0]) > 1 and len(a[1]) > 0, "nothing to compare: the forward kept no hidden states or attentions"
    for x, y in zip(a[0] + a[1] + [a[2]], b[0] + b[1] + [b[2]], strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.abs(x - y).max() <= atol


def test_traced_forward_is_the_forward(minilm):
    """Recording copies what the forward computes and changes nothing: bit-identical results."""
    assert_same(forward(minilm), forward(minilm, trace=M.Trace()), atol=0.0)


def test_traced_forward_is_the_forward_float64(minilm_dir):
    model = numpybert.load(minilm_dir, dtype="float64")
    assert_same(forward(model, B=2, T=300), forward(model, trace=M.Trace(), B=2, T=300), atol=0.0)


# Threads each run every layer on their share of the sequences: different GEMM shapes, so a few
# ulp of values ~1-10 may differ (measured 0.0 to 2e-6).
def test_threads_and_the_shares_give_the_same_numbers(minilm, serial, monkeypatch):
    from numpybert.engine.layout import make_layout
    expected = forward(minilm)
    monkeypatch.setattr(B, "PARALLEL_BYTES", 1)  # share even small blocks
    monkeypatch.setattr(B, "MIN_ROWS_PER_THREAD", 1)  # split even a small batch
    monkeypatch.setattr("numpybert.engine.layout.MIN_ROWS_PER_THREAD", 1)
    B.set_threads(2, one_blas_thread=contextlib.nullcontext)
    mask = np.ones((4, 40), np.int64)
    with B.sharing(10):
        assert len(make_layout(mask, None, False, 384, 1536).shares) == 2
        assert_same(forward(minilm), expected, atol=1e-5)
        traced = forward(minilm, trace=M.Trace())  # both threads record into the same tensors
    assert_same(traced, expected, atol=1e-5)
    B.set_threads(3, one_blas_thread=None)  # no BLAS limiter: no sharing regime, one share
    with B.sharing(10):
        assert len(make_layout(mask, None, False, 384, 1536).shares) == 1
    assert_same(forward(minilm), expected, atol=1e-5)


def test_one_threading_regime_per_forward(minilm, serial):
    """A large forward under set_threads(2) runs with BLAS on one thread throughout (numpybert's
    threads share the GEMM rows), restores BLAS afterwards, and computes the same numbers."""
    from numpybert.engine.threads import threads_info
    assert threads_info()["blas"], "threadpoolctl is missing (the test extra installs it): BLAS threads cannot be checked"
    ids = np.random.default_rng(0).integers(1000, 20000, (1, 512))  # B = 1: no batch split, the rows are
    expected = minilm(ids).last_hidden_state
    numpybert.set_threads(2)
    with B.sharing(2 * B.MIN_ROWS_PER_THREAD):
        assert B._pool["sharing"] and all(lib["num_threads"] == 1 for lib in threads_info()["blas"])
    assert not B._pool["sharing"] and all(lib["num_threads"] == 2 for lib in threads_info()["blas"])
    with B.sharing(2 * B.MIN_ROWS_PER_THREAD - 1):  # small work keeps multi-threaded BLAS
        assert not B._pool["sharing"]
    a, w = np.ones((600, 8), np.float32), np.arange(24, dtype=np.float32).reshape(8, 3)
    with B.sharing(600):
        assert np.array_equal(B.matmul(a, w, np.empty((600, 3), np.float32)), a @ w)
    assert np.abs(minilm(ids).last_hidden_state - expected).max() <= 1e-5  # measured 0.0


def test_threads_are_chosen_once_by_the_first_large_forward(serial, monkeypatch):
    from numpybert.engine import threads
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # as in a --workers or Dask worker process
    assert threads.default_threads() == 1
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setitem(B._pool, "chosen", False)
    threads.choose_once(2 * B.MIN_ROWS_PER_THREAD - 1)  # small work: nothing chosen yet
    assert not B._pool["chosen"]
    threads.choose_once(2 * B.MIN_ROWS_PER_THREAD)
    assert B._pool["chosen"] and threads.get_threads() == len(os.sched_getaffinity(0))
    numpybert.set_threads(1)  # the user's choice stands
    threads.choose_once(10_000)
    assert threads.get_threads() == 1


def test_fused_qkv_keeps_the_checkpoint_names_and_values(minilm, minilm_dir):
    tensors, _ = read_safetensors(str(minilm_dir / "model.safetensors"))
    for i in range(minilm.config.num_hidden_layers):
        names = [f"encoder.layer.{i}.attention.self.{p}.weight" for p in ("query", "key", "value")]
        views = [minilm.flat_params[n] for n in names]
        assert all(np.array_equal(v, tensors[n][1]) for v, n in zip(views, names))
        attention = minilm.params["encoder"]["layer"][i]["attention"]["self"]
        fused, _ = M.qkv_weights(attention["query"], attention["key"], attention["value"])
        assert all(np.shares_memory(fused, v) for v in views)  # one GEMM, no copy per call
        assert fused.flags.c_contiguous and fused.shape == (3 * len(views[0]), views[0].shape[1])  # [3H, H]
        assert minilm.params["encoder"]["layer"][i]["attention"]["self"]["query"]["weight"] is views[0]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_refuses_non_positive_integers(bad, serial):
    with pytest.raises(InputValueError):
        numpybert.set_threads(bad)


def test_set_threads_is_honoured(serial):
    numpybert.set_threads(2)
    from numpybert.engine.threads import threads_info
    info = threads_info()
    assert info["numpybert_threads"] == 2
    assert info["blas"], "threadpoolctl is missing (the test extra installs it): BLAS threads cannot be checked"
    assert all(lib["num_threads"] == 2 for lib in info["blas"])


def test_elementwise_refuses_a_non_contiguous_out():
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        M.gelu(x, out=np.zeros((4, 8), np.float32)[:, ::2])


def test_linear_weights_are_the_checkpoints_own(minilm, minilm_dir):
    """Nothing but Q|K|V is copied at load: every other Linear weight is the file's [out, in] tensor."""
    tensors, _ = read_safetensors(str(minilm_dir / "model.safetensors"))
    for name in ("encoder.layer.0.intermediate.dense.weight", "encoder.layer.5.output.dense.weight",
                 "encoder.layer.2.attention.output.dense.weight", "pooler.dense.weight"):
        w = minilm.flat_params[name]
        assert w.flags.c_contiguous and w.shape == tensors[name][1].shape  # [out, in], as torch
        assert np.array_equal(w, tensors[name][1])


@pytest.mark.parametrize("dtype, tol", [(np.float32, 5e-6), (np.float64, 1e-13)])
def test_few_rows_product_equals_the_row_product(monkeypatch, dtype, tol):
    """(W·xᵀ)ᵀ for few rows (FEW_ROWS) and x·Wᵀ otherwise: the same numbers up to the GEMM's rounding
    (measured: the two paths bit-identical here, 2.4e-6 from the exact product in float32 with |y| up
    to ~8, 0 in float64; the tolerances leave 2× room)."""
    rng = np.random.default_rng(3)
    w, b = (rng.normal(size=(96, 384)) / 384 ** 0.5).astype(dtype), rng.normal(size=96).astype(dtype)  # y ~ N(0, 2)
    x = rng.normal(size=(M.FEW_ROWS, 384)).astype(dtype)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    few = M.linear(x, w, b)
    few_no_bias = M.linear(x, w, None)
    monkeypatch.setattr(M, "FEW_ROWS", 0)
    many = M.linear(x, w, b)
    assert few.dtype == many.dtype == dtype
    np.testing.assert_allclose(few, many, rtol=0, atol=tol)
    np.testing.assert_allclose(few, exact, rtol=0, atol=tol)
    np.testing.assert_allclose(few_no_bias + b, few, rtol=0, atol=tol)


# ----------------------------------------------------------------------------- no work on padding

def padded(model, lengths, T, seed=1, left=False):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 20000, (len(lengths), T))
    mask = np.zeros((len(lengths), T), np.int64)
    for b, n in enumerate(lengths):
        if left:
            mask[b, T - n:] = 1
        else:
            mask[b, :n] = 1
    return ids, mask


# Real tokens: the packed forward attends over the real keys only, where HF adds exp(finfo.min) = 0
# for the padded ones; only the GEMM shapes differ. Measured ≤ 2e-6 (float32), ≤ 1e-13 (float64).
@pytest.mark.parametrize("left", [False, True])
def test_skip_padding_gives_the_same_values_at_real_tokens(minilm, left):
    ids, mask = padded(minilm, [5, 17, 17, 1, 30, 9], 30, left=left)
    full = minilm(ids, mask, output_hidden_states=True, output_attentions=True)
    skip = minilm(ids, mask, output_hidden_states=True, output_attentions=True, skip_padding=True)
    real = mask.astype(bool)
    for a, b in zip(full.hidden_states, skip.hidden_states):
        assert np.abs(a[real] - b[real]).max() <= 1e-5
        assert not b[~real].any()  # padded positions are not computed
    for a, b in zip(full.attentions, skip.attentions):
        both = real[:, None, :, None] & real[:, None, None, :]
        assert np.abs(a - b)[np.broadcast_to(both, a.shape)].max() <= 1e-5
        assert not b[~np.broadcast_to(both, b.shape)].any()
    if not left:  # position 0 is real: the same pooled output
        assert np.abs(full.pooler_output - skip.pooler_output).max() <= 1e-5


def test_skip_padding_drops_a_sequence_without_real_tokens(minilm):
    ids, mask = padded(minilm, [6, 0, 3], 8)
    full, skip = minilm(ids, mask), minilm(ids, mask, skip_padding=True)
    assert not skip.last_hidden_state[1].any()
    assert np.abs(full.last_hidden_state[0, :6] - skip.last_hidden_state[0, :6]).max() <= 1e-5


def test_trace_of_a_packed_forward_has_the_full_shapes(minilm):
    ids, mask = padded(minilm, [4, 7], 7)
    out = minilm(ids, mask, record=True, skip_padding=True)
    N, H = minilm.config.num_attention_heads, minilm.config.hidden_size
    assert out.trace["encoder.layer.0.attention.self.query"].shape == (2, N, 7, H // N)
    assert out.trace["encoder.layer.0.attention.self.probs"].shape == (2, N, 7, 7)
    assert out.trace["encoder.layer.3.intermediate.output"].shape == (2, 7, minilm.config.intermediate_size)
    np.testing.assert_allclose(out.trace["encoder.layer.0.attention.self.probs"][0, :, :4, :4].sum(-1), 1.0, atol=1e-6)


# ----------------------------------------------------------------------------- memory

def test_forward_memory_is_bounded_by_what_is_asked(minilm):
    """tracemalloc sees NumPy's allocations. Without output_attentions, no layer's [B, N, T, T]
    probabilities are kept: the peak is the workspaces (about (3H + max(3H, I))·R floats) and
    the output, far below one attention tensor per layer."""
    import tracemalloc
    Bsz, T = 8, 256
    ids = np.random.default_rng(0).integers(1000, 20000, (Bsz, T))
    minilm(ids[:1, :8])  # warm up (scratch buffers, lazy imports)
    cfg = minilm.config
    R, H, I, N, L = Bsz * T, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_hidden_layers
    tracemalloc.start()
    minilm(ids)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    workspaces = 4 * R * (4 * H + max(3 * H, I))  # x, h, context, output + Q|K|V or FFN
    assert peak <= 1.3 * workspaces + 4e6, (peak, workspaces)
    assert peak < L * 4 * Bsz * N * T * T / 4  # all layers' probabilities would be 4x more than the peak


def test_inputs_embeds_replace_the_token_embeddings(minilm):
    ids, mask = padded(minilm, [9, 4], 9)
    table = minilm.params["embeddings"]["word_embeddings"]["weight"]
    ids_, mask_, types, positions = check_inputs(minilm.config, ids, mask)
    a = M.bert(ids_, types, positions, mask_, minilm.params, minilm.config)
    b = M.bert(ids_, types, positions, mask_, minilm.params, minilm.config, inputs_embeds=table[ids_])
    assert_same(a, b, atol=0.0)
    c = M.bert(None, types, positions, mask_, minilm.params, minilm.config, inputs_embeds=table[ids_],
               skip_padding=True)  # no ids at all
    real = mask_.astype(bool)
    assert np.abs(c[0][-1][real] - a[0][-1][real]).max() <= 1e-5
