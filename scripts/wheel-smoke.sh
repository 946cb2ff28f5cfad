#!/usr/bin/env bash
# The wheel as a user gets it: built from the checkout, installed (NOT editable) into fresh
# venvs outside it, and run from a temporary directory, so neither scripts/ nor the checkout's
# numpybert/ can be reached. Run by tests/project/test_wheel.py (so by scripts/test.sh and CI); alone:
# bash scripts/wheel-smoke.sh (needs .venv, or PYTHON=a python with pip).
set -euo pipefail
SECONDS=0
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
tiny="$repo/tests/checkpoints/tiny-bert"
golden="$repo/tests/golden/tiny-bert/one_sentence.float32.safetensors"
minilm="$repo/weights/all-MiniLM-L6-v2"

echo "-- build the wheel (pip wheel --no-deps)"
"$python" -m pip wheel -q --no-deps --wheel-dir "$smoke/dist" "$repo"
wheel=$(ls "$smoke"/dist/numpybert-*.whl)
echo "$(basename "$wheel"): numpybert modules:"
"$python" - "$wheel" <<'PY'
import sys, zipfile
names = sorted(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.startswith("numpybert/"))
print("  " + " ".join(names))
for needed in ("numpybert/cli/__init__.py", "numpybert/audit/torch_bridge.py", "numpybert/engine/model.py",
               "numpybert/loading/checkpoint.py", "numpybert/text/tokenizer.py", "numpybert/apps/encode.py",
               "numpybert/teach/explain.py"):
    assert needed in names, f"the wheel lacks {needed}"
PY

echo "   (${SECONDS} s)"
echo "-- venv with the wheel alone (no torch), run from $smoke/cwd"
python3 -m venv "$smoke/plain"
"$smoke/plain/bin/pip" install -qq "$wheel"
mkdir "$smoke/cwd" && cd "$smoke/cwd"
nb="$smoke/plain/bin/numpybert"
"$smoke/plain/bin/python" -c 'import numpybert, sys; sys.exit("numpybert imported from " + numpybert.__file__ if "site-packages" not in numpybert.__file__ else 0)'
"$nb" --help > /dev/null && echo "numpybert --help: ok"
"$nb" explain "The cat sat on the mat." --model "$minilm" | tail -n 3
"$nb" audit --golden "$golden" --model "$tiny" | tail -n 1
status=0; err=$("$nb" audit --live --model "$tiny" 2>&1 >/dev/null) || status=$?
echo "audit --live without torch: exit $status: $err"
[ "$status" -eq 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && grep -qF "numpybert-0.1.0-py3-none-any.whl[golden]" <<< "$err"
status=0; err=$("$nb" bench --minilm "$tiny" --out "$smoke/bench" 2>&1 >/dev/null) || status=$?
echo "bench without torch: exit $status: $err"
[ "$status" -eq 2 ] && grep -qF "numpybert-0.1.0-py3-none-any.whl[golden]" <<< "$err"

echo "-- after \`numpybert fetch\` (a wheel's: the data directory; here a link to the fetched copy)"
export XDG_DATA_HOME="$smoke/xdg"
mkdir -p "$XDG_DATA_HOME/numpybert" && ln -s "$minilm" "$XDG_DATA_HOME/numpybert/all-MiniLM-L6-v2"
"$nb" fetch | tail -n 1  # finds it complete where it would have put it
"$smoke/plain/bin/python" - "$repo/README.md" <<'PY'
import re, sys
for block in re.findall(r"^```python\n(.*?)^```", open(sys.argv[1], encoding="utf-8").read(), re.M | re.S):
    exec(compile(block, "README.md", "exec"), {})  # the README's Python, as a wheel user runs it
import numpybert
assert numpybert.load("sentence-transformers/all-MiniLM-L6-v2").model_dir == numpybert.load().model_dir
print("README Python snippets and load('sentence-transformers/all-MiniLM-L6-v2'): ok")
PY
unset XDG_DATA_HOME

echo "   (${SECONDS} s)"
echo "-- venv with the wheel and its gguf extra only (no torch): a llama.cpp GGUF file (issue 26)"
q8="$repo/weights/gguf/all-MiniLM-L6-v2.q8_0.gguf"  # made by scripts/make_gguf.py (scripts/test.sh step 3b)
[ -f "$q8" ] || { echo "$q8 is missing: run .venv/bin/python scripts/make_gguf.py"; exit 1; }
python3 -m venv "$smoke/gguf"
"$smoke/gguf/bin/pip" install -qq "$wheel[gguf]"
"$smoke/gguf/bin/numpybert" encode --output embedding --model "$q8" "A man is playing a guitar." | tail -n 1
"$smoke/gguf/bin/python" - "$q8" "$minilm" <<'PY'
import importlib.util, sys
import numpy as np
import numpybert
assert importlib.util.find_spec("torch") is None and importlib.util.find_spec("gguf") is not None
texts = ["A man is playing a guitar.", "Café naïve ÅNGSTRÖM — 北京 🍕 UPPERCASE"]
deployed, original = numpybert.load(sys.argv[1]), numpybert.load(sys.argv[2])
assert deployed.tokenizer.encode(texts[1]) == original.tokenizer.encode(texts[1])
cosine = (deployed.encode(texts) * original.encode(texts)).sum(1).min()
assert cosine >= 0.99, cosine  # q8_0 against the float32 original (docs/gguf.md: ~0.9998)
print(f"GGUF in a venv with only the gguf extra: ok (q8_0 MiniLM, cosine to the safetensors original {cosine:.5f})")
PY
echo "-- venv with the wheel and its golden extra (torch from the local wheel)"
python3 -m venv "$smoke/golden"
"$smoke/golden/bin/pip" install -qq "$wheel[golden]"
ng="$smoke/golden/bin/numpybert"
"$ng" audit --live --model "$tiny" | tail -n 1
"$ng" bench --minilm "$minilm" --shapes minilm:1x16 --memory-shapes minilm:4x64 --corpus-runs 1 --corpus-texts 50 \
  --threads 1 --reps 2 --warmup 1 --cold-runs 1 --out "$smoke/bench" \
  | grep -E "^\| (minilm|torch|numpybert)"  # a smoke test: timings on a shared CI box mean little
echo "wheel smoke test: ok (${SECONDS} s)"
