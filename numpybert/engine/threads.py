"""How many CPU threads numpybert uses: `numpybert.set_threads(n)`, or chosen for you.

Unless you call set_threads, the first large forward (at least 512 token rows) picks
`default_threads()` -- when threadpoolctl is installed (the `threads` extra), so that
numpybert can keep BLAS on one thread while its own threads share the work; without it,
numpybert uses one thread and BLAS its own.

Two kinds of threads do the work:
- BLAS's own (the matrix products). NumPy's OpenBLAS starts with one per core; it can be
  changed at run time only through threadpoolctl. Without threadpoolctl, set
  OPENBLAS_NUM_THREADS / OMP_NUM_THREADS before Python starts.
- numpybert's (`blocks.set_threads`): for large work, they share every step of a forward (GEMM
  rows, heads, element-wise blocks, sequences) while BLAS keeps to one thread (`blocks.sharing`).
"""

import os

from . import blocks
from ..util import positive_int


def _controller():
    """threadpoolctl's controller of the loaded BLAS libraries, or None when it is not installed."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def set_threads(n: int) -> None:
    """Use n threads: BLAS (when threadpoolctl is installed) and numpybert's element-wise blocks."""
    positive_int("threads", n)
    controller = _controller()
    if controller is not None:
        controller.select(user_api="blas").limit(limits=n)
        blas = controller.select(user_api="blas")
        blocks.set_threads(n, one_blas_thread=lambda: blas.limit(limits=1))
    else:
        blocks.set_threads(n, one_blas_thread=None)


def default_threads() -> int:
    """OPENBLAS_NUM_THREADS or OMP_NUM_THREADS when set (a worker process told to use one thread
    keeps to one: `numpybert embed --workers`, Dask), else the CPUs this process may run on."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_once(rows: int) -> None:
    """Before a forward over `rows` token rows: if set_threads was never called and the work is
    large, call it once with default_threads() (1 without threadpoolctl). Small forwards, such as
    a cold start's one sentence, never pay for importing threadpoolctl."""
    if blocks.threads_chosen() or rows < 2 * blocks.MIN_ROWS_PER_THREAD:
        return
    set_threads(default_threads() if _controller() is not None else 1)


def get_threads() -> int:
    """The thread count numpybert's own blocks use."""
    return blocks.thread_count()


def threads_info() -> dict:
    """What runs the work, for benchmark reports: numpybert's threads and every BLAS library
    (its kernel/architecture and thread count, from threadpoolctl when installed)."""
    controller = _controller()
    blas = controller.select(user_api="blas").info() if controller is not None else []
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return {"numpybert_threads": get_threads(), "blas": blas, "env": env}
