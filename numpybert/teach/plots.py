"""Pictures for `numpybert explain --plot` and `numpybert attention --plot` (the `plot` extra).

matplotlib is imported only here, and only when a plot is asked for. Figures are built with
the object-oriented API (`matplotlib.figure.Figure`), so no global pyplot state or GUI
backend is touched.
"""

import os

import numpy as np

from ..errors import InputValueError, NumpybertError, install_hint
from ..loading.files import check_output_path

FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(path: str) -> None:
    """Fail before any work: matplotlib must be installed, and the file must be writable as asked."""
    _figure_class()
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise InputValueError(f"--plot {path}: the file name must end in one of {', '.join(FORMATS)}")
    check_output_path(path, "--plot")


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NumpybertError(f"plotting needs matplotlib: {install_hint('plot')}") from None
    return Figure


def plot_explain(e, path: str) -> None:
    """Three panels for one `Explanation`: pooled vs h_[CLS] per dim, the tanh curve, histograms."""
    fig = _figure_class()(figsize=(16, 5), layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    _panel_pooled_vs_cls(left, e)
    _panel_tanh(middle, e)
    _panel_histograms(right, e)
    fig.suptitle(f"pooled_output = tanh(W·h_[CLS] + b) is not h_[CLS]: {_short(e.text, e.pair)}")
    fig.savefig(path, dpi=110)


def _panel_pooled_vs_cls(ax, e) -> None:
    h, pooled = e.h_cls, e.lesson.pooled
    lo, hi = min(h.min(), pooled.min()), max(h.max(), pooled.max())
    ax.plot([lo, hi], [lo, hi], "--", color="grey", lw=1, label="y = x (if pooled_output were h_[CLS])")
    ax.scatter(h, pooled, s=10, alpha=0.7, color="tab:blue", label=f"one dot per dimension ({len(h)})")
    i = int(np.abs(h).argmax())  # label the largest h_[CLS] value, on its inner side
    inward = -1 if h[i] > 0 else 1
    ax.annotate(f"dim {i}", (h[i], pooled[i]), textcoords="offset points", xytext=(10 * inward, 10),
                ha="right" if inward < 0 else "left", fontsize=8)
    ax.set_xlabel("h_[CLS] = last_hidden_state[0, 0]")
    ax.set_ylabel("pooled_output")
    ax.set_title(f"per dimension (cosine {e.lesson.cosine_vs_cls:+.3f})")
    ax.legend(loc="upper left", fontsize=8)


def _panel_tanh(ax, e) -> None:
    z, pooled = e.lesson.z, e.lesson.pooled
    reach = max(3.0, 1.1 * float(np.abs(z).max()))
    x = np.linspace(-reach, reach, 400)
    ax.axhspan(0.99, 1.05, color="tab:red", alpha=0.12, label="saturated: |tanh| > 0.99")
    ax.axhspan(-1.05, -0.99, color="tab:red", alpha=0.12)
    ax.plot(x, np.tanh(x), color="black", lw=1, label="tanh")
    ax.scatter(z, pooled, s=12, color="tab:orange", zorder=3,
               label=f"(z, pooled_output) per dimension; {e.lesson.saturated} saturated")
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("z = W·h_[CLS] + b")
    ax.set_ylabel("pooled_output = tanh(z)")
    ax.set_title("the pooler's tanh")
    ax.legend(loc="upper left", fontsize=8)


def _panel_histograms(ax, e) -> None:
    h, pooled = e.h_cls, e.lesson.pooled
    bins = np.linspace(min(h.min(), pooled.min()), max(h.max(), pooled.max()), 80)
    ax.hist(h, bins=bins, alpha=0.6, color="tab:blue", label="h_[CLS]")
    ax.hist(pooled, bins=bins, alpha=0.6, color="tab:orange", label="pooled_output")
    ax.set_xlabel("value")
    if len(h) > 100:  # a lone outlier dimension stays visible next to bins of ~100 dimensions
        ax.set_yscale("log")
        ax.set_ylabel("dimensions (log scale)")
    else:
        from matplotlib.ticker import MaxNLocator
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of a few dimensions: whole numbers
        ax.set_ylabel("dimensions")
    ax.set_title("distribution of the values")
    ax.legend(fontsize=8)


def plot_attention(probs: np.ndarray, tokens: list, layer: int, head: int, path: str) -> None:
    """One head's attention probabilities [T, T] as a heat map, queries as rows, keys as columns."""
    T = len(tokens)
    side = max(5.0, 0.32 * T + 2.5)
    fig = _figure_class()(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(probs, cmap="viridis", vmin=0.0, vmax=1.0)
    fontsize = max(5, min(10, int(220 / T)))
    ax.set_xticks(range(T), tokens, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(T), tokens, fontsize=fontsize)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(f"layer {layer}, head {head}: attention probabilities (each row sums to 1)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=110)


def _short(text: str, pair: str | None, limit: int = 60) -> str:
    shown = text if pair is None else f"{text} | {pair}"
    return repr(shown if len(shown) <= limit else shown[: limit - 3] + "...")
