"""`numpybert.Embedder`: one picklable callable that embeds texts wherever it is sent.

    embedder = numpybert.Embedder("weights/all-MiniLM-L6-v2")   # settings resolved now, weights loaded on first use
    embedder(["a text", "another"])                             # float32 [2, 384]

It carries only the model directory and the settings, so it pickles in a few hundred bytes;
each process loads the weights once, on its first call, and keeps them (`load_model`).
The same object runs under an existing engine:

    # Dask (pip install 'numpybert[dask]'): a bag of texts, one partition = one call
    import dask, dask.bag as db, numpy as np
    vectors = np.stack(db.from_sequence(texts, partition_size=1024).map_partitions(embedder).compute())
    # a dask DataFrame column: one call per partition (a pandas Series is a sequence of str)
    vectors = np.concatenate(dask.compute(*[dask.delayed(embedder)(part) for part in ddf["text"].to_delayed()]))

    # Ray Data: a callable class; batches are dicts of arrays, the output gets an "embedding" column
    ds.map_batches(numpybert.Embedder, fn_constructor_args=("/models/all-MiniLM-L6-v2",),
                   batch_size=1024, concurrency=4)

Accepted batches: a sequence of str (list, tuple, NumPy array, pandas Series) -> array [B, D];
a mapping of columns (Ray's default "numpy" batches) -> the same mapping plus `output_field`.
The model directory must exist at the same path on every worker. Partitions of 1024 texts
(encode.WINDOW) are batched exactly as a single-process run over the whole list, so they give the
same numbers: bit for bit with the same number of BLAS threads (Dask workers default to 1; 1 vs 2
threads moves MiniLM's float32 embeddings by up to 3e-7).

`dask_runner(embedder, address)` is how `numpybert embed --dask ADDRESS` spreads a file's
windows over a cluster (numpybert/corpus.py does the reading and writing).
"""

import collections
import contextlib
import functools
import os
import signal
from collections.abc import Mapping

from .config import BertConfig
from .encode import WINDOW, embed_texts, encode_settings, positive_int
from .errors import InputValueError, WeightsNotFoundError


@functools.lru_cache(maxsize=4)
def load_model(model_dir: str, dtype: str):
    """The model of a directory, loaded once per process (every Embedder call in a worker shares it)."""
    from .bert_model import load
    return load(model_dir, dtype=dtype)


class Embedder:
    """texts -> sentence embeddings, picklable. Arguments as `encode` (numpybert/encode.py); None
    takes the model directory's defaults (sentence-transformers config when present)."""

    def __init__(self, model_dir, pooling=None, normalize=None, max_seq_length=None, batch_size: int = 32,
                 dtype: str = "float32", text_field: str = "text", output_field: str = "embedding",
                 window: int = WINDOW):
        self.model_dir = os.path.abspath(os.fspath(model_dir))
        if not os.path.isdir(self.model_dir):
            raise WeightsNotFoundError(f"model directory not found: {model_dir} (`numpybert fetch` puts the "
                                       "default model in weights/all-MiniLM-L6-v2)")
        if str(dtype) not in ("float32", "float64"):
            raise InputValueError(f"dtype={dtype!r}: numpybert computes in float32 or float64")
        self.config = BertConfig.from_json(os.path.join(self.model_dir, "config.json"))
        self.settings = encode_settings(self.model_dir, self.config, pooling, normalize, max_seq_length)
        self.batch_size, self.window = positive_int("batch_size", batch_size), positive_int("window", window)
        self.dtype, self.text_field, self.output_field = str(dtype), text_field, output_field

    def __repr__(self):
        s = self.settings
        return (f"Embedder({self.model_dir!r}, pooling={'+'.join(s.pooling)}, normalize={s.normalize}, "
                f"max_seq_length={s.max_seq_length}, batch_size={self.batch_size}, dtype={self.dtype})")

    @property
    def dim(self) -> int:
        """Width of one embedding: hidden size times the number of pooling modes."""
        return self.config.hidden_size * len(self.settings.pooling)

    @property
    def model(self):
        return load_model(self.model_dir, self.dtype)

    def embed(self, texts, on_batch=None):
        """A list of texts -> [N, D] in the model's dtype, in input order; on_batch(k) after each batch."""
        return embed_texts(self.model, list(texts), self.settings, self.batch_size, self.window, on_batch)

    def __call__(self, batch):
        """Embed a batch: texts -> array [B, D]; a mapping of columns -> the same plus `output_field`."""
        if isinstance(batch, Mapping):  # Ray Data's default "numpy" batches: {column: array}
            return {**batch, self.output_field: self.embed(batch[self.text_field])}
        return self.embed(batch)


ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _ordered(submit, windows, limit):
    """Start each window's texts with `submit(texts)`, which returns a function that waits for the
    result; keep at most `limit` pending; yield (window, result) in input order."""
    pending = collections.deque()
    for window in windows:
        pending.append((window, submit(window.texts)))
        if len(pending) >= limit:
            done, wait = pending.popleft()
            yield done, wait()
    while pending:
        done, wait = pending.popleft()
        yield done, wait()


@contextlib.contextmanager
def _environment(**variables):
    """Set environment variables for processes started inside the block, then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops the pool)


def process_runner(embedder: Embedder, workers: int):
    """A `run_windows` for `corpus.embed_corpus` that embeds windows in `workers` local processes,
    each with one BLAS thread, as Dask workers run: NumPy's element-wise work (GELU, softmax,
    LayerNorm) is single-threaded, so on a multi-core machine whole processes use the cores
    better than BLAS threads alone. At most 2 windows per process are in flight."""
    import multiprocessing

    def run(windows):
        with _environment(**ONE_BLAS_THREAD):  # inherited by the workers, read when they import NumPy
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_sigint)
        with pool:
            yield from _ordered(lambda texts: pool.apply_async(embedder, (texts,)).get, windows, 2 * workers)
    return run


def dask_runner(embedder: Embedder, address: str, in_flight: int | None = None):
    """A `run_windows` for `corpus.embed_corpus` that embeds windows on a Dask cluster.

    Keeps at most `in_flight` windows on the cluster (default: 2 per worker thread) and yields the
    results in input order, so the client's memory stays bounded whatever the corpus size.
    """
    from distributed import Client

    def run(windows):
        with Client(address) as client:
            limit = in_flight or 2 * max(1, sum(client.nthreads().values()))
            yield from _ordered(lambda texts: client.submit(embedder, texts, pure=False).result, windows, limit)
    return run
