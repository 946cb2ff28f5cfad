"""`numpybert.Embedder`: one picklable callable that embeds texts wherever it is sent.

    embedder = numpybert.Embedder("weights/all-MiniLM-L6-v2")   # settings resolved now, weights loaded on first use
    embedder(["a text", "another"])                             # float32 [2, 384]

It carries only the model directory and the settings, so it pickles in a few hundred bytes;
each process loads the weights once, on its first call, and keeps them (`load_model`).
The same object runs under an existing engine:

    # Dask (the dask extra): a bag of texts, one partition = one call
    import dask, dask.bag as db, numpy as np
    vectors = np.stack(db.from_sequence(texts, partition_size=4096).map_partitions(embedder).compute())
    # a dask DataFrame column: one call per partition (a pandas Series is a sequence of str)
    vectors = np.concatenate(dask.compute(*[dask.delayed(embedder)(part) for part in ddf["text"].to_delayed()]))

    # Ray Data (the ray extra): a callable class, constructed once per actor; every
    # column is kept and an "embedding" column added; each actor's BLAS threads = its num_cpus
    ds.map_batches(numpybert.Embedder, fn_constructor_kwargs={"model_dir": "/models/all-MiniLM-L6-v2"},
                   batch_size=4096, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=4))

Accepted batches: a sequence of str (list, tuple, NumPy array, pandas Series) -> array [B, D];
a table -> the same table plus `output_field`: a mapping of columns (Ray's default "numpy"
batches; the embeddings as one [B, D] array), a pandas DataFrame (one array per row) or a pyarrow
Table (a fixed_size_list<float32>[D] column).
A bare str is refused (iterating it would embed every character): pass [text].
The model directory must exist at the same path on every worker. Partitions of `window` texts
(4096, apps/batching.py WINDOW) are batched exactly as one call on the whole list, so they give the same
numbers: bit for bit with the same number of BLAS threads (Dask workers use 1; 1 vs 2 threads
moves MiniLM's float32 embeddings by up to 3e-7). Other partition sizes batch differently, which
changes the last bits too.

For `numpybert embed`, `process_runner` (--workers N), `dask_runner` (--dask ADDRESS) and
`ray_runner` (--ray ADDRESS: actors, each an Embedder) spread a
file's windows over processes: each window is cut into chunks of whole batches in length order
(`Embedder.chunks`), so the workers share the work evenly and still compute exactly the batches
of a single-process run (numpybert/apps/corpus.py does the reading and writing).
"""

import collections
import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping

import numpy as np

from .api import load, resolve_model_dir
from .apps.batching import MAX_BATCH_TOKENS, WINDOW, embed_texts, length_sorted_batches, token_budget, tokenize_texts
from .apps.long import check_long, token_counts
from .apps.st_config import encode_settings
from .errors import InputTypeError, InputValueError, NumpybertError, install_hint
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
                 max_batch_tokens: int = MAX_BATCH_TOKENS, threads=None):
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
        # None: numpybert's choice (numpybert/engine/threads.py), or, in a Ray actor or task, its num_cpus
        self.threads = None if threads is None else positive_int("threads", threads)

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
        _pin_threads(self.threads)
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
        """Embed a batch: texts -> array [B, D]; a table (a mapping of columns as Ray Data's default
        "numpy" batches, a pandas DataFrame, a pyarrow Table) -> the same table plus `output_field`."""
        kind = _table_kind(batch)
        if kind is None:
            return self.embed(batch)
        vectors = self.embed(self._column(batch, kind))
        if kind == "mapping":  # {column: array}: the embeddings as one [B, D] array (a Ray tensor column)
            return {**batch, self.output_field: vectors}
        if kind == "pandas":  # one 1-D array per row (Ray Data makes it a tensor column)
            return batch.assign(**{self.output_field: list(vectors)})
        import pyarrow as pa  # a fixed-size list column, as `numpybert embed --out X.parquet` writes
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        if self.output_field in batch.column_names:
            return batch.set_column(batch.column_names.index(self.output_field), self.output_field, column)
        return batch.append_column(self.output_field, column)

    def _column(self, batch, kind: str):
        """The texts of a table batch: its `text_field` column, or an error naming the columns it has."""
        names = list(batch.keys()) if kind == "mapping" else list(batch.columns if kind == "pandas" else batch.column_names)
        if self.text_field not in names:
            raise InputValueError(f"the batch has no column {self.text_field!r} (columns: "
                                  f"{', '.join(map(repr, names[:10]))}); Embedder(text_field=NAME) names the texts' column")
        column = batch[self.text_field]
        return column.to_pylist() if kind == "pyarrow" else column


def _table_kind(batch):
    """'mapping', 'pandas' or 'pyarrow' for a batch of columns (Ray Data's batch formats), None for
    a sequence of texts. Looks at the type only: pandas and pyarrow are never imported here."""
    if isinstance(batch, Mapping):
        return "mapping"
    module = type(batch).__module__.split(".")[0]
    if module == "pandas" and type(batch).__name__ == "DataFrame":
        return "pandas"
    if module == "pyarrow" and type(batch).__name__ == "Table":
        return "pyarrow"
    return None


_PINNED = []  # the thread count this process was set to by an Embedder (at most once per process)


def _pin_threads(threads):
    """Before the first forward in this process: `threads` when given, else the CPUs Ray assigned to
    this actor or task (its num_cpus, at least 1), so that actors sharing a node do not oversubscribe
    it. Elsewhere numpybert chooses (numpybert/engine/threads.py). Once per process."""
    if _PINNED:
        return
    n = threads if threads is not None else _ray_cpus()
    if n is not None:
        from .engine.threads import set_threads
        set_threads(n)
    _PINNED.append(n)


def _ray_cpus():
    """floor(num_cpus) of the Ray actor or task running this (at least 1), or None outside Ray."""
    ray = sys.modules.get("ray")  # never imported here: only a process Ray started has it loaded
    if ray is None or not ray.is_initialized():
        return None
    try:
        context = ray.get_runtime_context()
        if context.worker.mode != ray.WORKER_MODE:  # the driver: not an actor or task
            return None
        cpus = context.get_assigned_resources().get("CPU")
    except Exception:  # noqa: BLE001 -- another Ray's API: fall back to numpybert's choice
        return None
    return max(1, int(cpus)) if cpus else None


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
        raise NumpybertError(f"--dask needs dask.distributed: {install_hint('dask')}") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise NumpybertError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                             f"({type(e).__name__}); is it running? (--dask-timeout sets the wait)") from None

    def run(windows):
        with client:
            yield from _in_chunks(embedder, lambda texts: client.submit(embedder, texts, pure=False).result, windows)
    return run


# ----------------------------------------------------------------------------- Ray

RAY_LOCAL = "local"  # --ray local: start a Ray instance on this machine for the run
RAY_TIMEOUT = 60.0  # seconds for the actors to start and load the model (a busy cluster queues them)
RAY_RETRIES = 3  # a killed actor is restarted and its unfinished chunks retried this many times


class RayActor:
    """One actor of `numpybert embed --ray`: an Embedder whose model it loads once (`ready`), then
    chunks of texts. Its BLAS threads are its num_cpus (`Embedder(threads=None)` under Ray)."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def ready(self) -> int:
        self.embedder.model.tokenizer  # a broken checkpoint fails here, before any work is sent
        return os.getpid()

    def embed(self, texts):
        """(vectors, seconds spent, this process's id): the runner reports each actor's throughput."""
        start = time.perf_counter()
        vectors = self.embedder.embed(texts)
        return vectors, time.perf_counter() - start, os.getpid()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise NumpybertError(f"--ray needs Ray Data: {install_hint('ray')}") from None
    return ray


def _check_reachable(address: str, timeout: float):
    """HOST:PORT (or ray://HOST:PORT) must accept a connection within `timeout` seconds: Ray itself
    retries an unreachable address for minutes. Other forms (auto) are left to ray.init."""
    import socket
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout, 10.0)).close()
    except OSError as e:
        raise NumpybertError(f"cannot start or reach Ray at {address!r}: {host}:{port} does not answer "
                             f"({e.strerror or type(e).__name__}); is `ray start --head` running there?") from None


class ray_runner:  # noqa: N801 -- used like the other runners: ray_runner(embedder, address)(windows)
    """A `run_windows` for `corpus.embed_corpus` that embeds windows on a Ray cluster: `actors`
    actors (default: one per CPU of the cluster) of `num_cpus` CPUs each, every one an Embedder with
    its model loaded once; each window's chunks (see `Embedder.chunks`) go to the actor with the
    fewest unfinished ones, two windows at most are on the cluster, and results come back in input
    order, so the output is that of `--workers` (same batches, one BLAS thread per actor). Address
    "local" starts a Ray instance on this machine (stopped at the end); any other address is given to
    `ray.init` (`auto`, HOST:6379, ray://HOST:10001). A killed actor is restarted by Ray and its
    unfinished chunks are retried (RAY_RETRIES times). `stats` maps each actor's process id to
    [texts, seconds busy] once the run has ended."""

    def __init__(self, embedder: Embedder, address: str, actors=None, num_cpus: float = 1.0,
                 timeout: float = RAY_TIMEOUT):
        self.ray, self.embedder, self.address, self.timeout = _import_ray(), embedder, address, timeout
        self.actors = None if actors is None else positive_int("actors", actors)
        if not num_cpus > 0:
            raise InputValueError(f"num_cpus={num_cpus!r}: each actor needs a positive number of CPUs")
        self.num_cpus, self.stats, self.started, self.pool = float(num_cpus), {}, False, None

    def start(self):
        """Start or join Ray and start the actors, each loading the model (done by the first run
        otherwise; a benchmark calls it before its clock starts)."""
        if self.pool is None:
            self.started = self._connect()
            try:
                self.pool = self._start_actors()
            except BaseException:
                self._stop([])
                raise
        return self

    def _connect(self) -> bool:
        """Start or join Ray; True when this run started it (and so stops it). A SIGTERM handler the
        command had is put back: `ray.init` installs its own."""
        ray = self.ray
        if ray.is_initialized():  # a Python caller's own Ray
            return False
        previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
        options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            if self.address == RAY_LOCAL:  # on loopback: a one-machine cluster needs no network interface
                ray.init(_node_ip_address="127.0.0.1", **options)
            else:
                _check_reachable(self.address, self.timeout)
                ray.init(address=self.address, **options)
        except (ConnectionError, OSError, RuntimeError, ValueError) as e:
            raise NumpybertError(f"cannot start or reach Ray at {self.address!r}: "
                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return True

    def _start_actors(self):
        ray = self.ray
        cpus = ray.cluster_resources().get("CPU", 0)
        n = self.actors or max(1, int(cpus // self.num_cpus))
        if n * self.num_cpus > cpus:
            raise InputValueError(f"--workers {n} actors x {self.num_cpus:g} CPU need {n * self.num_cpus:g} CPUs; "
                                  f"the Ray cluster has {cpus:g}")
        remote = ray.remote(num_cpus=self.num_cpus, max_restarts=-1, max_task_retries=RAY_RETRIES)(RayActor)
        actors = [remote.remote(self.embedder) for _ in range(n)]
        refs = [a.ready.remote() for a in actors]
        ready, _ = ray.wait(refs, num_returns=n, timeout=self.timeout)
        if len(ready) < n:
            raise NumpybertError(f"only {len(ready)} of {n} Ray actors started within {self.timeout:g} s "
                                 f"(cluster resources now free: {ray.available_resources().get('CPU', 0):g} CPUs)")
        self._get(refs)  # raises a failed model load as its NumpybertError
        return actors

    def _get(self, ref):
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, NumpybertError):  # raised in the actor: the same one-line error here
                raise e.cause from None
            raise NumpybertError(f"a Ray actor failed: {str(e.cause or e).strip().splitlines()[-1]}") from None
        except self.ray.exceptions.RayActorError as e:
            raise NumpybertError(f"a Ray actor died {RAY_RETRIES + 1} times on the same chunk of texts; "
                                 f"stopping ({type(e).__name__})") from None

    def __call__(self, windows):
        ray = self.ray
        try:
            actors = self.start().pool
            unfinished = [[] for _ in actors]  # per actor: chunks sent, not yet done

            def submit(texts):
                for refs in unfinished:
                    if refs:
                        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                        refs[:] = [r for r in refs if r not in done]
                k = min(range(len(actors)), key=lambda i: len(unfinished[i]))
                ref = actors[k].embed.remote(texts)
                unfinished[k].append(ref)
                return lambda: self._record(self._get(ref), len(texts))
            yield from _in_chunks(self.embedder, submit, windows)
        finally:
            self._stop(self.pool or [])

    def _stop(self, actors):
        """Stop the actors: the Ray this run started goes with them (killing them first would make Ray
        report every unfinished chunk as retried); on a cluster it joined, each is killed."""
        self.pool = None
        if self.started:
            self.ray.shutdown()
            self.started = False
            return
        for actor in actors:
            self.ray.kill(actor)

    def _record(self, result, texts: int):
        vectors, seconds, pid = result
        done = self.stats.setdefault(pid, [0, 0.0])
        done[0], done[1] = done[0] + texts, done[1] + seconds
        return vectors
