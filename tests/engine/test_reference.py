"""numpybert/reference.py, the textbook model: the fast engine equals it tensor by tensor, its
erf is math.erf's, it keeps float32 in float32, it imports only numpy and math, and it stays
readable in one sitting (≤ 150 code lines, functions ≤ 20).

Parity with PyTorch for both engines is tests/engine/test_golden.py (every golden, both engines);
here the two engines are compared with each other on inputs the goldens do not hold: padded
batches with two segments and a fully masked row, every activation, both mask conventions,
every output, every recorded intermediate and every head.
"""

import ast
import io
import math
import re
import tokenize

import numpy as np
import pytest

import numpybert
from numpybert import audit, reference as R
from numpybert.api import ENGINES
from numpybert.apps import heads
from numpybert.errors import InputValueError
from numpybert.loading.checkpoint import nest

from helpers import CHECKPOINTS, require_minilm

REFERENCE_PY = R.__file__
MAX_CODE_LINES, MAX_FUNCTION_LINES = 150, 20


# ----------------------------------------------------------------------------- engine vs reference

def batch(config, fully_masked=True, seed=0):
    """Right-padded rows of lengths 9, 5 and 1 (ids 1..V-1 on real tokens, 0 on padding), the second
    half of each row in segment 1 when the model has two segments, and a fully masked row."""
    inputs = audit.random_inputs(config, lengths=(9, 5, 1), seed=seed)
    inputs = audit.with_fully_masked_row(inputs) if fully_masked else inputs
    if config.type_vocab_size > 1:
        inputs["token_type_ids"][:, 4:] = inputs["attention_mask"][:, 4:]  # [B, T]
    return inputs


def everything(model, inputs) -> dict:
    """Every tensor one forward produces, under the audit's names: the outputs (hidden states,
    attentions, pooled), the trace, and the logits of every head the checkpoint carries."""
    out = model(**inputs, output_hidden_states=True, output_attentions=True, record=True)
    tensors = {**audit.output_tensors(out, model.has_pooler), **{f"trace.{k}": v for k, v in out.trace.items()}}
    logits = {"mlm": heads.mlm_logits, "nsp": heads.nsp_logits, "classifier": heads.classifier_logits}
    for head in heads.available_heads(model):
        tensors[f"{head}_logits"] = logits[head](model, **inputs)
    return tensors


CASES = [  # (checkpoint, what it adds to the comparison)
    ("tiny-bert", "erf GELU, pooler"),
    ("tiny-relu", "ReLU"),
    ("tiny-gelu-new", "tanh GELU"),
    ("tiny-pretraining", "MLM and NSP heads"),
    ("tiny-classifier", "classifier head"),
    ("tiny-no-pooler", "no pooler"),
    ("tiny-type-vocab-1", "one segment only"),
    ("tiny-roberta", "RoBERTa: positions from the ids (pad 1), pooler"),
    ("tiny-roberta-mlm", "RoBERTa's lm_head"),
    ("tiny-roberta-classifier", "RoBERTa's classifier on <s> (tanh)"),
    ("tiny-xlm-roberta", "XLM-R, no pooler"),
    ("tiny-distilbert-mlm", "DistilBERT: no token types, its names, vocab_projector"),
    ("tiny-distilbert-classifier", "DistilBERT's pre_classifier (ReLU), sinusoidal positions"),
    ("tiny-electra-generator", "ELECTRA: embeddings_project E -> H, generator head"),
    ("tiny-electra-classifier", "ELECTRA's classifier (gelu)"),
    ("tiny-mpnet", "MPNet: relative position buckets, no token types, positions from the ids"),
    ("all-MiniLM-L6-v2", "the real weights, 6 layers, 12 heads"),
]


@pytest.mark.parametrize("mask_value", ["finfo-min", "-10000"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("checkpoint", [c for c, _ in CASES])
def test_fast_engine_equals_the_reference_tensor_by_tensor(checkpoint, dtype, mask_value):
    """Same inputs, both engines; every tensor within the audit's tolerance for the dtype
    (`numpybert.audit.TOLERANCES`, the bound both engines meet against torch).
    No fully masked row under -10000: its scores are s - 10000, which float32 rounds to its ulp at
    1e4 (~1e-3), so two correct float32 implementations differ there (measured 1e-4 on tiny-bert's
    probs); test_mask_conventions_on_a_fully_masked_row checks that row's convention instead."""
    directory = require_minilm() if checkpoint == "all-MiniLM-L6-v2" else CHECKPOINTS / checkpoint
    fast, ref = (numpybert.load(directory, dtype=dtype, mask_value=mask_value, engine=e) for e in ("fast", "reference"))
    inputs = batch(fast.config, fully_masked=mask_value == "finfo-min")
    ours, theirs = everything(fast, inputs), everything(ref, inputs)
    assert list(ours) == list(theirs)  # the same tensors, in the same (forward) order
    assert len(ours) > 10 and {a.dtype for a in ours.values()} == {a.dtype for a in theirs.values()} == {np.dtype(dtype)}
    rows = [audit.compare_tensor(name, ours[name], theirs[name], inputs["attention_mask"], audit.TOLERANCES[dtype],
                                 scaled=name.startswith("trace.")) for name in theirs]
    failed = [f"{r.name}: {r.problem or f'max abs {r.real.max_abs:.3g} real / {r.all.max_abs:.3g} all'}"
              for r in rows if not r.passed]
    assert not failed, f"{checkpoint} {dtype}: the fast engine differs from reference.py on {failed}"


def test_engine_reference_runs_reference_py(monkeypatch):
    """The comparison above compares two computations: engine="reference" runs reference.py (break
    its GELU and only the reference model changes, heads included), engine="fast" does not."""
    fast, ref = (numpybert.load(CHECKPOINTS / "tiny-pretraining", engine=e) for e in ("fast", "reference"))
    inputs = batch(fast.config)
    before = everything(fast, inputs), everything(ref, inputs)
    monkeypatch.setitem(R.ACTIVATIONS, "gelu", lambda x: x)
    after = everything(fast, inputs), everything(ref, inputs)
    assert all(np.array_equal(before[0][k], after[0][k]) for k in before[0])
    assert not np.allclose(before[1]["last_hidden_state"], after[1]["last_hidden_state"])
    assert not np.allclose(before[1]["mlm_logits"], after[1]["mlm_logits"])


def test_recorded_names_are_the_engines_in_the_same_order():
    config = numpybert.load(CHECKPOINTS / "tiny-bert").config
    traces = [numpybert.load(CHECKPOINTS / "tiny-bert", engine=e)(**batch(config), record=True).trace for e in ENGINES]
    assert list(traces[0]) == list(traces[1])
    L = config.num_hidden_layers
    assert list(traces[1])[:2] == ["embeddings.sum", "embeddings.output"]
    assert list(traces[1])[-3:] == ["cls_vector", "pooler.pre_tanh", "pooled_output"]
    per_layer = ["attention.self." + n for n in ("query", "key", "value", "scores", "masked_scores", "probs", "context")]
    per_layer += ["attention.output", "intermediate.pre_act", "intermediate.output", "output"]
    layers = [f"encoder.layer.{i}.{n}" for i in range(L) for n in per_layer]
    assert list(traces[1])[2:-3] == layers


def test_engine_choice_survives_conventions_and_bad_names_are_refused():
    model = numpybert.load(CHECKPOINTS / "tiny-bert", engine="reference")
    assert model.with_conventions(gelu="tanh", mask_value="-10000").engine.name == "reference"
    assert "engine=reference" in repr(model)
    assert numpybert.load(CHECKPOINTS / "tiny-bert").engine.name == "fast"  # the default
    for bad in ("slow", "", None, ["fast"]):
        with pytest.raises(InputValueError, match=r"engine=.*expected one of \('fast', 'reference'\)"):
            numpybert.load(CHECKPOINTS / "tiny-bert", engine=bad)


def test_inputs_embeds_stand_in_for_the_word_embeddings():
    model = numpybert.load(CHECKPOINTS / "tiny-bert", dtype="float64", engine="reference")
    inputs = batch(model.config)
    ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
    positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)  # [B, T]
    params = nest(model.flat_params)
    embeds = params["embeddings"]["word_embeddings"]["weight"][ids]  # [B, T] -> [B, T, H]
    by_ids = R.bert(ids, types, positions, mask, params, model.config)
    by_embeds = R.bert(None, types, positions, mask, params, model.config, inputs_embeds=embeds)
    for a, b in zip([*by_ids[0], *by_ids[1], by_ids[2]], [*by_embeds[0], *by_embeds[1], by_embeds[2]]):
        assert np.array_equal(a, b)
    noise = np.random.default_rng(0).standard_normal(embeds.shape)  # [B, T, H] (a constant shift LayerNorm would undo)
    changed = R.bert(None, types, positions, mask, params, model.config, inputs_embeds=embeds + noise)
    assert not np.allclose(changed[0][-1], by_ids[0][-1])


# ----------------------------------------------------------------------------- the building blocks

def grid(dtype):
    """±10 densely, the tails to ±30, values near 0, subnormals and the dtype's extremes."""
    finfo = np.finfo(dtype)
    x = np.concatenate([np.linspace(-10, 10, 200_001), np.linspace(-30, 30, 6_001), np.geomspace(1e-30, 1, 1_000),
                        [finfo.smallest_subnormal, finfo.tiny, finfo.max, 5e-324, 1e-310]])
    return np.concatenate([x, -x]).astype(dtype)


# math.erf is within 1 ulp in float64; reference.erf calls it per element and rounds once to the
# dtype, so float64 agrees exactly and float32 within half a float32 ulp (≤ 6e-8 for |erf| ≤ 1),
# far inside the bounds asked of any erf here (1e-14 float64, 1e-6 float32).
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype, bound", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_erf_is_math_erf(dtype, bound):
    x = grid(dtype)
    y = R.erf(x)
    expected = np.array([math.erf(v) for v in x.astype(np.float64).tolist()])
    assert y.dtype == dtype and y.shape == x.shape
    assert np.abs(y - expected).max() <= bound
    assert np.array_equal(y, expected.astype(dtype))  # rounded once, from the float64 value


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_special_values_and_shapes(dtype):
    y = R.erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype))
    assert y.dtype == dtype and list(y[:4]) == [0.0, -0.0, 1.0, -1.0] and np.signbit(y[1]) and np.isnan(y[4])
    assert R.erf(np.zeros((2, 3, 4), dtype)).shape == (2, 3, 4)
    assert R.erf(dtype(0.5)).dtype == dtype and R.erf(dtype(0.5)) == dtype(math.erf(0.5))  # a scalar too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_are_their_formulas(dtype):
    x = np.linspace(-12, 12, 20_001).astype(dtype)
    x64 = x.astype(np.float64)
    exact = 0.5 * x64 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x64.tolist()]))
    tanh = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    eps = np.finfo(dtype).eps
    for fn, expected in ((R.gelu, exact), (R.gelu_tanh, tanh), (R.relu, np.maximum(x64, 0))):
        y = fn(x)
        assert y.dtype == dtype
        assert np.abs(y - expected).max() <= 8 * eps * max(1.0, np.abs(expected).max()), fn.__name__
    assert np.abs(exact - tanh).max() > 1e-4  # the two GELUs are different functions


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_layer_norm_linear_keep_dtype_and_match_float64(dtype):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((3, 5, 16), (16,), (16,)))
    W, x64 = rng.standard_normal((7, 16)).astype(dtype), x.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-13  # values of size ~3: float32 rounding is ~1e-6
    p = R.softmax(x)
    assert p.dtype == dtype and np.allclose(p.sum(-1), 1, atol=tol)
    assert np.abs(p - np.exp(x64) / np.exp(x64).sum(-1, keepdims=True)).max() <= tol
    mean, var = x64.mean(-1, keepdims=True), x64.var(-1, keepdims=True)
    y = R.layer_norm(x, w, b, 1e-12)
    assert y.dtype == dtype and np.abs(y - ((x64 - mean) / np.sqrt(var + 1e-12) * w + b)).max() <= tol
    y = R.linear(x, W, b[:7])
    assert y.dtype == dtype and y.shape == (3, 5, 7) and np.abs(y - (x64 @ W.T.astype(np.float64) + b[:7])).max() <= tol


@pytest.mark.parametrize("mask_value, row", [("finfo-min", "uniform"), ("-10000", "by score"), ("-inf", "nan")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_conventions_on_a_fully_masked_row(mask_value, row, dtype):
    bias = R.attention_mask_bias(np.array([[1, 1, 0], [0, 0, 0]]), dtype, mask_value)  # [B, T] -> [B, 1, 1, T]
    assert bias.shape == (2, 1, 1, 3) and bias.dtype == dtype and bias[0, 0, 0, 0] == 0
    scores = np.array([1.0, 2.0, 3.0], dtype) + bias  # [B, 1, 1, T]
    with np.errstate(invalid="ignore"):
        p = R.softmax(scores)
    assert p[0, 0, 0, 2] == 0  # a padded key gets no attention
    expected = {"uniform": np.full(3, 1 / 3), "by score": R.softmax(np.array([1.0, 2.0, 3.0])), "nan": np.full(3, np.nan)}
    np.testing.assert_allclose(p[1, 0, 0], expected[row], rtol=1e-6)


def test_float32_stays_float32_through_the_model():
    model = numpybert.load(CHECKPOINTS / "tiny-pretraining", engine="reference")
    tensors = everything(model, batch(model.config))
    assert {a.dtype for a in tensors.values()} == {np.dtype(np.float32)}


def test_pooled_output_is_tanh_of_the_dense_cls_row_not_the_cls_row():
    """The founding question, on the real weights: pooled_output != last_hidden_state[:, 0]."""
    model = numpybert.load(require_minilm(), engine="reference")
    out = model(**model.tokenize(["The cat sat on the mat."]), record=True)
    cls = out.last_hidden_state[:, 0]  # [B, H]
    dense = model.params["pooler"]["dense"]
    assert np.array_equal(out.trace["cls_vector"], cls)
    assert np.array_equal(out.pooler_output, np.tanh(cls @ dense["weight"].T + dense["bias"]))
    assert np.abs(out.pooler_output - cls).max() > 0.1


# ----------------------------------------------------------------------------- readable in one sitting

def test_imports_only_numpy_and_math():
    tree = ast.parse(open(REFERENCE_PY, encoding="utf-8").read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or "").split(".")[0])
    assert imported == {"numpy", "math"}


def code_lines(source: str, start=1, end=None) -> set:
    """Numbers of the lines (within [start, end]) that hold code. The rule: a line counts when a
    token other than a comment, a newline or indentation starts or spans it (so a statement
    continued over three lines counts 3); docstrings (a string constant that is the first
    statement of the module, a class or a function) do not count, nor do blank and comment lines."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines |= set(range(tok.start[0], tok.end[0] + 1))
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            lines -= set(range(body[0].lineno, body[0].end_lineno + 1))
    return {n for n in lines if n >= start and (end is None or n <= end)}


def test_code_line_rule_counts_what_it_says():
    source = '"""Module docstring,\n\ntwo lines."""\n\nimport math  # a comment\n\n\n' \
             'def f(x,\n      y):\n    """Doc."""\n    # only a comment\n    return (x +\n            y)\n'
    assert sorted(code_lines(source)) == [5, 8, 9, 12, 13]


def test_at_most_150_code_lines_and_short_functions():
    source = open(REFERENCE_PY, encoding="utf-8").read()
    count = len(code_lines(source))
    assert 60 < count <= MAX_CODE_LINES, f"reference.py has {count} code lines"
    functions = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)]
    assert len(functions) >= 15
    long = {f.name: n for f in functions if (n := len(code_lines(source, f.lineno, f.end_lineno))) > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} code lines: {long}"


def test_every_shape_changing_line_has_a_shape_comment():
    """A line that reshapes, transposes, indexes embeddings or multiplies matrices says the shapes."""
    source = open(REFERENCE_PY, encoding="utf-8").read()
    markers = ("reshape(", "transpose(", "swapaxes(", " @ ", "[:, 0]", '["weight"][', "[:, None")
    code = code_lines(source)
    missing = [f"{i}: {line.strip()}" for i, line in enumerate(source.splitlines(), 1)
               if i in code and any(m in line.split("#")[0] for m in markers) and "->" not in line]
    assert not missing, "lines without a `# [..] -> [..]` shape comment:\n" + "\n".join(missing)


def test_the_dimension_legend_is_at_the_top():
    doc = R.__doc__
    legend = doc[doc.index("Dimension legend"):doc.index("Parameters are")]
    defined = re.findall(r"\b([A-Z])  [a-z]", legend)  # "B  batch size", "D  head size = H / N", ...
    assert sorted(defined) == sorted("BTHNDILV")
    assert doc.index("Dimension legend") < 1500
