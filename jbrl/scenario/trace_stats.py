"""Statistics of a load trace, the columns of the generators' statistics table.

Every statistic is computed on the trace's rates averaged over bins of ``bin_s`` seconds
(one minute by default, the resolution of the Azure Functions 2019 trace), for the total
over all columns (the load the whole system sees) and, with several columns, how the
columns move together:

* ``mean`` (req/s or multiplier), ``peak_to_mean`` (largest bin / mean), ``cv`` (standard
  deviation / mean of the bins), ``lag1`` (lag-1 autocorrelation of the bins);
* bursts: maximal runs of bins above ``burst_factor`` x the centred rolling median over
  ``window_bins`` bins (the local level, so a daily peak is not one long burst): their
  number, and the median, 90th percentile and longest length in bins;
* ``hurst``: the Hurst parameter by the aggregated-variance method (Var of block means ~
  m^(2H-2) over block sizes m = 1, 2, 4, ... bins), 0.5 for short-range dependence;
* with several columns: ``mean_pairwise_corr`` (mean Pearson correlation of the columns'
  bins) and ``peak_spread_h`` (hours between the earliest and the latest column's time of
  peak of the average day).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jbrl.scenario.traces import Trace


def binned(trace: Trace, bin_s: float = 60.0) -> np.ndarray:
    """Time-averaged rates over consecutive bins of ``bin_s`` s, shape (bins, columns); the
    last bin is cut at the trace's duration."""
    dur = max(trace.duration, float(trace.times[-1]))
    edges = np.append(np.arange(0.0, dur, bin_s), dur)
    times = trace.times.copy()
    times[0] = min(times[0], 0.0)  # rows before the first time take the first row's rates
    widths = np.diff(np.append(times, max(dur, times[-1])))
    cum = np.vstack([np.zeros(trace.values.shape[1]), np.cumsum(trace.values * widths[:, None], 0)])
    row = np.clip(np.searchsorted(times, edges, side="right") - 1, 0, len(times) - 1)
    integral = cum[row] + trace.values[row] * (edges - times[row])[:, None]
    return np.diff(integral, axis=0) / np.diff(edges)[:, None]


def lag1_autocorrelation(x: np.ndarray) -> float:
    """Lag-1 autocorrelation (nan for a constant series)."""
    d = x - x.mean()
    denom = float(np.dot(d, d))
    return float(np.dot(d[:-1], d[1:]) / denom) if denom > 0 and len(x) > 2 else math.nan


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median over ``window`` bins (shorter at the ends)."""
    half = window // 2
    padded = np.pad(x, half, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(view, axis=1)


def burst_lengths(x: np.ndarray, factor: float = 1.5, window: int = 61) -> np.ndarray:
    """Lengths (in bins) of the maximal runs of ``x`` above ``factor`` x its rolling median."""
    above = x > factor * rolling_median(x, window)
    if not above.any():
        return np.zeros(0, dtype=int)
    change = np.diff(np.concatenate(([0], above.astype(int), [0])))
    starts, ends = np.flatnonzero(change == 1), np.flatnonzero(change == -1)
    return ends - starts


def hurst_aggregated_variance(x: np.ndarray, min_blocks: int = 10) -> float:
    """Hurst parameter from the slope of log Var(block means) against log block size."""
    sizes, variances = [], []
    m = 1
    while len(x) // m >= min_blocks:
        k = len(x) // m
        means = x[: k * m].reshape(k, m).mean(axis=1)
        var = float(means.var())
        if var > 0:
            sizes.append(m)
            variances.append(var)
        m *= 2
    if len(sizes) < 3:
        return math.nan
    slope = float(np.polyfit(np.log(sizes), np.log(variances), 1)[0])
    return 1.0 + slope / 2.0


def _peak_hours(bins: np.ndarray, bin_s: float, day_s: float = 86400.0) -> list[float]:
    """Hour of the peak of each column's average day (needs at least one whole day)."""
    per_day = int(round(day_s / bin_s))
    days = len(bins) // per_day
    if days < 1:
        return []
    mean_day = bins[: days * per_day].reshape(days, per_day, -1).mean(axis=0)
    return [float(np.argmax(mean_day[:, j]) * bin_s / 3600.0) for j in range(bins.shape[1])]


def _circular_spread(hours: list[float]) -> float:
    """Smallest arc (hours of a 24 h clock) that holds every hour."""
    h = np.sort(np.mod(hours, 24.0))
    gaps = np.diff(np.append(h, h[0] + 24.0))
    return float(24.0 - gaps.max())


def trace_statistics(
    trace: Trace,
    bin_s: float = 60.0,
    burst_factor: float = 1.5,
    window_bins: int = 61,
) -> dict[str, Any]:
    """The statistics of the module docstring, as a JSON-ready mapping."""
    bins = binned(trace, bin_s)
    total = bins.sum(axis=1)
    mean = float(total.mean())
    lengths = burst_lengths(total, burst_factor, window_bins)
    out: dict[str, Any] = {
        "bin_s": bin_s,
        "bins": len(total),
        "columns": len(trace.columns),
        "mean": mean,
        "peak_to_mean": float(total.max() / mean) if mean > 0 else math.nan,
        "cv": float(total.std() / mean) if mean > 0 else math.nan,
        "lag1": lag1_autocorrelation(total),
        "hurst": hurst_aggregated_variance(total),
        "bursts": int(len(lengths)),
        "burst_len_median": float(np.median(lengths)) if len(lengths) else 0.0,
        "burst_len_p90": float(np.percentile(lengths, 90)) if len(lengths) else 0.0,
        "burst_len_max": int(lengths.max()) if len(lengths) else 0,
    }
    if bins.shape[1] > 1:
        varying = bins[:, bins.std(axis=0) > 0]  # a constant column has no correlation
        if varying.shape[1] >= 2:
            corr = np.corrcoef(varying.T)
            out["mean_pairwise_corr"] = float(corr[np.triu_indices(varying.shape[1], 1)].mean())
        else:
            out["mean_pairwise_corr"] = math.nan
        hours = _peak_hours(bins, bin_s)
        out["peak_spread_h"] = _circular_spread(hours) if hours else math.nan
    return out
