"""`numpybert.Embedder` beyond one process: it pickles without its weights, runs as a Dask
`map_partitions` callable (Ray Data: tests/apps/test_ray.py), and `numpybert embed --dask`
spreads a file over a cluster. The cluster is a LocalCluster of 2 single-threaded worker
processes on loopback (the `dask` extra).

Partitions of whole windows (apps/batching.py WINDOW texts) are batched exactly as the single-process run
batches them, so the only difference left is the BLAS thread count: Dask's nanny starts workers
with OPENBLAS_NUM_THREADS=1 while this process uses 2, and OpenBLAS splits a GEMM's work
differently, which moves the last bits. Measured between 1 and 2 threads: max abs 7.2e-7 on the
tiny checkpoint (embeddings up to 2.4 in size), 2.6e-7 on all-MiniLM-L6-v2 (unit vectors). The
bound is 1e-6 relative to the largest value: `_close`.
"""

import json
import os
import pickle

import numpy as np
import pytest

import numpybert
from numpybert import cli
from numpybert.apps.batching import WINDOW

from helpers import random_sentences, require_minilm, ROOT

N_TEXTS = 2 * WINDOW + 500  # three partitions, the last one short


@pytest.fixture(scope="module")
def texts():
    return random_sentences(N_TEXTS, seed=7)


@pytest.fixture(scope="module")
def cluster():
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        pytest.fail("dask is not installed: pip install -e '.[dask]'", pytrace=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as c, Client(c) as client:
        yield c, client


def _close(got, expected):
    """Equal up to BLAS-thread rounding (module docstring): 1e-6 x the largest magnitude."""
    assert got.shape == expected.shape
    bound = 1e-6 * max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() <= bound, f"max abs {np.abs(got - expected).max():.3g} > {bound:.3g}"


def test_embedder_pickles_small_and_without_weights(tiny_dir, texts):
    embedder = numpybert.Embedder(tiny_dir, batch_size=16)
    expected = embedder(texts[:50])  # loads the weights in this process
    blob = pickle.dumps(embedder)
    assert len(blob) < 4096, f"{len(blob)} bytes: the weights must not travel with the callable"
    np.testing.assert_array_equal(pickle.loads(blob)(texts[:50]), expected)


def test_dask_bag_map_partitions_matches_one_process(cluster, tiny_dir, texts):
    import dask.bag as db
    from distributed import get_task_stream
    _, client = cluster
    embedder = numpybert.Embedder(tiny_dir)
    bag = db.from_sequence(texts, partition_size=WINDOW)
    assert bag.npartitions == 3
    mapped = bag.map_partitions(embedder)
    with get_task_stream(client) as stream:  # what ran where, as the scheduler saw it
        got = np.stack(mapped.compute(scheduler=client.get))
    _close(got, embedder(texts))
    # the embedding ran in the cluster's worker processes: each partition's task on a worker, none here
    ran = {t["key"][1]: t["worker"] for t in stream.data if isinstance(t["key"], tuple) and t["key"][0] == mapped.name}
    pids = client.run(os.getpid)
    assert sorted(ran) == [0, 1, 2] and set(ran.values()) <= set(pids), (ran, pids)
    assert len(pids) == 2 and os.getpid() not in pids.values()


def test_embed_command_on_a_dask_cluster(cluster, tmp_path, tiny_dir, texts):
    c, _ = cluster
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    local, remote = tmp_path / "local.npy", tmp_path / "dask.npy"
    args = ["--model", str(tiny_dir), "--no-progress"]
    assert cli.main(["embed", str(corpus), "--out", str(local), *args]) == 0
    assert cli.main(["embed", str(corpus), "--out", str(remote), "--dask", c.scheduler_address, *args]) == 0
    _close(np.load(remote), np.load(local))


def test_dask_on_minilm_matches_one_process(cluster):
    """The real model on the cluster: same windows, only the BLAS thread count differs."""
    import dask.bag as db
    minilm = require_minilm()
    sentences = json.loads((ROOT / "tests" / "data" / "sentences.json").read_text())["sentences"][:20]
    embedder = numpybert.Embedder(minilm, window=10)
    got = np.stack(db.from_sequence(sentences, partition_size=10).map_partitions(embedder).compute())
    assert got.shape == (20, 384)
    _close(got, embedder(sentences))


def test_chunks_make_the_batches_of_one_call(tiny_dir, texts):
    """What --workers and --dask send to workers: whole batches in length order. Embedding each
    chunk on its own gives the bits of one call on the whole window (same process, same threads)."""
    embedder = numpybert.Embedder(tiny_dir, batch_size=8)
    window = texts[:300]
    chunks = embedder.chunks(window, batches=3)
    assert sorted(np.concatenate(chunks)) == list(range(300)) and len(chunks) > 1  # 3 token-budget batches each
    rebuilt = np.empty((300, embedder.dim), np.float32)
    for rows in chunks:
        rebuilt[rows] = embedder([window[i] for i in rows])
    np.testing.assert_array_equal(rebuilt, embedder(window))
