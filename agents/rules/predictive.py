"""MILP-predictive: MILP-hysteresis planning for a short-horizon load forecast (issue 13's
predictive baseline: a forecaster + hysteresis + the SLO-aware MILP, what MArk / IPA-style
systems do)."""

from __future__ import annotations

from typing import Any

from jbrl.agents.policy import ControlState
from jbrl.agents.rules.hysteresis import MilpHysteresisPolicy
from jbrl.errors import InputError
from jbrl.scenario.forecast import RateForecaster
from jbrl.scenario.model import Scenario


class MilpPredictivePolicy(MilpHysteresisPolicy):
    """``milp-predictive:horizon=3:z=2:alpha=0.5:beta=0.2:phi=0.9`` plus every parameter of
    ``milp-hysteresis`` (its rule, its memoized SLO-aware solves).

    The rates it plans for, per source, are the larger of the last ``window`` observed rates'
    max and the upper band of a damped-trend exponential-smoothing forecast over the next
    ``horizon`` intervals (:class:`jbrl.scenario.forecast.HoltForecaster`: ``z`` x the smoothed
    one-step error above the point forecast), times (1 + ``headroom``). It scales up *before*
    a rising load arrives (the forecast's trend) and rides out noise (the error band);
    scale-down is hysteresis' (late, by ``down_after``). Causal: it reads only the observed
    history. Its default headroom is lower than hysteresis' 0.5 (0.2): the forecast band
    carries part of the margin.
    """

    name = "milp-predictive"
    default_headroom = 0.2
    extra_params = {
        **MilpHysteresisPolicy.extra_params,
        "horizon": int,
        "z": float,
        "alpha": float,
        "beta": float,
        "phi": float,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.horizon = int(self.params.pop("horizon", 3))
        self.z = float(self.params.pop("z", 2.0))
        smoothing = {
            k: float(self.params.pop(k)) for k in ("alpha", "beta", "phi") if k in self.params
        }
        if self.horizon < 1:
            raise InputError("must be >= 1 (intervals)", field="policy.horizon", value=self.horizon)
        if not self.z >= 0:
            raise InputError("must be >= 0", field="policy.z", value=self.z)
        self.forecaster = RateForecaster(**smoothing)

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        super().reset(scenario, seed)
        self.forecaster.reset()

    def _peak(self, state: ControlState) -> dict[str, float]:
        observed = super()._peak(state)
        self.forecaster.feed(state.rate_history)
        band = self.forecaster.upper(self.horizon, self.z)
        return {s: max(v, band.get(s, 0.0)) for s, v in observed.items()}
