"""`numpybert bench`: numpybert vs torch eager (when scripts/bench.py and torch are there), same
inputs and threads, interleaved runs in worker processes; writes bench.json and bench.md."""

import importlib.util
import os

from ..errors import ConfigError, InputValueError


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
    p.add_argument("--no-torch", action="store_true", help="time numpybert only")
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


def torch_worker_script():
    """scripts/bench.py of this checkout (it holds the torch worker), or None."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "scripts", "bench.py")
    return path if os.path.isfile(path) else None


def run(args, torch_worker=None):
    from .. import bench
    if args.threads < 1 or args.reps < 1 or args.warmup < 0:
        raise InputValueError("--threads and --reps must be positive, --warmup not negative")
    from ..loading.locate import default_model_dir
    args.minilm = args.minilm or os.environ.get("NUMPYBERT_MODEL") or str(default_model_dir())
    models = {"minilm": args.minilm} if os.path.isdir(args.minilm) else {}
    if args.base:
        models["base"] = args.base
    if not models:
        raise InputValueError(f"no model to time: {args.minilm} is missing (run: numpybert fetch) and no --base")
    worker = None if args.no_torch else (torch_worker or torch_worker_script())
    if worker is not None and not all(importlib.util.find_spec(m) for m in ("torch", "transformers")):
        raise ConfigError("the comparison needs torch and transformers: pip install 'numpybert[golden]', "
                          "or pass --no-torch to time numpybert alone")
    results = bench.benchmark(models, args.threads, args.reps, args.warmup, parse_shapes(args.shapes),
                              worker, args.keep_env, args.cold_runs)
    paths = bench.write(results, args.out, args.plot)
    print(bench.markdown(results))
    print("wrote " + ", ".join(paths))
