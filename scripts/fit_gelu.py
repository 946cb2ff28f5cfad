#!/usr/bin/env python
"""Fit the polynomial of numpybert's float32 GELU (model._GELU32_K); prints its coefficients and errors.

The normal CDF as a logistic: Φ(x) = 1 / (1 + exp(x·k(x²))), with k(s) = -ln(Φ/(1-Φ))/x smooth
and even in x. k is fitted as a degree-6 polynomial in s = x² on [0, 30] (beyond, Φ is 0 or 1 in
float32) by Lawson's iteratively reweighted least squares towards the minimax error of GELU,
x·Φ(x). Exact references from math.erfc (both tails accurate).
"""
import math

import numpy as np


def phi(x):
    return np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])


def fit(degree=6, s_max=30.0, iterations=60):
    x = np.linspace(1e-3, math.sqrt(s_max), 20_000)
    p, q = phi(x), phi(-x)
    k = -np.log(p / q) / x
    weight = p * q * x * np.maximum(1, x)  # d(x·Φ) = -x·Φ(1-Φ)·x·dk
    V = np.vander(x * x, degree + 1)
    w = weight.copy()
    for _ in range(iterations):
        c, *_ = np.linalg.lstsq(V * w[:, None], k * w, rcond=None)
        err = np.abs(V @ c - k) * weight
        w = w * np.sqrt(err / err.max()) + 1e-300
    return c


if __name__ == "__main__":
    c = fit()
    x = np.linspace(-12, 12, 240_001)
    gelu = x / (1 + np.exp(x * np.polyval(c, np.minimum(x * x, 30.0))))
    print("coefficients (highest power first):", [float(v) for v in c])
    print(f"max |gelu error| in float64 arithmetic on [-12, 12]: {np.abs(gelu - x * phi(x)).max():.2e}")
