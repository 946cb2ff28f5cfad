"""`python -m numpybert.serve.worker K`: worker K of `numpybert serve --workers N` (runner.py starts it)."""

import sys

from .runner import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(int(sys.argv[1])))
