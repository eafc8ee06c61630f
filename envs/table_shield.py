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

It keeps the deployment shield's counts (:class:`~jbrl.planning.shield.ShieldStats`) and
verdict keys, so ``info["shield"]`` reads the same with either check (``EnvConfig.shield_check``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jbrl.envs.codec import ActionCodec, PlanSignature
from jbrl.envs.combo_ladder import ComboLadderCodec
from jbrl.errors import InputError
from jbrl.planning.shield import ShieldStats


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

    def check(
        self, sig: PlanSignature, rates: np.ndarray
    ) -> tuple[PlanSignature | None, dict[str, Any]]:
        """(substitute rung or None when ``sig`` passes, the verdict as ``info["shield"]``)."""
        table = self.codec.table
        need = self.need(rates)
        i, j = self.codec.snap(sig)
        own = sig.combo == table.combos[i]
        safe = float(table.ladders[i].scale[j])
        cost = float(table.ladders[i].dollars[j])
        info: dict[str, Any] = {
            "intervened": False, "reason": "", "missed": False, "scale_up": True,
            "added_workers": 0, "wanted_cost": cost, "cost": cost,
            "attainment_wanted": None, "attainment": None, "seconds": 0.0,
        }  # fmt: skip
        if need <= 0 or safe >= need - 1e-9:
            self.stats.decisions += 1
            return None, info
        lad = table.ladders[i]
        k = lad.covering(need)
        if own and lad.scale[k] >= need - 1e-9:
            si, sj, how = i, k, "a larger rung of the wanted combination"
        else:
            si, sj = table.cheapest_covering(need)
            reaches = table.ladders[si].scale[sj] >= need - 1e-9
            how = "the cheapest rung covering it" if reaches else "beyond the table: its top rung"
            info["missed"] = not reaches
        sub = table.ladders[si].rungs[sj]
        before = {(w, o) for w, o in enumerate(sig.assignment) if o >= 0}
        after = {(w, o) for w, o in enumerate(sub.assignment) if o >= 0}
        info.update(
            intervened=True,
            reason=(
                f"SLO-safe up to {safe:.2f}x nominal, below the observed load x "
                f"{self.margin:g} = {need:.2f}x; {how}"
            ),
            scale_up=sub.combo == sig.combo and before <= after,
            added_workers=len(after - before),
            cost=float(table.ladders[si].dollars[sj]),
        )
        self.stats.decisions += 1
        self.stats.interventions += 1
        self.stats.scale_ups += int(info["scale_up"])
        self.stats.missed += int(info["missed"])
        return sub, info
