#!/usr/bin/env python
"""numpybert vs torch eager: the benchmark of issue 5, the same as `numpybert bench`.

    .venv/bin/python scripts/make_random_bert.py --size base --out /tmp/random-bert-base
    .venv/bin/python scripts/bench.py --base /tmp/random-bert-base --threads 2 --plot

The measuring code is numpybert/bench.py; the torch worker is numpybert/audit/torch_bridge.py
(`python -m numpybert.audit.torch_bridge worker|cold|st-corpus ...`, the golden extra). The
ONNX Runtime column takes an export made by scripts/export_onnx.py (`--onnx-minilm FILE`).
"""

import sys

from numpybert.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
