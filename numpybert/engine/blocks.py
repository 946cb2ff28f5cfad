"""Running element-wise work in cache-sized blocks, optionally on several threads.

This is *how* numpybert/engine/model.py's element-wise operations run, kept out of the model so that
the model reads as math. NumPy makes one pass over memory per operation; a GELU is a dozen
passes. Done block by block (BLOCK_BYTES), those passes hit the CPU cache instead of memory,
and the blocks can be shared between threads (NumPy releases the GIL inside each pass).
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..util import positive_int

# Element-wise work is done on blocks of about this many bytes: the dozens of NumPy passes a
# GELU makes over one block then stay in the CPU's L2 cache instead of streaming memory.
BLOCK_BYTES = 1 << 18
PARALLEL_BYTES = 1 << 20  # below this much work, a second thread costs more than it saves
# ... but inside `sharing` (BLAS on one thread: no idle BLAS thread spinning on the other core) a
# second thread pays from here: MiniLM 1×512, whose [512, 384] LayerNorm is 768 KB, 129–143 -> 111–123
# ms per forward (2 threads, 2026-11-30); MiniLM 32×128, 4×256, bert-base 1×512, 8×128 unchanged.
SHARED_PARALLEL_BYTES = 1 << 18
_pool = {"threads": 1, "executor": None, "one_blas_thread": None, "sharing": False,
         "chosen": False}  # chosen: set_threads was called (by the user, or once by threads.choose_once)
_inside = threading.local()  # set in the worker threads: blocks within blocks run serially


def set_threads(n: int, one_blas_thread=None) -> None:
    """How many threads share the blocks of work (1: the calling thread only). `one_blas_thread`
    is a context-manager factory limiting BLAS to one thread, for blocks that multiply matrices
    (`numpybert.set_threads` passes threadpoolctl's); without it those blocks stay serial."""
    positive_int("threads", n)
    if _pool["executor"] is not None:
        _pool["executor"].shutdown()
    _pool.update(threads=n, executor=ThreadPoolExecutor(n - 1, "numpybert") if n > 1 else None,
                 one_blas_thread=one_blas_thread, chosen=True)


def thread_count() -> int:
    """Threads that share blocks of work (set_threads)."""
    return _pool["threads"]


def threads_chosen() -> bool:
    """Whether set_threads has been called (by the user, or once by threads.choose_once)."""
    return _pool["chosen"]


def blocks(n: int, step: int):
    """Slices of range(n), `step` long (the last may be shorter)."""
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def for_each_block(fn, jobs, nbytes=PARALLEL_BYTES, blas=False):
    """Call fn(*job) for every job. With set_threads(n > 1) and at least PARALLEL_BYTES of data
    (SHARED_PARALLEL_BYTES inside `sharing`), n threads share the jobs: NumPy releases the GIL inside
    each pass, so their passes overlap.
    `blas`: the jobs multiply matrices, so BLAS gets one thread meanwhile (no oversubscription)."""
    limit = _pool["one_blas_thread"] if blas and not _pool["sharing"] else contextlib.nullcontext
    enough = SHARED_PARALLEL_BYTES if _pool["sharing"] else PARALLEL_BYTES
    if (_pool["executor"] is None or len(jobs) < 2 or nbytes < enough or limit is None
            or getattr(_inside, "busy", False)):
        for job in jobs:
            fn(*job)
        return
    n = _pool["threads"]

    def share(i):  # thread i takes every n-th job
        _inside.busy = True
        try:
            for job in jobs[i::n]:
                fn(*job)
        finally:
            _inside.busy = False

    with limit():
        futures = [_pool["executor"].submit(share, i) for i in range(1, n)]
        share(0)
        for f in futures:
            f.result()


def elementwise(fn, x, out=None):
    """Apply `fn(x_block, out_block)` to cache-sized blocks of a C-contiguous array; `out` may be x."""
    x = np.asarray(x)
    out = np.empty_like(x) if out is None else out
    if not out.flags.c_contiguous:
        raise ValueError("elementwise: out must be C-contiguous (a reshaped copy would be written instead)")
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)  # views, both contiguous
    step = max(1, BLOCK_BYTES // x.itemsize)
    for_each_block(lambda s: fn(flat_x[s], flat_out[s]), [(s,) for s in blocks(flat_x.size, step)], x.nbytes)
    return out


def sharing_active() -> bool:
    """Inside `sharing`: BLAS is on one thread and numpybert's threads share the work."""
    return _pool["sharing"]


MIN_ROWS_PER_THREAD = 256  # fewer rows make a one-thread GEMM stream the weights for too little work


# ----------------------------------------------------------------------------- one regime per forward

@contextlib.contextmanager
def sharing(rows: int):
    """Run a forward over `rows` token rows in ONE threading regime. When set_threads(n > 1) and
    the work is large, BLAS stays on one thread for the whole forward and numpybert's n threads
    share every step: GEMM rows (`matmul`), heads, element-wise blocks, sequences. Switching
    instead between multi-threaded BLAS and numpybert's threads loses a core: OpenBLAS's idle
    threads spin for a while after each GEMM (measured: a 2-thread GEMM then 2-thread attention
    blocks took 24.4 ms, the two alone 6.2 + 8.4 ms). Small work keeps multi-threaded BLAS."""
    if (_pool["executor"] is None or _pool["one_blas_thread"] is None or _pool["sharing"]
            or rows < _pool["threads"] * MIN_ROWS_PER_THREAD):
        yield
        return
    with _pool["one_blas_thread"]():
        _pool["sharing"] = True
        try:
            yield
        finally:
            _pool["sharing"] = False


def matmul(a, b, out):
    """np.matmul(a, b, out=out) for 2-D `a`; inside `sharing`, each thread takes a share of a's rows
    (rows are independent: the result is the same as one GEMM's)."""
    if not _pool["sharing"] or getattr(_inside, "busy", False) or len(a) < 2 * MIN_ROWS_PER_THREAD:
        return np.matmul(a, b, out=out)
    shares = blocks(len(a), -(-len(a) // _pool["threads"]))
    for_each_block(lambda s: np.matmul(a[s], b, out=out[s]), [(s,) for s in shares], out.nbytes, blas=True)
    return out
