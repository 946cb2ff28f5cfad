#!/usr/bin/env python
"""Where a forward's time goes, per operation, for numpybert's engine and for torch eager, on ONE thread.

    .venv/bin/python scripts/profile_ops.py                                   # MiniLM 32×128 and 1×128
    .venv/bin/python scripts/profile_ops.py --model /tmp/random-bert-base --shapes 1x512 8x128

One thread each (BLAS too), so the CPU milliseconds of each kind of operation add up to the
forward and the two engines are compared operation by operation (with 2 threads both scale
about 2× on large shapes). numpybert: cProfile over the engine's functions; torch: torch.profiler's
self CPU time per aten operator. Both run the same inputs (no padding) and `--reps` forwards
after a warm-up; the table gives milliseconds per forward. Needs the `golden` extra (torch,
transformers) and threadpoolctl (the `threads` extra).

`--clock thread` (the default) times with the calling thread's CPU clock (time.thread_time: on
one thread all the work runs in it), so other processes on the cores inflate the numbers far less
than wall time; the two forwards are timed interleaved (A, B, A, B, ...), and torch's per-operator
wall times (torch.profiler has no CPU clock) are scaled to its forward's CPU time. `--clock wall`:
wall time throughout.
"""

import argparse
import cProfile
import os
import pstats
import time

import numpy as np

# numpybert's engine functions -> kind of work. "cum": the function's total time, its callees
# included; "self": its own time (numpy calls made directly in it, not other profiled functions).
NUMPYBERT_KINDS = [
    ("dense GEMMs (QKV, output, FFN)", "self", "blocks.py", "matmul"),
    ("bias adds after the GEMMs", "self", "model.py", "linear"),
    ("attention products Q·Kᵀ, P·V, scale, mask", "self", "model.py", "attend"),
    ("softmax", "cum", "model.py", "softmax"),
    ("GELU", "cum", "model.py", "gelu"),
    ("LayerNorm (+ bias + residual)", "cum", "model.py", "layer_norm"),
]
# torch's aten operators -> the same kinds of work
TORCH_KINDS = [
    ("dense GEMMs (QKV, output, FFN)", ("aten::addmm", "aten::mm")),
    ("attention products Q·Kᵀ, P·V, scale, mask", ("aten::bmm", "aten::baddbmm", "aten::mul", "aten::div")),
    ("softmax", ("aten::_softmax",)),
    ("GELU", ("aten::gelu",)),
    ("LayerNorm (+ bias + residual)", ("aten::native_layer_norm", "aten::add")),
    ("head split / merge copies", ("aten::copy_", "aten::clone")),  # numpybert: views, no copy
]


def inputs(B, T, vocab):
    """numpybert.bench's inputs: random ids, [CLS] first, no padding."""
    from numpybert.bench import make_inputs
    batch = make_inputs(vocab, B, T, padded=False)
    return batch["input_ids"], batch["attention_mask"]


CLOCK = {"thread": time.thread_time, "wall": time.perf_counter}
clock = CLOCK["thread"]


def median_ms(forward, reps, warmup=3):
    """Median milliseconds (`clock`) of `reps` forwards after `warmup` (the first calls allocate and fault pages)."""
    return interleaved_ms([forward], reps, warmup)[0]


def interleaved_ms(forwards, reps, warmup=3):
    """Median milliseconds (`clock`) of each forward, run in turn (A, B, A, B, ...) so that a change
    of load hits both alike."""
    for forward in forwards:
        for _ in range(warmup):
            forward()
    times = [[] for _ in forwards]
    for _ in range(reps):
        for forward, t in zip(forwards, times):
            start = clock()
            forward()
            t.append((clock() - start) * 1e3)
    return [float(np.median(t)) for t in times]


def numpybert_ops(model_dir, B, T, reps):
    import numpybert
    model = numpybert.load(model_dir)
    numpybert.set_threads(1)
    ids, mask = inputs(B, T, model.config.vocab_size)
    wall = median_ms(lambda: model(ids, attention_mask=mask, output_hidden_states=False), reps)
    profile = cProfile.Profile(clock)
    profile.enable()
    for _ in range(reps):
        model(ids, attention_mask=mask, output_hidden_states=False)
    profile.disable()
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    total = sum(v[2] for v in stats.values()) / reps * 1e3
    ops = {}
    for kind, which, file, name in NUMPYBERT_KINDS:
        ops[kind] = sum(v[2 if which == "self" else 3] for (f, _, n), v in stats.items()
                        if f.endswith(file) and n == name) / reps * 1e3
    ops["everything else"] = total - sum(ops.values())
    return wall, ops, total


def torch_ops(model_dir, B, T, reps):
    import torch
    import transformers
    from torch.profiler import ProfilerActivity, profile
    torch.set_num_threads(1)
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    ids, mask = (torch.from_numpy(a) for a in inputs(B, T, model.config.vocab_size))
    with torch.inference_mode():
        wall = median_ms(lambda: model(input_ids=ids, attention_mask=mask), reps)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                model(input_ids=ids, attention_mask=mask)
    self_ms = {e.key: e.self_cpu_time_total / 1e3 / reps for e in prof.key_averages()}
    if clock is not time.perf_counter:  # torch.profiler times wall: scaled to the forward's CPU time
        scale = wall / sum(self_ms.values())
        self_ms = {k: v * scale for k, v in self_ms.items()}
    total = sum(self_ms.values())
    ops = {kind: sum(self_ms.get(name, 0.0) for name in names) for kind, names in TORCH_KINDS}
    ops["everything else"] = total - sum(ops.values())
    return wall, ops, total


def side_by_side(model_dir, B, T):
    """The two forwards as argument-less callables, for `interleaved_ms`."""
    import torch
    import transformers

    import numpybert
    nb = numpybert.load(model_dir)
    ids, mask = inputs(B, T, nb.config.vocab_size)
    tm = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

    def torch_forward():
        with torch.inference_mode():
            tm(input_ids=tids, attention_mask=tmask)
    return [lambda: nb(ids, attention_mask=mask, output_hidden_states=False), torch_forward]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: numpybert's default model)")
    parser.add_argument("--shapes", nargs="+", default=["32x128", "1x128"], help="B×T shapes, e.g. 32x128")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCK), default="thread",
                        help="thread: this thread's CPU time (robust to other load); wall: elapsed time")
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    from threadpoolctl import threadpool_limits
    from numpybert.loading.locate import resolve_model
    model_dir = args.model or resolve_model()
    with threadpool_limits(1):
        for shape in args.shapes:
            B, T = map(int, shape.split("x"))
            nb_wall, nb, nb_total = numpybert_ops(model_dir, B, T, args.reps)
            t_wall, tt, t_total = torch_ops(model_dir, B, T, args.reps)
            nb_wall, t_wall = interleaved_ms(side_by_side(model_dir, B, T), args.reps)
            print(f"\n{model_dir} {B}×{T}, one thread: numpybert {nb_wall:.1f} ms, torch {t_wall:.1f} ms per forward "
                  f"(profiled: {nb_total:.1f} / {t_total:.1f} ms); {args.clock} clock, interleaved: "
                  f"{nb_wall / t_wall:.2f}×, load average {os.getloadavg()[0]:.1f}\n")
            print("| operation | numpybert ms | torch ms | numpybert / torch |")
            print("|---|---|---|---|")
            for kind in [k for k, _ in TORCH_KINDS] + ["bias adds after the GEMMs", "everything else"]:
                a, b = nb.get(kind, 0.0), tt.get(kind, 0.0)
                note = f"{a / b:.2f}" if a > 0 and b > 0 else "—"
                print(f"| {kind} | {a:.1f} | {b:.1f} | {note} |")
            gemm = nb["dense GEMMs (QKV, output, FFN)"]
            print(f"\nnumpybert's dense GEMMs alone take {gemm / t_wall:.2f}× torch's whole forward "
                  f"({gemm:.0f} of {t_wall:.0f} ms); its other work {(nb_total - gemm) / t_wall:.2f}× more")


if __name__ == "__main__":
    main()
