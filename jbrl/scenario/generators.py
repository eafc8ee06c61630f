"""Seeded load-trace generators: one multiplier of the nominal rate per step (1.0 = nominal).

Each kind is a function ``(times, duration, step, rng, params, columns) -> multipliers`` of
shape ``(steps,)`` (the same multiplier for every source, so joins stay balanced) or
``(steps, columns)`` (one series per source). :data:`GENERATORS` registers them with their
parameters and defaults; :func:`jbrl.scenario.traces.generate_trace` validates the request,
seeds the ``numpy`` generator through :class:`numpy.random.SeedSequence` and builds the trace.

Smooth synthetic shapes: ``constant``, ``step``, ``diurnal``, ``bursty`` (a two-level Markov
process with flash crowds), ``random_walk`` (mean-reverting on the log).

Production-shaped kinds, after published characterisations of production load (README,
"Load generators"; statistics in ``experiments/results/traces.md``):

* ``onoff``: the superposition of many clients, each alternating Pareto-distributed (heavy
  tailed) on and off periods, with lognormal per-client rates. Willinger, Taqqu, Sherman and
  Wilson (IEEE/ACM ToN 1997) show that such a superposition is self-similar with Hurst
  parameter H = (3 - alpha) / 2 (alpha the tail index, 1 < alpha < 2), the mechanism behind
  the self-similar traffic of Leland et al. (ToN 1994); Shahrad et al. (ATC '20) find Azure
  Functions' per-application invocations bursty, spanning 8 orders of magnitude in rate.
* ``weekly``: several days with a daily cycle (a peak hour, a second harmonic), lower
  weekends, and AR(1) minute-scale noise on the log, as the whole-platform invocations of the
  Azure Functions 2019 trace show (diurnal and weekly patterns).
* ``phased``: one daily cycle per source, shifted by its own phase (sites in different time
  zones or with different business hours) and with its own independent Markov bursts and
  noise, so sources are not in lockstep.
* ``flash_crowd``: Poisson-timed flash crowds on a base level, each with a random amplitude
  (lognormal), a random rise time (exponential) and a random exponential decay (lognormal
  time constant): spikes that "vary significantly in steepness, magnitude, duration" (Bodik
  et al., SoCC '10).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Params = Mapping[str, float]
GeneratorFn = Callable[[np.ndarray, float, float, np.random.Generator, Params, int], np.ndarray]

MAX_ONOFF_PERIODS = 20_000_000
"""Bound on the on/off periods one ``onoff`` trace may draw (time and memory)."""


@dataclass(frozen=True)
class GeneratorSpec:
    """A trace kind: its function, its parameters with defaults, and their admissible ranges
    (``bounds[name] = (low, high)``, inclusive; absent: any finite number)."""

    fn: GeneratorFn
    defaults: Mapping[str, float]
    bounds: Mapping[str, tuple[float, float]]
    per_source: bool = False

    def check(self, params: Params) -> str | None:
        """The first parameter outside its range, as ``name=value (low..high)``, else None."""
        for name, value in params.items():
            low, high = self.bounds.get(name, (-math.inf, math.inf))
            if not (math.isfinite(value) and low <= value <= high):
                return f"{name}={value:g} (admissible {low:g}..{high:g})"
        return None


def _get(p: Params, key: str, default: float) -> float:
    return float(p.get(key, default))


# --------------------------------------------------------------------------- smooth shapes


def _constant(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    return np.full(len(t), _get(p, "level", 1.0))


def _step(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    low, high, at = _get(p, "low", 0.5), _get(p, "high", 1.5), _get(p, "at_s", dur / 2)
    return np.where(t < at, low, high)


def _diurnal(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    mean, amp = _get(p, "mean", 1.0), _get(p, "amplitude", 0.5)
    period, phase = _get(p, "period_s", dur), _get(p, "phase", 0.0)
    noise = _get(p, "noise", 0.05)
    mid = t + step / 2
    m = mean - amp * np.cos(2 * math.pi * (mid / period + phase))
    return m * rng.lognormal(-(noise**2) / 2, noise, len(t)) if noise > 0 else m


def _markov_states(rng: np.random.Generator, n: int, stay_off: float, stay_on: float) -> np.ndarray:
    """A two-state Markov chain (False = normal, True = burst) sampled once per step."""
    u = rng.random(n)
    state = np.empty(n, dtype=bool)
    s = False
    for i in range(n):
        state[i] = s
        s = (u[i] < stay_on) if s else (u[i] >= stay_off)
    return state


def _bursty(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    base, burst = _get(p, "base", 1.0), _get(p, "burst", 2.0)
    stay_normal = math.exp(-step / _get(p, "mean_normal_s", 600.0))
    stay_burst = math.exp(-step / _get(p, "mean_burst_s", 120.0))
    flash_rate = _get(p, "flash_per_hour", 0.5) / 3600.0
    peak, decay = _get(p, "flash_peak", 3.0), _get(p, "flash_decay_s", 120.0)
    noise = _get(p, "noise", 0.05)
    state = _markov_states(rng, len(t), stay_normal, stay_burst)
    m = np.where(state, burst, base)
    # flash crowds: Poisson onsets, each adding (peak - base) * exp(-age / decay)
    n_flash = rng.poisson(flash_rate * dur)
    onsets = np.sort(rng.uniform(0.0, dur, n_flash))
    for t0 in onsets:
        age = t + step / 2 - t0
        m = m + np.where(age >= 0, (peak - base) * np.exp(-np.maximum(age, 0) / decay), 0.0)
    return m * rng.lognormal(-(noise**2) / 2, noise, len(t)) if noise > 0 else m


def _random_walk(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    mean, sigma = _get(p, "mean", 1.0), _get(p, "sigma", 0.05)
    rev = _get(p, "reversion_s", 1800.0)
    lo, hi = _get(p, "min", 0.1), _get(p, "max", 3.0)
    a = math.exp(-step / rev)
    sd = sigma * math.sqrt(step / 60.0)
    z = rng.normal(0.0, sd, len(t))
    x = np.empty(len(t))
    cur = 0.0
    for i in range(len(t)):
        x[i] = cur
        cur = a * cur + z[i]
    return np.clip(mean * np.exp(x), lo, hi)


# --------------------------------------------------------------------------- shared pieces


def ar1_lognormal(rng: np.random.Generator, n: int, sigma: float, ar: float) -> np.ndarray:
    """Multiplicative noise with mean 1: exp(z - sigma^2/2), z an AR(1) series with
    stationary standard deviation ``sigma`` and lag-1 correlation ``ar``."""
    if sigma <= 0:
        return np.ones(n)
    eps = rng.normal(0.0, sigma * math.sqrt(1.0 - ar * ar), n)
    z = np.empty(n)
    cur = rng.normal(0.0, sigma)
    for i in range(n):
        z[i] = cur
        cur = ar * cur + eps[i]
    return np.exp(z - sigma * sigma / 2.0)


def daily_shape(
    mid: np.ndarray, day_s: float, peak_hour: float, amplitude: float, harmonic: float
) -> np.ndarray:
    """1 + amplitude x (a cosine peaking at ``peak_hour`` plus a ``harmonic`` share of the
    second harmonic, normalised to a peak of 1), floored at 0.02: a day's relative load."""
    x = 2.0 * math.pi * (mid / day_s - peak_hour / 24.0)
    wave = (np.cos(x) + harmonic * np.cos(2.0 * x)) / (1.0 + harmonic)
    return np.maximum(1.0 + amplitude * wave, 0.02)


def weekday_level(mid: np.ndarray, day_s: float, start_day: float, weekend: float) -> np.ndarray:
    """1 on weekdays, ``weekend`` on Saturdays and Sundays (day 0 = ``start_day``, 0 = Monday),
    scaled so that a whole week averages 1."""
    day = (np.floor(mid / day_s).astype(int) + int(start_day)) % 7
    level = np.where(day < 5, 1.0, weekend)
    return level / ((5.0 + 2.0 * weekend) / 7.0)


# --------------------------------------------------------------------------- production shapes


def _pareto_periods(rng: np.random.Generator, mean: float, alpha: float, size: int) -> np.ndarray:
    """Pareto (type I) periods with tail index ``alpha`` and the given mean."""
    xm = mean * (alpha - 1.0) / alpha
    return xm * (1.0 + rng.pareto(alpha, size))


def _client_on_fraction(
    rng: np.random.Generator, edges: np.ndarray, p: Params, warm: float
) -> np.ndarray:
    """Fraction of each step ``[edges[i], edges[i+1])`` one on/off client spends on."""
    on = (_get(p, "on_mean_s", 300.0), _get(p, "alpha_on", 1.5))
    off = (_get(p, "off_mean_s", 1800.0), _get(p, "alpha_off", 1.5))
    starts_on = bool(rng.random() < on[0] / (on[0] + off[0]))
    first, second = (on, off) if starts_on else (off, on)
    per = max(4, math.ceil(1.5 * (edges[-1] + warm) / (on[0] + off[0])) + 4)
    lengths = np.empty(0)
    while lengths.sum() - warm < edges[-1]:  # whole cycles until past the end
        more = np.empty(2 * per)
        more[0::2] = _pareto_periods(rng, first[0], first[1], per)
        more[1::2] = _pareto_periods(rng, second[0], second[1], per)
        lengths = np.concatenate((lengths, more))
    bounds = np.concatenate(([0.0], np.cumsum(lengths))) - warm
    is_on = np.zeros(len(lengths), dtype=bool)
    is_on[0 if starts_on else 1 :: 2] = True
    on_time = np.concatenate(([0.0], np.cumsum(np.where(is_on, lengths, 0.0))))
    cum = np.interp(edges, bounds, on_time)  # on-time is linear between period bounds
    return np.diff(cum) / np.diff(edges)


def _onoff(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    clients = int(_get(p, "clients", 200))
    on_mean, off_mean = _get(p, "on_mean_s", 300.0), _get(p, "off_mean_s", 1800.0)
    sigma = _get(p, "rate_sigma", 1.0)
    cols = k if _get(p, "independent", 0.0) >= 0.5 else 1
    edges = np.append(t, t[-1] + step)
    warm = 10.0 * (on_mean + off_mean)
    p_on = on_mean / (on_mean + off_mean)
    out = np.empty((len(t), cols))
    for c in range(cols):
        weights = rng.lognormal(-(sigma**2) / 2.0, sigma, clients)
        total = np.zeros(len(t))
        for w in weights:
            total += w * _client_on_fraction(rng, edges, p, warm)
        out[:, c] = _get(p, "mean", 1.0) * total / (weights.sum() * p_on)
    return out[:, 0] if cols == 1 else out


def onoff_periods(duration: float, params: Params) -> float:
    """Expected on/off periods an ``onoff`` trace draws (bounded by MAX_ONOFF_PERIODS)."""
    cycle = _get(params, "on_mean_s", 300.0) + _get(params, "off_mean_s", 1800.0)
    return _get(params, "clients", 200) * 2.0 * (duration + 10.0 * cycle) / cycle


def _weekly(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    day_s = _get(p, "day_s", 86400.0)
    mid = t + step / 2
    shape = daily_shape(
        mid, day_s, _get(p, "peak_hour", 14.0), _get(p, "amplitude", 0.6), _get(p, "harmonic", 0.3)
    )
    level = weekday_level(mid, day_s, _get(p, "start_day", 0.0), _get(p, "weekend", 0.6))
    noise = ar1_lognormal(rng, len(t), _get(p, "noise", 0.05), _get(p, "ar", 0.8))
    return _get(p, "mean", 1.0) * level * shape * noise


def _phased(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    day_s = _get(p, "day_s", 86400.0)
    spread = _get(p, "spread_h", 8.0)
    stay_normal = math.exp(-step / _get(p, "gap_mean_s", 10800.0))
    stay_burst = math.exp(-step / _get(p, "burst_mean_s", 900.0))
    mid = t + step / 2
    level = weekday_level(mid, day_s, _get(p, "start_day", 0.0), _get(p, "weekend", 1.0))
    out = np.empty((len(t), k))
    for j in range(k):
        offset = spread * j / (k - 1) if k > 1 else 0.0
        shape = daily_shape(
            mid,
            day_s,
            _get(p, "peak_hour", 14.0) + offset,
            _get(p, "amplitude", 0.6),
            _get(p, "harmonic", 0.3),
        )
        bursts = np.where(_markov_states(rng, len(t), stay_normal, stay_burst), 1.0, 0.0)
        noise = ar1_lognormal(rng, len(t), _get(p, "noise", 0.05), _get(p, "ar", 0.8))
        out[:, j] = level * shape * (1.0 + (_get(p, "burst", 1.8) - 1.0) * bursts) * noise
    # bursts raise the long-run mean by (burst - 1) x the fraction of time in a burst
    on = _get(p, "burst_mean_s", 900.0) / (
        _get(p, "burst_mean_s", 900.0) + _get(p, "gap_mean_s", 10800.0)
    )
    return _get(p, "mean", 1.0) * out / (1.0 + (_get(p, "burst", 1.8) - 1.0) * on)


def _flash_series(rng: np.random.Generator, mid: np.ndarray, dur: float, p: Params) -> np.ndarray:
    """Extra load of Poisson-timed flash crowds (linear rise, exponential decay)."""
    n = rng.poisson(_get(p, "per_day", 4.0) * dur / 86400.0)
    onsets = rng.uniform(0.0, dur, n)
    amps = _get(p, "amp_median", 1.0) * rng.lognormal(0.0, _get(p, "amp_sigma", 0.6), n)
    rises = rng.exponential(_get(p, "rise_mean_s", 180.0), n)
    decays = _get(p, "decay_median_s", 1200.0) * rng.lognormal(0.0, _get(p, "decay_sigma", 0.7), n)
    extra = np.zeros(len(mid))
    for t0, a, r, tau in zip(onsets, amps, rises, decays, strict=True):
        age = mid - t0
        up = np.clip(age / max(r, 1e-9), 0.0, 1.0)
        down = np.exp(-np.maximum(age - r, 0.0) / tau)
        extra += np.where(age >= 0, a * up * down, 0.0)
    return extra


def _flash_crowd(t: np.ndarray, dur: float, step: float, rng: Any, p: Params, k: int) -> np.ndarray:
    mid = t + step / 2
    cols = k if _get(p, "independent", 0.0) >= 0.5 else 1
    out = np.empty((len(t), cols))
    for c in range(cols):
        noise = ar1_lognormal(rng, len(t), _get(p, "noise", 0.03), _get(p, "ar", 0.5))
        out[:, c] = _get(p, "base", 1.0) * (1.0 + _flash_series(rng, mid, dur, p)) * noise
    return out[:, 0] if cols == 1 else out


# --------------------------------------------------------------------------- registry

_POS = (1e-9, math.inf)
_FRAC = (0.0, 1.0)
_NOISE = (0.0, 2.0)
_AR = (0.0, 0.999)

GENERATORS: dict[str, GeneratorSpec] = {
    "constant": GeneratorSpec(_constant, {"level": 1.0}, {"level": (0.0, math.inf)}),
    "step": GeneratorSpec(
        _step, {"low": 0.5, "high": 1.5, "at_s": math.nan}, {"low": _POS, "high": _POS}
    ),
    "diurnal": GeneratorSpec(
        _diurnal,
        {"mean": 1.0, "amplitude": 0.5, "period_s": math.nan, "phase": 0.0, "noise": 0.05},
        {"period_s": _POS, "noise": _NOISE},
    ),
    "bursty": GeneratorSpec(
        _bursty,
        {
            "base": 1.0,
            "burst": 2.0,
            "mean_normal_s": 600.0,
            "mean_burst_s": 120.0,
            "flash_per_hour": 0.5,
            "flash_peak": 3.0,
            "flash_decay_s": 120.0,
            "noise": 0.05,
        },
        {"mean_normal_s": _POS, "mean_burst_s": _POS, "flash_decay_s": _POS, "noise": _NOISE},
    ),
    "random_walk": GeneratorSpec(
        _random_walk,
        {"mean": 1.0, "sigma": 0.05, "reversion_s": 1800.0, "min": 0.1, "max": 3.0},
        {"reversion_s": _POS, "sigma": (0.0, 5.0)},
    ),
    "onoff": GeneratorSpec(
        _onoff,
        {
            "mean": 1.0,
            "clients": 200.0,
            "on_mean_s": 300.0,
            "off_mean_s": 1800.0,
            "alpha_on": 1.5,
            "alpha_off": 1.5,
            "rate_sigma": 1.0,
            "independent": 0.0,
        },
        {
            "mean": _POS,
            "clients": (1.0, 100_000.0),
            "on_mean_s": _POS,
            "off_mean_s": _POS,
            "alpha_on": (1.05, 10.0),
            "alpha_off": (1.05, 10.0),
            "rate_sigma": (0.0, 3.0),
            "independent": _FRAC,
        },
    ),
    "weekly": GeneratorSpec(
        _weekly,
        {
            "mean": 1.0,
            "amplitude": 0.6,
            "peak_hour": 14.0,
            "harmonic": 0.3,
            "weekend": 0.6,
            "start_day": 0.0,
            "day_s": 86400.0,
            "noise": 0.05,
            "ar": 0.8,
        },
        {
            "mean": _POS,
            "amplitude": (0.0, 1.0),
            "harmonic": (0.0, 1.0),
            "weekend": _POS,
            "start_day": (0.0, 6.0),
            "day_s": _POS,
            "noise": _NOISE,
            "ar": _AR,
        },
    ),
    "phased": GeneratorSpec(
        _phased,
        {
            "mean": 1.0,
            "amplitude": 0.6,
            "peak_hour": 14.0,
            "harmonic": 0.3,
            "spread_h": 8.0,
            "weekend": 1.0,
            "start_day": 0.0,
            "day_s": 86400.0,
            "burst": 1.8,
            "burst_mean_s": 900.0,
            "gap_mean_s": 10800.0,
            "noise": 0.05,
            "ar": 0.8,
        },
        {
            "mean": _POS,
            "amplitude": (0.0, 1.0),
            "harmonic": (0.0, 1.0),
            "spread_h": (0.0, 24.0),
            "weekend": _POS,
            "start_day": (0.0, 6.0),
            "day_s": _POS,
            "burst": _POS,
            "burst_mean_s": _POS,
            "gap_mean_s": _POS,
            "noise": _NOISE,
            "ar": _AR,
        },
        per_source=True,
    ),
    "flash_crowd": GeneratorSpec(
        _flash_crowd,
        {
            "base": 1.0,
            "per_day": 4.0,
            "amp_median": 1.0,
            "amp_sigma": 0.6,
            "rise_mean_s": 180.0,
            "decay_median_s": 1200.0,
            "decay_sigma": 0.7,
            "noise": 0.03,
            "ar": 0.5,
            "independent": 0.0,
        },
        {
            "base": _POS,
            "per_day": (0.0, 10_000.0),
            "amp_median": (0.0, 1000.0),
            "amp_sigma": (0.0, 3.0),
            "rise_mean_s": _POS,
            "decay_median_s": _POS,
            "decay_sigma": (0.0, 3.0),
            "noise": _NOISE,
            "ar": _AR,
            "independent": _FRAC,
        },
    ),
}
