"""`numpybert.Embedder` on Ray Data as Ray's batch-inference guide shows it, and `numpybert embed --ray`
(the `ray` extra). Ray runs on this machine: `embed --ray local`
starts its own instance; the Ray Data tests share one `ray.init(num_cpus=2)` on loopback.

The trap this machine shows (docs/embedding-a-corpus.md): with 2 CPUs, a pool of 2 one-CPU actors
holds every CPU and Ray Data's read tasks (1 CPU each) never run, so the pipeline hangs. The tests
give each actor num_cpus=0.5 (its BLAS threads: max(1, floor(0.5)) = 1), which leaves one CPU for
the reads, as the docs advise.

Tolerances: embeddings computed in Ray actors (one BLAS thread) against this process (2 threads):
1e-6 x the largest magnitude, the Dask bound (tests/apps/test_dask.py: measured 2.6e-7 on
all-MiniLM-L6-v2, 7.2e-7 on the tiny checkpoint); against sentence-transformers 1e-5, the bound of
tests/apps/test_compat.py. `embed --ray` makes the batches of `--workers 2` with one BLAS thread per
actor, as its processes have, so their files are compared byte for byte.
"""

import json
import os
import signal
import sys

import numpy as np
import pytest

import numpybert
from numpybert.embedder import Embedder

from helpers import (free_port, kill_mid_run, N_LINES, random_sentences, require_minilm, ROOT, run_to_end,
                     spawn_embed, WINDOW)

RAY_TIMEOUT = 600  # seconds for one Ray Data pipeline on a loaded 2-core machine (idle: ~10 s)
N_TEXTS = 2 * WINDOW + 300


def _close(got, expected):
    """Equal up to BLAS-thread rounding (module docstring): 1e-6 x the largest magnitude."""
    assert got.shape == expected.shape and got.dtype == expected.dtype
    bound = 1e-6 * max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() <= bound, f"max abs {np.abs(got - expected).max():.3g} > {bound:.3g}"


def _write_parquet(path, texts, ids=None, row_group_size=None):
    import pyarrow as pa
    import pyarrow.parquet as pq
    ids = [f"doc-{i}" for i in range(len(texts))] if ids is None else ids
    pq.write_table(pa.table({"doc_id": ids, "body": texts}), path, row_group_size=row_group_size)
    return path


@pytest.fixture(scope="module")
def texts():
    return random_sentences(N_TEXTS, seed=11)


# ----------------------------------------------------------------------------- batch formats, in this process

@pytest.mark.parametrize("kind", ["numpy", "pandas", "pyarrow"])
def test_every_ray_batch_format_gains_the_output_column(tiny_dir, texts, kind):
    import pandas as pd
    import pyarrow as pa
    embedder = Embedder(tiny_dir, text_field="body", output_field="vec")
    columns = {"doc_id": np.arange(5), "body": np.array(texts[:5])}
    batch = {"numpy": columns, "pandas": pd.DataFrame(columns), "pyarrow": pa.table(columns)}[kind]
    out = embedder(batch)
    expected = embedder(texts[:5])
    if kind == "numpy":
        assert set(out) == {"doc_id", "body", "vec"}
        got = out["vec"]
    elif kind == "pandas":
        assert list(out.columns) == ["doc_id", "body", "vec"]
        got = np.stack(out["vec"].to_list())
    else:
        assert out.column_names == ["doc_id", "body", "vec"]
        assert out.schema.field("vec").type == pa.list_(pa.float32(), embedder.dim)  # as `embed --out X.parquet`
        got = np.array(out.column("vec").to_pylist(), np.float32)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.asarray(out["doc_id"]), np.arange(5))


def test_a_batch_without_the_text_column_is_one_error(tiny_dir):
    with pytest.raises(numpybert.NumpybertError, match=r"no column 'text' \(columns: 'body'\).*text_field"):
        Embedder(tiny_dir)({"body": np.array(["a"])})


# ----------------------------------------------------------------------------- `numpybert embed --ray local`

def test_embed_ray_local_sigint_resume_equals_workers_and_one_process(tmp_path, tiny_dir):
    """`embed --ray local` on a Parquet corpus with string ids, in row groups smaller than a window:
    Ctrl-C stops it cleanly and says where; the same command resumes; the file equals an
    uninterrupted `--workers 2` run's bytes (processes with one BLAS thread each: the batches and
    threads of the actors) and a one-process run's numbers, in input order."""
    import random
    import pyarrow.parquet as pq
    corpus = _write_parquet(tmp_path / "corpus.parquet", random_sentences(N_LINES, seed=3), row_group_size=700)
    args = ["--id-field", "doc_id", "--text-field", "body"]
    reference, out, one = tmp_path / "workers.parquet", tmp_path / "ray.parquet", tmp_path / "one.parquet"
    run_to_end(tiny_dir, corpus, reference, "--workers", 2, *args)
    ray_args = ["--ray", "local", "--workers", 2, *args]
    code, err = kill_mid_run(tiny_dir, corpus, out, signal.SIGINT, random.Random(5), *ray_args)
    assert code == 130, err
    assert "the same command resumes at row" in err, err
    err = run_to_end(tiny_dir, corpus, out, *ray_args)
    assert "resumed at row" in err and "2 Ray actor(s), texts/s each while busy:" in err, err
    assert out.read_bytes() == reference.read_bytes()
    run_to_end(tiny_dir, corpus, one, *args)
    ray_table, one_table = pq.read_table(out), pq.read_table(one)
    assert ray_table.column("id").to_pylist() == [f"doc-{i}" for i in range(N_LINES)]  # input order
    _close(np.array(ray_table.column("embedding").to_pylist(), np.float32),
           np.array(one_table.column("embedding").to_pylist(), np.float32))


def test_embed_ray_unreachable_address_is_one_error(tmp_path, tiny_dir):
    (tmp_path / "in.txt").write_text("a text\n")
    port = free_port()  # nothing listens there
    proc = spawn_embed(tiny_dir, tmp_path / "in.txt", tmp_path / "out.npy", "--ray", f"127.0.0.1:{port}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert f"cannot start or reach Ray at '127.0.0.1:{port}'" in err and "does not answer" in err, err


# ----------------------------------------------------------------------------- Ray Data, as the guide shows it

@pytest.fixture(scope="module")
def ray_local():
    try:
        import ray
    except ImportError:
        pytest.fail("ray is not installed: pip install -e '.[ray]'", pytrace=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _node_ip_address="127.0.0.1")  # on loopback
    # the actors run classes of this module (a killed actor, a thread probe): send them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def _embedded(table, id_column="doc_id", column="embedding"):
    """{id: embedding} of a table read back, after checking that no id is missing or doubled."""
    ids = table.column(id_column).to_pylist()
    assert len(ids) == len(set(ids)), "an id came back twice"
    return dict(zip(ids, np.array(table.column(column).to_pylist(), np.float32)))


@pytest.mark.parametrize("spelling", ["compute", "concurrency"])
def test_ray_data_guide_read_parquet_map_batches_write_parquet(ray_local, tmp_path, spelling):
    """The guide's idiom on the real model, with both spellings of the actor pool: ids preserved,
    embeddings equal to a one-process run and to sentence-transformers."""
    ray = ray_local
    import pyarrow.parquet as pq
    minilm = require_minilm()
    sentences = json.loads((ROOT / "tests" / "data" / "sentences.json").read_text())["sentences"]
    source = _write_parquet(tmp_path / "in.parquet", sentences, row_group_size=8)
    pool = ({"compute": ray.data.ActorPoolStrategy(size=2)} if spelling == "compute" else {"concurrency": 2})
    ds = ray.data.read_parquet(str(source), override_num_blocks=3)  # blocks for both actors
    ds = ds.map_batches(Embedder, fn_constructor_kwargs={"model_dir": str(minilm), "text_field": "body"},
                        batch_size=16, num_cpus=0.5, **pool)
    ds.write_parquet(str(tmp_path / "out"))
    got = _embedded(pq.read_table(tmp_path / "out"))
    assert set(got) == {f"doc-{i}" for i in range(len(sentences))}
    vectors = np.stack([got[f"doc-{i}"] for i in range(len(sentences))])
    _close(vectors, numpybert.Embedder(minilm, window=16)(sentences))
    from sentence_transformers import SentenceTransformer  # the golden extra; missing = FAIL
    st = SentenceTransformer(str(minilm), device="cpu").encode(sentences, convert_to_numpy=True)
    assert np.abs(vectors - st).max() <= 1e-5, np.abs(vectors - st).max()


@pytest.mark.parametrize("batch_format", ["pandas", "pyarrow"])
def test_ray_data_pandas_and_pyarrow_batches(ray_local, tiny_dir, texts, batch_format):
    ray = ray_local
    ds = ray.data.from_items([{"doc_id": i, "body": t} for i, t in enumerate(texts[:300])])
    ds = ds.map_batches(Embedder, fn_constructor_kwargs={"model_dir": str(tiny_dir), "text_field": "body",
                                                         "output_field": "vec"},
                        batch_format=batch_format, batch_size=64, num_cpus=0.5,
                        compute=ray.data.ActorPoolStrategy(size=2))
    rows = ds.take_all()
    assert sorted(r["doc_id"] for r in rows) == list(range(300))
    got = np.stack([np.asarray(r["vec"], np.float32) for r in sorted(rows, key=lambda r: r["doc_id"])])
    _close(got, Embedder(tiny_dir, window=64)(texts[:300]))


class DiesOnce(Embedder):
    """An actor that kills itself (SIGKILL) on its first batch, once in the whole run (a marker file)."""

    def __init__(self, marker, **kwargs):
        super().__init__(**kwargs)
        self.marker = marker

    def __call__(self, batch):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().__call__(batch)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_actor_is_retried_and_no_row_is_lost_or_doubled(ray_local, tmp_path, tiny_dir, texts):
    ray = ray_local
    import pyarrow.parquet as pq
    source = _write_parquet(tmp_path / "in.parquet", texts[:600], row_group_size=100)
    marker = tmp_path / "killed"
    ds = ray.data.read_parquet(str(source), override_num_blocks=6).map_batches(
        DiesOnce, fn_constructor_args=(str(marker),),
        fn_constructor_kwargs={"model_dir": str(tiny_dir), "text_field": "body"},
        batch_size=100, num_cpus=0.5, compute=ray.data.ActorPoolStrategy(size=2))
    ds.write_parquet(str(tmp_path / "out"))
    assert marker.exists(), "no actor was killed: the test proved nothing"
    got = _embedded(pq.read_table(tmp_path / "out"))
    assert set(got) == {f"doc-{i}" for i in range(600)}
    _close(np.stack([got[f"doc-{i}"] for i in range(600)]), Embedder(tiny_dir, window=100)(texts[:600]))


def _threads_in_a_task(embedder):
    """In a Ray task: embed, then report numpybert's and BLAS's thread counts."""
    from threadpoolctl import threadpool_info
    embedder(["a text to load the model"])
    blas = {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
    from numpybert.engine.threads import get_threads
    return get_threads(), blas


@pytest.mark.parametrize("num_cpus, threads", [(0.5, 1), (1, 1), (2, 2)])
def test_blas_threads_per_actor_are_its_num_cpus(ray_local, tiny_dir, num_cpus, threads):
    ray = ray_local
    task = ray.remote(num_cpus=num_cpus, max_calls=1)(_threads_in_a_task)  # a fresh worker process each time
    ours, blas = ray.get(task.remote(Embedder(tiny_dir)), timeout=RAY_TIMEOUT)
    assert ours == threads and blas == {threads}, (num_cpus, ours, blas)
