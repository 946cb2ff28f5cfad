"""scripts/bench_train.py (docs/performance.md, "One training step") runs and prints its table: both
sides, their ratio and the machine's load (tiny checkpoint, 2×8: seconds; needs the golden extra)."""

import re
import subprocess
import sys

from helpers import CHECKPOINTS, ROOT


def test_bench_train_prints_both_sides_and_the_ratio():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_train.py"), "--model",
                           str(CHECKPOINTS / "tiny-bert"), "--shape", "2x8", "--steps", "2", "--rounds", "1",
                           "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"tiny-bert 2×8, float32, 1 threads, .* load average [\d.]+ [\d.]+ [\d.]+", proc.stdout)
    rows = dict(re.findall(r"^\| (numpybert|torch) \| ([\d.]+) \| -?\d+ \|$", proc.stdout, re.M))
    assert set(rows) == {"numpybert", "torch"} and all(float(t) > 0 for t in rows.values())
    assert re.search(r"^\| numpybert / torch \| [\d.]+× \| (-?[\d.]+×|n/a) \|$", proc.stdout, re.M)
