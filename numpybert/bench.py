"""`numpybert bench`: numpybert vs torch eager on the same inputs, thread count and machine.

What it measures: the issue's timed shapes (SHAPES, one padded: numpybert runs it packed, as
encode does; single inputs also back to back, as a caller in a loop sees them), each beside its
floor (`gemm_floor`: NumPy's matrix products alone for the same forward, so every engine's time
reads as a multiple of what NumPy's BLAS cannot go under), the peak memory growth of one forward in fresh processes (MEMORY_SHAPES), corpus
throughput of `encode` against sentence-transformers (make_corpus), and the cold start.

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

# (model, B, T), or (model, B, T, "padded"): lengths 8..T padded to T (numpybert runs the packed
# forward there, skip_padding=True, as encode/embed do; torch computes the padding).
SHAPES = [("minilm", 1, 16), ("minilm", 1, 128), ("minilm", 32, 128), ("minilm", 32, 128, "padded"),
          ("base", 8, 128), ("base", 1, 512)]
TARGETS = {("minilm", 1, 16): 0.7, ("minilm", 1, 128): 1.0, ("minilm", 32, 128): 0.8,
           ("minilm", 32, 128, "padded"): 0.5, ("base", 8, 128): 0.9, ("base", 1, 512): 1.0}
# Peak memory growth of one forward, each in a fresh process (issue 11: ≤ 0.6× torch eager's).
MEMORY_SHAPES = [("minilm", 32, 512), ("minilm", 128, 256), ("base", 32, 512)]
MEMORY_TARGET = 0.6
PADDED_ENV = "NUMPYBERT_BENCH_PADDED"  # set for a worker: make_inputs pads (any engine's worker sees it)
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Seconds of quiet before each timed run. After a call, OpenBLAS's and OpenMP's worker threads
# spin for a while (OpenBLAS: up to 2^28 cycles, ~0.1 s) before they sleep; without a pause, one
# engine's spinning threads take cores from the other engine's next run.
QUIET_GAP = 0.3
TORCH_BRIDGE = [sys.executable, "-m", "numpybert.audit.torch_bridge"]  # + worker ... | cold MODEL


# ----------------------------------------------------------------------------- workers

def random_ids(rng, vocab_size: int, shape: tuple) -> np.ndarray:
    """Random token ids of `shape`, [CLS] first in each row."""
    low = 1000 if vocab_size > 1000 else 1  # past BERT's special and unused ids; 1 for tiny test vocabularies
    ids = rng.integers(low, min(vocab_size, 20000), size=shape)
    ids[:, 0] = 101 if vocab_size > 101 else 2  # [CLS] in BERT's vocabularies (2 in the tiny test ones)
    return ids


def make_inputs(vocab_size: int, B: int, T: int, seed: int = 0, padded: bool | None = None) -> dict:
    """The same int64 inputs for every engine: random ids, [CLS] first; no padding, or (padded, or
    the PADDED_ENV variable set by the orchestrator) lengths spread evenly over 8..T, right-padded."""
    padded = os.environ.get(PADDED_ENV) == "1" if padded is None else padded
    rng = np.random.default_rng(seed)
    ids = random_ids(rng, vocab_size, (B, T))
    mask = np.ones((B, T), np.int64)
    if padded:
        lengths = rng.permutation(np.linspace(min(8, T), T, B).astype(int))
        mask = (np.arange(T) < lengths[:, None]).astype(np.int64)
        ids *= mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros((B, T), np.int64)}


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
    """The worker loop: warm up, print one JSON line of `info`, then per line on stdin: "run"
    times one forward and prints its seconds; "mem" prints the peak memory growth (MB) of one
    forward; stop at "quit" or end of input."""
    for _ in range(warmup):
        forward()
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            print(json.dumps(_timed(forward)), flush=True)
        elif command == "mem":
            print(json.dumps(peak_growth_mb(forward)), flush=True)
        else:
            break


def _proc_status_kb(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


def peak_growth_mb(fn) -> float:
    """How far one call of fn raises the process's resident memory above where it was (MB):
    Linux's peak-RSS mark is reset first (/proc/self/clear_refs), so loading's own peak does
    not hide the forward's."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _proc_status_kb("VmRSS")
    fn()
    return (_proc_status_kb("VmHWM") - before) / 1024


def numpybert_worker(model_dir: str, B: int, T: int, threads: int, warmup: int) -> None:
    """Worker for numpybert: `python -m numpybert.bench worker DIR B T THREADS WARMUP`."""
    import numpybert
    from numpybert.engine.threads import threads_info
    numpybert.set_threads(threads)
    model = numpybert.load(model_dir)
    inputs = make_inputs(model.config.vocab_size, B, T)
    skip = not inputs["attention_mask"].all()  # a padded batch runs as encode/embed run it: real tokens only
    info = {"engine": "numpybert", "threads": threads_info(), "skip_padding": skip,
            "sgemm_peak_gflops": sgemm_peak() if warmup else None}  # warmup 0: a memory worker, untimed
    serve(lambda: model(**inputs, skip_padding=skip), info, warmup)


FLOOR = "numpy GEMM floor"  # the engine name of gemm_floor's worker in the tables


def gemm_floor(params: dict, config, attention_mask: np.ndarray):
    """A callable doing only the matrix products of one forward, with NumPy (its BLAS, its threads):
    per layer the dense GEMMs on the computed rows, as the engine multiplies them (x·Wᵀ with the
    checkpoint's [out, in] weights, Q|K|V fused), and each sequence's Q·Kᵀ and P·V over its heads,
    on contiguous operands. No element-wise work at all: the floor a NumPy forward cannot go under.
    Rows are the real tokens when the mask pads (numpybert skips padding), else all B·T."""
    from .engine.model import qkv_weights
    H, N = config.hidden_size, config.num_attention_heads
    lengths = attention_mask.sum(axis=1).astype(int) if not attention_mask.all() else \
        np.full(len(attention_mask), attention_mask.shape[1])
    R = int(lengths.sum())
    rng = np.random.default_rng(0)
    layers = []
    for layer in params["encoder"]["layer"]:
        Wqkv, _ = qkv_weights(**layer["attention"]["self"])
        layers.append((Wqkv, layer["attention"]["output"]["dense"]["weight"],
                       layer["intermediate"]["dense"]["weight"], layer["output"]["dense"]["weight"]))
    dtype = layers[0][0].dtype if layers else np.float32
    I = max([w[2].shape[0] for w in layers] + [H])
    x, y = (rng.standard_normal((R, H)).astype(dtype) for _ in range(2))
    qkv, h = np.empty((R, 3 * H), dtype), np.empty((R, I), dtype)
    groups = []  # (q, k, v, scores, context) per run of sequences of equal length, [G, N, n, D] etc.
    for n in sorted(set(lengths.tolist()), reverse=True):
        G = int((lengths == n).sum())
        q, k, v = (rng.standard_normal((G, N, n, H // N)).astype(dtype) for _ in range(3))
        groups.append((q, k.swapaxes(-1, -2), v, np.empty((G, N, n, n), dtype), np.empty_like(q)))

    def forward():
        for Wqkv, Wo, Wi, Wout in layers:
            np.matmul(x, Wqkv.T, out=qkv)  # [R, H] @ [H, 3H]
            for q, kT, v, scores, context in groups:
                np.matmul(q, kT, out=scores)  # [G, N, n, D] @ [G, N, D, n]
                np.matmul(scores, v, out=context)  # [G, N, n, n] @ [G, N, n, D]
            np.matmul(x, Wo.T, out=y)  # [R, H] @ [H, H]
            np.matmul(y, Wi.T, out=h[:, :Wi.shape[0]])  # [R, H] @ [H, I]
            np.matmul(h[:, :Wi.shape[0]], Wout.T, out=y)  # [R, I] @ [I, H]
    return forward


def floor_worker(model_dir: str, B: int, T: int, threads: int, warmup: int) -> None:
    """`python -m numpybert.bench floor-worker DIR B T THREADS WARMUP`: `gemm_floor` of the same
    model and inputs as the numpybert worker, BLAS on `threads` threads."""
    import numpybert
    from numpybert.engine.threads import threads_info
    numpybert.set_threads(threads)
    model = numpybert.load(model_dir, mmap=True)
    inputs = make_inputs(model.config.vocab_size, B, T)
    info = {"engine": FLOOR, "threads": threads_info()}
    serve(gemm_floor(model.params, model.config, inputs["attention_mask"]), info, warmup)


def ort_worker(model_dir: str, onnx_path: str, B: int, T: int, threads: int, warmup: int) -> None:
    """ONNX Runtime, the outside reference: `python -m numpybert.bench ort-worker DIR FILE.onnx B T
    THREADS WARMUP`. FILE is BertModel exported with inputs input_ids / attention_mask /
    token_type_ids, e.g. the float32 export of scripts/export_onnx.py (`scripts/export_onnx.py minilm
    --out DIR`, which the onnx audit uses too); needs `pip install onnxruntime` (imported here only).
    CPU, `threads` intra-op threads, default graph optimisation; only last_hidden_state is fetched."""
    import onnxruntime
    vocab_size = read_json_object(os.path.join(model_dir, "config.json"), "config.json")["vocab_size"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    inputs = {k: v for k, v in make_inputs(vocab_size, B, T).items() if k in names}
    info = {"engine": "onnxruntime", "version": onnxruntime.__version__, "threads": threads}
    serve(lambda: session.run(["last_hidden_state"], inputs), info, warmup)


# ----------------------------------------------------------------------------- corpus throughput

CORPUS_TEXTS = 3000
CORPUS_TARGET = 1.2  # numpybert's texts/s over sentence-transformers' (issue 11)


def make_corpus(model_dir: str, n: int = CORPUS_TEXTS, seed: int = 0) -> list:
    """n texts of mixed length, deterministic: 60% of 5-20 words, 30% of 20-60, 10% of 60-250
    (long enough to hit all-MiniLM-L6-v2's 256-token cut); words are the whole-word entries of
    the model's vocab.txt."""
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        words = [w for w in f.read().split() if w.isalpha() and len(w) > 1]
    rng = np.random.default_rng(seed)
    spans = [(5, 20), (20, 60), (60, 250)]
    kinds = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    return [" ".join(rng.choice(words, size=rng.integers(*spans[k]))).capitalize() + "." for k in kinds]


def corpus_worker(model_dir: str, n: int, threads: int) -> None:
    """`python -m numpybert.bench corpus DIR N THREADS`: one JSON line, the seconds and texts of
    `model.encode` (batch_size 32, as sentence-transformers' default) on make_corpus's texts."""
    import numpybert
    numpybert.set_threads(threads)
    model = numpybert.load(model_dir)
    texts = make_corpus(model_dir, n)
    model.encode(texts[:64])  # warm up
    seconds = _timed(lambda: model.encode(texts, batch_size=32))
    print(json.dumps({"engine": "numpybert", "seconds": seconds, "texts": len(texts)}), flush=True)


def corpus(model_dir: str, n: int, threads: int, env: dict, with_torch: bool, runs: int) -> dict:
    """Texts per second of numpybert's encode and sentence-transformers' encode on the same
    corpus, fresh processes, runs interleaved; the best run of each (the least disturbed)."""
    commands = {"numpybert": [sys.executable, "-m", "numpybert.bench", "corpus", model_dir, str(n), str(threads)]}
    if with_torch:
        commands["sentence-transformers"] = [*TORCH_BRIDGE, "st-corpus", model_dir, str(n), str(threads)]
    rates = {}
    for _ in range(runs):
        for engine, command in commands.items():
            time.sleep(QUIET_GAP)
            proc = subprocess.run(command, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{engine} corpus worker failed: {proc.stderr[-2000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rates.setdefault(engine, []).append(result["texts"] / result["seconds"])
    row = {"texts": n, "runs": runs, "target": CORPUS_TARGET, "texts_per_s": {e: max(r) for e, r in rates.items()}}
    if "sentence-transformers" in rates:
        row["ratio_to_st"] = row["texts_per_s"]["numpybert"] / row["texts_per_s"]["sentence-transformers"]
    return row


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


def flops(config: dict, B: int, T: int, padded: bool = False) -> float:
    """Multiply-adds ×2 of one forward's useful work (real tokens): the dense layers and the two
    attention products of each sequence."""
    H, I, L = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    n = make_inputs(config["vocab_size"], B, T, padded=padded)["attention_mask"].sum(axis=1).astype(float)
    return float(2.0 * L * (n * (4 * H * H + 2 * H * I) + 2 * n * n * H).sum())


def run_shape(commands: dict, env: dict, reps: int, back_to_back: bool = False) -> dict:
    """Start one worker per engine, time `reps` runs each, return {engine: [seconds]}. Interleaved
    (one run of each engine in turn, QUIET_GAP before each), or back_to_back: each engine's runs
    one right after the other (threads still awake: what a caller in a loop sees)."""
    workers = []
    try:
        for engine, command in commands.items():
            workers.append(start_worker(engine, command, env))
        times = {w.engine: [] for w in workers}
        if back_to_back:
            for w in workers:
                time.sleep(QUIET_GAP)
                times[w.engine] = [w.run() for _ in range(reps)]
        for _ in range(0 if back_to_back else reps):
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
               "m(**m.tokenize(['The quick brown fox jumps over the lazy dog.'])); "
               "from numpybert.bench import print_peak_rss; print_peak_rss()")


def print_peak_rss() -> None:
    """The last line a cold-start process prints: its own peak RSS (VmHWM, KiB). The parent's
    rusage is no measure: Linux carries the parent's peak into a child's ru_maxrss across fork and exec."""
    print("peak_rss_kb", _proc_status_kb("VmHWM"))


def cold_start(command: list, env: dict, runs: int = 5) -> dict:
    """Whole new processes: median wall seconds and peak RSS (MB) of `command`."""
    walls, rss = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start command failed: {proc.stderr[-2000:]}")
        rss.append(int(proc.stdout.split("peak_rss_kb")[-1]) / 1024)  # see print_peak_rss
    return {"wall_s": statistics.median(walls), "wall_min_s": min(walls), "peak_rss_mb": statistics.median(rss)}


# ----------------------------------------------------------------------------- report

def markdown(results: dict) -> str:
    head = ("| model | B × T | engine | median ms | min–max ms | ratio to torch | target | GFLOP/s | of peak "
            "| over the GEMM floor |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head] if results["shapes"] else []
    for r in results["shapes"]:
        for engine, row in r["engines"].items():
            lines.append(f"| {r['model']} | {r['B']} × {r['T']}{' padded' if r.get('padded') else ''}"
                         f"{' back-to-back' if r.get('back_to_back') else ''} | {engine} | "
                         f"{row['median_ms']:.1f} | "
                         f"{row['min_ms']:.1f}–{row['max_ms']:.1f} | {_ratio_cell(row, r, engine)} | "
                         f"{'≤ %s×' % r['target'] if engine == 'numpybert' and r['target'] else ''} | {row['gflops']:.0f} | "
                         f"{'%.0f%%' % (100 * row['fraction_of_peak']) if 'fraction_of_peak' in row else ''} | "
                         f"{'%.2f×' % row['ratio_to_floor'] if 'ratio_to_floor' in row and engine != FLOOR else ''} |")
    if results.get("memory"):
        lines += ["", "| memory: one forward, fresh process | numpybert MB | torch MB | ratio to torch | target |",
                  "|---|---|---|---|---|"]
        for m in results["memory"]:
            g, ratio = m["growth_mb"], m.get("ratio_to_torch")
            cell = "" if ratio is None else f"{ratio:.2f}×{' ✓' if ratio <= m['target'] else ' ✗'}"
            lines.append(f"| {m['model']} {m['B']} × {m['T']} | {g['numpybert']:.0f} | "
                         f"{g['torch']:.0f} | {cell} | ≤ {m['target']}× |" if "torch" in g else
                         f"| {m['model']} {m['B']} × {m['T']} | {g['numpybert']:.0f} | | | ≤ {m['target']}× |")
    if results.get("corpus"):
        c = results["corpus"]
        ratio = c.get("ratio_to_st")
        lines += ["", "| corpus (MiniLM encode, batch 32) | numpybert texts/s | sentence-transformers texts/s | "
                  "ratio | target |", "|---|---|---|---|---|",
                  f"| {c['texts']} mixed-length texts, best of {c['runs']} | {c['texts_per_s']['numpybert']:.0f} | "
                  f"{c['texts_per_s'].get('sentence-transformers', float('nan')):.0f} | "
                  f"{'' if ratio is None else '%.2f×%s' % (ratio, ' ✓' if ratio >= c['target'] else ' ✗')} | "
                  f"≥ {c['target']}× |"]
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
    labels = [f"{r['model']} {r['B']}×{r['T']}{' pad' if r.get('padded') else ''}{' b2b' if r.get('back_to_back') else ''}"
              for r in rows]
    ratios = [r["engines"]["numpybert"]["ratio_to_torch"] for r in rows]
    targets = [r["target"] for r in rows]
    mem = [m for m in results.get("memory", []) if "ratio_to_torch" in m]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.bar(labels, ratios, color="tab:blue", label="time")
    if mem:
        mem_labels = [f"mem {m['model']} {m['B']}×{m['T']}" for m in mem]
        ax.bar(mem_labels, [m["ratio_to_torch"] for m in mem], color="tab:green", label="peak memory")
        labels, targets = labels + mem_labels, targets + [m["target"] for m in mem]
    ax.scatter(labels, targets, marker="_", s=800, color="tab:red", label="target")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_ylabel("numpybert / torch eager")
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
              with_torch: bool = False, keep_env: bool = False, cold_runs: int = 5, log=print,
              memory_shapes=MEMORY_SHAPES, memory_runs: int = 1, corpus_texts: int = CORPUS_TEXTS,
              corpus_runs: int = 0, onnx: dict | None = None, floor: bool = True) -> dict:
    """Run every shape (models: {"minilm": dir, "base": dir}; a missing key skips its shapes).
    `log` gets one short progress line per measurement (the tables are `markdown(results)`, printed once).
    `with_torch`: also time torch eager and sentence-transformers (the corpus), in torch_bridge's
    workers (needs the golden extra); `onnx`: {"minilm": FILE.onnx, ...} adds ONNX Runtime; `floor`:
    NumPy's GEMMs alone for the same forward (`gemm_floor`), each engine's time over it in the table."""
    env = worker_env(threads, keep_env)
    results = {"threads": threads, "reps": reps, "warmup": warmup, "unset_env": [] if keep_env else
               [n for n in OPENBLAS_ENV if n in os.environ], "shapes": [], "memory": [], "cold_start": {},
               "load_average": os.getloadavg()}
    for shape in shapes:
        name, B, T = shape[:3]
        if name not in models:
            continue
        commands = worker_commands(models[name], B, T, threads, warmup, with_torch, (onnx or {}).get(name), floor)
        for back_to_back in (False, True) if B == 1 else (False,):  # small shapes depend on the protocol: both
            run = run_shape(commands, dict(env, **{PADDED_ENV: "1" if len(shape) > 3 else "0"}), reps, back_to_back)
            results["shapes"].append(_shape_result(shape, models[name], run) | {"back_to_back": back_to_back})
            r = results["shapes"][-1]
            log(f"timed {name} {B} × {T}{' padded' if len(shape) > 3 else ''}{' back-to-back' if back_to_back else ''}: "
                + ", ".join(f"{engine} {row['median_ms']:.1f} ms" for engine, row in r["engines"].items()))
    for name, B, T in memory_shapes:
        if name in models:
            results["memory"].append(memory(name, B, T, models[name], threads, env, with_torch, memory_runs))
            log(f"memory {name} {B} × {T}: "
                + ", ".join(f"{engine} {mb:.0f} MB" for engine, mb in results["memory"][-1]["growth_mb"].items()))
    if corpus_runs > 0 and "minilm" in models:
        results["corpus"] = corpus(models["minilm"], corpus_texts, threads, env, with_torch, corpus_runs)
        log("corpus: " + ", ".join(f"{engine} {v:.0f} texts/s" for engine, v in results["corpus"]["texts_per_s"].items()))
    results["cold_start"] = cold_starts(models.get("minilm"), env, with_torch, cold_runs)
    return results


def worker_commands(model_dir: str, B: int, T: int, threads: int, warmup: int, with_torch: bool,
                    onnx_path: str | None = None, floor: bool = False) -> dict:
    """{engine: command line} of the workers for one shape (ONNX Runtime when given an exported model;
    NumPy's GEMMs alone, `gemm_floor`, with `floor`)."""
    commands = {"numpybert": [sys.executable, "-m", "numpybert.bench", "worker", model_dir, str(B), str(T),
                              str(threads), str(warmup)]}
    if floor:
        commands[FLOOR] = [sys.executable, "-m", "numpybert.bench", "floor-worker", model_dir, str(B), str(T),
                           str(threads), str(warmup)]
    if with_torch:
        commands["torch"] = [*TORCH_BRIDGE, "worker", model_dir, str(B), str(T), str(threads), str(warmup)]
    if onnx_path:
        commands["onnxruntime"] = [sys.executable, "-m", "numpybert.bench", "ort-worker", model_dir, onnx_path,
                                   str(B), str(T), str(threads), str(warmup)]
    return commands


def memory(name: str, B: int, T: int, model_dir: str, threads: int, env: dict, with_torch: bool,
           runs: int = 1) -> dict:
    """Peak RSS growth (MB) of one forward in a fresh worker process per engine and run (the
    first forward after load, no warm-up); the median over `runs` fresh processes."""
    growth = {}
    for _ in range(runs):
        for engine, command in worker_commands(model_dir, B, T, threads, 0, with_torch).items():
            worker = start_worker(engine, command, dict(env, **{PADDED_ENV: "0"}))
            try:
                worker.proc.stdin.write("mem\n")
                worker.proc.stdin.flush()
                growth.setdefault(engine, []).append(json.loads(worker._line()))
            finally:
                worker.close()
    row = {"model": name, "B": B, "T": T, "runs": runs, "target": MEMORY_TARGET,
           "growth_mb": {e: statistics.median(g) for e, g in growth.items()}}
    if "torch" in growth:
        row["ratio_to_torch"] = row["growth_mb"]["numpybert"] / row["growth_mb"]["torch"]
    return row


def _shape_result(shape: tuple, model_dir: str, run: dict) -> dict:
    name, B, T = shape[:3]
    config = read_json_object(os.path.join(model_dir, "config.json"), "config.json")
    gflop = flops(config, B, T, padded=len(shape) > 3) / 1e9
    peak = run["info"]["numpybert"].get("sgemm_peak_gflops")
    engines = {e: summarize(t, gflop, peak) for e, t in run["times"].items()}
    if "torch" in engines:
        for row in engines.values():
            row["ratio_to_torch"] = row["median_ms"] / engines["torch"]["median_ms"]
    if FLOOR in engines:
        for row in engines.values():
            row["ratio_to_floor"] = row["median_ms"] / engines[FLOOR]["median_ms"]
    return {"model": name, "B": B, "T": T, "padded": len(shape) > 3, "target": TARGETS.get(tuple(shape)),
            "gflop": gflop, "engines": engines, "info": run["info"]}


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
elif __name__ == "__main__" and sys.argv[1:2] == ["floor-worker"]:
    floor_worker(sys.argv[2], *map(int, sys.argv[3:7]))
elif __name__ == "__main__" and sys.argv[1:2] == ["ort-worker"]:
    ort_worker(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]))
elif __name__ == "__main__" and sys.argv[1:2] == ["corpus"]:
    corpus_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
