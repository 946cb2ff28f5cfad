"""The suite's own shape (issue 22): tests/ mirrors the package, shared helpers live in tests/helpers.py
only, and no test module imports another (a test's meaning never depends on another file's tests)."""

import ast
from collections import Counter

from helpers import ROOT

TESTS = ROOT / "tests"
PARTS = {"engine", "loading", "text", "apps", "audit", "cli", "teach", "serve", "project"}
CROSS_PART = {"project", "keras"}  # project/: setup, wheel, scripts; keras/: keras-hub presets in loading, audit, teach


def all_test_files():
    return sorted(p for p in TESTS.rglob("test_*.py") if "golden" not in p.parts)


def imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_every_test_file_is_in_a_folder_named_after_a_part_of_the_package():
    misplaced = [str(p.relative_to(TESTS)) for p in all_test_files() if p.parent.name not in PARTS | CROSS_PART]
    assert not misplaced, f"test files outside tests/{{{','.join(sorted(PARTS | CROSS_PART))}}}/: {misplaced}"
    for part in {p.parent.name for p in all_test_files()} - CROSS_PART:
        assert (ROOT / "numpybert" / part).is_dir(), f"tests/{part}/ mirrors no numpybert/{part}/"


def test_no_test_file_imports_another_or_conftest():
    test_modules = {p.stem for p in all_test_files()} | {"conftest", "tiny_bert"}
    offenders = {str(p.relative_to(TESTS)): sorted(set(imported_modules(p)) & test_modules) for p in all_test_files()}
    assert not {k: v for k, v in offenders.items() if v}, "import shared code from tests/helpers.py"


def test_test_file_names_are_unique():
    """pytest imports test files by base name (rootdir-relative, no __init__.py): names must not repeat."""
    repeated = [name for name, n in Counter(p.name for p in all_test_files()).items() if n > 1]
    assert not repeated
