"""Shared test fixtures (the helpers they use live in tests/helpers.py)."""

import os
import pathlib
import signal

import pytest

from helpers import ROOT, make_text_model, require_minilm

# A test run started in the background without job control (`nohup bash .ci/run &`, some CI shells) ignores
# SIGINT, and every process it spawns inherits that: the Ctrl-C tests (`numpybert embed` stopped with SIGINT)
# would signal processes that cannot hear it. Give the children a terminal's default instead (a handler, not
# SIG_IGN, becomes SIG_DFL across exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
    return require_minilm()


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    import numpybert
    return numpybert.load(minilm_dir)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> pathlib.Path:
    """A committed tiny checkpoint with a vocabulary, so it takes text (helpers.make_text_model);
    shared read-only by the encode, corpus and Dask tests."""
    return make_text_model(tmp_path_factory.mktemp("tiny-text") / "tiny-text")


@pytest.fixture(autouse=True, scope="session")
def _run_from_repo_root():
    """Commands and docs use repo-relative paths (weights/all-MiniLM-L6-v2)."""
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)
