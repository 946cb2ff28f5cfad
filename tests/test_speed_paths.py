"""The fast paths of numpybert/model.py compute the same numbers as the plain ones.

Blocks of heads vs whole tensors (a trace forces whole tensors), several threads vs one,
the batch split between threads vs one batch, the fused Q/K/V weights vs the checkpoint's.
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
    for x, y in zip(a[0] + a[1] + [a[2]], b[0] + b[1] + [b[2]]):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.abs(x - y).max() <= atol


# The same GEMM calls on the same slices: measured identical (0.0); the bound leaves room for a
# BLAS that splits a product between its threads differently (a few ulp of values ~1-10).
def test_blocks_of_heads_equal_whole_tensors(minilm):
    assert_same(forward(minilm), forward(minilm, trace=M.Trace()), atol=1e-5)


def test_blocks_of_heads_equal_whole_tensors_float64(minilm_dir):
    model = numpybert.load(minilm_dir, dtype="float64")
    assert_same(forward(model, B=2, T=300), forward(model, trace=M.Trace(), B=2, T=300), atol=1e-12)


def test_threads_and_the_batch_split_give_the_same_numbers(minilm, serial, monkeypatch):
    expected = forward(minilm)
    monkeypatch.setattr(B, "PARALLEL_BYTES", 1)  # share even small blocks
    monkeypatch.setattr(B, "MIN_ROWS_PER_THREAD", 1)  # split even a small batch
    B.set_threads(2, one_blas_thread=contextlib.nullcontext)
    assert B.batch_shares(4, 40) == [slice(0, 2), slice(2, 4)]
    assert_same(forward(minilm), expected, atol=1e-5)
    B.set_threads(3, one_blas_thread=None)  # no BLAS limiter: blocks with GEMMs stay serial
    assert B.batch_shares(4, 40) == [slice(None)]
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
