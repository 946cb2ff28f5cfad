"""Shared test fixtures: where the real weights, tiny checkpoints and goldens live."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINILM = ROOT / "weights" / "all-MiniLM-L6-v2"
CHECKPOINTS = ROOT / "tests" / "checkpoints"
GOLDEN = ROOT / "tests" / "golden"


def model_dir(name: str) -> pathlib.Path:
    """The checkpoint a golden file's `model` names: the real MiniLM or a committed tiny one."""
    return MINILM if name == "all-MiniLM-L6-v2" else CHECKPOINTS / name


def require_minilm() -> pathlib.Path:
    """The real weights are a prerequisite, not an option: missing means FAIL, never skip."""
    if not (MINILM / "model.safetensors").is_file():
        pytest.fail(f"real weights missing at {MINILM}; run: numpybert fetch", pytrace=False)
    return MINILM


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
    return require_minilm()


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    import numpybert
    return numpybert.load(minilm_dir)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> pathlib.Path:
    """A committed tiny checkpoint with a vocabulary, so it takes text (tiny_bert.make_text_model);
    shared read-only by the encode, corpus and Dask tests."""
    from tiny_bert import make_text_model
    return make_text_model(tmp_path_factory.mktemp("tiny-text") / "tiny-text")


@pytest.fixture(autouse=True, scope="session")
def _run_from_repo_root():
    """Commands and docs use repo-relative paths (weights/all-MiniLM-L6-v2)."""
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)
