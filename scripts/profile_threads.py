#!/usr/bin/env python
"""Where a MULTI-threaded forward's time goes, per thread and per operation, and where a thread idles.

    .venv/bin/python scripts/profile_threads.py                                  # MiniLM 32×128, 2 threads
    .venv/bin/python scripts/profile_threads.py --model /tmp/random-bert-base --shapes 8x128

cProfile (scripts/profile_ops.py) sees only the calling thread. This script wraps the engine's
functions (numpybert/engine/model.py: GEMMs, attention, softmax, GELU, LayerNorm, embeddings,
pooler, and the glue that calls them) with wall-clock timers that record which thread ran
them, subtracting the time of the wrapped functions they call (self time), for `--reps` forwards
after a warm-up. Per thread it prints the milliseconds of each kind of work per forward, their
sum (busy), and the forward's wall time minus that (idle: waiting at a meeting point, or Python
work outside the wrapped functions). `CPU / busy` is the thread's CPU clock over its busy wall
time: below 1, other processes took the core from it (the machine's load), not numpybert.
The wrappers cost ~1 µs a call (a few hundred calls per forward).
"""

import argparse
import os
import threading
import time
from collections import defaultdict

import numpy as np

# engine function -> kind of work (self time: the function's own NumPy calls, not wrapped callees)
KINDS = {
    "matmul": "dense GEMMs (QKV, output, FFN)",
    "linear": "bias adds after the GEMMs",
    "attend": "attention products Q·Kᵀ, P·V, scale, mask",
    "softmax": "softmax",
    "gelu": "GELU",
    "layer_norm": "LayerNorm (+ bias + residual)",
    "embeddings": "embeddings (gather + sum)",
    "pooler": "pooler",
    "attend_group": "glue (layers, heads, views)",
    "self_attention": "glue (layers, heads, views)",
    "attention_block": "glue (layers, heads, views)",
    "feed_forward": "glue (layers, heads, views)",
    "encoder_layer": "glue (layers, heads, views)",
}


class Recorder:
    """Self wall time and CPU time per (thread, kind), with a per-thread stack of open calls."""

    def __init__(self):
        self.lock = threading.Lock()
        self.wall = defaultdict(float)  # (thread name, kind) -> seconds
        self.cpu = defaultdict(float)
        self.local = threading.local()
        self.on = False

    def wrap(self, fn, kind):
        def wrapped(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            stack = self.local.__dict__.setdefault("stack", [])
            stack.append([0.0, 0.0])  # wall and CPU time of wrapped callees
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                w, c = time.perf_counter() - w0, time.thread_time() - c0
                child_w, child_c = stack.pop()
                if stack:
                    stack[-1][0] += w
                    stack[-1][1] += c
                key = (threading.current_thread().name, kind)
                with self.lock:
                    self.wall[key] += w - child_w
                    self.cpu[key] += c - child_c
        return wrapped


def instrument(recorder):
    from numpybert.engine import model as engine
    for name, kind in KINDS.items():
        original = getattr(engine, name)
        wrapped = recorder.wrap(original, kind)
        setattr(engine, name, wrapped)
        for act, fn in engine.ACTIVATIONS.items():  # the activations are called through this table
            if fn is original:
                engine.ACTIVATIONS[act] = wrapped


def profile(model_dir, B, T, threads, reps, warmup=2):
    import numpybert
    from numpybert.bench import make_inputs
    numpybert.set_threads(threads)
    model = numpybert.load(model_dir)
    batch = make_inputs(model.config.vocab_size, B, T, padded=False)
    recorder = Recorder()
    instrument(recorder)

    def forward():
        model(**batch, output_hidden_states=False)
    for _ in range(warmup):
        forward()
    plain = []
    for _ in range(reps):  # without the recorder: what the wrappers cost is the difference
        start = time.perf_counter()
        forward()
        plain.append(time.perf_counter() - start)
    recorder.on = True
    walls = []
    for _ in range(reps):
        start = time.perf_counter()
        forward()
        walls.append(time.perf_counter() - start)
    recorder.on = False
    return recorder, float(np.sum(walls)), float(np.median(plain)), float(np.median(walls))


def report(model_dir, B, T, threads, reps):
    recorder, total_wall, plain, instrumented = profile(model_dir, B, T, threads, reps)
    names = sorted({name for name, _ in recorder.wall}, key=lambda n: (n != "MainThread", n))
    kinds = list(dict.fromkeys(KINDS.values()))
    print(f"\n{model_dir} {B}×{T}, {threads} threads, {reps} forwards: median {plain * 1e3:.1f} ms per forward "
          f"(instrumented {instrumented * 1e3:.1f} ms), load average {os.getloadavg()[0]:.1f}\n")
    print("| per forward, ms | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for kind in kinds:
        print(f"| {kind} | " + " | ".join(f"{recorder.wall[(n, kind)] / reps * 1e3:.1f}" for n in names) + " |")
    busy = {n: sum(recorder.wall[(n, k)] for k in kinds) for n in names}
    cpu = {n: sum(recorder.cpu[(n, k)] for k in kinds) for n in names}
    print("| **busy** | " + " | ".join(f"**{busy[n] / reps * 1e3:.1f}**" for n in names) + " |")
    print("| idle (forward's wall − busy) | " + " | ".join(
        f"{(total_wall - busy[n]) / reps * 1e3:.1f} ({(total_wall - busy[n]) / total_wall:.0%})" for n in names) + " |")
    print("| CPU / busy (< 1: other processes had the core) | " + " | ".join(
        f"{cpu[n] / busy[n]:.2f}" if busy[n] else "—" for n in names) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: numpybert's default model)")
    parser.add_argument("--shapes", nargs="+", default=["32x128"], help="B×T shapes, e.g. 32x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    from numpybert.loading.locate import resolve_model
    model_dir = args.model or resolve_model()
    for shape in args.shapes:
        B, T = map(int, shape.split("x"))
        report(model_dir, B, T, args.threads, args.reps)


if __name__ == "__main__":
    main()
