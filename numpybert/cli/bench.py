"""`numpybert bench`: numpybert vs torch eager (torch_bridge, the golden extra; --no-torch
without it), same inputs and threads, interleaved runs in worker processes; writes bench.json
and bench.md."""

import os
import sys

from ..audit import require_torch_bridge
from ..errors import InputValueError, MissingExtraError
from ..util import positive_int


def register(subparsers):
    p = subparsers.add_parser("bench", help="time numpybert against torch eager (MiniLM and bert-base shapes)",
                              description="Time numpybert against torch eager (and ONNX Runtime when given an "
                                          "export) on the same inputs and threads, interleaved in worker processes: "
                                          "MiniLM and bert-base batch shapes, peak memory of one forward, a "
                                          "mixed-length corpus against sentence-transformers, and the cold start. "
                                          "Progress goes to stderr, the tables to stdout and OUT/bench.md, "
                                          "the numbers to OUT/bench.json.")
    add_arguments(p)
    p.set_defaults(run=run)


def add_arguments(p):
    """The options of `numpybert bench` and scripts/bench.py."""
    p.add_argument("--minilm", default=None, metavar="DIR",
                   help="all-MiniLM-L6-v2 directory (default: as --model of the other commands)")
    p.add_argument("--base", default=None, metavar="DIR",
                   help="a bert-base-sized checkpoint (scripts/make_random_bert.py --size base); without it, "
                        "its shapes are skipped")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every engine")
    p.add_argument("--reps", type=int, default=10, help="timed runs per engine and shape (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--shapes", default=None, metavar="LIST",
                   help="timed shapes, e.g. minilm:1x16,minilm:32x128:padded,base:8x128 (default: "
                        "minilm:1x16,1x128,32x128,32x128:padded and base:8x128,1x512; 'none' skips timing)")
    p.add_argument("--memory-shapes", default=None, metavar="LIST",
                   help="shapes whose peak memory growth of one forward is measured in fresh processes "
                        "(default: minilm:32x512,minilm:128x256,base:32x512; 'none' skips)")
    p.add_argument("--memory-runs", type=int, default=1, help="fresh processes per engine and memory shape")
    p.add_argument("--corpus-runs", type=int, default=1,
                   help="runs of MiniLM encode vs sentence-transformers on a mixed-length corpus (0: skip)")
    p.add_argument("--corpus-texts", type=int, default=3000, help="texts in the corpus (default 3000)")
    p.add_argument("--onnx-minilm", default=None, metavar="FILE",
                   help="also time ONNX Runtime (pip install onnxruntime) on this export of the MiniLM model "
                        "(the float32 export of scripts/export_onnx.py minilm --out DIR)")
    p.add_argument("--onnx-base", default=None, metavar="FILE", help="the same for the bert-base model")
    p.add_argument("--no-floor", action="store_true",
                   help="skip the floor line (NumPy's GEMMs alone for the same forward, timed beside each shape)")
    p.add_argument("--cold-runs", type=int, default=5, help="new processes for the cold start (0: skip)")
    p.add_argument("--no-torch", action="store_true",
                   help="time numpybert only (timing torch needs the golden extra: the golden extra)")
    p.add_argument("--keep-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for the workers (default: unset both)")
    p.add_argument("--out", default="bench-results", metavar="DIR", help="where bench.json/bench.md go")
    p.add_argument("--plot", action="store_true", help="also draw bench.png (needs matplotlib)")


def parse_shapes(text, default=None, padded_ok=True):
    from ..bench import SHAPES
    if text is None:
        return SHAPES if default is None else default
    if text == "none":
        return []
    shapes = []
    for item in text.split(","):
        try:
            name, bt, *rest = item.split(":")
            B, T = (int(v) for v in bt.lower().split("x"))
        except ValueError:
            raise InputValueError(f"--shapes item {item!r}: expected MODEL:BxT, e.g. minilm:32x128") from None
        if name not in ("minilm", "base") or B < 1 or T < 1 or rest not in ([], ["padded"]) or rest and not padded_ok:
            raise InputValueError(f"--shapes item {item!r}: model is minilm or base, B and T positive"
                                  f"{', optionally :padded' if padded_ok else ''}")
        shapes.append((name, B, T, *rest))
    return shapes


def run(args):
    from .. import bench
    positive_int("--threads", args.threads), positive_int("--reps", args.reps)
    if args.warmup < 0:
        raise InputValueError(f"--warmup={args.warmup}: expected 0 or more")
    from ..loading.locate import default_model_dir
    args.minilm = args.minilm or os.environ.get("NUMPYBERT_MODEL") or str(default_model_dir())
    models = {"minilm": args.minilm} if os.path.isdir(args.minilm) else {}
    if args.base:
        models["base"] = args.base
    if not models:
        raise InputValueError(f"no model to time: {args.minilm} is missing (run: numpybert fetch) and no --base")
    if args.memory_runs < 0 or args.corpus_runs < 0 or args.corpus_texts < 1:
        raise InputValueError("--memory-runs and --corpus-runs must not be negative, --corpus-texts positive")
    onnx = {k: v for k, v in (("minilm", args.onnx_minilm), ("base", args.onnx_base)) if v}
    for name, path in onnx.items():
        if not os.path.isfile(path):
            raise InputValueError(f"--onnx-{name} {path}: no such file (export one: scripts/export_onnx.py)")
    if not args.no_torch:
        try:
            require_torch_bridge()  # no torch: fail now, in one line, before any work
        except MissingExtraError as e:
            raise MissingExtraError(f"{e} (or time numpybert alone: --no-torch)") from None
    results = bench.benchmark(models, args.threads, args.reps, args.warmup, parse_shapes(args.shapes),
                              not args.no_torch, args.keep_env, args.cold_runs,
                              memory_shapes=parse_shapes(args.memory_shapes, bench.MEMORY_SHAPES, padded_ok=False),
                              memory_runs=args.memory_runs, corpus_texts=args.corpus_texts,
                              corpus_runs=args.corpus_runs, onnx=onnx, floor=not args.no_floor,
                              log=lambda line: print(f"numpybert bench: {line}", file=sys.stderr, flush=True))
    paths = bench.write(results, args.out, args.plot)
    print(bench.markdown(results))
    print("wrote " + ", ".join(paths))
