"""The combination ladder: an action design where the agent picks the variant combination and the
capacity level, and the SLO-aware MILP has placed each pair in advance.

With ``EnvConfig.action: combo_ladder`` the action is "keep the running plan" or a pair
(combination, level). For every variant combination the MILP itself plans over (those meeting
the accuracy target, less those another dominates: :func:`jbrl.planning.ladder
.admitted_combinations`) :class:`ComboLadder` holds a :class:`~jbrl.envs.ladder.PlanLadder` of
plans *restricted to that combination*, one per load level (:func:`jbrl.planning.ladder
.combo_ladder_plans`), with the ladder's dominance pruning applied within the combination. A
combination without a feasible plan at any level is left out.

Levels are shared by every combination: level ``k`` is the load ``levels[k]`` x nominal, and
(combination ``i``, level ``k``) deploys the cheapest rung of combination ``i`` that serves it
(within the SLO where the scenario has a bound). A combination whose top rung serves less than
``levels[k]`` deploys its top rung: every pair is a valid plan, so no action is ever masked.

Why: the 1-D ladder (:mod:`jbrl.envs.ladder`) lets the solver choose the combination for each
level, so the agent cannot trade a cheaper combination against the model loads a switch costs.
Here that trade is the agent's: moving between levels of one combination keeps the workers that
stay (the MILP's rungs extend the rung below, and interchangeable workers are matched to the
running plan), so only added workers load; switching combinations reloads every worker.
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
from jbrl.envs.ladder import PlanLadder, RungCodec, rung_key
from jbrl.errors import InputError
from jbrl.planning.greedy import greedy_plan
from jbrl.planning.ladder import admitted_combinations, combo_ladder_plans, ladder_levels
from jbrl.planning.tables import ServingSpec

COMBO_LADDER_FILE = "combo_ladder.json"


class ComboLadder:
    """One plan ladder per variant combination, and the load levels shared by all of them.

    ``ladders[i]``: the rungs of combination ``combos[i]`` (an index into ``spec.combos``), every
    rung of that combination; ``levels``: increasing multiples of the nominal rates.
    ``rung_at[i, k]``: the rung (combination, level) deploys - the cheapest of ``ladders[i]``
    covering ``levels[k]``, its top rung when none does.
    """

    def __init__(
        self, spec: ServingSpec, ladders: Sequence[PlanLadder], levels: Sequence[float]
    ) -> None:
        if not ladders:
            raise InputError("a combination ladder needs a combination", field="combinations")
        lv = np.asarray(levels, dtype=float)
        if lv.size == 0 or not np.all(np.isfinite(lv)) or lv[0] <= 0 or np.any(np.diff(lv) <= 0):
            raise InputError("must be increasing positive numbers", field="levels", value=levels)
        combos = []
        for i, ladder in enumerate(ladders):
            own = {sig.combo for sig in ladder.rungs}
            if len(own) != 1:
                raise InputError(
                    "a combination's rungs must all use it", field=f"combinations[{i}]"
                )
            combos.append(own.pop())
        if len(set(combos)) != len(combos):
            raise InputError("a combination appears twice", field="combinations", value=combos)
        self.spec = spec
        self.ladders = list(ladders)
        self.combos: list[int] = combos
        self.levels = lv
        self.basis = self.ladders[0].basis
        self.rung_at = np.array([[lad.covering(float(x)) for x in lv] for lad in self.ladders])

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def signature(self, i: int, k: int) -> PlanSignature:
        """The plan of (combination ``i``, level ``k``); ``k`` past the last level: the last."""
        k = min(max(int(k), 0), self.n_levels - 1)
        return self.ladders[i].rungs[int(self.rung_at[i, k])]

    def level_of(self, i: int, j: int) -> int:
        """The level that stands for rung ``j`` of combination ``i``: the highest level that
        deploys it and that it serves (the load it was planned for; a top rung is deployed by
        the levels above it too, which it does not serve), else the lowest that deploys it; for
        a rung no level deploys, the first level at or above its scale."""
        ks = np.flatnonzero(self.rung_at[i] == j)
        served = ks[self.levels[ks] <= self.ladders[i].scale[j] + 1e-9]
        if served.size:
            return int(served[-1])
        if ks.size:
            return int(ks[0])
        k = int(np.searchsorted(self.levels, self.ladders[i].scale[j] - 1e-9))
        return min(k, self.n_levels - 1)

    def cheapest_covering(self, scale: float) -> tuple[int, int]:
        """(combination, rung) of the cheapest rung of any combination covering ``scale`` x
        nominal; when none does, the top rung of the combination reaching furthest."""
        best: tuple[float, int, int] | None = None
        for i, lad in enumerate(self.ladders):
            j = lad.covering(scale)
            if lad.scale[j] >= scale - 1e-9 and (best is None or lad.dollars[j] < best[0]):
                best = (float(lad.dollars[j]), i, j)
        if best is not None:
            return best[1], best[2]
        i = int(np.argmax([lad.scale[-1] for lad in self.ladders]))
        return i, len(self.ladders[i]) - 1

    def for_spec(self, spec: ServingSpec) -> ComboLadder:
        """The same rungs and levels over ``spec`` (the same scenario with, e.g., other model
        load times: the indices are the same)."""
        slo = self.basis == "slo"
        ladders = [
            PlanLadder(spec, lad.rungs, lad.scale.tolist() if slo else None) for lad in self.ladders
        ]
        return ComboLadder(spec, ladders, self.levels.tolist())

    # ------------------------------------------------------------------ builders

    @classmethod
    def milp(
        cls,
        spec: ServingSpec,
        step: float = 0.05,
        time_limit: float = 10.0,
        latency_model: str = "queueing",
        processes: int = 1,
    ) -> ComboLadder:
        """The MILP's ladders (:func:`jbrl.planning.ladder.combo_ladder_plans`, a level every
        ``step`` x nominal, ``processes`` spawned processes solving them); the greedy ladders
        when the MILP finds no plan for any combination, so the action set is always valid.
        What ``jbrl train`` builds."""
        built = combo_ladder_plans(spec, step, time_limit, latency_model, processes)
        if not built:
            return cls.greedy(spec, step=step)
        slo = spec.scenario.slo.bound_s is not None and latency_model != "none"
        ladders = [
            PlanLadder.from_plans(
                spec, [p for _, p in rungs], [s for s, _ in rungs] if slo else None
            )
            for _, rungs in built
        ]
        return cls(spec, ladders, _grid(ladders, step))

    @classmethod
    def greedy(cls, spec: ServingSpec, top: float = 2.5, step: float = 0.05) -> ComboLadder:
        """Ladders of the greedy planner restricted to each admitted combination (no solver):
        the default of ``gym.make`` when no ladder is given."""
        codec = ActionCodec(spec)
        ladders = []
        for c in admitted_combinations(spec):
            sigs = []
            for s in ladder_levels(top, step):
                plan = greedy_plan(spec, spec.nominal * s, [c])
                if plan is not None:
                    sigs.append(codec.canonical_signature(plan))
            if sigs:
                ladders.append(PlanLadder(spec, sigs))
        return cls(spec, ladders, _grid(ladders, step))

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "scenario": spec.scenario.name,
            "accuracy": spec.accuracy,
            "scale_basis": self.basis,
            "levels": [round(float(x), 6) for x in self.levels],
            "combinations": [
                {"variants": dict(spec.combos[c]), "rungs": lad.to_dict()["rungs"]}
                for c, lad in zip(self.combos, self.ladders, strict=True)
            ],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", "utf-8")
        return path

    @classmethod
    def load(cls, spec: ServingSpec, path: str | Path) -> ComboLadder:
        """A ladder file of :meth:`to_dict`'s form, checked against ``spec`` (InputError naming
        the file, the field and the value)."""
        file = str(path)
        data = load_json(path)
        if not isinstance(data, dict):
            raise InputError("must be a JSON object (a combination ladder)", file=file, value=data)
        basis = data.get("scale_basis")
        if basis not in ("slo", "capacity"):
            raise InputError(
                "must be 'slo' or 'capacity'", file=file, field="scale_basis", value=basis
            )
        levels = _levels_of(data.get("levels"), file)
        raw = data.get("combinations")
        if not isinstance(raw, list) or not raw:
            raise InputError("must be a non-empty list", file=file, field="combinations", value=raw)
        ladders = []
        seen: set[tuple[str, ...]] = set()
        for i, entry in enumerate(raw):
            ladders.append(_combination_of(spec, entry, basis, file, f"combinations[{i}]", seen))
        return cls(spec, ladders, levels)


def _grid(ladders: Sequence[PlanLadder], step: float) -> list[float]:
    """The shared levels: every ``step`` up to the highest scale any combination covers."""
    return ladder_levels(max(float(lad.scale[-1]) for lad in ladders), step)


def _levels_of(levels: Any, file: str) -> list[float]:
    """``levels`` of a ladder file: a non-empty list of increasing positive numbers."""
    ok = isinstance(levels, list) and bool(levels)
    for x in levels if ok else []:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
            ok = False
    if ok and np.any(np.diff(np.asarray(levels, dtype=float)) <= 0):
        ok = False
    if not ok:
        raise InputError(
            "must be a non-empty list of increasing positive numbers",
            file=file,
            field="levels",
            value=levels,
        )
    return [float(x) for x in levels]


def _combination_of(
    spec: ServingSpec,
    entry: Any,
    basis: str,
    file: str,
    where: str,
    seen: set[tuple[str, ...]],
) -> PlanLadder:
    """One ``combinations[i]`` entry of a ladder file: its variants (a combination of ``spec``,
    not seen before) and its rungs (all of that combination)."""
    variants = entry.get("variants") if isinstance(entry, dict) else None
    key = tuple(variants.get(o) for o in spec.ops) if isinstance(variants, dict) else None
    if key is None or key not in spec.combo_index:
        raise InputError(
            "is not a variant combination of this scenario meeting its accuracy target",
            file=file,
            field=f"{where}.variants",
            value=variants,
        )
    if key in seen:
        raise InputError("appears twice", file=file, field=f"{where}.variants", value=variants)
    seen.add(key)
    assert isinstance(entry, dict)
    rungs = entry.get("rungs")
    ladder = PlanLadder.from_dict(spec, {"scale_basis": basis, "rungs": rungs}, file, f"{where}.")
    assert isinstance(rungs, list)
    for j, r in enumerate(rungs):
        if r.get("variants") != variants:
            raise InputError(
                "a rung must use its combination's variants",
                file=file,
                field=f"{where}.rungs[{j}].variants",
                value=r.get("variants"),
            )
    return ladder


class ComboLadderCodec(RungCodec):
    """``MultiDiscrete([n_combos + 1, n_levels])``: ``a[0] = 0`` keeps the running plan (``a[1]``
    is then ignored); ``a[0] = 1 + i`` deploys combination ``i`` of the ladder at level
    ``a[1]``. A level beyond the combination's top rung deploys its top rung (see
    :class:`ComboLadder`), so every action is valid and the mask is all true.

    Deploying keeps interchangeable workers where they are (:meth:`ActionCodec.match_current`),
    so a level change within a combination loads only the workers it adds. Any other plan (a
    planner's, a teacher's) is expressed as a rung: its own if it is one, else the cheapest rung
    covering it - in its own combination when that is one of the ladder's, else in any.
    """

    has_level = True

    def __init__(self, spec: ServingSpec, table: ComboLadder) -> None:
        super().__init__(spec)
        self.table = table
        self.nvec = np.array([len(table.combos) + 1, table.n_levels], dtype=np.int64)
        self._mask = np.ones(int(self.nvec.sum()), dtype=bool)
        self._pos = {c: i for i, c in enumerate(table.combos)}
        self._index = {
            rung_key(spec, sig): (i, j)
            for i, lad in enumerate(table.ladders)
            for j, sig in enumerate(lad.rungs)
        }

    def snap(self, sig: PlanSignature) -> tuple[int, int]:
        """(combination, rung) that ``sig`` is, up to interchangeable workers; else the
        cheapest rung covering its capacity (class docstring)."""
        got = self._index.get(rung_key(self.spec, sig))
        if got is not None:
            return got
        scale = float(np.min(self.capacity(sig) / self.spec.nominal_demand))
        i = self._pos.get(sig.combo)
        if i is not None:
            return i, self.table.ladders[i].covering(scale)
        return self.table.cheapest_covering(scale)

    def position(self, sig: PlanSignature) -> tuple[int, int]:
        """(combination, level) of the running plan: ``sig``'s rung and the level deploying it;
        combination -1 when ``sig``'s combination is none of the ladder's (e.g. a greedy start),
        with the level of the rung that would cover it."""
        i, j = self.snap(sig)
        k = self.table.level_of(i, j)
        return (i if sig.combo == self.table.combos[i] else -1), k

    def level_fraction(self, sig: PlanSignature) -> float:
        """The running level as the observation carries it: ``(k + 1) / n_levels`` (1: top)."""
        return (self.position(sig)[1] + 1) / self.table.n_levels

    def keep_action(self) -> np.ndarray:
        return np.zeros(2, dtype=np.int64)

    def action_for(
        self, sig: PlanSignature, current: PlanSignature | None = None, keep: bool = False
    ) -> np.ndarray:
        if keep or (
            current is not None and rung_key(self.spec, sig) == rung_key(self.spec, current)
        ):
            return self.keep_action()
        i, j = self.snap(sig)
        return np.array([1 + i, self.table.level_of(i, j)], dtype=np.int64)

    def resolve(self, a: np.ndarray, current: PlanSignature | None) -> tuple[PlanSignature, int]:
        a = np.asarray(a, dtype=np.int64).reshape(-1)
        x = int(a[0])
        if x == 0 and current is not None:
            return current, 0
        i = min(max(x - 1, 0), len(self.table.combos) - 1)
        sig = self.table.signature(i, int(a[1]))
        if current is not None:
            sig = self.match_current(sig, current)
        return sig, 0

    def canonical_signature(self, plan: Any) -> PlanSignature:
        """A plan in ladder terms: its rung (:meth:`snap`)."""
        i, j = self.snap(super().canonical_signature(plan))
        return self.table.ladders[i].rungs[j]
