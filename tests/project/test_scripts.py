"""The measuring scripts behind docs/performance.md run and print what the doc quotes (tiny checkpoint,
so in seconds; they need the golden extra: torch and transformers)."""

import re
import subprocess
import sys

from helpers import CHECKPOINTS, ROOT

TINY = str(CHECKPOINTS / "tiny-bert")


def run_script(name, *args):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_profile_ops_accounts_for_each_kind_of_operation():
    out = run_script("profile_ops.py", "--model", TINY, "--shapes", "2x16", "--reps", "2")
    head = re.search(r"2×16, one thread: numpybert ([\d.]+) ms, torch ([\d.]+) ms per forward", out)
    assert head and float(head[1]) > 0 and float(head[2]) > 0
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| .* \|$", out, re.M)  # operation, numpybert ms, torch ms
    names = [name for name, _, _ in rows]
    assert names == ["dense GEMMs (QKV, output, FFN)", "attention products Q·Kᵀ, P·V, scale, mask", "softmax", "GELU", "LayerNorm (+ bias + residual)",
                     "head split / merge copies", "bias adds after the GEMMs", "everything else"]
    profiled = re.search(r"\(profiled: ([\d.]+) / ([\d.]+) ms\)", out)
    for column in (1, 2):  # the kinds add up to the profiled forward ("everything else" is the rest), to rounding
        assert abs(sum(float(row[column]) for row in rows) - float(profiled[column])) <= 0.05 * len(rows) + 0.05
    assert float(rows[5][1]) == 0  # numpybert splits and merges heads by views
    assert re.search(r"numpybert's dense GEMMs alone take [\d.]+× torch's whole forward", out)


def test_profile_threads_accounts_for_each_thread_and_its_idle_time():
    """2 threads on 32×16 = 512 token rows: numpybert's threads share the sequences (the worker
    thread has a column); each column's kinds add up to its busy time, which never exceeds the
    forward's wall time (idle ≥ 0)."""
    out = run_script("profile_threads.py", "--model", TINY, "--shapes", "32x16", "--threads", "2", "--reps", "2")
    head = re.search(r"32×16, 2 threads, 2 forwards: median ([\d.]+) ms per forward", out)
    assert head and float(head[1]) > 0
    columns = re.search(r"^\| per forward, ms \| (.+) \|$", out, re.M)[1].split(" | ")
    assert columns[0] == "MainThread" and len(columns) == 2  # the calling thread and numpybert's worker
    rows = [row for row in re.findall(r"^\| ([^*|][^|]*?) \| ([\d.]+) \| ([\d.]+) \|$", out, re.M)
            if not row[0].startswith("CPU / busy")]  # the kinds of work, in ms (not the CPU ratio row)
    kinds = [name for name, _, _ in rows]
    assert kinds[:6] == ["dense GEMMs (QKV, output, FFN)", "bias adds after the GEMMs",
                         "attention products Q·Kᵀ, P·V, scale, mask", "softmax", "GELU", "LayerNorm (+ bias + residual)"]
    busy = re.search(r"^\| \*\*busy\*\* \| \*\*([\d.]+)\*\* \| \*\*([\d.]+)\*\* \|$", out, re.M)
    for column in (1, 2):
        assert float(rows[0][column]) > 0  # both threads multiplied matrices
        assert abs(sum(float(row[column]) for row in rows) - float(busy[column])) <= 0.05 * len(rows) + 0.05
    idle = re.findall(r"(-?[\d.]+) \((-?\d+)%\)", re.search(r"^\| idle .*$", out, re.M)[0])
    assert len(idle) == 2 and all(float(ms) >= 0 for ms, _ in idle)


def test_accuracy_oracle_compares_every_hidden_state():
    out = run_script("accuracy_oracle.py", "--model", TINY, "--padded", "2x32")
    blocks = out.split("== ")[1:]
    assert [b.splitlines()[0].split(":")[0] for b in blocks] == ["4 × 32 random ids", "2 × 32, lengths 20..32 padded"]
    for block in blocks:
        states = re.findall(r"^  h(\d+)\s+max real ([\d.e+-]+) / ([\d.e+-]+) \| mean real ([\d.e+-]+) / ([\d.e+-]+)",
                            block, re.M)
        assert [int(s[0]) for s in states] == [0, 1, 2]  # tiny-bert: 2 layers -> 3 hidden states
        assert all(0 < float(v) < 1e-5 for s in states for v in s[1:])  # float32 vs float64: rounding only
        counts = re.search(r"at least as close: (\d+) of 3 by max, (\d+) of 3 by mean", block)
        by_max = sum(float(s[1]) <= float(s[2]) for s in states)
        by_mean = sum(float(s[3]) <= float(s[4]) for s in states)
        assert counts and (int(counts[1]), int(counts[2])) == (by_max, by_mean)
