"""`numpybert.Embedder`: one picklable callable that embeds texts wherever it is sent.

    embedder = numpybert.Embedder("weights/all-MiniLM-L6-v2")   # settings resolved now, weights loaded on first use
    embedder(["a text", "another"])                             # float32 [2, 384]

It carries only the model directory and the settings, so it pickles in a few hundred bytes;
each process loads the weights once, on its first call, and keeps them (`load_model`).
The same object runs under an existing engine:

    # Dask (pip install 'numpybert[dask]'): a bag of texts, one partition = one call
    import dask, dask.bag as db, numpy as np
    vectors = np.stack(db.from_sequence(texts, partition_size=4096).map_partitions(embedder).compute())
    # a dask DataFrame column: one call per partition (a pandas Series is a sequence of str)
    vectors = np.concatenate(dask.compute(*[dask.delayed(embedder)(part) for part in ddf["text"].to_delayed()]))

    # Ray Data: a callable class; batches are dicts of arrays, the output gets an "embedding" column
    ds.map_batches(numpybert.Embedder, fn_constructor_args=("/models/all-MiniLM-L6-v2",),
                   batch_size=4096, concurrency=4)

Accepted batches: a sequence of str (list, tuple, NumPy array, pandas Series) -> array [B, D];
a mapping of columns (Ray's default "numpy" batches) -> the same mapping plus `output_field`.
A bare str is refused (iterating it would embed every character): pass [text].
The model directory must exist at the same path on every worker. Partitions of `window` texts
(4096, apps/batching.py WINDOW) are batched exactly as one call on the whole list, so they give the same
numbers: bit for bit with the same number of BLAS threads (Dask workers use 1; 1 vs 2 threads
moves MiniLM's float32 embeddings by up to 3e-7). Other partition sizes batch differently, which
changes the last bits too.

For `numpybert embed`, `process_runner` (--workers N) and `dask_runner` (--dask ADDRESS) spread a
file's windows over processes: each window is cut into chunks of whole batches in length order
(`Embedder.chunks`), so the workers share the work evenly and still compute exactly the batches
of a single-process run (numpybert/apps/corpus.py does the reading and writing).
"""

import collections
import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Mapping

import numpy as np

from .api import load, resolve_model_dir
from .apps.batching import MAX_BATCH_TOKENS, WINDOW, embed_texts, length_sorted_batches, token_budget, tokenize_texts
from .apps.long import check_long, token_counts
from .apps.st_config import encode_settings
from .errors import InputTypeError, InputValueError, NumpybertError
from .loading.config import BertConfig
from .loading.locate import resolve_model
from .text.inputs import check_text
from .util import positive_int

CHUNK_BATCHES = 4  # batches per unit of work sent to a worker process (128 texts at batch size 32)


@functools.lru_cache(maxsize=4)
def load_model(model_dir: str, dtype: str):
    """The model of a directory, loaded once per process (every Embedder call in a worker shares it)."""
    return load(model_dir, dtype=dtype)


@functools.lru_cache(maxsize=4)
def load_tokenizer(model_dir: str, max_position_embeddings: int):
    """Only the tokenizer, for a process that plans work without computing it (see `Embedder.chunks`)."""
    from .text.tokenizer import BertTokenizer  # on first use: `import numpybert` stays light
    return BertTokenizer.from_dir(model_dir, max_position_embeddings)


class Embedder:
    """texts -> sentence embeddings, picklable. Arguments as `encode` (numpybert/apps/encode.py); None
    takes the model directory's defaults (sentence-transformers config when present)."""

    def __init__(self, model_dir=None, pooling=None, normalize=None, max_seq_length=None, batch_size: int = 32,
                 dtype: str = "float32", text_field: str = "text", output_field: str = "embedding",
                 window: int = WINDOW, long: str = "truncate", stride=None,
                 max_batch_tokens: int = MAX_BATCH_TOKENS):
        # as numpybert.load: a directory, a Hub name (the local cache, else the fetched default's copy), or
        # None: $NUMPYBERT_MODEL, else the fetched default
        self.model_dir = os.path.abspath(resolve_model_dir(resolve_model(model_dir, cli=False)))
        if str(dtype) not in ("float32", "float64"):
            raise InputValueError(f"dtype={dtype!r}: numpybert computes in float32 or float64")
        self.config = BertConfig.from_json(os.path.join(self.model_dir, "config.json"))
        self.settings = encode_settings(self.model_dir, self.config, pooling, normalize, max_seq_length)
        self.batch_size, self.window = positive_int("batch_size", batch_size), positive_int("window", window)
        self.max_batch_tokens = positive_int("max_batch_tokens", max_batch_tokens)
        self.dtype, self.text_field, self.output_field = str(dtype), text_field, output_field
        self.long, self.stride = long, check_long(long, stride, self.settings.max_seq_length)  # apps/long.py

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
        """A list of texts -> [N, D] in the model's dtype, in input order; on_batch(k) after each batch.
        A bare str is refused: iterating it would embed each character."""
        if isinstance(texts, (str, bytes)):
            raise InputTypeError(f"Embedder takes a batch of texts, got one {type(texts).__name__} "
                                 f"({texts[:30]!r}); pass a list: embedder([text])")
        texts = [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
        return embed_texts(self.model, texts, self.settings, self.batch_size, self.window, on_batch,
                           self.long, self.stride, self.max_batch_tokens)

    def chunks(self, texts, batches: int = CHUNK_BATCHES) -> list:
        """Row indices of one window's texts (at most `window` of them) in the order `embed` batches
        them, longest first, cut every `batches` batches: the units to spread over workers.

        Embedding each chunk's texts on its own makes exactly the batches, so the numbers, of one
        `embed` call on the window: a chunk is already sorted by length, so the stable sort inside
        `embed` keeps its order, and it starts on a batch boundary."""
        texts = [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
        lengths = tokenize_texts(self.tokenizer, texts, self.settings)["attention_mask"].sum(axis=1)
        runs = length_sorted_batches(lengths, self.batch_size, self.max_batch_tokens,
                                     token_budget(self.batch_size, self.settings))
        return [np.concatenate(runs[i:i + batches]) for i in range(0, len(runs), batches)]

    def token_counts(self, texts):
        """(tokens the model reads per text, whether each is over max_seq_length): see apps/long.py."""
        return token_counts(self.tokenizer, list(texts), self.settings, self.long, self.stride)

    @property
    def tokenizer(self):
        return load_tokenizer(self.model_dir, self.config.max_length)

    def __call__(self, batch):
        """Embed a batch: texts -> array [B, D]; a mapping of columns -> the same plus `output_field`."""
        if isinstance(batch, Mapping):  # Ray Data's default "numpy" batches: {column: array}
            return {**batch, self.output_field: self.embed(batch[self.text_field])}
        return self.embed(batch)


# ----------------------------------------------------------------------------- spreading a corpus

ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _in_chunks(embedder: Embedder, submit, windows, windows_in_flight: int = 2):
    """Embed each window as its `embedder.chunks`, each started with `submit(texts)` (which returns a
    function that waits for the vectors); keep at most `windows_in_flight` windows pending, so the
    workers always have the next window's chunks queued; yield (window, vectors) in input order."""
    pending = collections.deque()
    for window in windows:
        parts = [(rows, submit([window.texts[i] for i in rows])) for rows in embedder.chunks(window.texts)]
        pending.append((window, parts))
        if len(pending) >= windows_in_flight:
            yield _gather(*pending.popleft())
    while pending:
        yield _gather(*pending.popleft())


def _gather(window, parts):
    """(window, its vectors in input order) from the chunks' (row indices, wait for vectors)."""
    vectors = None
    for rows, wait in parts:
        part = wait()
        if vectors is None:
            vectors = np.empty((len(window.texts), part.shape[1]), part.dtype)
        vectors[rows] = part
    return window, vectors


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


def _worker_setup(parent: int):
    """In each worker process: leave Ctrl-C to the parent (it stops the pool), and exit when the
    parent is gone (kill -9 of `numpybert embed` must not leave workers behind)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int):
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def process_runner(embedder: Embedder, workers: int):
    """A `run_windows` for `corpus.embed_corpus` that embeds windows in `workers` local processes,
    each with one thread, as Dask workers run: processes share nothing, so none waits for another
    as threads do at every step of a forward. The workers share each window's chunks (see
    `Embedder.chunks`)."""
    import multiprocessing

    def run(windows):
        with _environment(**ONE_BLAS_THREAD):  # inherited by the workers, read when they import NumPy
            pool = multiprocessing.get_context("spawn").Pool(workers, _worker_setup, (os.getpid(),))
        with pool:
            yield from _in_chunks(embedder, lambda texts: pool.apply_async(embedder, (texts,)).get, windows)
    return run


DASK_TIMEOUT = 5.0  # seconds to reach the scheduler (Dask's default is 30, in silence)


def dask_runner(embedder: Embedder, address: str, timeout: float = DASK_TIMEOUT):
    """A `run_windows` for `corpus.embed_corpus` that embeds windows on a Dask cluster: each window's
    chunks are tasks (see `Embedder.chunks`); two windows at most are on the cluster, so the client's
    memory stays bounded whatever the corpus size, and results come back in input order.
    The scheduler is reached now, before any work: one that does not answer within `timeout`
    seconds is a NumpybertError."""
    try:
        from distributed import Client
    except ImportError:
        raise NumpybertError("--dask needs dask.distributed: pip install 'numpybert[dask]'") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise NumpybertError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                             f"({type(e).__name__}); is it running? (--dask-timeout sets the wait)") from None

    def run(windows):
        with client:
            yield from _in_chunks(embedder, lambda texts: client.submit(embedder, texts, pure=False).result, windows)
    return run
