"""numpybert/reference_backward.py reads like the textbook (issue 29): one backward function per
forward function of reference.py, each at most 20 lines of code, the same dimension legend, and a
shape comment on every line that reshapes, transposes or multiplies matrices. (Its numbers are
checked against torch autograd in tests/apps/test_train.py.)"""

import ast
import inspect
import re

import numpy as np

from numpybert import reference as R
from numpybert import reference_backward as RB

SOURCE = inspect.getsource(RB)


def body_lines(function: ast.FunctionDef) -> int:
    """Code lines of a function: its lines less the docstring, blank lines and comment-only lines."""
    lines = SOURCE.splitlines()[function.lineno - 1:function.end_lineno]
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        del lines[first.lineno - function.lineno:first.end_lineno - function.lineno + 1]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def test_one_backward_per_forward_and_short_functions():
    functions = {n.name: n for n in ast.walk(ast.parse(SOURCE)) if isinstance(n, ast.FunctionDef)}
    forwards = {"linear", "layer_norm", "gelu", "softmax", "embeddings", "attention", "self_attention", "encoder_layer",
                "encoder", "pooler", "bert", "mlm_head", "nsp_head", "classifier_head", "first_token_classifier"}
    assert {f"{name}_backward" for name in forwards} <= set(functions)
    assert forwards <= {name for name, _ in inspect.getmembers(R, inspect.isfunction)}
    long = {name: n for name, f in functions.items() if (n := body_lines(f)) > 20}
    assert not long, f"functions over 20 code lines: {long}"


def test_every_shape_changing_line_has_a_shape_comment():
    markers = ("reshape(", "transpose(", "swapaxes(", " @ ", "[:, 0]", "np.add.at(")
    missing = [f"{i}: {line.strip()}" for i, line in enumerate(SOURCE.splitlines(), 1)
               if any(m in line.split("#")[0] for m in markers) and "->" not in line and not line.strip().startswith(('"', "#"))]
    assert not missing, "lines without a `# [..] -> [..]` shape comment:\n" + "\n".join(missing)


def test_the_same_dimension_legend_as_the_textbook():
    legend = lambda doc: set(re.findall(r"\b([A-Z])  [a-z]", doc[doc.index("Dimension legend"):]))
    assert legend(R.__doc__) <= legend(RB.__doc__)


def test_each_building_block_matches_finite_differences():
    """Without torch: the local derivatives of the blocks, checked by central differences (float64, step
    1e-6: the error is ~1e-9 relative, so 1e-6 is a bound with room)."""
    rng = np.random.default_rng(0)
    x, w, dy = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=(3, 5))
    blocks = {"layer_norm": (lambda x: R.layer_norm(x, w, 0.0 * w, 1e-12),
                             lambda x: RB.layer_norm_backward(dy, x, w, 1e-12)[0]),
              "gelu": (R.gelu, lambda x: RB.gelu_backward(dy, x, R.gelu(x))),
              "gelu_tanh": (R.gelu_tanh, lambda x: RB.gelu_tanh_backward(dy, x, R.gelu_tanh(x))),
              "softmax": (R.softmax, lambda x: RB.softmax_backward(dy, R.softmax(x)))}
    for name, (forward, backward) in blocks.items():
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            e = np.zeros_like(x)
            e[i] = 1e-6
            numeric[i] = ((forward(x + e) - forward(x - e)) * dy).sum() / 2e-6
        assert np.abs(backward(x) - numeric).max() <= 1e-6 * np.abs(numeric).max(), name
