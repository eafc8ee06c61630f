"""The observation vector of :class:`~jbrl.envs.serving.ServingEnv`, shared with the deployed
PPO policy (:mod:`jbrl.agents.ppo`) so that both see exactly the same numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from jbrl.envs.codec import ActionCodec, PlanSignature
from jbrl.envs.config import EnvConfig
from jbrl.planning.plan import Plan
from jbrl.scenario.forecast import HoltForecaster
from jbrl.scenario.model import Scenario
from jbrl.sim.base import IntervalMetrics

OBS_LOW, OBS_HIGH = -1.0, 8.0
RATE_CLIP = 4.0


class ObservationEncoder:
    """The observation vector (see :class:`~jbrl.envs.serving.ServingEnv` for the table)."""

    def __init__(
        self,
        codec: ActionCodec,
        history: int,
        day_s: float = 86400.0,
        interval_s: float = 60.0,
        forecast: bool = False,
    ) -> None:
        self.codec = codec
        self.spec = codec.spec
        self.history = history
        self.forecast = forecast
        self.day_s = day_s
        self.interval_s = interval_s
        self._load_for: Scenario | None = None
        self._load_frac = 0.0
        s = self.spec
        ns, no, nw, nc = len(s.sources), len(s.ops), len(s.workers), len(s.combos)
        self.sizes = {
            "rates": history * ns,
            "time": 2,
            **({"forecast": 2 * ns} if forecast else {}),
            "combo": nc,
            **({"level": 1} if codec.has_level else {}),
            "assignment": nw * (no + 1),
            "capacity_vs_demand": no,
            "capacity_vs_nominal": no,
            "utilization": no,
            "backlog": no,
            "load_time": 1,
            "last_interval": 4,
        }
        self.size = int(sum(self.sizes.values()))
        measured = ("utilization", "backlog", "last_interval")
        self.measured = np.zeros(self.size, dtype=bool)
        start = 0
        for name, n in self.sizes.items():
            if name in measured:
                self.measured[start : start + n] = True
            start += n
        self.measured[-1] = False  # plan $/h is known exactly

    @classmethod
    def for_config(cls, codec: ActionCodec, cfg: EnvConfig) -> ObservationEncoder:
        """The encoder an env config asks for: the env and the deployed policy both build theirs
        here, so they read the same config fields."""
        return cls(codec, cfg.history, cfg.day_s, cfg.interval_s, cfg.forecast)

    def encode(
        self,
        time_s: float,
        rate_history: Sequence[np.ndarray | Mapping[str, float]],
        plan: Plan | PlanSignature,
        last: IntervalMetrics | None,
        scenario: Scenario | None = None,
    ) -> np.ndarray:
        """``rate_history``: observed source rates of past intervals, oldest first (may be
        empty: then the nominal rates stand in). ``scenario``: the one being served, when its
        model load times differ from the spec's (e.g. ``--load-time 30``)."""
        s = self.spec
        no, nw = len(s.ops), len(s.workers)
        parts: list[np.ndarray] = []
        hist = [s.rates_array(r) for r in rate_history[-self.history :]]
        if not hist:
            hist = [s.nominal.copy()]
        while len(hist) < self.history:
            hist.insert(0, hist[0])
        rates = np.array(hist[::-1]) / s.nominal  # newest first
        parts.append(np.clip(rates, 0.0, RATE_CLIP).reshape(-1))
        phase = 2.0 * math.pi * (time_s % self.day_s) / self.day_s
        parts.append(np.array([math.sin(phase), math.cos(phase)]))
        if self.forecast:
            parts.append(np.clip(forecast_features(rates[::-1], FORECAST_H), 0.0, RATE_CLIP))
        sig = plan if isinstance(plan, PlanSignature) else self.codec.signature(plan)
        combo = np.zeros(len(s.combos))
        if sig.combo >= 0:
            combo[sig.combo] = 1.0
        parts.append(combo)
        if self.codec.has_level:
            parts.append(np.array([self.codec.level_fraction(sig)]))
        assign = np.zeros((nw, no + 1))
        assign[np.arange(nw), np.array(sig.assignment) + 1] = 1.0
        parts.append(assign.reshape(-1))
        cap = self.codec.capacity(sig)
        demand = s.demand(hist[-1])
        parts.append(np.clip(cap / np.maximum(demand, 1e-3 * s.nominal_demand), 0.0, RATE_CLIP))
        parts.append(np.clip(cap / s.nominal_demand, 0.0, RATE_CLIP))
        util = np.zeros(no)
        backlog = np.zeros(no)
        extra = np.array([1.0, 0.0, 0.0, self.codec.price(sig) / s.total_price])
        if last is not None:
            for o, op in enumerate(s.ops):
                util[o] = last.operator_utilization.get(op, 0.0)
                backlog[o] = last.operator_backlog.get(op, 0.0)
            att = last.slo_attainment
            extra[0] = att if math.isfinite(att) else 1.0
            extra[1] = last.dollars_per_hour / s.total_price
            extra[2] = len(last.reconfigured) / max(nw, 1)
        parts.append(np.clip(util, 0.0, 2.0))
        parts.append(np.log1p(np.maximum(backlog, 0.0) / s.nominal_demand))
        scen = scenario if scenario is not None else s.scenario
        if self._load_for is not scen:  # one scan of the profiles per scenario, not per step
            self._load_for, self._load_frac = scen, min(max_load_s(scen) / self.interval_s, 2.0)
        parts.append(np.array([self._load_frac]))
        parts.append(extra)
        obs = np.concatenate(parts).astype(np.float32)
        np.clip(obs, OBS_LOW, OBS_HIGH, out=obs)
        return obs


FORECAST_H = 3
"""Intervals ahead the forecast features look (the predictive baseline's default horizon)."""


def forecast_features(rates: np.ndarray, horizon: int) -> np.ndarray:
    """Per source, the damped-trend exponential-smoothing forecast ``horizon`` intervals ahead
    and the upper band over them (z = 2; :class:`~jbrl.scenario.forecast.HoltForecaster`), from
    ``rates`` (intervals x sources, oldest first, relative to nominal). Recomputed from the
    window each time rather than kept as state, so the env and the deployed policy, which see
    the same window, compute the same numbers."""
    out = np.zeros(2 * rates.shape[1])
    for j in range(rates.shape[1]):
        f = HoltForecaster()
        for x in rates[:, j]:
            f.update(float(x))
        out[2 * j], out[2 * j + 1] = max(0.0, f.forecast(horizon)), f.upper(horizon, 2.0)
    return out


def max_load_s(scenario: Scenario) -> float:
    """The longest model load time of ``scenario`` (s): what a reconfiguration may cost."""
    times = [
        p.load_s if p.load_s is not None else scenario.default_load_s for p in scenario.profiles
    ]
    return float(max(times, default=scenario.default_load_s))
