"""`numpybert fetch`: put the default all-MiniLM-L6-v2 where every command looks for it (pinned sha256,
idempotent): the checkout's weights/ when numpybert runs from a checkout, else the per-user data
directory (numpybert/loading/locate.py)."""

from ..loading.locate import default_model_dir


def register(subparsers):
    p = subparsers.add_parser("fetch", help="download all-MiniLM-L6-v2 where commands find it (pinned sha256)")
    p.add_argument("--dest", default=None, metavar="DIR",
                   help=f"where to put it (default: {default_model_dir()}, where every command looks)")
    p.set_defaults(run=run)


def run(args):
    from ..loading.fetch import fetch
    fetch(str(args.dest or default_model_dir()))
