"""The `numpybert` command. Each subcommand lives in `numpybert/cli/<name>.py` (listed in
`COMMANDS`) and exposes `register(subparsers)`, which adds its parser with `set_defaults(run=...)`.

Exit codes (README "Exit codes"): 0 success; 1 a check that ran and failed (`audit`); 2 a usage
error or input numpybert refuses (bad option, bad line, an output that exists); 3 a missing file
or model, and other operating-system errors (disk full, permission); 130 interrupted (Ctrl-C);
143 terminated (SIGTERM: raised as a `Terminated` where the command stands, so `embed` says where
it stopped, as for Ctrl-C).
Errors are one line on stderr, never a traceback.

The model: `--model DIR`, else $NUMPYBERT_MODEL, else the fetched default (numpybert/loading/locate.py).
"""

import argparse
import contextlib
import importlib
import signal
import sys
import threading

from .. import __version__
from ..errors import NumpybertError
from ..loading.locate import ENV_VAR, resolve_model


COMMANDS = ("attention", "audit", "bench", "classify", "embed", "encode", "explain", "fetch", "fill_mask", "info", "nsp", "serve")


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`, a job scheduler, systemd), raised like Ctrl-C's KeyboardInterrupt so a
    command stops the same way: `embed` says which row the rerun resumes at; exit code 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises Terminated while a command runs (in the main thread; signals go nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _raise_terminated:  # not when the command chose otherwise (serve
            signal.signal(signal.SIGTERM, previous)                 # ignores a repeated SIGTERM: it is exiting 0)


def add_model_argument(parser):
    """Every command takes --model DIR; without it, $NUMPYBERT_MODEL, then the fetched default."""
    parser.add_argument("--model", default=None, metavar="DIR",
                        help=f"checkpoint directory or llama.cpp FILE.gguf (default: ${ENV_VAR}, else the all-MiniLM-L6-v2 that "
                             "`numpybert fetch` downloaded)")


def truncation_note(model, text: str, pair=None):
    """One line for stderr when TEXT (and PAIR) has more tokens than the model reads (the commands
    cut it as transformers' truncation=True does, longest segment first); None when it fits."""
    backend = model.tokenizer.backend
    n = sum(len(backend.encode(t, add_special_tokens=False).ids) for t in (text, pair) if t is not None)
    n += 2 if pair is None else 3  # [CLS] A [SEP] (B [SEP])
    limit = model.tokenizer.model_max_length
    if n <= limit:
        return None
    return (f"note: the {'text pair' if pair is not None else 'text'} has {n} tokens with [CLS]/[SEP]; "
            f"the model reads at most {limit}, so {n - limit} tokens are cut from the end (longest segment first)")


def load_model(args, **kwargs):
    """Load --model; a --plot path is checked first, so a bad one fails before any work."""
    if getattr(args, "plot", None):
        from ..teach.plots import check_plot_path
        check_plot_path(args.plot)  # matplotlib installed, a known extension, a writable directory
    from .. import load
    args.model = resolve_model(args.model)
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
        if "model" in vars(args) and getattr(args, "model_dir", None) is None:  # `info MODEL` resolves its own
            args.model = resolve_model(args.model)
        with _sigterm_raises():
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
    except Terminated:
        print(f"numpybert {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"numpybert {args.command}: interrupted", file=sys.stderr)
        return 130

