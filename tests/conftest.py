"""Shared test fixtures (the helpers they use live in tests/helpers.py)."""

import os
import pathlib

import pytest

from helpers import ROOT, make_text_model, require_minilm


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
