"""Files: output paths checked before any work (so a long run never fails at its last step),
and the sha256 of a file."""

import hashlib
import os
import tempfile

from ..errors import InputValueError, OutputError


def check_output_path(path: str, option: str) -> None:
    """Refuse an output path whose directory is missing, is not a directory, or refuses new files.

    Writability is tried for real (a temporary file is created and removed): permission bits
    say nothing for root, nor for read-only or special file systems (/proc, /sys, a full disk).
    `option` names the argument in the message, e.g. "--out".
    """
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputValueError(f"{option} {path} is a directory; give a file name")
    if not os.path.exists(parent):
        raise OutputError(f"{option} {path}: directory {parent} does not exist")
    if not os.path.isdir(parent):
        raise OutputError(f"{option} {path}: {parent} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".numpybert-write-test-", dir=parent)
    except OSError as e:
        raise OutputError(f"{option} {path}: cannot create files in {parent} ({e.strerror})") from None
    os.close(fd)
    os.remove(probe)


def sha256_files(*paths) -> str:
    """Hex sha256 of the files' bytes, concatenated in the order given (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
