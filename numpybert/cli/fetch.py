"""`numpybert fetch`: put the default all-MiniLM-L6-v2 into weights/ (pinned sha256, idempotent)."""

from .. import DEFAULT_MODEL


def register(subparsers):
    p = subparsers.add_parser("fetch", help="download all-MiniLM-L6-v2 into weights/ (pinned sha256)")
    p.add_argument("--dest", default=DEFAULT_MODEL, metavar="DIR", help=f"where to put it (default: {DEFAULT_MODEL})")
    p.set_defaults(run=run)


def run(args):
    from ..loading.fetch import fetch
    fetch(args.dest)
