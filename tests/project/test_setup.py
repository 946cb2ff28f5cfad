"""The README's test command sets up everything the suite uses (issue 19).

`bash scripts/test.sh` installs numpybert with the extras it names and nothing else; a module that
the package, the tests or the scripts import but no extra brings in would pass on a machine where
someone installed it by hand and fail for a newcomer. This test finds every third-party import
(top-level and lazy ones inside functions), maps it to the distribution that provides it, and
checks that distribution is in the dependency closure of what scripts/test.sh installs.
"""

import ast
import importlib.metadata as md
import re
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import ROOT

SOURCES = ("numpybert", "tests", "scripts")


def extras_installed_by_test_sh():
    """The extras in scripts/test.sh's `pip install -e ".[a,b]"`: the one place that says what is set up."""
    found = re.findall(r'pip install [^\n]*-e "\.\[([\w,-]+)\]"', (ROOT / "scripts" / "test.sh").read_text())
    assert len(found) == 1, f"scripts/test.sh should install the project once with its extras, found {found}"
    return set(found[0].split(","))


# What scripts/test.sh installs with --no-deps leaves out of its requirements, and why (nothing else may be left out).
NOT_INSTALLED = {"tensorflow-text": "keras-hub's, pulls TensorFlow (3.2 GB); keras-hub runs on the torch backend without it"}


def no_deps_installs():
    """The packages scripts/test.sh installs alone with `pip install --no-deps "name==version"` (pip cannot put
    --no-deps in an extra): {name: version}."""
    text = (ROOT / "scripts" / "test.sh").read_text()
    return dict(re.findall(r'pip install [^\n]*--no-deps "([\w.-]+)==([\w.]+)"', text))


def closure(name, extras, seen):
    """Every distribution that `pip install name[extras]` brings in (as installed here)."""
    key = canonicalize_name(name)
    if (key, frozenset(extras)) in seen:
        return
    seen.add((key, frozenset(extras)))
    for line in md.distribution(name).requires or []:
        req = Requirement(line)
        wanted = [{**default_environment(), "extra": e} for e in (extras or {""})]
        if req.marker is None or any(req.marker.evaluate(env) for env in wanted):
            closure(req.name, set(req.extras), seen)


def third_party_imports():
    """{top-level module: first file that imports it}, for every import not of the stdlib or the checkout."""
    local = {"numpybert", "__future__"} | {p.stem for d in ("tests", "scripts") for p in (ROOT / d).rglob("*.py")}
    found = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_installed_by_the_test_command():
    seen = set()
    closure("numpybert", extras_installed_by_test_sh(), seen)
    installed_by_setup = {name for name, _ in seen} | {canonicalize_name(n) for n in no_deps_installs()}
    providers = md.packages_distributions()
    missing = []
    for module, where in sorted(third_party_imports().items()):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & installed_by_setup:
            missing.append(f"{module} (imported by {where}; provided by {sorted(dists) or 'nothing installed'})")
    assert not missing, "imported but not installed by scripts/test.sh's extras: " + "; ".join(missing)


def test_the_check_sees_what_it_should():
    """The check itself can fail: torch and pytest are found as imports, and both come from the closure."""
    imports = third_party_imports()
    assert {"torch", "pytest", "numpy", "tokenizers", "safetensors"} <= set(imports)
    assert "json" not in imports and "conftest" not in imports and "numpybert" not in imports
    bare, full = set(), set()
    closure("numpybert", set(), bare)  # the bare package: the three runtime dependencies (and theirs)
    closure("numpybert", extras_installed_by_test_sh(), full)
    bare, full = {n for n, _ in bare}, {n for n, _ in full}
    assert {"numpy", "safetensors", "tokenizers"} <= bare and not {"torch", "pytest", "transformers"} & bare
    assert {"torch", "transformers", "sentence-transformers", "pytest", "onnxruntime"} <= full


def test_no_deps_installs_get_their_requirements_from_the_test_extra():
    """keras-hub is installed with --no-deps: every requirement of it (but the ones NOT_INSTALLED names) must
    then come from the test extra, at the version scripts/test.sh pins; and the closure never holds TensorFlow."""
    installs = no_deps_installs()
    assert installs.get("keras-hub") == "0.32.0", f"scripts/test.sh should install keras-hub 0.32.0 alone: {installs}"
    seen = set()
    closure("numpybert", extras_installed_by_test_sh(), seen)
    full = {n for n, _ in seen}
    assert not {"tensorflow", "tensorflow-text", "tensorflow-cpu"} & full
    for name, version in installs.items():
        assert md.version(name) == version, f"{name} {md.version(name)} installed, scripts/test.sh pins {version}"
        missing = []
        for line in md.distribution(name).requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({**default_environment(), "extra": ""}):
                continue
            key = canonicalize_name(req.name)
            if key not in full and key not in NOT_INSTALLED:
                missing.append(req.name)
        assert not missing, f"{name} (installed with --no-deps) needs {missing}: add them to the test extra"


def test_every_install_hint_names_an_extra_that_exists():
    """numpybert is not on PyPI: `pip install 'numpybert[x]'` finds nothing. Every message that names an extra
    says it through `numpybert.errors.install_hint` (a checkout's `-e '.[x]'` or the built wheel's `[x]`), and
    each extra it names is one pyproject.toml defines."""
    import tomllib
    from numpybert.errors import install_hint
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = set()
    for path in (ROOT / "numpybert").rglob("*.py"):
        text = path.read_text()
        assert "pip install 'numpybert[" not in text and "pip install numpybert[" not in text, path
        named |= set(re.findall(r"""install_hint\(["'](\w[\w-]*)["']\)""", text))
    assert named and named <= extras, (named - extras, extras)
    assert install_hint("gguf").startswith("pip install -e '.[gguf]' in a checkout")
