"""A teacher that decides in the env's own action table: hysteresis over the combination ladder.

The imitation warm start's rule-policy teachers (:class:`~jbrl.agents.ppo.imitation
.PolicyTeacher`) solve the SLO-aware MILP as they go; on vqa those solves were about 17 s per
2 h episode, most of the training time (issue 13: training within 20 minutes). On the
``combo_ladder`` action every plan the agent may deploy is already in the table
(:class:`~jbrl.envs.combo_ladder.ComboLadder`, SLO-aware MILP plans with their SLO-safe load
scales and prices), so a teacher that picks among them needs no solve at all:

* target = the largest source rate of the last ``window`` intervals, as a multiple of nominal,
  x (1 + ``headroom``);
* the candidate is the cheapest rung covering the target, taken in the running combination when
  that one is within ``tolerance`` of the cheapest of all (a combination switch reloads every
  worker; a level step loads only the added ones);
* when the running plan does not cover the target it moves at once; when it does, it moves down
  only after the candidate has been more than ``tolerance`` cheaper for ``down_after``
  intervals in a row.

Spec: ``ladder-hysteresis:headroom=0.25:window=4:down_after=6:tolerance=0.05`` in
``bc.teacher`` / ``bc.candidates`` (any subset of the parameters; these are the defaults). It is
a teacher, not a baseline: it needs the env's table, which a deployment of the baselines does not
have.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from jbrl.agents.policy import parse_policy_spec
from jbrl.envs.combo_ladder import ComboLadderCodec
from jbrl.errors import InputError

if TYPE_CHECKING:
    from jbrl.envs.serving import ServingEnv

TABLE_TEACHER = "ladder-hysteresis"
DEFAULTS = {"headroom": 0.25, "window": 4.0, "down_after": 6.0, "tolerance": 0.05}


def table_params(spec: str) -> dict[str, float]:
    """The parameters of a ``ladder-hysteresis`` spec (defaults filled in); InputError naming the
    parameter when one is unknown or out of range."""
    name, raw = parse_policy_spec(spec)
    if name != TABLE_TEACHER:
        raise InputError(f"not a {TABLE_TEACHER} spec", field="bc.teacher", value=spec)
    out = dict(DEFAULTS)
    for k, v in raw.items():
        if k not in DEFAULTS:
            raise InputError(
                f"unknown parameter (known: {', '.join(DEFAULTS)})", field=f"bc.teacher.{k}"
            )
        try:
            x = float(v)
        except ValueError:
            x = math.nan
        low = 1.0 if k == "window" else 0.0
        if not math.isfinite(x) or x < low or (k == "tolerance" and x >= 1.0):
            raise InputError("out of range", field=f"bc.teacher.{k}", value=v)
        out[k] = x
    return out


class TableTeacher:
    """``ladder-hysteresis`` (module docstring) as an imitation teacher; the same interface as
    :class:`~jbrl.agents.ppo.imitation.PolicyTeacher`."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        p = table_params(spec)
        self.headroom, self.tolerance = p["headroom"], p["tolerance"]
        self.window, self.down_after = int(p["window"]), int(p["down_after"])
        self.cheaper_for = 0

    def reset(self, env: ServingEnv) -> None:
        """Start an episode."""
        if not isinstance(env.codec, ComboLadderCodec):
            raise InputError(
                f"{TABLE_TEACHER} teaches on the combo_ladder action only",
                field="env.action",
                value=env.config.action,
            )
        self.cheaper_for = 0

    def target(self, env: ServingEnv) -> float:
        """The load to cover, as a multiple of the nominal rates."""
        spec = env.serving
        hist = [spec.rates_array(r) for r in env.rate_history[-self.window :]]
        peak = max((float(np.max(h / spec.nominal)) for h in hist), default=1.0)
        return peak * (1.0 + self.headroom)

    def __call__(self, env: ServingEnv) -> np.ndarray:
        """The env action: keep, or (combination, level) of the chosen rung."""
        codec = env.codec
        assert isinstance(codec, ComboLadderCodec) and env.sig is not None
        table, scale = codec.table, self.target(env)
        ci, cj = codec.snap(env.sig)
        own = env.sig.combo == table.combos[ci]
        best_i, best_j = table.cheapest_covering(scale)
        pick = (best_i, best_j)
        if own:
            j = table.ladders[ci].covering(scale)
            covers = table.ladders[ci].scale[j] >= scale - 1e-9
            cheapest = table.ladders[best_i].dollars[best_j]
            if covers and table.ladders[ci].dollars[j] <= cheapest * (1.0 + self.tolerance):
                pick = (ci, j)
        cur = table.ladders[ci]
        if own and cur.scale[cj] >= scale - 1e-9:  # covered: down only after a lasting saving
            saving = table.ladders[pick[0]].dollars[pick[1]] < cur.dollars[cj] * (
                1.0 - self.tolerance
            )
            self.cheaper_for = self.cheaper_for + 1 if saving else 0
            if self.cheaper_for < self.down_after or pick == (ci, cj):
                return codec.keep_action()
        self.cheaper_for = 0
        return codec.action_for(table.ladders[pick[0]].rungs[pick[1]], env.sig)
