"""The `numpybert` command. Each subcommand lives in `numpybert/cli/<name>.py` (listed in
`COMMANDS`) and exposes `register(subparsers)`, which adds its parser with `set_defaults(run=...)`.

Errors are one line on stderr and a non-zero exit, never a traceback: numpybert's own
errors exit 2, a missing file or model and other operating-system errors 3, an interrupted
run 130.
"""

import argparse
import importlib
import sys

from .. import DEFAULT_MODEL, __version__
from ..errors import NumpybertError


COMMANDS = ("attention", "audit", "bench", "classify", "embed", "encode", "explain", "fetch", "fill_mask", "info", "nsp")


def add_model_argument(parser):
    """Every command takes --model DIR, defaulting to the fetched all-MiniLM-L6-v2."""
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="DIR",
                        help=f"checkpoint directory (default: {DEFAULT_MODEL}; `numpybert fetch` puts it there)")


def load_model(args, **kwargs):
    """Load --model; a --plot path is checked first, so a bad one fails before any work."""
    if getattr(args, "plot", None):
        from ..teach.plots import check_plot_path
        check_plot_path(args.plot)  # matplotlib installed, a known extension, a writable directory
    from .. import load
    return load(args.model, **kwargs)


def build_parser():
    parser = argparse.ArgumentParser(prog="numpybert", description="BERT in plain NumPy: no torch at run time.")
    parser.add_argument("--version", action="version", version=f"numpybert {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args) or 0
    except BrokenPipeError:  # `numpybert encode ... | head`
        return 0
    except FileNotFoundError as e:
        print(f"numpybert {args.command}: error: {e}", file=sys.stderr)
        return 3
    except NumpybertError as e:
        print(f"numpybert {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # what the checks cannot foresee: a disk that fills up, a file removed mid-run
        print(f"numpybert {args.command}: error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"numpybert {args.command}: interrupted", file=sys.stderr)
        return 130

