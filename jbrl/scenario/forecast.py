"""Online short-horizon load forecasting: damped-trend exponential smoothing with an error band.

A causal forecaster of one rate series observed once per control interval (issue 13, item 3:
the forecast features of the observation and the *predictive* baseline, what MArk / IPA-style
systems do). :class:`HoltForecaster` is Holt's linear exponential smoothing with Gardner and
McKenzie's damped trend (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*,
3rd ed., section 8.2, "Methods with trend"):

    level_t = alpha x_t + (1 - alpha) (level_{t-1} + phi trend_{t-1})
    trend_t = beta (level_t - level_{t-1}) + (1 - beta) phi trend_{t-1}
    forecast_{t+h} = level_t + (phi + phi^2 + ... + phi^h) trend_t

and an exponentially weighted mean of the absolute one-step errors (``mad``) for an upper band
``forecast + z * 1.25 * mad * sqrt(h)`` (1.25 x mean absolute deviation ~ one standard
deviation of a normal error; the sqrt(h) widening is that of a random walk: a stated
approximation, not a fitted interval). No seasonal term: the control horizon (minutes) is far
shorter than a daily season, and a season needs a full period of history before it helps.

:class:`RateForecaster` keeps one per source and reads a policy's rate history incrementally.
Deterministic; O(1) per observation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jbrl.errors import InputError


@dataclass
class HoltForecaster:
    """Damped-trend exponential smoothing of one series (module docstring)."""

    alpha: float = 0.5
    beta: float = 0.2
    phi: float = 0.9
    err_alpha: float = 0.2
    level: float | None = field(default=None, init=False)
    trend: float = field(default=0.0, init=False)
    mad: float = field(default=0.0, init=False)
    seen: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "err_alpha"):
            v = getattr(self, name)
            if not (0.0 < v <= 1.0):
                raise InputError("must be in (0, 1]", field=f"forecast.{name}", value=v)
        if not (0.0 < self.phi <= 1.0):
            raise InputError("must be in (0, 1]", field="forecast.phi", value=self.phi)

    def update(self, x: float) -> None:
        """Take the next observation."""
        x = float(x)
        if not math.isfinite(x):
            return  # a missing observation leaves the state as it is
        if self.level is None:
            self.level, self.trend, self.seen = x, 0.0, 1
            return
        err = x - self.forecast(1)
        self.mad = (1.0 - self.err_alpha) * self.mad + self.err_alpha * abs(err)
        prev = self.level
        self.level = self.alpha * x + (1.0 - self.alpha) * (prev + self.phi * self.trend)
        self.trend = self.beta * (self.level - prev) + (1.0 - self.beta) * self.phi * self.trend
        self.seen += 1

    def forecast(self, h: int) -> float:
        """The point forecast ``h`` steps ahead (the last level before any trend is known)."""
        if self.level is None:
            return 0.0
        damp = sum(self.phi**i for i in range(1, h + 1))
        return self.level + damp * self.trend

    def upper(self, horizon: int, z: float) -> float:
        """The largest upper band over the next ``horizon`` steps (module docstring), >= 0."""
        if self.level is None:
            return 0.0
        return max(
            max(0.0, self.forecast(h) + z * 1.25 * self.mad * math.sqrt(h))
            for h in range(1, max(1, horizon) + 1)
        )


class RateForecaster:
    """One :class:`HoltForecaster` per source, fed from a rate history (oldest first) that only
    grows; ``reset`` starts over (a new run)."""

    def __init__(self, **params: float) -> None:
        self.params = dict(params)
        HoltForecaster(**self.params)  # validate once
        self.series: dict[str, HoltForecaster] = {}
        self.fed = 0

    def reset(self) -> None:
        self.series.clear()
        self.fed = 0

    def feed(self, history: Sequence[Mapping[str, float]]) -> None:
        """Take the entries of ``history`` not seen yet (a shorter history means a new run)."""
        if len(history) < self.fed:
            self.reset()
        for rates in history[self.fed :]:
            for src, x in rates.items():
                self.series.setdefault(src, HoltForecaster(**self.params)).update(x)
        self.fed = len(history)

    def upper(self, horizon: int, z: float) -> dict[str, float]:
        """Per source, the upper band over the next ``horizon`` intervals."""
        return {s: f.upper(horizon, z) for s, f in self.series.items()}

    def forecast(self, h: int) -> dict[str, float]:
        """Per source, the point forecast ``h`` intervals ahead."""
        return {s: f.forecast(h) for s, f in self.series.items()}
