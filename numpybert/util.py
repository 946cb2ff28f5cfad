"""Small helpers the parts share (one per concept): a positive-integer check and the cosine."""

import numpy as np

from .errors import InputValueError


def positive_int(name: str, value, error: type = InputValueError) -> int:
    """`value` as an int when it is a positive integer (bool is not), else `error` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise error(f"{name}={value!r}: expected a positive integer")
    return int(value)


def cosine(a, b) -> float:
    """cos(a, b) = a·b / (|a| |b|) of two flat vectors, in float64. A zero vector has no
    direction: two zero vectors count as the same (1.0), a zero and a non-zero one as unrelated (0.0)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))
