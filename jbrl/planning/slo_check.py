"""The latency check of a plan: its predicted attainment against the scenario's SLO.

The cost model (:mod:`jbrl.planning.cost`) checks capacity; a plan within capacity can still
miss its latency SLO (a worker at 100 % of its capacity queues without bound). Where the
scenario has a latency bound, :func:`check_latency` predicts the plan's latency with the shared
latency model (:func:`jbrl.planning.latency.predict_plan`: per source -> sink path, the latency
at the SLO percentile and P(latency <= bound); the request-level attainment) and names a
``latency_at_risk`` violation when the prediction misses the attainment target. ``jbrl cost``
reports it (exit 3 like the other violations); the controller's safety check uses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from jbrl.planning.cost import Violation
from jbrl.planning.latency import PlanLatency, predict_plan
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario


@dataclass(frozen=True)
class LatencyCheck:
    """The prediction (None without a latency bound) and the violation (None: on target)."""

    prediction: PlanLatency | None
    violation: Violation | None

    @property
    def attainment(self) -> float | None:
        """Predicted fraction of requests within the bound (None without a bound)."""
        return None if self.prediction is None else self.prediction.attainment


def check_latency(
    scenario: Scenario,
    plan: Plan,
    rates: Mapping[str, float] | None = None,
    family: str = "lognormal",
) -> LatencyCheck:
    """Predict ``plan``'s latency at ``rates`` (default nominal) and check it against the
    scenario's latency SLO (module docstring). A plan that does not fit the scenario raises
    :class:`~jbrl.errors.InputError` (the cost model names its problems first)."""
    if scenario.slo.bound_s is None:
        return LatencyCheck(None, None)
    pred = predict_plan(scenario, plan, rates, family=family)
    att = pred.attainment if pred.attainment is not None else 0.0
    target = scenario.slo.attainment
    if pred.meets_target:
        return LatencyCheck(pred, None)
    worst = min(pred.paths, key=lambda p: p.attainment or 0.0, default=None)
    where = ""
    if worst is not None:
        lat = (
            "unbounded" if not math.isfinite(worst.latency_s) else f"{worst.latency_s * 1e3:.0f} ms"
        )
        where = (
            f"; worst path {' -> '.join(worst.path)}: p{100 * target:g} {lat}, "
            f"{100 * (worst.attainment or 0.0):.2f} % within"
        )
    text = (
        f"predicted {100 * att:.2f} % of requests within {scenario.slo.latency_ms:g} ms, below "
        f"the target {100 * target:g} %{where}"
        + ("" if pred.stable else " (a worker is beyond its stability limit)")
    )
    return LatencyCheck(pred, Violation("latency_at_risk", text))
