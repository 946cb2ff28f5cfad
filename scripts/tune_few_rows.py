#!/usr/bin/env python
"""Where the engine should switch from x·Wᵀ to (W·xᵀ)ᵀ (numpybert/engine/model.py, FEW_ROWS).

    .venv/bin/python scripts/tune_few_rows.py [--model DIR] [--threads 2] [--rows 8 16 32 48 64 128 256]

For each row count (one sequence of that many tokens), times whole forwards back to back with
FEW_ROWS = 0 (always x·Wᵀ) and with FEW_ROWS = rows (always (W·xᵀ)ᵀ), alternating three rounds
of 20 forwards in one process, and prints the medians of each round. The transposed product is the
faster one as long as its medians are lower.
"""
import argparse
import time

import numpy as np

import numpybert
from numpybert.engine import model as M


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[8, 16, 32, 48, 64, 128, 256])
    args = parser.parse_args()
    model = numpybert.load(args.model)
    numpybert.set_threads(args.threads)
    default = M.FEW_ROWS
    print("| rows | x·Wᵀ ms (3 rounds) | (W·xᵀ)ᵀ ms (3 rounds) |\n|---|---|---|")
    for rows in args.rows:
        ids = np.random.default_rng(0).integers(1000, 20000, (1, rows))
        ids[:, 0] = 101
        medians = {0: [], rows: []}
        for _ in range(3):
            for few in medians:
                M.FEW_ROWS = few
                for _ in range(3):
                    model(ids)
                times = []
                for _ in range(20):
                    start = time.perf_counter()
                    model(ids)
                    times.append(time.perf_counter() - start)
                medians[few].append(np.median(times) * 1e3)
        print(f"| {rows} | " + " | ".join(" ".join(f"{m:.1f}" for m in medians[few]) for few in (0, rows)) + " |")
    M.FEW_ROWS = default


if __name__ == "__main__":
    main()
