"""`numpybert bench`: numpybert vs torch eager on the same inputs, thread count and machine.

Every engine runs in its own worker process (so torch's start-up or thread pools never touch
numpybert's timings, and small shapes are timed without neighbours); the workers stay alive
and the timed runs are interleaved: numpybert, torch, numpybert, torch, ... Each worker warms
up first, and each timed run starts after QUIET_GAP seconds of quiet. The table reports
medians, min–max, the ratio to torch, the achieved GFLOP/s and its fraction of the sgemm peak
measured in the numpybert worker.

The torch worker is `python -m numpybert.audit.torch_bridge worker ...` (the golden extra; the
rest of numpybert never imports torch). Workers
get OMP/OPENBLAS/MKL_NUM_THREADS = threads; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which make
numpy's OpenBLAS pick a slower kernel on some machines, are removed for the workers unless
`keep_env` (the kernel in use is reported, via threadpoolctl).
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from .loading.config import read_json_object

SHAPES = [("minilm", 1, 16), ("minilm", 32, 128), ("base", 8, 128), ("base", 1, 512)]
TARGETS = {("minilm", 1, 16): 0.8, ("minilm", 32, 128): 1.0, ("base", 8, 128): 1.0, ("base", 1, 512): 1.1}
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Seconds of quiet before each timed run. After a call, OpenBLAS's and OpenMP's worker threads
# spin for a while (OpenBLAS: up to 2^28 cycles, ~0.1 s) before they sleep; without a pause, one
# engine's spinning threads take cores from the other engine's next run.
QUIET_GAP = 0.3
TORCH_BRIDGE = [sys.executable, "-m", "numpybert.audit.torch_bridge"]  # + worker ... | cold MODEL


# ----------------------------------------------------------------------------- workers

def make_inputs(vocab_size: int, B: int, T: int, seed: int = 0) -> dict:
    """The same int64 inputs for every engine: random ids, [CLS] first, no padding."""
    rng = np.random.default_rng(seed)
    low = 1000 if vocab_size > 1000 else 1  # past BERT's special and unused ids; 1 for tiny test vocabularies
    ids = rng.integers(low, min(vocab_size, 20000), size=(B, T))
    ids[:, 0] = 101 if vocab_size > 101 else 2  # [CLS] in BERT's vocabularies (2 in the tiny test ones)
    return {"input_ids": ids, "attention_mask": np.ones((B, T), np.int64),
            "token_type_ids": np.zeros((B, T), np.int64)}


def sgemm_peak(n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of the best of `reps` float32 n×n products: the BLAS ceiling on this machine."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = min(_timed(lambda: np.matmul(a, a, out=out)) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def serve(forward, info: dict, warmup: int) -> None:
    """The worker loop: warm up, print one JSON line of `info`, then time one forward per "run"
    line on stdin and print its seconds; stop at "quit" or end of input."""
    for _ in range(warmup):
        forward()
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps(_timed(forward)), flush=True)


def numpybert_worker(model_dir: str, B: int, T: int, threads: int, warmup: int) -> None:
    """Worker for numpybert: `python -m numpybert.bench worker DIR B T THREADS WARMUP`."""
    import numpybert
    from numpybert.engine.threads import threads_info
    numpybert.set_threads(threads)
    model = numpybert.load(model_dir)
    inputs = make_inputs(model.config.vocab_size, B, T)
    info = {"engine": "numpybert", "threads": threads_info(), "sgemm_peak_gflops": sgemm_peak()}
    serve(lambda: model(**inputs), info, warmup)


# ----------------------------------------------------------------------------- the orchestrator

@dataclasses.dataclass
class Worker:
    """A live worker process: `run()` times one forward."""
    engine: str
    proc: subprocess.Popen
    info: dict

    def run(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.engine} worker died: {self.proc.stderr.read()[-2000:]}")
        return line

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def worker_env(threads: int, keep_env: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    if not keep_env:
        for name in OPENBLAS_ENV:  # both together: the kernel choice and its cache-size hint
            env.pop(name, None)
    return env


def start_worker(engine: str, command: list, env: dict) -> Worker:
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    worker = Worker(engine, proc, {})
    worker.info = json.loads(worker._line())
    return worker


def flops(config: dict, B: int, T: int) -> float:
    """Multiply-adds ×2 of one forward: the dense layers and the two attention products."""
    H, I, L = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return 2.0 * L * B * T * (4 * H * H + 2 * H * I + 2 * T * H)


def run_shape(commands: dict, env: dict, reps: int) -> dict:
    """Start one worker per engine, interleave `reps` timed runs, return {engine: [seconds]}."""
    workers = []
    try:
        for engine, command in commands.items():
            workers.append(start_worker(engine, command, env))
        times = {w.engine: [] for w in workers}
        for _ in range(reps):
            for w in workers:
                time.sleep(QUIET_GAP)  # the other engine's threads stop spinning first
                times[w.engine].append(w.run())
        return {"times": times, "info": {w.engine: w.info for w in workers}}
    finally:
        for w in workers:
            w.close()


def summarize(times: list, gflop: float, peak: float | None) -> dict:
    med = statistics.median(times)
    row = {"median_ms": med * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3, "runs": len(times),
           "gflops": gflop / med}
    if peak:
        row["fraction_of_peak"] = row["gflops"] / peak
    return row


# ----------------------------------------------------------------------------- cold start

COLD_SCRIPT = ("import numpybert; m = numpybert.load({dir!r}, mmap={mmap}); "
               "m(**m.tokenize(['The quick brown fox jumps over the lazy dog.']))")


def cold_start(command: list, env: dict, runs: int = 5) -> dict:
    """Whole new processes: median wall seconds and peak RSS (MB) of `command`."""
    walls, rss = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - t0)
        if status != 0:
            raise RuntimeError(f"cold-start command failed: {proc.stderr.read().decode()[-2000:]}")
        rss.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return {"wall_s": statistics.median(walls), "wall_min_s": min(walls), "peak_rss_mb": statistics.median(rss)}


# ----------------------------------------------------------------------------- report

def markdown(results: dict) -> str:
    head = ("| model | B × T | engine | median ms | min–max ms | ratio to torch | target | GFLOP/s | of peak |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in results["shapes"]:
        for engine, row in r["engines"].items():
            lines.append(f"| {r['model']} | {r['B']} × {r['T']} | {engine} | {row['median_ms']:.1f} | "
                         f"{row['min_ms']:.1f}–{row['max_ms']:.1f} | {_ratio_cell(row, r, engine)} | "
                         f"{'≤ %s×' % r['target'] if engine == 'numpybert' and r['target'] else ''} | {row['gflops']:.0f} | "
                         f"{'%.0f%%' % (100 * row['fraction_of_peak']) if 'fraction_of_peak' in row else ''} |")
    if results.get("cold_start"):
        lines += ["", "| cold start (new process) | wall s (median, min) | peak RSS MB | RSS / weight file |",
                  "|---|---|---|---|"]
        for engine, c in results["cold_start"].items():
            lines.append(f"| {engine} | {c['wall_s']:.2f} ({c['wall_min_s']:.2f}) | {c['peak_rss_mb']:.0f} | "
                         f"{c.get('rss_over_weights', float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


def _ratio_cell(row: dict, shape: dict, engine: str) -> str:
    ratio = row.get("ratio_to_torch")
    if ratio is None:
        return ""
    if engine != "numpybert" or shape["target"] is None:  # --shapes beyond the four have no target
        return f"{ratio:.2f}×"
    return f"{ratio:.2f}×{' ✓' if ratio <= shape['target'] else ' ✗'}"


def plot(results: dict, path: str) -> None:
    """Bars of numpybert's time / torch's per shape, with the target marked (needs matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in results["shapes"] if "ratio_to_torch" in r["engines"]["numpybert"]]
    labels = [f"{r['model']} {r['B']}×{r['T']}" for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(labels, [r["engines"]["numpybert"]["ratio_to_torch"] for r in rows], color="tab:blue")
    ax.scatter(labels, [r["target"] for r in rows], marker="_", s=800, color="tab:red", label="target")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_ylabel("numpybert time / torch eager time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write(results: dict, out_dir: str, with_plot: bool) -> list:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, "bench.json"), os.path.join(out_dir, "bench.md")]
    with open(paths[0], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    with open(paths[1], "w", encoding="utf-8") as f:
        f.write(markdown(results))
    if with_plot:
        paths.append(os.path.join(out_dir, "bench.png"))
        plot(results, paths[-1])
    return paths


def benchmark(models: dict, threads: int = 2, reps: int = 10, warmup: int = 3, shapes=SHAPES,
              with_torch: bool = False, keep_env: bool = False, cold_runs: int = 5, log=print) -> dict:
    """Run every shape (models: {"minilm": dir, "base": dir}; a missing key skips its shapes).
    `with_torch`: also time torch eager, in torch_bridge's worker (needs the golden extra)."""
    env = worker_env(threads, keep_env)
    results = {"threads": threads, "reps": reps, "warmup": warmup, "unset_env": [] if keep_env else
               [n for n in OPENBLAS_ENV if n in os.environ], "shapes": [], "cold_start": {}}
    for name, B, T in shapes:
        if name not in models:
            continue
        commands = {"numpybert": [sys.executable, "-m", "numpybert.bench", "worker", models[name], str(B), str(T),
                                  str(threads), str(warmup)]}
        if with_torch:
            commands["torch"] = [*TORCH_BRIDGE, "worker", models[name], str(B), str(T), str(threads), str(warmup)]
        run = run_shape(commands, env, reps)
        results["shapes"].append(_shape_result(name, B, T, models[name], run))
        log("\n".join(markdown({"shapes": results["shapes"][-1:]}).splitlines()[-len(commands):]))
    results["cold_start"] = cold_starts(models.get("minilm"), env, with_torch, cold_runs)
    return results


def _shape_result(name: str, B: int, T: int, model_dir: str, run: dict) -> dict:
    gflop = flops(read_json_object(os.path.join(model_dir, "config.json"), "config.json"), B, T) / 1e9
    peak = run["info"]["numpybert"].get("sgemm_peak_gflops")
    engines = {e: summarize(t, gflop, peak) for e, t in run["times"].items()}
    if "torch" in engines:
        for row in engines.values():
            row["ratio_to_torch"] = row["median_ms"] / engines["torch"]["median_ms"]
    return {"model": name, "B": B, "T": T, "target": TARGETS.get((name, B, T)), "gflop": gflop,
            "engines": engines, "info": run["info"]}


def cold_starts(minilm_dir: str | None, env: dict, with_torch: bool, runs: int) -> dict:
    """Import + load MiniLM + tokenize one sentence + one forward, in new processes."""
    if not minilm_dir or runs < 1:
        return {}
    weights = os.path.getsize(os.path.join(minilm_dir, "model.safetensors")) / 2 ** 20
    out = {"numpybert (mmap=True)": cold_start([sys.executable, "-c", COLD_SCRIPT.format(dir=minilm_dir, mmap=True)], env, runs),
           "numpybert (owned copy)": cold_start([sys.executable, "-c", COLD_SCRIPT.format(dir=minilm_dir, mmap=False)], env, runs)}
    if with_torch:  # `python -m numpybert.audit.torch_bridge` imports numpybert's own modules too (not timed
        # apart: a small share next to torch + transformers' ~3.5 s import), counted against torch
        out["torch"] = cold_start([*TORCH_BRIDGE, "cold", minilm_dir], env, runs)
    for c in out.values():
        c["rss_over_weights"] = c["peak_rss_mb"] / weights
    return out


def main_worker(argv: list) -> None:
    model_dir, B, T, threads, warmup = argv[0], *map(int, argv[1:5])
    numpybert_worker(model_dir, B, T, threads, warmup)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    main_worker(sys.argv[2:])
