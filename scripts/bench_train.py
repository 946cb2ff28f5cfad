"""The cost of one training step (docs/performance.md, "One training step"): a classification step of
BERT (forward, cross-entropy, backward, AdamW) with numpybert (`value_and_grad`: the textbook's forward
and backward) against torch eager (transformers' BertForSequenceClassification, `loss.backward()`,
torch.optim.AdamW), float32, the same shape and threads. Each side runs in its own fresh process,
alternating (numpybert, torch, numpybert, torch, ...); each prints its median step time and its peak
memory growth over the steps (peak RSS during the steps minus the RSS before them: activations,
gradients and AdamW's two moments). Needs the golden extra (torch, transformers).

    python scripts/bench_train.py [--model DIR] [--shape 16x128] [--steps 3] [--rounds 2] [--threads 2]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def numpybert_worker(model_dir, B, T, threads, steps):
    """numpybert's side, in this process: prints `median_seconds peak_growth_bytes`."""
    import resource
    import numpybert
    numpybert.set_threads(threads)
    model = numpybert.load(model_dir)
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(1, model.config.vocab_size, (B, T)), "attention_mask": np.ones((B, T), int),
             "labels": rng.integers(0, 2, B)}
    optimizer = numpybert.AdamW(model, lr=1e-5)
    base, times = rss_bytes(), []
    for _ in range(steps):
        start = time.perf_counter()
        _, grads = numpybert.value_and_grad(model, "classification", **batch)
        optimizer.step(grads)
        del grads
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(statistics.median(times), peak - base, flush=True)


def run(cmd) -> tuple:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        sys.exit(f"bench_train: {' '.join(cmd[:4])} failed:\n{proc.stderr[-2000:]}")
    seconds, growth = proc.stdout.split()[-2:]
    return float(seconds), float(growth)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=os.path.join(HERE, "..", "weights", "all-MiniLM-L6-v2"))
    p.add_argument("--shape", default="16x128")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    B, T = (int(n) for n in args.shape.split("x"))
    import numpybert
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = numpybert.add_head(args.model, os.path.join(tmp, "classifier"), "classification")
        common = [model_dir, str(B), str(T), str(args.threads), str(args.steps)]
        sides = {"numpybert": [sys.executable, os.path.abspath(__file__), "worker", *common],
                 "torch": [sys.executable, "-m", "numpybert.audit.torch_bridge", "train-step", *common]}
        results = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, cmd in sides.items():
                results[name].append(run(cmd))
    load = os.getloadavg()
    print(f"one classification training step, {os.path.basename(os.path.normpath(args.model))} {B}×{T}, float32, "
          f"{args.threads} threads, median of {args.steps} steps, best of {args.rounds} processes each; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| | step time (s) | peak memory growth (MB) |\n|---|---|---|")
    best = {name: (min(t for t, _ in r), min(m for _, m in r)) for name, r in results.items()}
    for name, (t, m) in best.items():
        print(f"| {name} | {t:.3f} | {m / 1e6:.0f} |")
    (nt, nm), (tt, tm) = best["numpybert"], best["torch"]
    print(f"| numpybert / torch | {nt / tt:.2f}× | {f'{nm / tm:.2f}×' if tm > 0 else 'n/a'} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        numpybert_worker(sys.argv[2], *map(int, sys.argv[3:7]))
    else:
        main()
