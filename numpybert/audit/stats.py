"""Error statistics and their formats, shared by every audit (compare.py, onnx.py).

How far one tensor is from its reference (`error_stats` over the positions `real_positions`
picks), the tolerances measured for that, and how the numbers are written: JSON without NaN
(`number`, `stats_json`) and table cells (`sci`, `stats_cells`).
"""

import dataclasses
import math

import numpy as np

from ..errors import GoldenError
from ..util import cosine

# ----------------------------------------------------------------------------- tolerances


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Max abs error allowed between numpybert and the reference."""
    real: float  # at real-token positions
    all: float  # at every position, padding included

    def scaled(self, scale: float) -> "Tolerance":
        return Tolerance(self.real * scale, self.all * scale)


# Measured on this machine (the same bounds as tests/engine/test_golden.py):
# - float32, real tokens 1e-5: two correct fp32 implementations differ by a few 1e-6 after the
#   layers (worst measured ~5e-6 on MiniLM hidden states; torch sdpa vs torch eager: 2.7e-6).
# - float32, all positions 1e-4: padded positions carry more rounding noise (~9e-5 worst on
#   MiniLM's padded rows, whose LayerNorm inputs are larger); nothing downstream uses them.
# - float64 1e-10: measured <= 1.5e-13.
TOLERANCES = {"float32": Tolerance(real=1e-5, all=1e-4), "float64": Tolerance(real=1e-10, all=1e-10)}
# Intermediates reach ~50 (scores, pre-activations), so a trace tensor's bound is the tolerance
# times max(1, max|ref|). Entries this large are additive-mask values (finfo.min, -10000), not
# activations, and do not count towards the scale.
MASK_MAGNITUDE = 1e4
REL_FLOOR = 1e-3  # max rel error is taken over elements with |ref| > REL_FLOOR only


def tolerance_scale(ref: np.ndarray) -> float:
    """max(1, max|ref|) over the activations in `ref` (additive-mask entries excluded)."""
    a = np.abs(ref.astype(np.float64)).ravel()
    a = a[a < MASK_MAGNITUDE]  # also drops inf and NaN
    return max(1.0, float(a.max())) if a.size else 1.0


# ----------------------------------------------------------------------------- error statistics

@dataclasses.dataclass(frozen=True)
class Stats:
    """How far one tensor is from its reference over a set of positions."""
    max_abs: float
    max_rel: float | None  # over elements with |ref| > REL_FLOOR; None when there are none
    mean_abs: float
    cosine: float  # of the two tensors flattened
    count: int  # elements compared


def real_positions(attention_mask: np.ndarray, shape: tuple) -> np.ndarray:
    """Boolean index of the real (unpadded) token positions, broadcast to a tensor's shape."""
    real = attention_mask.astype(bool)  # [B, T]
    if len(shape) == 2:  # [B, H]: cls_vector / pooled output come from position 0
        return np.broadcast_to(real[:, :1], shape)
    if len(shape) == 3:  # [B, T, H] or [B, T, I]
        return np.broadcast_to(real[:, :, None], shape)
    if len(shape) == 4:  # [B, N, T, D] or [B, N, T, T]: the (query) token axis is 2
        return np.broadcast_to(real[:, None, :, None], shape)
    raise GoldenError(f"cannot tell token positions in a tensor of shape {shape}")


def error_stats(ours: np.ndarray, ref: np.ndarray, where=...) -> Stats:
    """Errors of `ours` against `ref` at the positions `where` (a boolean index), in float64.
    Equal values (equal infinities, NaN against NaN) count as no error; any other NaN makes
    max_abs NaN, which fails every tolerance."""
    a, b = ours.astype(np.float64)[where].ravel(), ref.astype(np.float64)[where].ravel()
    if a.size == 0:
        return Stats(0.0, None, 0.0, 1.0, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        diff[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
        big = np.abs(b) > REL_FLOOR
        max_rel = float((diff[big] / np.abs(b[big])).max()) if big.any() else None
        return Stats(float(diff.max()), max_rel, float(diff.mean()), cosine(a, b), int(a.size))



# ----------------------------------------------------------------------------- formats

def number(x):
    """JSON has no NaN or infinity: those become the strings "nan", "inf", "-inf"."""
    if x is None or isinstance(x, int) or math.isfinite(x):
        return x
    return str(x)


def stats_json(s: Stats | None) -> dict | None:
    return None if s is None else {k: number(v) for k, v in dataclasses.asdict(s).items()}


def sci(x) -> str:
    """A number in a table cell: 0, 3.1e-06, nan, or - for none."""
    if x is None:
        return "-"
    return "0" if x == 0 else f"{x:.2g}" if not math.isfinite(x) else f"{x:.1e}"


def cos_cell(x: float) -> str:
    return f"{x:.7f}" if math.isfinite(x) else str(x)


STATS_HEAD = f"{'max abs':>8} {'max rel':>8} {'mean abs':>8} {'1-cos':>8}"


def stats_cells(s: Stats | None) -> str:
    """max abs, max rel, mean abs and 1 - cosine (cosines of fp32 twins all print as 1.0000000)."""
    if s is None:
        return " " * len(STATS_HEAD)
    return f"{sci(s.max_abs):>8} {sci(s.max_rel):>8} {sci(s.mean_abs):>8} {sci(1.0 - min(s.cosine, 1.0)):>8}"
