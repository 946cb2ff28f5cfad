#!/usr/bin/env python
"""Corpus-embedding throughput: numpybert vs sentence-transformers (torch), side by side.

    .venv/bin/python scripts/bench_embed.py                 # 10k sentences, all-MiniLM-L6-v2
    .venv/bin/python scripts/bench_embed.py --texts 2000 --rounds 1 --no-dask   # a quick look

Builds a deterministic file of TEXTS sentences of varied lengths (words from
tests/data/sentences.json; 60% short, 30% medium, 10% long enough to hit the 256-token cut),
then times, each in a fresh process and after the model is loaded and warmed up:
  numpybert      the `numpybert embed` path (corpus.embed_corpus, local runner), 1 process
  workers        the same with --workers 2 (2 local processes, 1 BLAS thread each)
  st             SentenceTransformer(dir, device="cpu").encode(lines, batch_size=32)
  numpybert-dask the `numpybert embed --dask` path on a LocalCluster of 2 single-threaded workers
  ray            the `numpybert embed --ray local` path: a local Ray, 2 actors x 1 CPU (1 BLAS thread each);
                 its start (Ray, the actors, their model loads) is timed apart, and each actor's texts/s
                 while busy is reported
--runs picks which of numpybert, workers, st, ray alternate for --rounds rounds; the best round of each is reported (the machine
is shared; the best run is the least disturbed). Prints a Markdown table and the load average.
Needs the `golden` extra (torch, sentence-transformers) and, for Dask, the `dask` extra.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHORT, MEDIUM, LONG = (5, 20), (20, 60), (60, 250)  # words per sentence


def make_corpus(path: Path, n: int, seed: int = 0):
    """n sentences of varied length, deterministic for a given seed."""
    source = json.loads((REPO / "tests/data/sentences.json").read_text())["sentences"]
    words = [w.strip(".,!?\"'():;") for s in source for w in s.split()]
    words = [w for w in words if w]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            lo, hi = rng.choices((SHORT, MEDIUM, LONG), weights=(6, 3, 1))[0]
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))
            f.write(sentence[0].upper() + sentence[1:] + ".\n")


# Each timed run is a fresh interpreter executing one of these snippets; it prints JSON.
CPU = """
import resource
def cpu_seconds():  # user + system time of this process, its threads and its reaped children
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
"""

NUMPYBERT_RUN = CPU + """
import json, sys, time
from numpybert import Embedder
from numpybert.apps.corpus import CorpusJob, embed_corpus
corpus, out, model, address, workers = sys.argv[1:6]
embedder = Embedder(model, batch_size=32)
runner, extra = None, {}
if address == "ray-local":
    from numpybert.embedder import ray_runner
    t = time.perf_counter()
    runner = ray_runner(embedder, "local", int(workers)).start()   # Ray, the actors, their model loads
    extra["start_seconds"] = time.perf_counter() - t
else:
    embedder(["warm up"])                       # load the weights before the clock starts
if int(workers) > 1 and address == "-":
    from numpybert.embedder import process_runner
    runner = process_runner(embedder, int(workers))   # its workers load the weights on their first window
if address not in ("-", "ray-local"):
    from distributed import Client
    from numpybert.embedder import dask_runner
    with Client(address) as c:
        c.run(lambda: Embedder(model)(["warm up"]))   # load the weights on every worker
    runner = dask_runner(embedder, address)
t, c = time.perf_counter(), cpu_seconds()
result = embed_corpus(CorpusJob(corpus, out, embedder), runner, overwrite=True)
extra["seconds"], extra["cpu"], extra["rows"] = time.perf_counter() - t, cpu_seconds() - c, result.rows
if address == "ray-local":  # texts/s of each actor while it computed
    extra["per_actor"] = [texts / seconds for texts, seconds in runner.stats.values()]
print(json.dumps(extra))
"""

ST_RUN = CPU + """
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
corpus, model = sys.argv[1:3]
lines = open(corpus, encoding="utf-8").read().splitlines()
st = SentenceTransformer(model, device="cpu")
st.encode(["warm up"])
t, c = time.perf_counter(), cpu_seconds()
emb = st.encode(lines, batch_size=32)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": cpu_seconds() - c, "rows": len(emb),
                  "torch_threads": torch.get_num_threads()}))
"""


def timed(snippet: str, *args) -> dict:
    proc = subprocess.run([sys.executable, "-c", snippet, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"benchmark run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def token_stats(corpus: Path, model: str) -> str:
    """Real tokens per text after the cut, and the tokens a forward pass computes (padding included)
    with numpybert's batches (token-count sort within windows) and sentence-transformers' (a sort
    by character length over the whole list), both in batches of 32."""
    import numpy as np
    import numpybert
    from numpybert.apps.batching import WINDOW, length_sorted_batches
    from numpybert.apps.st_config import read_settings
    m = numpybert.load(model)
    max_len = read_settings(model, m.config.max_position_embeddings).max_seq_length
    lines = corpus.read_text(encoding="utf-8").splitlines()
    counts = np.concatenate([m.tokenize(lines[i:i + 1024], max_length=max_len)["attention_mask"].sum(1)
                             for i in range(0, len(lines), 1024)])
    ours = [i + b for i in range(0, len(lines), WINDOW) for b in length_sorted_batches(counts[i:i + WINDOW], 32)]
    by_chars = np.argsort([-len(t) for t in lines], kind="stable")
    st = [by_chars[i:i + 32] for i in range(0, len(lines), 32)]
    padded = {name: sum(len(b) * counts[b].max() for b in batches) / counts.sum()
              for name, batches in (("numpybert", ours), ("sentence-transformers", st))}
    return (f"{len(lines)} texts; tokens per text (after the {max_len}-token cut): mean {counts.mean():.0f}, "
            f"median {np.median(counts):.0f}, max {counts.max()}, {np.mean(counts == max_len):.0%} truncated\n"
            "tokens computed / real tokens: " + ", ".join(f"{k} {v:.3f}" for k, v in padded.items()))


def dask_run(corpus: Path, out: Path, model: str) -> dict:
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        return timed(NUMPYBERT_RUN, corpus, out, model, cluster.scheduler_address, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO / "weights/all-MiniLM-L6-v2"))
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--runs", default="numpybert,workers,st",
                        help="which runs alternate in each round: numpybert, workers, st, ray (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus, out = Path(tmp) / "corpus.txt", Path(tmp) / "out.npy"
        make_corpus(corpus, args.texts)
        print(token_stats(corpus, args.model))
        print(f"load average before: {os.getloadavg()}")
        runs = {name: [] for name in args.runs.split(",")}
        commands = {"numpybert": (NUMPYBERT_RUN, corpus, out, args.model, "-", 1),
                    "workers": (NUMPYBERT_RUN, corpus, out, args.model, "-", 2),
                    "st": (ST_RUN, corpus, args.model),
                    "ray": (NUMPYBERT_RUN, corpus, out, args.model, "ray-local", 2)}
        for r in range(args.rounds):
            for name in runs:
                runs[name].append(timed(*commands[name]))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]['seconds']:.1f} s" for k, v in runs.items()), flush=True)
        if not args.no_dask:
            runs["dask"] = [dask_run(corpus, out, args.model)]
        print(f"load average after: {os.getloadavg()}")
    report(runs, args.texts)


def report(runs: dict, n: int):
    """The best round of each run: wall seconds, texts/s, the ratio to sentence-transformers, and the
    CPU seconds it used (user + system, all threads and worker processes; not measured for Dask,
    whose workers belong to the cluster). CPU time shows the work done, whatever else ran."""
    best_runs = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    best = {k: r["seconds"] for k, r in best_runs.items()}
    rate = {k: n / s for k, s in best.items()}
    base = "st" if "st" in rate else "numpybert"  # the column's reference run
    names = {"numpybert": "numpybert embed, 1 process (numpybert threads, BLAS on 1)",
             "workers": "numpybert embed --workers 2 (2 processes x 1 BLAS thread)",
             "dask": "numpybert embed --dask, 2 workers x 1 thread (LocalCluster)",
             "ray": "numpybert embed --ray local, 2 actors x 1 CPU (1 BLAS thread)"}
    if "st" in runs:
        names["st"] = f"sentence-transformers encode, torch ({runs['st'][0]['torch_threads']} threads)"
    reference = {"st": "sentence-transformers", "numpybert": "numpybert 1 process"}[base]
    print(f"\n| run | seconds | texts/s | vs {reference} | CPU seconds |\n|---|---:|---:|---:|---:|")
    for k in runs:
        cpu = f"{best_runs[k]['cpu']:.0f}" if k not in ("dask", "ray") else "n/a"
        print(f"| {names[k]} | {best[k]:.1f} | {rate[k]:.1f} | {rate[k] / rate[base]:.2f}x | {cpu} |")
    if "ray" in runs:
        r = best_runs["ray"]
        print(f"\nray: start (Ray, 2 actors, model loads) {r['start_seconds']:.1f} s, not in the table; texts/s per "
              f"actor while busy: {', '.join(f'{x:.1f}' for x in r['per_actor'])}; with the start: "
              f"{n / (r['seconds'] + r['start_seconds']):.1f} texts/s")


if __name__ == "__main__":
    main()
