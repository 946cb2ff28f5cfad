#!/usr/bin/env python
"""llama.cpp itself as a peer: its own tokens and embeddings of a fixed text set, for the test GGUF files.

    .venv/bin/python scripts/export_llamacpp_golden.py [--gguf-dir weights/gguf]

Run once by hand, NOT in CI (scripts/test.sh): it builds llama-cpp-python==0.3.36 from the same sdist as
scripts/make_gguf.py (pip compiles llama.cpp with cmake, CPU only: ~10+ minutes on 2 shared cores) into its
own venv, weights/llamacpp/venv (outside git; the test extra never installs it), and runs llama.cpp there on
each GGUF scripts/make_gguf.py makes. It writes, committed:
  tests/gguf/llamacpp_golden.json  per file: sha256, llama.cpp's version, pooling; per text: llama.cpp's
                                   token ids (`Llama.tokenize`) and its pooled embedding (not normalized)
  tests/gguf/llamacpp_golden.npz   per file and text: llama.cpp's per-token embeddings (pooling none), float32
tests/audit/test_llamacpp_peer.py compares numpybert on the same files with them.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from make_gguf import CACHE, OUTTYPES, SOURCES, sdist, sha256  # noqa: E402  (the same sdist and files)

VENV = CACHE / "venv"
VERSION = "0.3.36"
CMAKE_ARGS = "-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
TEXTS = ("Hello, how are you today?",
         "The quick brown fox jumps over the lazy dog by the river bank.",
         "A man is playing a guitar.",
         "UPPERCASE INPUT SHOULD NOT COLLAPSE",
         "Café naïve résumé — déjà vu à la Zoë, ÅNGSTRÖM façade.",
         "北京是中国的首都。東京は日本の首都です。",
         "I love pizza 🍕🍕 and 🤖 robots! 👍🏽",
         "Pneumonoultramicroscopicsilicovolcanoconiosis is a very long word.")
OUT_JSON, OUT_NPZ = REPO / "tests" / "gguf" / "llamacpp_golden.json", REPO / "tests" / "gguf" / "llamacpp_golden.npz"

# Runs inside weights/llamacpp/venv (llama-cpp-python is not a dependency of numpybert or its tests).
CHILD = r"""
import json, sys
import numpy as np
import llama_cpp
from llama_cpp import Llama

path, texts, npz = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
common = dict(model_path=path, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2, verbose=False)
pooled_model = Llama(**common)
token_model = Llama(**common, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE)
out = {"llama_cpp_python": llama_cpp.__version__, "texts": []}
arrays = {}
for i, text in enumerate(texts):
    ids = pooled_model.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    pooled = pooled_model.embed(text, normalize=False, truncate=True)
    tokens = token_model.embed(text, normalize=False, truncate=True)
    arrays[f"{i}"] = np.asarray(tokens, np.float32)
    out["texts"].append({"text": text, "ids": [int(t) for t in ids],
                         "embedding": [float(x) for x in np.asarray(pooled, np.float32).ravel()]})
np.savez(npz, **arrays)
print(json.dumps(out))
"""


def build() -> Path:
    """weights/llamacpp/venv with llama-cpp-python built from the sdist (once)."""
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import llama_cpp"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL="2")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(sdist(CACHE))],
                   env=env, check=True)
    return python


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf-dir", type=Path, default=REPO / "weights" / "gguf")
    args = parser.parse_args(argv)
    python = build()
    golden, arrays = {"texts": list(TEXTS), "files": {}}, {}
    for name in SOURCES:
        for outtype in OUTTYPES:
            file = f"{name}.{outtype}.gguf"
            path = args.gguf_dir / file
            if not path.is_file():
                sys.exit(f"export_llamacpp_golden: {path} is missing: run scripts/make_gguf.py first")
            tmp = args.gguf_dir / f"{file}.npz"
            result = subprocess.run([str(python), "-c", CHILD, str(path), json.dumps(TEXTS), str(tmp)],
                                    capture_output=True, text=True)
            if result.returncode:
                sys.exit(f"export_llamacpp_golden: llama.cpp failed on {file}:\n{result.stderr[-3000:]}")
            entry = json.loads(result.stdout.strip().splitlines()[-1])
            golden["files"][file] = {"sha256": sha256(path), **entry}
            with np.load(tmp) as data:
                arrays.update({f"{file}/{k}": data[k] for k in data.files})
            tmp.unlink()
            print(f"{file}: {len(TEXTS)} texts", file=sys.stderr)
    golden["command"] = "python scripts/export_llamacpp_golden.py"
    OUT_JSON.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    np.savez_compressed(OUT_NPZ, **arrays)
    print(f"wrote {OUT_JSON.relative_to(REPO)} and {OUT_NPZ.relative_to(REPO)} "
          f"({OUT_NPZ.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
