"""The wheel as a user gets it (scripts/wheel-smoke.sh): built from the checkout, installed NOT
editable into fresh venvs outside it, run from a temporary directory. Without torch, the live audit
and the bench say which extra to install; with the golden extra they run. ~6 minutes (two venvs,
torch from the local CPU wheel), the slowest test of the suite, kept in it so the one test command
covers what users install (issue 19)."""

import os
import subprocess
import sys

from helpers import require_minilm, ROOT


def test_the_built_wheel_works_from_a_temporary_directory():
    require_minilm()
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "wheel-smoke.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=1800)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    for line in ("numpybert --help: ok", "audit --live without torch: exit 2", "bench without torch: exit 2",
                 "all-MiniLM-L6-v2: already complete (sha256 verified)",
                 "README Python snippets and load('sentence-transformers/all-MiniLM-L6-v2'): ok",
                 "GGUF in a venv with only the gguf extra: ok", "wheel smoke test: ok"):
        assert line in log, f"{line!r} missing from the smoke test's output:\n{log[-4000:]}"
