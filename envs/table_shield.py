"""The SLO shield read from the action table: what training puts in the loop (issue 13, item 2).

The deployment shield (:class:`jbrl.planning.shield.SloShield`) predicts each wanted plan's
attainment at the observed load x margin and, on a predicted miss, solves the SLO-aware MILP
for the cheapest scale-up. In training that is a latency prediction per step and a MILP solve
per intervention - the MILP solves alone would exceed issue 13's 20-minute training budget. On
the ``combo_ladder`` action every plan the agent can deploy is a rung of the table, and each
rung carries the load it serves within the SLO (its *SLO-safe scale*, found by the same latency
model when the table was built). :class:`TableShield` makes the shield's two decisions from
those numbers, with no prediction and no solve:

* **check**: the wanted rung passes when its SLO-safe scale covers the largest observed source
  rate, as a multiple of its nominal rate, x ``margin``;
* **substitute** (at once): the cheapest rung of the *wanted* combination that covers it
  (staying in a combination loads fewer workers than switching, which reloads every one; the
  SLO-aware rungs do not always extend the rung below, so ``scale_up`` says whether every
  wanted worker stayed); when that combination cannot reach the load, the cheapest rung of any
  combination that can, and when none can, the rung reaching furthest (``missed``).

It has the deployment shield's interface, verdicts (:class:`~jbrl.planning.shield.ShieldVerdict`)
and counts (:class:`~jbrl.planning.shield.ShieldStats`), so the env runs either one the same way
and ``info["shield"]`` reads the same with either check (``EnvConfig.shield_check``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from jbrl.envs.codec import ActionCodec
from jbrl.envs.combo_ladder import ComboLadderCodec
from jbrl.errors import InputError
from jbrl.planning.plan import Plan
from jbrl.planning.shield import ShieldStats, ShieldVerdict


class TableShield:
    """The SLO shield over a :class:`~jbrl.envs.combo_ladder.ComboLadderCodec`'s table (module
    docstring). ``margin`` >= 1 multiplies the observed load, as the deployment shield's."""

    def __init__(self, codec: ActionCodec, margin: float) -> None:
        if not isinstance(codec, ComboLadderCodec):
            raise InputError(
                "shield_check 'table' needs action 'combo_ladder'", field="shield_check"
            )
        if not (math.isfinite(margin) and margin >= 1.0):
            raise InputError("must be a number >= 1", field="shield", value=margin)
        self.codec = codec
        self.margin = float(margin)
        self.stats = ShieldStats()

    def reset(self) -> None:
        """Start a new run's counts."""
        self.stats = ShieldStats()

    def need(self, rates: np.ndarray) -> float:
        """The load a plan must serve: the largest source rate / its nominal rate, x margin."""
        nominal = self.codec.spec.nominal
        ratio = np.asarray(rates, dtype=float) / np.maximum(nominal, 1e-12)
        return float(np.max(ratio)) * self.margin if ratio.size else 0.0

    def check(self, plan: Plan, load: Mapping[str, float]) -> ShieldVerdict:
        """The plan to apply instead of ``plan`` at observed source rates ``load``; counted (the
        deployment shield's interface and verdict, :meth:`SloShield.check
        <jbrl.planning.shield.SloShield.check>`)."""
        verdict = self._check(plan, self.codec.spec.rates_array(load))
        self.stats.add(verdict)
        return verdict

    def _check(self, plan: Plan, rates: np.ndarray) -> ShieldVerdict:
        table = self.codec.table
        sig = self.codec.signature(plan)
        need = self.need(rates)
        i, j = self.codec.snap(sig)
        safe = float(table.ladders[i].scale[j])
        cost = float(table.ladders[i].dollars[j])
        if need <= 0 or safe >= need - 1e-9:
            return ShieldVerdict(plan, False, wanted_cost=cost, cost=cost)
        lad = table.ladders[i]
        k = lad.covering(need)
        missed = False
        if sig.combo == table.combos[i] and lad.scale[k] >= need - 1e-9:
            si, sj, how = i, k, "a larger rung of the wanted combination"
        else:
            si, sj = table.cheapest_covering(need)
            missed = bool(table.ladders[si].scale[sj] < need - 1e-9)
            how = "beyond the table: its top rung" if missed else "the cheapest rung covering it"
        sub = table.ladders[si].rungs[sj]
        before = {(w, o) for w, o in enumerate(sig.assignment) if o >= 0}
        after = {(w, o) for w, o in enumerate(sub.assignment) if o >= 0}
        return ShieldVerdict(
            self.codec.plan_of(sub, rates),
            True,
            f"SLO-safe up to {safe:.2f}x nominal, below the observed load x {self.margin:g} = "
            f"{need:.2f}x; {how}",
            missed=missed,
            scale_up=sub.combo == sig.combo and before <= after,
            added_workers=len(after - before),
            wanted_cost=cost,
            cost=float(table.ladders[si].dollars[sj]),
        )
