"""How many CPU threads numpybert uses: `numpybert.set_threads(n)`.

Two kinds of threads do the work:
- BLAS's own (the matrix products). NumPy's OpenBLAS starts with one per core; it can be
  changed at run time only through threadpoolctl (the `bench` extra). Without threadpoolctl,
  set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS before Python starts.
- numpybert's (`blocks.set_threads`): threads sharing the blocks of element-wise work, and, for
  large batches, the sequences of the batch, each thread then using a one-thread BLAS.
"""

import os

from . import blocks
from .errors import InputValueError


def _controller():
    """threadpoolctl's controller of the loaded BLAS libraries, or None when it is not installed."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def set_threads(n: int) -> None:
    """Use n threads: BLAS (when threadpoolctl is installed) and numpybert's element-wise blocks."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputValueError(f"threads={n!r}: expected a positive integer")
    controller = _controller()
    if controller is not None:
        controller.select(user_api="blas").limit(limits=n)
        blas = controller.select(user_api="blas")
        blocks.set_threads(n, one_blas_thread=lambda: blas.limit(limits=1))
    else:
        blocks.set_threads(n, one_blas_thread=None)


def get_threads() -> int:
    """The thread count numpybert's own blocks use."""
    return blocks._pool["threads"]


def threads_info() -> dict:
    """What runs the work, for benchmark reports: numpybert's threads and every BLAS library
    (its kernel/architecture and thread count, from threadpoolctl when installed)."""
    controller = _controller()
    blas = controller.select(user_api="blas").info() if controller is not None else []
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return {"numpybert_threads": get_threads(), "blas": blas, "env": env}
