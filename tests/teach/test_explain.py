"""numpybert.teach.explain, `numpybert explain` and its --html page.

The independent checks must be able to fail: a pooler (or an embedding row) perturbed by 1e-4 in
the model's memory makes them disagree with the file. The page is opened in a real headless
Chromium (Debian's `chromium` package, installed by scripts/test.sh): missing Chromium is a failure."""

import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import numpybert
from helpers import CHECKPOINTS, ROOT, run, SENTENCE, squash, tiny_model_dir
from numpybert import cli
from numpybert.errors import ConfigError, MissingWeightsError
from numpybert.teach import explain as explain_module
from numpybert.teach.explain import (NEARLY_LINEAR, SATURATION, TRANSFORMERS_POOLER, cosine, explain,
                                     reference_pooler_source)
from numpybert.apps.st_config import read_settings, sentence_transformers_pooling

PAIR = ("How old are you?", "I am six years old.")
NSP_TRAINED = CHECKPOINTS / "tiny-nsp-trained"  # scripts/make_nsp_trained_bert.py
NSP_FOLLOWS = ("the cat sees a dog and fox .", "the horse likes a cow and goat .")  # same "document"
NSP_RANDOM = ("the cat sees a dog and fox .", "the train has a bus and map .")  # a random sentence
PERTURBATION = 1e-4


@pytest.fixture(scope="module")
def sentence(minilm):
    return explain(minilm, SENTENCE)


# ----------------------------------------------------------------------------- independent checks

def test_both_checks_agree_on_the_real_model(sentence):
    for check in (sentence.embedding_check, sentence.pooler_check):
        assert check.agrees, check
        assert check.tolerance < PERTURBATION / 4  # the bound is tight enough for a 1e-4 change to show
    assert sentence.not_checked == ""
    assert "model.safetensors" in sentence.pooler_check.inputs


def test_pooler_check_recomputes_from_the_file(minilm, sentence):
    """The check's difference is what a float64 recomputation from the file gives, here again."""
    from safetensors.numpy import load_file
    tensors = load_file(str(minilm.model_dir) + "/model.safetensors")
    W, b = (tensors[f"pooler.dense.{n}"].astype(np.float64) for n in ("weight", "bias"))
    out = minilm(**minilm.tokenize([SENTENCE]))
    expected = np.abs(np.tanh(W @ out.last_hidden_state[0, 0].astype(np.float64) + b) - out.pooler_output[0]).max()
    assert sentence.pooler_check.max_abs_diff == expected


@pytest.mark.parametrize("tensor", ["weight", "bias"])
def test_pooler_check_fails_when_the_models_pooler_is_perturbed(minilm_dir, tensor):
    """Perturb the model's pooler in memory (the file is untouched): the independent check must disagree."""
    model = numpybert.load(minilm_dir)
    model.params["pooler"]["dense"][tensor] += np.float32(PERTURBATION)
    check = explain(model, SENTENCE).pooler_check
    assert not check.agrees and check.max_abs_diff > check.tolerance


def test_embedding_check_fails_when_the_cls_embedding_is_perturbed(minilm_dir):
    model = numpybert.load(minilm_dir)
    cls_id = model.tokenizer.cls_token_id
    model.params["embeddings"]["word_embeddings"]["weight"][cls_id, 0] += np.float32(PERTURBATION)
    e = explain(model, SENTENCE)
    assert not e.embedding_check.agrees
    assert e.pooler_check.agrees  # the pooler itself is intact: its check reads the model's (changed) h_[CLS]


def test_checks_read_prefixed_and_legacy_names(tmp_path):
    """tiny-pretraining saves `bert.` prefixes and LayerNorm gamma/beta; both checks still find the tensors."""
    model = numpybert.load(tiny_model_dir(tmp_path, "tiny-pretraining"))
    e = explain(model, "how old are you?", "i am the cat.")
    assert e.embedding_check.agrees and e.pooler_check.agrees
    assert "bert.pooler.dense.weight" in e.pooler_check.inputs
    assert "bert.embeddings.LayerNorm.gamma" in e.embedding_check.inputs


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-sharded", "tiny-f16", "tiny-f64", "tiny-gelu-new"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_checks_agree_on_every_committed_checkpoint(tmp_path, name, dtype):
    """Sharded files, half-precision files, float64 files and models: the bounds hold, in both dtypes."""
    model = numpybert.load(tiny_model_dir(tmp_path, name), dtype=dtype)
    e = explain(model, "the cat sat on the mat.", "a dog ran.")
    for check in (e.embedding_check, e.pooler_check):
        assert check.agrees, check


def test_a_file_numpy_cannot_read_is_said_not_checked(tmp_path):
    """bf16 without ml_dtypes: NumPy has no bfloat16, so the check is skipped and says why. In a fresh
    process, because importing ml_dtypes (which other tests do) teaches NumPy the type for good."""
    model_dir = tiny_model_dir(tmp_path, "tiny-bf16")
    code = ("import sys, numpybert; from numpybert.teach.explain import explain; "
            f"e = explain(numpybert.load({str(model_dir)!r}), 'the cat sat.'); "
            "print(e.pooler_check, e.embedding_check, e.lesson is not None, 'ml_dtypes' in sys.modules); "
            "print(e.not_checked)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    status, note = result.stdout.splitlines()
    assert status == "None None True False"  # no checks, the lesson still there, ml_dtypes never loaded
    assert str(model_dir) in note and "bfloat16" in note


def test_a_bf16_file_is_checked_once_numpy_knows_the_type(tmp_path):
    import ml_dtypes  # noqa: F401  (the onnx extra's dependency; registers bfloat16 with NumPy)
    e = explain(numpybert.load(tiny_model_dir(tmp_path, "tiny-bf16")), "the cat sat.")
    assert e.not_checked == "" and e.pooler_check.agrees and e.embedding_check.agrees


# ----------------------------------------------------------------------------- the lesson

def test_the_lesson_numbers_on_minilm(minilm, sentence):
    p = sentence.lesson
    out = minilm(**minilm.tokenize([SENTENCE]), record=True)
    z = out.trace["pooler.pre_tanh"][0].astype(np.float64)
    h = out.last_hidden_state[0, 0].astype(np.float64)
    W = minilm.flat_params["pooler.dense.weight"].astype(np.float64)
    assert (p.z_min, p.z_max) == (z.min(), z.max())
    assert p.max_tanh_gap == np.abs(np.tanh(z) - z).max()
    assert p.norm_cls == np.linalg.norm(h)
    assert p.saturated == int((np.abs(out.pooler_output[0]) > SATURATION).sum())
    assert p.weight_top_singular == pytest.approx(np.linalg.norm(W, 2), rel=1e-12)
    assert p.initializer_range == json.loads((ROOT / minilm.model_dir / "config.json").read_text())["initializer_range"]
    assert p.bias_max_abs == 0.0


def test_minilm_pooler_is_nearly_linear_and_untrained(sentence):
    p = sentence.lesson
    assert p.max_tanh_gap < NEARLY_LINEAR and p.saturated == 0
    assert p.conclusion[0].startswith("Nearly linear")
    assert "no training step changed it since" in p.conclusion[1]
    assert "like a random matrix" in p.conclusion[2]


def test_a_pooler_trained_for_nsp_teaches_the_other_lesson():
    """The committed tiny BERT whose pooler was trained for an NSP-like task: not linear, bias moved,
    a weight spectrum a random matrix does not have, and its NSP head tells the pairs apart."""
    model = numpybert.load(NSP_TRAINED)
    follows, random = explain(model, *NSP_FOLLOWS), explain(model, *NSP_RANDOM)
    p = follows.lesson
    assert p.max_tanh_gap > 10 * NEARLY_LINEAR
    assert p.mean_slope < 0.1 and p.conclusion[0].startswith("Near saturation")
    assert p.bias_max_abs > 0 and "has been changed since" in p.conclusion[1]
    assert p.weight_top_singular > 1.1 * p.random_edge and "structure" in p.conclusion[2]
    assert follows.nsp_is_next > 0.9 and random.nsp_is_next < 0.1
    assert follows.pooler_check.agrees and "bert.pooler.dense.weight" in follows.pooler_check.inputs


def test_conclusion_follows_the_numbers(minilm_dir):
    """Scale the pooler until tanh saturates: the conclusion changes with the numbers."""
    model = numpybert.load(minilm_dir)
    model.params["pooler"]["dense"]["weight"] *= np.float32(200.0)
    p = explain(model, SENTENCE).lesson
    assert p.saturated == int((np.abs(np.tanh(p.z.astype(np.float64))) > SATURATION).sum()) > 0
    assert p.mean_slope == np.mean(1 - np.tanh(p.z.astype(np.float64)) ** 2) < 0.1
    assert p.conclusion[0].startswith("Near saturation")


def test_nsp_probability_is_the_models(tmp_path):
    model = numpybert.load(tiny_model_dir(tmp_path, "tiny-pretraining"))
    e = explain(model, "how old are you?", "i am the cat.")
    assert e.nsp_is_next == model.next_sentence("how old are you?", "i am the cat.")["is_next"]
    assert explain(model, "how old are you?").nsp_is_next is None  # NSP needs a pair


# ----------------------------------------------------------------------------- the code it points at

def test_transformers_pooler_copy_matches_the_installed_transformers():
    import transformers
    from transformers.models.bert import modeling_bert
    lines, first = inspect.getsourcelines(modeling_bert.BertPooler)
    assert transformers.__version__ == TRANSFORMERS_POOLER["version"]
    assert inspect.getsourcefile(modeling_bert.BertPooler).endswith(TRANSFORMERS_POOLER["path"])
    assert (first, [line.rstrip("\n") for line in lines]) == (TRANSFORMERS_POOLER["first_line"],
                                                             TRANSFORMERS_POOLER["lines"])


def test_reference_pooler_source_has_the_files_line_numbers():
    path, first, lines = reference_pooler_source()
    assert path == os.path.join("numpybert", "reference.py")
    text = (ROOT / path).read_text(encoding="utf-8").split("\n")
    assert text[first - 1: first - 1 + len(lines)] == lines
    assert lines[0].startswith("def pooler(")


# ----------------------------------------------------------------------------- small pieces

def test_tokens_and_counts_come_from_the_model(minilm, sentence):
    ids = minilm.tokenize([SENTENCE])["input_ids"][0]
    assert sentence.tokens == minilm.tokenizer.convert_ids_to_tokens(ids)
    L = minilm.config.num_hidden_layers
    assert (len(sentence.hidden_states), len(sentence.attentions)) == (L + 1, L)


def test_absent_pooler_gives_the_models_refusal(tmp_path):
    model = numpybert.load(tiny_model_dir(tmp_path, "tiny-no-pooler"))
    e = explain(model, "the cat sat on the mat.")
    with pytest.raises(MissingWeightsError) as refusal:
        model(**model.tokenize(["the cat sat on the mat."])).pooler_output
    assert e.lesson is None and e.pooler_check is None and e.embedding_check.agrees
    assert e.pooler_refusal == str(refusal.value)
    assert "newly initialized" in e.pooler_refusal and "silently" not in e.pooler_refusal


def test_transformers_does_report_the_pooler_it_makes_up():
    """What the refusal says transformers does: it fills in a pooler and reports it, not silently.
    (In a fresh process: transformers' log handler keeps the stderr it first saw.)"""
    code = f"from transformers import BertModel; BertModel.from_pretrained({str(CHECKPOINTS / 'tiny-no-pooler')!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = result.stdout + result.stderr
    assert re.search(r"pooler\.dense\.weight\s*\|\s*MISSING", report) and "newly initialized" in report


def test_sentence_transformers_pooling_is_read_from_the_model_dir(minilm_dir, tmp_path):
    """One reader (apps.st_config), encode's mode names: explain names the pooling encode computes."""
    assert sentence_transformers_pooling(minilm_dir) == ("mean",) == read_settings(minilm_dir, 512).pooling
    assert sentence_transformers_pooling(tmp_path) is None
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="1_Pooling"):
        sentence_transformers_pooling(tmp_path)


def test_cosine_helper():
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    assert cosine(np.array([3.0, 4.0], np.float32), np.array([6.0, 8.0])) == pytest.approx(1.0, abs=1e-15)


def test_explain_does_not_reach_into_the_engine():
    source = inspect.getsource(explain_module)
    assert "engine" not in source and "linear(" not in source


# ----------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def explained(minilm_dir):
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "stdout", stdout)
        code = cli.main(["explain", SENTENCE])
    return code, stdout.getvalue()


def test_command_prints_the_checks_and_the_lesson(sentence, explained):
    code, out = explained
    assert code == 0
    p, check = sentence.lesson, sentence.pooler_check
    assert f"max |difference| {check.max_abs_diff:.1e} <= rounding bound {check.tolerance:.1e}: agrees" in out
    assert f"max |tanh z - z|                 {p.max_tanh_gap:.2e}" in out
    assert f"{p.norm_cls:.4f} -> {p.norm_z:.4f} -> {p.norm_pooled:.4f}" in out
    assert squash(p.conclusion[0]) in squash(out)
    assert "facts of the API (true by construction, not evidence)" in out
    assert "bit for bit" not in out and "proof" not in out


def test_command_shows_the_code_by_function_name(explained):
    """transformers' pooler with its (pinned) line numbers; the textbook's by name, without line
    numbers, so that editing reference.py never changes the docs (issue 25)."""
    _, out = explained
    t = TRANSFORMERS_POOLER
    assert f"{t['first_line'] + 9:5d}  {t['lines'][9]}" in out  # first_token_tensor = hidden_states[:, 0]
    path, first, lines = reference_pooler_source()
    assert f"numpybert's textbook model, {path}, its function pooler:" in out
    assert f"          {lines[0]}" in out and f"{first:5d}  {lines[0]}" not in out


def test_command_pair_shows_segments_and_nsp(capsys):
    code, out, err = run(capsys, "explain", *NSP_FOLLOWS[:1], "--pair", NSP_FOLLOWS[1], "--model", str(NSP_TRAINED))
    assert code == 0 and err == ""
    e = explain(numpybert.load(NSP_TRAINED), *NSP_FOLLOWS)
    assert f"NSP head, P(B follows A)         {e.nsp_is_next:.4f}" in out
    n0 = e.token_type_ids.count(0)
    assert f"segments token_type_ids = 0 on the first {n0} ([CLS] A [SEP]), 1 on the last" in out


def test_command_absent_pooler_shows_the_refusal(capsys, tmp_path):
    model_dir = tiny_model_dir(tmp_path, "tiny-no-pooler")
    code, out, err = run(capsys, "explain", "the cat sat.", "--model", str(model_dir))
    assert code == 0 and err == ""
    assert "ABSENT" in out and "pooled_output = tanh(z)" not in out


def test_command_plot_writes_a_png(capsys, minilm_dir, tmp_path):
    path = tmp_path / "explain.png"
    code, out, err = run(capsys, "explain", SENTENCE, "--plot", str(path))
    assert code == 0 and err == ""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, fragment", [("report.txt", "must end in .html"),
                                            ("no/such/dir/r.html", "does not exist"),
                                            ("exists.html", "the file exists")])
def test_bad_html_path_is_one_error_line_before_any_work(capsys, tmp_path, name, fragment):
    (tmp_path / "exists.html").write_text("mine")
    code, out, err = run(capsys, "explain", SENTENCE, "--html", str(tmp_path / name),
                         "--model", str(tmp_path / "absent"))  # refused before the model is looked for
    assert code == 2 and out == ""
    assert err.startswith("numpybert explain: error: --html") and fragment in err and len(err.splitlines()) == 1
    assert (tmp_path / "exists.html").read_text() == "mine"


# ----------------------------------------------------------------------------- the page, in Chromium

def chromium(*args, cwd):
    """Run Debian's headless Chromium; (stdout, stderr). Missing Chromium fails the test (CI installs it)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium; scripts/test.sh installs it)", pytrace=False)
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={cwd / 'chromium-profile'}", "--enable-logging=stderr", "--v=0", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def console_lines(stderr: str) -> list:
    """Every console message the page produced (Chromium logs them all as INFO:CONSOLE)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def page(minilm_dir, tmp_path_factory):
    """`numpybert explain SENTENCE --html` written once; (path, html text, Explanation)."""
    path = tmp_path_factory.mktemp("page") / "report.html"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "stdout", stdout)
        assert cli.main(["explain", SENTENCE, "--html", str(path)]) == 0
    assert f"page written to {path}" in stdout.getvalue()
    return path, path.read_text(encoding="utf-8"), explain(numpybert.load(minilm_dir), SENTENCE)


def test_page_is_self_contained_and_small(page):
    path, text, _ = page
    assert path.stat().st_size < 1_000_000
    assert not re.search(r"""\b(src|href)\s*=|@import|url\((?!#)|<link|fetch\(|XMLHttpRequest""", text)
    assert set(re.findall(r"https?://[^\s'\"<>)]+", text)) <= {"http://www.w3.org/2000/svg"}  # a namespace, not a request


def test_page_renders_in_chromium_without_console_errors(page, tmp_path):
    path, _, e = page
    dom, stderr = chromium("--dump-dom", f"{path.as_uri()}#layer=2&head=3", cwd=tmp_path)
    assert console_lines(stderr) == []
    assert re.search(r'<html [^>]*data-rendered="yes"', dom) and not re.search(r'<html [^>]*data-errors', dom)
    # the diagram, with this input's shapes
    T, H, L, N = len(e.tokens), e.h_cls.size, e.num_layers, e.num_heads
    diagram = re.search(r'<svg id="dataflow".*?</svg>', dom, re.S).group(0)
    for label in (f"[1, {T}, {H}]", f"hidden_states[{L}]", f"attentions[{L - 1}] [1, {N}, {T}, {T}]",
                  "pooler_output = pooled_output = default", f"hidden_states: {L + 1} = L + 1",
                  f"{np.linalg.norm(e.h_cls.astype(np.float64)):.4f}"):
        assert label in diagram, label
    # the numbers: the [CLS] norms of the trace, and the independent check
    assert f"<td class=\"num\">{np.linalg.norm(e.h_cls.astype(np.float64)):.4f}</td>" in dom
    assert f"{e.pooler_check.max_abs_diff:.1e}</span>" in dom and "DISAGREES" not in dom
    # one attention map, drawn by the page's script from the selected layer and head
    svg = re.search(r'<svg id="attention-svg"[^>]*>.*?</svg>', dom, re.S).group(0)
    assert 'data-layer="2"' in svg and 'data-head="3"' in svg
    assert svg.count('class="cell"') == T * T
    labels = re.findall(r'class="query-label">([^<]*)<', svg)
    assert labels == e.tokens
    p = e.attentions[2][3]  # the [CLS] row's attention to itself, in thousandths as the page shows it
    assert f"[CLS] → [CLS]: {np.rint(p[0, 0] * 1000) / 1000:.3f}" in svg


def blue_blocks(pixels, gap=50):
    """Row ranges [first, last] of the runs of rows holding blue pixels (the attention map's colour
    scale, white to dark blue), runs split where `gap` rows hold none: (ranges, the blue mask)."""
    r, b = pixels[..., 0].astype(int), pixels[..., 2].astype(int)
    blue = (b - r > 40) & (b > 100)
    rows = np.flatnonzero(blue.any(axis=1))
    cuts = np.flatnonzero(np.diff(rows) > gap)
    return [(int(run[0]), int(run[-1])) for run in np.split(rows, cuts + 1) if len(run)], blue


def test_page_screenshot(page, tmp_path):
    """What Chromium draws: a page as wide and tall as the window, not blank, its title at the top,
    and at the bottom the attention map of layer 0, head 0: a T × T square of cells of the page
    script's size (ATTENTION_JS: cell = clamp(560 / T, 12, 34) px) in several shades of blue."""
    from PIL import Image  # matplotlib's dependency (the plot extra, in the test extra)
    path, _, e = page
    png = tmp_path / "explain-page.png"
    _, stderr = chromium("--hide-scrollbars", "--window-size=1250,3700", f"--screenshot={png}",
                         f"{path.as_uri()}#layer=0&head=0", cwd=tmp_path)
    assert console_lines(stderr) == []
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape == (3700, 1250, 3)
    ink = pixels.min(axis=2) < 200  # text, lines, cells
    assert 0.03 < ink.mean() < 0.5, f"{ink.mean():.3f} of the pixels drawn: blank or a flood"
    assert ink[:80].sum() > 2000, "no title at the top"
    content_rows = np.flatnonzero(ink.any(axis=1))
    assert content_rows[-1] - content_rows[0] > 2500, "the page is shorter than its six sections"
    blocks, blue = blue_blocks(pixels)
    top, bottom = blocks[-1]  # the last blue thing on the page: the attention map
    cols = np.flatnonzero(blue[top:bottom + 1].any(axis=0))
    T = len(e.tokens)
    side = T * max(12, min(34, 560 // T))
    assert abs((bottom - top + 1) - side) <= 3 and abs((cols[-1] - cols[0] + 1) - side) <= 3, \
        (top, bottom, cols[0], cols[-1], side)
    assert top > content_rows[-1] - side - 100, "the map is not the last thing on the page"
    square = pixels[top:bottom + 1, cols[0]:cols[-1] + 1].reshape(-1, 3)
    assert len(np.unique(square, axis=0)) > T, "the cells are not shaded by their probabilities"
    print(f"screenshot: {png}")


def test_a_broken_page_is_caught(tmp_path):
    """The harness itself: a script error shows up in the console lines."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    _, stderr = chromium("--dump-dom", bad.as_uri(), cwd=tmp_path)
    assert any("undefinedFunction" in line for line in console_lines(stderr))


def test_pair_page_labels_both_segments(tmp_path, capsys):
    path = tmp_path / "pair.html"
    code, _, err = run(capsys, "explain", *NSP_FOLLOWS[:1], "--pair", NSP_FOLLOWS[1], "--model", str(NSP_TRAINED),
                       "--html", str(path))
    assert code == 0 and err == ""
    dom, stderr = chromium("--dump-dom", path.as_uri(), cwd=tmp_path)
    assert console_lines(stderr) == []
    assert "NSP head: P(B follows A)" in dom and dom.count('class="cell"') > 0


# ----------------------------------------------------------------------------- docs/pooled-vs-cls.md

DOC = ROOT / "docs" / "pooled-vs-cls.md"
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


def test_every_number_in_the_docs_prose_is_printed_by_its_blocks():
    """tests/teach/test_docs.py checks that each block prints its text block; here, each number in the prose
    (headings' section numbers and inline code aside) must appear in one of those printed outputs, so
    a number typed into the prose, not computed, fails."""
    from helpers import FENCE, parse
    text = DOC.read_text(encoding="utf-8")
    printed = " ".join(block.expected for block in parse(text))
    prose = FENCE.sub("", text)
    prose = re.sub(r"`[^`]*`", "", prose)  # inline code: names such as `encoder_outputs[-1]`
    prose = re.sub(r"^#+ \d+\.", "", prose, flags=re.M)  # section numbers
    printed_numbers = set(NUMBER.findall(printed))
    missing = sorted({n for n in NUMBER.findall(prose) if n not in printed_numbers})
    assert missing == [], f"numbers in the prose of {DOC.name} that no block prints: {missing}"


def test_the_doc_shows_the_pooler_code_of_both_implementations():
    from helpers import parse
    outputs = "\n".join(block.expected for block in parse(DOC.read_text(encoding="utf-8")))
    path, first, lines = reference_pooler_source()  # the textbook is quoted by function name: its lines move
    assert f"{path}, its function pooler:\n          {lines[0]}" in outputs and f"{first:4d}  {lines[0]}" not in outputs
    t = TRANSFORMERS_POOLER
    assert f"{t['first_line']:4d}  {t['lines'][0]}" in outputs


def test_page_without_a_pooler_and_with_markup_in_the_text(tmp_path, capsys):
    """No pooler: the page says so and still renders; text that looks like HTML stays text."""
    model_dir = tiny_model_dir(tmp_path, "tiny-no-pooler")
    path = tmp_path / "no-pooler.html"
    text = 'the cat </script><b id="x">sat</b> & "mat"'
    code, _, err = run(capsys, "explain", text, "--model", str(model_dir), "--html", str(path))
    assert code == 0 and err == ""
    dom, stderr = chromium("--dump-dom", path.as_uri(), cwd=tmp_path)
    assert console_lines(stderr) == []
    assert re.search(r'<html [^>]*data-rendered="yes"', dom)
    assert "no pooler in this checkpoint" in dom and '<b id="x">' not in dom
    tokens = numpybert.load(model_dir).tokenize([text])["input_ids"].shape[1]
    assert dom.count('class="query-label"') == tokens
