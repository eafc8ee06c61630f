"""The plan ladder: an action design where the agent picks one of a few good plans.

With ``EnvConfig.action: ladder`` the agent does not assemble a plan worker by worker; it
chooses a *rung* of a ladder of complete plans ordered by capacity, each the cheapest known plan
(variant combination and placement) for one load level, or keeps the plan it runs. The ladder is
built once per scenario by a planner (:meth:`PlanLadder.milp`, with the rungs of
:mod:`jbrl.planning.ladder`; the greedy planner of :mod:`jbrl.planning.greedy` when none is
given) and saved next to a trained policy, so the policy and the env always
share the same action table.

Why: per-worker actions make the agent rediscover, from reward alone, which combinations and
placements are cost-efficient - something a solver answers exactly. What the solver cannot answer
is *when* to move and *how much* capacity to hold ahead of a load that is still to come; that is
what is left to learn, and a ladder of ~20-40 rungs is a small, learnable action for it (the
decision stays a table lookup, well under a millisecond).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jbrl.documents import load_json
from jbrl.envs.codec import ActionCodec, PlanSignature
from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.ladder import ladder_plans
from jbrl.planning.plan import Plan
from jbrl.planning.tables import ServingSpec

LADDER_FILE = "ladder.json"


class PlanLadder:
    """Rungs (plan signatures) in increasing capacity, each with the load scale it covers.

    ``scale[j]``: the largest multiple of the nominal source rates rung ``j`` serves with every
    worker at most at its capacity (``1000 / p90`` req/s), from the codec's capacity table; or,
    given ``scales`` (a MILP ladder of a scenario with a latency bound), the load level each
    rung was planned for within the SLO (``basis`` ``slo``). Rungs are kept only if no other
    rung covers at least as much for no more money, so cost rises with the rung index.
    """

    def __init__(
        self,
        spec: ServingSpec,
        rungs: Sequence[PlanSignature],
        scales: Sequence[float] | None = None,
    ) -> None:
        if not rungs:
            raise InputError("a plan ladder needs at least one rung", field="ladder", value=0)
        if scales is not None and len(scales) != len(rungs):
            raise InputError("one scale per rung", field="scales", value=len(scales))
        base = ActionCodec(spec)
        self.basis = "capacity" if scales is None else "slo"
        scored = []
        given: dict[PlanSignature, float] = {}
        for i, sig in enumerate(rungs):
            if scales is not None:
                given[sig] = max(given.get(sig, 0.0), float(scales[i]))
        for sig in dict.fromkeys(rungs):  # distinct, in order
            if scales is None:
                scale = float(np.min(base.capacity(sig) / spec.nominal_demand))
            else:
                scale = given[sig]
            scored.append((scale, _dollars_per_hour(base, sig, scale), sig))
        scored.sort(key=lambda t: (t[0], t[1]))
        kept: list[tuple[float, float, PlanSignature]] = []
        for s, p, sig in scored:
            # rungs below that cover less for as much money or more are dominated
            while kept and kept[-1][1] >= p - 1e-12:
                kept.pop()
            if kept and kept[-1][0] >= s - 1e-12:
                continue  # covers no more than a cheaper rung
            kept.append((s, p, sig))
        self.spec = spec
        self.rungs: list[PlanSignature] = [k[2] for k in kept]
        self.scale = np.array([k[0] for k in kept], dtype=float)
        self.dollars = np.array([k[1] for k in kept], dtype=float)

    def __len__(self) -> int:
        return len(self.rungs)

    def covering(self, scale: float) -> int:
        """Index of the cheapest rung that covers ``scale`` x nominal (the top rung if none)."""
        j = int(np.searchsorted(self.scale, scale - 1e-9))
        return min(j, len(self.rungs) - 1)

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        out = []
        for sig, s, p in zip(self.rungs, self.scale, self.dollars, strict=True):
            workers = {spec.workers[w]: spec.ops[o] for w, o in enumerate(sig.assignment) if o >= 0}
            out.append(
                {
                    "variants": dict(spec.combos[sig.combo]),
                    "workers": workers,
                    "scale": round(float(s), 6),
                    "dollars_per_hour": round(float(p), 6),
                }
            )
        return {
            "scenario": spec.scenario.name,
            "accuracy": spec.accuracy,
            "scale_basis": self.basis,
            "rungs": out,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", "utf-8")
        return path

    @classmethod
    def load(cls, spec: ServingSpec, path: str | Path) -> PlanLadder:
        file = str(path)
        data = load_json(path)
        if not isinstance(data, dict):
            raise InputError("no rungs", file=file, field="rungs", value=data)
        return cls.from_dict(spec, data, file)

    @classmethod
    def from_dict(
        cls, spec: ServingSpec, data: dict[str, Any], file: str, where: str = ""
    ) -> PlanLadder:
        """The ladder of :meth:`to_dict`'s form (``where``: the field path of ``data`` inside
        ``file``, for error messages)."""
        rungs = []
        scales: list[float] = []
        slo = data.get("scale_basis") == "slo"
        raw = data.get("rungs", [])
        for i, r in enumerate(raw if isinstance(raw, list) else []):
            try:
                key = tuple(r["variants"][o] for o in spec.ops)
                combo = spec.combo_index[key]
                assign = [-1] * len(spec.workers)
                for wn, op in r["workers"].items():
                    assign[spec.worker_index[wn]] = spec.op_index[op]
            except (KeyError, TypeError, AttributeError):
                raise InputError(
                    "rung names a variant, worker or operator this scenario lacks",
                    file=file,
                    field=f"{where}rungs[{i}]",
                    value=r,
                ) from None
            rungs.append(PlanSignature(combo, tuple(assign)))
            if slo:
                scales.append(_scale_of(r, file, f"{where}rungs[{i}]"))
        if not rungs:
            raise InputError("no rungs", file=file, field=f"{where}rungs", value=raw)
        return cls(spec, rungs, scales if slo else None)

    @classmethod
    def from_plans(
        cls, spec: ServingSpec, plans: Sequence[Plan], scales: Sequence[float] | None = None
    ) -> PlanLadder:
        """A ladder of planner plans (each in the codec's repaired terms); ``scales``: the load
        level each covers within the SLO (default: its capacity)."""
        codec = ActionCodec(spec)
        return cls(spec, [codec.canonical_signature(p) for p in plans], scales)

    @classmethod
    def milp(
        cls,
        spec: ServingSpec,
        step: float = 0.05,
        top: float | None = None,
        time_limit: float = 10.0,
        latency_model: str = "queueing",
    ) -> PlanLadder:
        """The MILP ladder (:func:`jbrl.planning.ladder.ladder_plans`: a rung every ``step`` x
        nominal up to the largest sustainable scale); the greedy ladder when the MILP finds no
        plan even at the lowest level, so the action set is always valid. What ``jbrl train``
        builds."""
        rungs = ladder_plans(spec, step, top, time_limit, latency_model)
        if not rungs:
            return cls.greedy(spec)
        slo = spec.scenario.slo.bound_s is not None and latency_model != "none"
        return cls.from_plans(spec, [p for _, p in rungs], [s for s, _ in rungs] if slo else None)

    @classmethod
    def greedy(cls, spec: ServingSpec, top: float = 2.5, step: float = 0.05) -> PlanLadder:
        """A ladder from the greedy planner (no solver needed): the default of ``gym.make``
        when no ladder is given. Training builds it with the MILP instead (:meth:`milp`)."""
        codec = ActionCodec(spec)
        sigs = [codec.greedy_signature(spec.nominal * s) for s in np.arange(step, top + 1e-9, step)]
        return cls(spec, sigs)


def _scale_of(rung: Any, file: str, where: str) -> float:
    """A rung's ``scale`` from a ladder file (a positive number); ``where``: the rung's field."""
    s = rung.get("scale") if isinstance(rung, dict) else None
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise InputError("must have a positive scale", file=file, field=f"{where}.scale", value=s)
    return float(s)


def rung_key(spec: ServingSpec, sig: PlanSignature) -> tuple[Any, ...]:
    """What identifies a plan up to interchangeable workers: its combination and, per group of
    identical workers, how many run each operator."""
    counts = tuple(tuple(sorted(sig.assignment[w] for w in group)) for group in spec.groups)
    return (sig.combo, counts)


def _dollars_per_hour(codec: ActionCodec, sig: PlanSignature, scale: float) -> float:
    """Compute + communication $/hour of ``sig`` serving ``scale`` x the nominal rates."""
    spec = codec.spec
    rates = spec.nominal * max(scale, 1e-3)
    report = evaluate_plan(
        spec.scenario,
        codec.plan_of(sig, rates),
        dict(zip(spec.sources, rates.tolist(), strict=True)),
        accuracy_target=-math.inf,
    )
    return float(report.total_cost)


class RungCodec(ActionCodec):
    """A codec whose actions pick complete plans from a table (``0`` in the first dimension
    keeps the running plan): decoding is :meth:`resolve` (the table's signature, matched to the
    running workers) then :meth:`plan_of`; no worker-level repairs."""

    def decode(
        self,
        action: np.ndarray | Sequence[int],
        design_rates: np.ndarray,
        current: Any = None,
    ) -> Any:
        a = np.asarray(action, dtype=np.int64).reshape(-1)
        self.last_repairs = 0
        if int(a[0]) == 0 and current is not None:
            return current
        cur = self.signature(current) if current is not None else None
        sig, _ = self.resolve(a, cur)
        return self.plan_of(sig, design_rates)


class LadderCodec(RungCodec):
    """``MultiDiscrete([n_rungs + 1])``: 0 keeps the current plan, ``1 + j`` moves to rung ``j``.

    Every choice is always allowed (every rung is a valid plan). Moving to a rung keeps
    interchangeable workers where they are (:meth:`ActionCodec.match_current`), so going one
    rung up usually loads only the added workers. Any other plan (a planner's, a teacher's) is
    expressed as the cheapest rung whose capacity covers it in every operator.
    """

    def __init__(self, spec: ServingSpec, ladder: PlanLadder) -> None:
        super().__init__(spec)
        self.ladder = ladder
        self.nvec = np.array([len(ladder) + 1], dtype=np.int64)
        self._mask = np.ones(len(ladder) + 1, dtype=bool)
        self._index = {self._key(s): j for j, s in enumerate(ladder.rungs)}

    def _key(self, sig: PlanSignature) -> tuple[Any, ...]:
        return rung_key(self.spec, sig)

    def is_rung(self, sig: PlanSignature) -> bool:
        """Whether ``sig`` is one of the rungs (up to interchangeable workers)."""
        return self._key(sig) in self._index

    def rung_of(self, sig: PlanSignature) -> int:
        """The rung ``sig`` is (up to interchangeable workers), else the cheapest covering it."""
        j = self._index.get(self._key(sig))
        if j is not None:
            return j
        scale = float(np.min(self.capacity(sig) / self.spec.nominal_demand))
        return self.ladder.covering(scale)

    def keep_action(self) -> np.ndarray:
        return np.zeros(1, dtype=np.int64)

    def action_for(
        self, sig: PlanSignature, current: PlanSignature | None = None, keep: bool = False
    ) -> np.ndarray:
        if keep or (current is not None and self._key(sig) == self._key(current)):
            return self.keep_action()
        return np.array([1 + self.rung_of(sig)], dtype=np.int64)

    def resolve(self, a: np.ndarray, current: PlanSignature | None) -> tuple[PlanSignature, int]:
        x = int(np.asarray(a, dtype=np.int64).reshape(-1)[0])
        if x == 0 and current is not None:
            return current, 0
        j = max(x - 1, 0)
        sig = self.ladder.rungs[min(j, len(self.ladder) - 1)]
        if current is not None:
            sig = self.match_current(sig, current)
        return sig, 0

    def canonical_signature(self, plan: Any) -> PlanSignature:
        """A plan in ladder terms: its rung (the cheapest covering it)."""
        sig = super().canonical_signature(plan)
        return self.ladder.rungs[self.rung_of(sig)]
