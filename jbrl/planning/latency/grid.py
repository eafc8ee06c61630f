"""Latency distributions on a grid: a stage adds (:func:`cdf_of_sum`, a discrete
convolution), a join takes the max of its inputs (product of CDFs); percentiles beyond the grid
follow an exponential tail (:func:`percentiles_with_tail`)."""

from __future__ import annotations

import math

import numpy as np

QUANTILES = (0.5, 0.95, 0.99)
"""The latency percentiles reported (p50, p95, p99)."""
_QUANTILES = np.array(QUANTILES)  # (np.interp would convert the tuple on every call)


def cdf_of_sum(cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
    """CDF of A + B on a grid from A's cell masses (cell centres) and B's CDF.

    Only the first ``n`` terms of the convolution are kept, so A's masses go behind ``n - 1``
    zeros and a 'valid' convolution computes just those (``n`` dot products instead of
    ``2 n - 1``).
    """
    n = len(cdf_b)
    padded = np.zeros(2 * n - 1)
    padded[n - 1] = cdf_a[0]
    np.subtract(cdf_a[1:], cdf_a[:-1], padded[n:])  # cell masses
    half = np.empty(n)
    np.add(cdf_b[:-1], cdf_b[1:], half[:-1])
    half[:-1] *= 0.5
    half[-1] = cdf_b[-1]
    return np.convolve(padded, half, "valid")


def percentiles_with_tail(
    grid: np.ndarray, cdf: np.ndarray, e_tail: float, mean_s: float, cap: float
) -> dict[str, float]:
    """p50/p95/p99 and mean (ms) of a latency whose CDF on ``grid`` (equally spaced from 0) is
    ``cdf``, and whose mass beyond the grid is ``start + Exp(tail)``.

    ``tail`` is ``e_tail`` (the slowest stage's exponential part, at least one grid step);
    ``start >= t_max`` is set so that the overall mean is ``mean_s`` (which counts deterministic
    backlog). Percentiles beyond the grid are at most ``cap`` (no request waits more than the
    timeout in any queue).
    """
    out = np.interp(_QUANTILES, cdf, grid).tolist()
    last = float(cdf[-1])
    t_max = float(grid[-1])
    h = float(grid[1])
    grid_part = h * float((1.0 - cdf[:-1]).sum()) - t_max * (1.0 - last)
    beyond = 1.0 - last
    tail = max(e_tail, h)
    start = t_max
    if beyond > 1e-9:
        start = max(t_max, (mean_s - grid_part) / beyond - tail)
    mean = grid_part + beyond * (start + tail)
    for i, q in enumerate(QUANTILES):
        if last < q:
            out[i] = min(start + tail * math.log(beyond / (1.0 - q)), cap)
    return {
        "p50": out[0] * 1000.0,
        "p95": out[1] * 1000.0,
        "p99": out[2] * 1000.0,
        "mean": mean * 1000.0,
    }
