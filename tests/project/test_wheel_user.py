"""The defects a newcomer hit installing the wheel and using it from a temporary directory (issue 22).

A wheel user differs from a checkout in one way that matters here: `numpybert fetch` puts the model
in the data directory ($XDG_DATA_HOME/numpybert), not in ./weights. `wheel_site` gives that layout
without building a wheel: a copy of the package with no pyproject.toml beside it (so
`locate.checkout_root()` is None, as in site-packages) on PYTHONPATH, run from an empty temporary
directory, with $XDG_DATA_HOME holding a symlink to the real weights where `numpybert fetch` puts
them. (scripts/wheel-smoke.sh does the same with a built wheel in a fresh venv.) In-process tests get the
same by monkeypatching `locate.checkout_root`.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import numpybert
from numpybert import bench, cli
from numpybert.errors import WeightsNotFoundError
from numpybert.loading import fetch as fetching
from numpybert.loading import hub, locate

from helpers import CHECKPOINTS, require_minilm, ROOT

FETCHED = "numpybert/all-MiniLM-L6-v2"  # below $XDG_DATA_HOME: where a wheel's `numpybert fetch` puts it


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory):
    """(site dir with a copy of the package, $XDG_DATA_HOME holding the fetched model)."""
    root = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT / "numpybert", root / "site" / "numpybert",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "xdg" / FETCHED).parent.mkdir(parents=True)
    (root / "xdg" / FETCHED).symlink_to(require_minilm())
    return root / "site", root / "xdg"


def as_wheel_user(wheel_site, cwd, *argv, env=None):
    """`python ARGV` with the wheel-like package, from `cwd`: (exit code, stdout, stderr)."""
    site, xdg = wheel_site
    clean = {k: v for k, v in os.environ.items() if k != locate.ENV_VAR}
    env = {**clean, "PYTHONPATH": str(site), "XDG_DATA_HOME": str(xdg), "HF_HUB_CACHE": str(cwd / "no-hub"),
           **(env or {})}
    result = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def as_wheel(monkeypatch, tmp_path):
    """In this process: no checkout, $XDG_DATA_HOME in tmp_path (empty), cwd tmp_path; returns the data dir."""
    monkeypatch.setattr(locate, "checkout_root", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "xdg"


def fetched_into(xdg):
    """What `numpybert fetch` leaves in the data directory (a symlink to the real weights)."""
    (xdg / FETCHED).parent.mkdir(parents=True, exist_ok=True)
    (xdg / FETCHED).symlink_to(require_minilm())
    return xdg / FETCHED


# ----------------------------------------------------------------------------- the README and the model's names

def readme_python_blocks():
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)


def test_readme_python_snippets_run_for_a_wheel_user(wheel_site, tmp_path):
    blocks = readme_python_blocks()
    assert blocks, "the README has no Python snippet"
    for block in blocks:
        code = "import numpybert, sys\nassert numpybert.__file__.startswith(sys.argv[1]), numpybert.__file__\n" + block
        status, out, err = as_wheel_user(wheel_site, tmp_path, "-c", code, str(wheel_site[0]))
        assert status == 0, f"README snippet failed for a wheel user:\n{block}\n{err[-3000:]}"


def test_a_missing_model_directory_says_where_fetch_put_the_model(as_wheel):
    with pytest.raises(WeightsNotFoundError) as e:  # the README's old snippet, after `numpybert fetch`
        numpybert.load("weights/all-MiniLM-L6-v2")
    assert "run `numpybert fetch`" in str(e.value)  # not fetched yet: says so, and where it would go
    assert str(as_wheel / FETCHED) in str(e.value)
    fetched = fetched_into(as_wheel)
    with pytest.raises(WeightsNotFoundError) as e:
        numpybert.load("weights/all-MiniLM-L6-v2")
    message = str(e.value)
    assert f"`numpybert fetch` put all-MiniLM-L6-v2 in {fetched}" in message, message
    assert "run `numpybert fetch`" not in message  # the fetch was done: do not suggest it again
    assert "\n" not in message


def test_load_without_a_model_speaks_python_and_the_cli_speaks_flags(as_wheel, capsys):
    with pytest.raises(WeightsNotFoundError) as e:
        numpybert.load()
    message = str(e.value)
    assert "--model" not in message and "numpybert.load(DIR)" in message, message
    assert str(as_wheel / FETCHED) in message
    assert cli.main(["encode", "a dog"]) == 3
    err = capsys.readouterr().err
    assert "--model DIR" in err and "numpybert.load(" not in err, err
    fetched_into(as_wheel)
    assert numpybert.load().model_dir == str(as_wheel / FETCHED)


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"])
def test_the_default_models_hub_name_is_the_fetched_copy(as_wheel, name):
    with pytest.raises(WeightsNotFoundError, match="where `numpybert fetch` puts it"):
        numpybert.load(name)  # nothing fetched, nothing cached: every place looked is named
    fetched = fetched_into(as_wheel)
    model = numpybert.load(name)
    assert model.model_dir == str(fetched)
    np.testing.assert_array_equal(model.encode(["a dog"]), numpybert.load(fetched).encode(["a dog"]))
    assert numpybert.Embedder(name).model_dir == str(fetched)  # the corpus embedder takes the same names
    with pytest.raises(WeightsNotFoundError, match="revision main"):  # a revision asks the Hub cache only
        numpybert.load(name, revision="main")
    # the order: the Hugging Face cache comes first when it holds the model
    snapshot = as_wheel.parent / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("a" * 40)
    assert hub.resolve(name) == str(snapshot)
    with pytest.raises(WeightsNotFoundError):
        numpybert.load("someone-else/all-MiniLM-L6-v2")  # only the default model's own names


def test_the_cli_takes_the_hub_name_after_fetch(wheel_site, tmp_path):
    status, out, err = as_wheel_user(wheel_site, tmp_path, "-m", "numpybert", "encode", "a dog", "--output",
                                     "embedding", "--format", "json", "--model", "sentence-transformers/all-MiniLM-L6-v2")
    assert status == 0, err
    assert len(json.loads(out)["outputs"]["embedding"][0]) == 384


# ----------------------------------------------------------------------------- embed

def embed(*argv):
    return cli.main(["embed", *map(str, argv), "--no-progress"])


def leftovers(out):
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name) and p != out)


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_an_id_out_of_int64_is_one_error_line_before_any_work(tmp_path, tiny_dir, capsys, ext):
    corpus = tmp_path / "big.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": f"text {i}"}) + "\n"
                              for i in (1, 12345678901234567890, 3, -2**63, 2**63 - 1)))
    out = tmp_path / f"x.{ext}"
    for _ in range(2):  # the rerun too
        assert embed(corpus, "--out", out, "--id-field", "id", "--model", tiny_dir) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("numpybert embed: error: "), lines
        assert f"{corpus} line 2: id field 'id' is 12345678901234567890" in lines[0] and "string" in lines[0]
        assert not out.exists() and leftovers(out) == []
    assert embed(corpus, "--out", out, "--id-field", "id", "--model", tiny_dir, "--skip-bad") == 0
    report = [json.loads(line) for line in (tmp_path / f"x.{ext}.skipped.jsonl").read_text().splitlines()]
    assert [r["line"] for r in report] == [2]
    ids = (pq.read_table(out).column("id").to_pylist() if ext == "parquet" else
           [json.loads(line)["id"] for line in out.read_text().splitlines()])
    assert ids == [1, 3, -2**63, 2**63 - 1]  # the int64 range itself is kept
    assert leftovers(out) == [f"x.{ext}.skipped.jsonl"]


def test_embed_refuses_to_write_over_its_input(tmp_path, tiny_dir, capsys, monkeypatch):
    corpus = tmp_path / "same.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"text {i}"}) + "\n" for i in range(5)))
    before = corpus.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(corpus)
    os.link(corpus, tmp_path / "hard.jsonl")
    (tmp_path / "sub").mkdir()
    for out in (corpus, tmp_path / "link.jsonl", tmp_path / "hard.jsonl", tmp_path / "sub" / ".." / "same.jsonl"):
        assert embed(corpus, "--out", out, "--overwrite", "--model", tiny_dir) == 2, out
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and "is the input" in lines[0] and "never writes over its input" in lines[0], lines
        assert corpus.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.jsonl", "link.jsonl", "same.jsonl", "sub"]
    monkeypatch.chdir(tmp_path)  # relative spellings
    assert embed("same.jsonl", "--out", "./same.jsonl", "--overwrite", "--model", tiny_dir) == 2
    assert "is the input" in capsys.readouterr().err and corpus.read_bytes() == before


# ----------------------------------------------------------------------------- explain on a long text

def test_explain_on_a_20000_word_text_caps_what_it_shows(tmp_path, capsys, minilm_dir):
    from numpybert.teach.explain import TOKENS_SHOWN
    words = [f"word{i % 997}" for i in range(20_000)]
    text = " ".join(words)
    page = tmp_path / "long.html"
    assert cli.main(["explain", text, "--html", str(page)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert text[:1000] not in out and len(out) < 20_000, f"{len(out)} characters printed"
    text_line = next(line for line in out.splitlines() if line.startswith("text "))
    assert len(text_line) < 500 and f"of {len(text)} characters shown" in text_line
    tokens_line = next(line for line in out.splitlines() if line.startswith("tokens "))
    n_tokens = int(tokens_line.split()[1].rstrip(":"))
    assert n_tokens == 512 and f"the first {TOKENS_SHOWN} of 512 tokens shown" in tokens_line
    assert "tokens are cut" in captured.err  # the truncation note
    size = page.stat().st_size
    html = page.read_text(encoding="utf-8")
    assert size < 1_000_000, f"{size} bytes"
    data = json.loads(re.search(r"<script id='attention-data' type='application/json'>(.*?)</script>", html,
                                re.S).group(1))
    assert len(data["tokens"]) == TOKENS_SHOWN
    assert {len(head) for layer in data["maps"] for head in layer} == {TOKENS_SHOWN}
    assert f"the first {TOKENS_SHOWN} of 512 tokens" in html and text[:1000] not in html


# ----------------------------------------------------------------------------- fetch

@pytest.fixture(scope="module")
def python_without_pip(tmp_path_factory):
    """A venv made with --without-pip, seeing numpy, safetensors, tokenizers and a numpybert copy only."""
    root = tmp_path_factory.mktemp("nopip")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    deps = root / "deps"
    deps.mkdir()
    site = next(p for p in sys.path if p.endswith("site-packages") and os.path.isdir(os.path.join(p, "numpy")))
    for name in os.listdir(site):
        if re.match(r"^(numpy|safetensors|tokenizers|huggingface_hub)(\.libs|-|$)", name) or name == "numpy.libs":
            (deps / name).symlink_to(os.path.join(site, name))
    shutil.copytree(ROOT / "numpybert", deps / "numpybert", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "venv" / "bin" / "python", deps


def test_fetch_without_pip_says_how_to_get_it(python_without_pip, tmp_path):
    python, deps = python_without_pip
    env = {**os.environ, "PYTHONPATH": str(deps), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert subprocess.run([str(python), "-c", "import pip"], env=env, capture_output=True).returncode != 0
    result = subprocess.run([str(python), "-m", "numpybert", "fetch"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "ensurepip" in lines[0] and str(python) in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "xdg").exists()


def test_fetch_on_a_corrupt_copy_names_the_bad_file(tmp_path, capsys):
    minilm = require_minilm()
    dest = tmp_path / "copy"
    dest.mkdir()
    for name in fetching.FILE_SHA256:
        if name != "vocab.txt":
            (dest / name).symlink_to(minilm / name)
    (dest / "config.json").unlink()
    (dest / "config.json").write_text((minilm / "config.json").read_text().replace("384", "385"))
    before = sorted(p.name for p in dest.iterdir())
    assert cli.main(["fetch", "--dest", str(dest)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "config.json has sha256" in lines[0] and "vocab.txt is missing" in lines[0], lines
    assert "model.safetensors" not in lines[0]  # the good files are not blamed
    assert sorted(p.name for p in dest.iterdir()) == before  # nothing overwritten


@pytest.mark.parametrize("command", ["fetch", "bench"])
def test_help_has_a_description_and_no_issue_talk(capsys, command):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    description = text.split(" options: ")[0].split("]")[-1]  # between the usage line and the options
    assert len(description) > 100, description
    assert "issue" not in text
    if command == "bench":
        for name, B, T, *padded in bench.SHAPES:
            assert f"{B}x{T}{':padded' if padded else ''}" in text


def test_bench_prints_each_row_once(tmp_path, capsys):
    code = cli.main(["bench", "--minilm", str(CHECKPOINTS / "tiny-bert"), "--shapes", "minilm:1x8,minilm:2x8",
                     "--no-torch", "--memory-shapes", "none", "--corpus-runs", "0", "--cold-runs", "0", "--reps", "1",
                     "--warmup", "0", "--threads", "1", "--no-floor", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = [line for line in (captured.out + captured.err).splitlines() if line.startswith("| minilm |")]
    assert len(rows) == 3 and len(set(rows)) == 3, rows  # 1x8, 1x8 back to back, 2x8: each once
    assert all(row in captured.out for row in rows)
    assert captured.err.count("numpybert bench: timed minilm") == 3  # progress, one line per measurement
