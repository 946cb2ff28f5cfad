"""`numpybert bench`: numpybert vs torch eager (torch_bridge, the golden extra; --no-torch
without it), same inputs and threads, interleaved runs in worker processes; writes bench.json
and bench.md."""

import os

from ..audit import require_torch_bridge
from ..errors import InputValueError, MissingExtraError
from ..util import positive_int


def register(subparsers):
    p = subparsers.add_parser("bench", help="time numpybert against torch eager on the issue's shapes",
                              description="Benchmark numpybert vs torch eager (see numpybert/bench.py).")
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
                   help="subset, e.g. minilm:1x16,base:8x128 (default: the issue's four)")
    p.add_argument("--cold-runs", type=int, default=5, help="new processes for the cold start (0: skip)")
    p.add_argument("--no-torch", action="store_true",
                   help="time numpybert only (timing torch needs the golden extra: pip install 'numpybert[golden]')")
    p.add_argument("--keep-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for the workers (default: unset both)")
    p.add_argument("--out", default="bench-results", metavar="DIR", help="where bench.json/bench.md go")
    p.add_argument("--plot", action="store_true", help="also draw bench.png (needs matplotlib)")


def parse_shapes(text):
    from ..bench import SHAPES
    if text is None:
        return SHAPES
    shapes = []
    for item in text.split(","):
        try:
            name, bt = item.split(":")
            B, T = (int(v) for v in bt.lower().split("x"))
        except ValueError:
            raise InputValueError(f"--shapes item {item!r}: expected MODEL:BxT, e.g. minilm:32x128") from None
        if name not in ("minilm", "base") or B < 1 or T < 1:
            raise InputValueError(f"--shapes item {item!r}: model is minilm or base, B and T positive")
        shapes.append((name, B, T))
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
    if not args.no_torch:
        try:
            require_torch_bridge()  # no torch: fail now, in one line, before any work
        except MissingExtraError as e:
            raise MissingExtraError(f"{e} (or time numpybert alone: --no-torch)") from None
    results = bench.benchmark(models, args.threads, args.reps, args.warmup, parse_shapes(args.shapes),
                              not args.no_torch, args.keep_env, args.cold_runs)
    paths = bench.write(results, args.out, args.plot)
    print(bench.markdown(results))
    print("wrote " + ", ".join(paths))
