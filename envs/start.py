"""The plan an episode of :class:`~jbrl.envs.serving.ServingEnv` starts from
(``EnvConfig.initial_plan``): the greedy planner's (:mod:`jbrl.planning.greedy`, no solver) or
the MILP's, both for the first interval's rates x (1 + ``initial_headroom``).

The MILP start solves on a grid of 1 % of the nominal rates (rounded up, so the plan covers the
target) and remembers each grid point, so a training run solves each starting load once per
env. When the target is beyond what the infrastructure sustains, it takes the plan for the
largest fraction 0.95^k of it that is feasible. Model load times do not enter the MILP, so the
memo holds across an episode's load-time variants.
"""

from __future__ import annotations

import math

import numpy as np

from jbrl.envs.codec import ActionCodec, PlanSignature
from jbrl.errors import InfeasibleError, InputError
from jbrl.scenario.model import Scenario

GRID = 0.01
"""Grid of the MILP start's rates, as a fraction of the nominal rates."""
MIN_FRACTION = 0.05
"""The MILP start gives up below this fraction of the target."""


class MilpStart:
    """MILP starting plans (as codec signatures), memoized on a grid (module docstring)."""

    def __init__(self, codec: ActionCodec, grid: float = GRID, time_limit: float = 10.0) -> None:
        self.codec = codec
        self.step = codec.spec.nominal * grid
        self.time_limit = time_limit
        self._memo: dict[tuple[int, ...], PlanSignature | None] = {}
        self.solves = 0

    def signature(self, scenario: Scenario, target: np.ndarray) -> PlanSignature:
        """The plan for ``target``, or for the largest feasible fraction 0.95^k of it."""
        got = self._at(scenario, target)
        scale = 1.0
        while got is None and scale > MIN_FRACTION:
            scale *= 0.95
            got = self._at(scenario, np.asarray(target) * scale)
        if got is None:
            raise InfeasibleError(
                f"the MILP finds no starting plan even at {MIN_FRACTION:.0%} of the first "
                "interval's load",
                {"target": self.codec.spec.rates_dict(np.asarray(target))},
            )
        return got

    def _at(self, scenario: Scenario, rates: np.ndarray) -> PlanSignature | None:
        """The MILP plan at the grid point at or above ``rates`` (None: infeasible)."""
        from jbrl.planning import get_planner

        key = tuple(int(math.ceil(x - 1e-9)) for x in np.asarray(rates) / self.step)
        if key not in self._memo:
            spec = self.codec.spec
            r = np.array(key, dtype=float) * self.step
            res = get_planner("milp", time_limit=self.time_limit).plan(
                scenario, rates=spec.rates_dict(r), accuracy=spec.accuracy
            )
            self.solves += 1
            feasible = res.feasible and res.total_cost is not None
            self._memo[key] = self.codec.canonical_signature(res.plan) if feasible else None
        return self._memo[key]


def table_start(codec: ActionCodec, scale: float) -> PlanSignature:
    """``initial_plan: table``: the cheapest plan of a ladder action's table covering ``scale``
    x nominal (the top when none does). The table's plans are the MILP's, built once when
    training starts, so an episode starts from a MILP plan without a solve of its own."""
    from jbrl.envs.combo_ladder import ComboLadderCodec
    from jbrl.envs.ladder import LadderCodec

    if isinstance(codec, ComboLadderCodec):
        i, j = codec.table.cheapest_covering(scale)
        return codec.table.ladders[i].rungs[j]
    if isinstance(codec, LadderCodec):
        return codec.ladder.rungs[codec.ladder.covering(scale)]
    raise InputError(
        "initial_plan 'table' needs a ladder action (ladder or combo_ladder)",
        field="initial_plan",
        value="table",
    )
