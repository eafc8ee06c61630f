"""MILP-based reference controllers in the env's action space, for training and evaluation.

They drive :class:`~jbrl.envs.serving.ServingEnv` through the same action codec as PPO (plans
are re-expressed with capacity-proportional rates), so their figures compare like with like:

* ``reactive(h)``: re-solve the MILP each interval on the last observed rates x (1 + h); keep
  the current plan when it covers that load and costs no more (the MILP has many ties);
* ``oracle(h)``: the same on the true peak of the coming interval (clairvoyant; a reference);
* ``hysteresis(h, k, down_after, tol)``: target = max of the last k rates x (1 + h); scale up at
  once, down only after the cheaper plan has been cheaper for ``down_after`` intervals; among
  plans within ``tol`` of the cheapest for the target, the one with most capacity.

:class:`MilpCache` memoises MILP solutions on a grid of rates (1 % of nominal), so a long
evaluation solves each load level once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jbrl.envs.codec import ActionCodec, PlanSignature
from jbrl.envs.serving import ServingEnv
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace


class MilpCache:
    """MILP plans (as codec signatures) on a grid of source rates."""

    def __init__(
        self, scenario: Scenario, codec: ActionCodec, quantum: float = 0.01, **milp: Any
    ) -> None:
        from jbrl.planning import get_planner

        self.scenario = scenario
        self.codec = codec
        self.step = codec.spec.nominal * quantum
        self.planner = get_planner("milp", **{"time_limit": 10.0, **milp})
        self._cache: dict[tuple[int, ...], tuple[PlanSignature, float] | None] = {}
        self.solves = 0

    def key(self, rates: np.ndarray) -> tuple[int, ...]:
        return tuple(int(math.ceil(x - 1e-9)) for x in np.asarray(rates) / self.step)

    def plan(self, rates: np.ndarray) -> tuple[PlanSignature, float] | None:
        """(signature, MILP $/hour) for the grid point at or above ``rates``; None if infeasible."""
        k = self.key(rates)
        if k not in self._cache:
            r = np.array(k, dtype=float) * self.step
            res = self.planner.plan(
                self.scenario,
                rates=dict(zip(self.codec.spec.sources, r.tolist(), strict=True)),
                accuracy=self.codec.spec.accuracy,
            )
            self.solves += 1
            if not res.feasible or res.total_cost is None:
                self._cache[k] = None
            else:
                sig = self.codec.canonical_signature(res.plan)
                self._cache[k] = (sig, float(res.total_cost))
        return self._cache[k]

    def plan_or_max(self, rates: np.ndarray) -> PlanSignature:
        """The plan for ``rates``, or for the largest feasible scale of them (overload)."""
        got = self.plan(rates)
        scale = 1.0
        while got is None and scale > 0.05:
            scale *= 0.95
            got = self.plan(np.asarray(rates) * scale)
        if got is None:
            raise RuntimeError("the MILP finds no plan even at 5 % of the requested load")
        return got[0]

    def initial_plan(self, scenario: Scenario, rates: Mapping[str, float]) -> Plan:
        """For ``ServingEnv(initial_plan=...)``: the MILP plan at ``rates``."""
        r = self.codec.spec.rates_array(rates)
        return self.codec.plan_of(self.plan_or_max(r), r)


def plan_cost(codec: ActionCodec, sig: PlanSignature, rates: np.ndarray) -> float:
    """$/hour (compute + communication) of a signature at ``rates`` (cost model)."""
    report = evaluate_plan(
        codec.spec.scenario,
        codec.plan_of(sig, rates),
        dict(zip(codec.spec.sources, rates.tolist(), strict=True)),
        accuracy_target=-math.inf,
    )
    return report.total_cost


def covers(codec: ActionCodec, sig: PlanSignature, rates: np.ndarray, util: float = 1.0) -> bool:
    return bool(np.all(codec.capacity(sig) * util >= codec.spec.demand(rates) - 1e-9))


Expert = Callable[[ServingEnv], np.ndarray]


@dataclass
class Reactive:
    """MILP-reactive (see the module docstring)."""

    cache: MilpCache
    headroom: float = 0.2
    name: str = "milp-reactive"

    def reset(self) -> None:
        pass

    def target(self, env: ServingEnv) -> np.ndarray:
        return env.rate_history[-1] * (1.0 + self.headroom)

    def __call__(self, env: ServingEnv) -> np.ndarray:
        codec = env.codec
        target = self.target(env)
        assert env.sig is not None
        new = self.cache.plan_or_max(target)
        if new == env.sig:
            return codec.keep_action()
        cur_ok = covers(codec, env.sig, target)
        if cur_ok and plan_cost(codec, env.sig, target) <= plan_cost(codec, new, target) + 1e-6:
            return codec.keep_action()
        return codec.action_for(new)


@dataclass
class Oracle(Reactive):
    """MILP-oracle: plans for the true peak of the coming interval (clairvoyant)."""

    headroom: float = 0.0
    name: str = "milp-oracle"

    def target(self, env: ServingEnv) -> np.ndarray:
        assert env.trace is not None
        t = env.time_s
        return env.trace.max_array(t, t + env.config.interval_s) * (1.0 + self.headroom)


@dataclass
class Hysteresis:
    """MILP-hysteresis (see the module docstring)."""

    cache: MilpCache
    headroom: float = 0.2
    k: int = 3
    down_after: int = 5
    tol: float = 0.02
    name: str = "milp-hysteresis"
    _cheaper_for: int = field(default=0, init=False)

    def reset(self) -> None:
        self._cheaper_for = 0

    def best_for(self, codec: ActionCodec, target: np.ndarray) -> PlanSignature:
        base = self.cache.plan(target)
        if base is None:
            return self.cache.plan_or_max(target)
        best, cost = base
        limit = cost * (1.0 + self.tol) + 1e-9
        for j in range(1, 26):
            got = self.cache.plan(target * (1.0 + 0.02 * j))
            if got is None:
                break
            if got[1] <= limit:
                best = got[0]
        return best

    def __call__(self, env: ServingEnv) -> np.ndarray:
        codec = env.codec
        assert env.sig is not None
        target = np.max(np.array(env.rate_history[-self.k :]), axis=0) * (1.0 + self.headroom)
        keep = codec.keep_action()
        new = self.best_for(codec, target)
        if not covers(codec, env.sig, target):
            self._cheaper_for = 0
            return _apply(codec, new)
        cur_cost = plan_cost(codec, env.sig, target)
        new_cost = plan_cost(codec, new, target)
        if new_cost < cur_cost * (1.0 - self.tol):
            self._cheaper_for += 1
            if self._cheaper_for >= self.down_after:
                self._cheaper_for = 0
                return _apply(codec, new)
        else:
            self._cheaper_for = 0
        return keep


def _apply(codec: ActionCodec, sig: PlanSignature) -> np.ndarray:
    return codec.action_for(sig)


# --------------------------------------------------------------------------- evaluation


@dataclass
class EpisodeFigures:
    """Totals of one run of a controller over a trace."""

    dollars: float
    hours: float
    arrivals: float
    finished: float
    within_slo: float
    reconfigurations: int
    accuracy: float
    decision_ms: float

    @property
    def cost_per_hour(self) -> float:
        return self.dollars / self.hours if self.hours > 0 else 0.0

    @property
    def slo_attainment(self) -> float:
        return self.within_slo / self.finished if self.finished > 0 else math.nan

    def to_dict(self) -> dict[str, float]:
        return {
            "dollars": self.dollars,
            "cost_per_hour": self.cost_per_hour,
            "slo_attainment": self.slo_attainment,
            "reconfigurations": self.reconfigurations,
            "accuracy": self.accuracy,
            "decision_ms": self.decision_ms,
        }


def run_episode(
    env: ServingEnv,
    decide: Callable[[ServingEnv, np.ndarray], np.ndarray],
    trace: Trace,
    seed: int = 0,
) -> EpisodeFigures:
    """Run ``decide(env, obs) -> action`` over the whole of ``trace`` (one step per interval)."""
    import time

    obs, _ = env.reset(seed=seed, options={"trace": trace})
    steps = int(math.ceil(trace.duration / env.config.interval_s - 1e-9))
    dollars = arrivals = finished = within = acc = 0.0
    reconf = 0
    spent = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        action = decide(env, obs)
        spent += time.perf_counter() - t0
        obs, _, _, _, info = env.step(action)
        dollars += info["dollars"]
        arrivals += info["arrivals"]
        finished += info["finished"]
        within += info["within_slo"]
        reconf += info["reconfigurations"]
        acc += info["accuracy"] * info["arrivals"]
    return EpisodeFigures(
        dollars=dollars,
        hours=steps * env.config.interval_s / 3600.0,
        arrivals=arrivals,
        finished=finished,
        within_slo=within,
        reconfigurations=reconf,
        accuracy=acc / arrivals if arrivals > 0 else math.nan,
        decision_ms=1000.0 * spent / max(steps, 1),
    )


def expert_decider(expert: Any) -> Callable[[ServingEnv, np.ndarray], np.ndarray]:
    """Adapt an expert (``expert(env) -> action``) to :func:`run_episode`'s signature."""
    if hasattr(expert, "reset"):
        expert.reset()
    return lambda env, _obs: expert(env)


@dataclass
class Incremental(Hysteresis):
    """MILP-hysteresis whose re-solves pay ``penalty`` ($/hour units) per worker that must load
    a model it does not hold now (the MILP's ``reconfig_penalty``): changes are incremental,
    adding or removing workers rather than switching variant combinations."""

    penalty: float = 0.3
    name: str = "milp-incremental"
    _pcache: dict[tuple[Any, ...], PlanSignature | None] = field(default_factory=dict, init=False)

    def solve(self, env: ServingEnv, target: np.ndarray) -> PlanSignature:
        codec = env.codec
        assert env.sig is not None
        k = (self.cache.key(target), env.sig)
        if k not in self._pcache:
            from jbrl.planning import get_planner

            planner = get_planner("milp", time_limit=10.0, reconfig_penalty=self.penalty)
            r = np.array(k[0], dtype=float) * self.cache.step
            res = planner.plan(
                codec.spec.scenario,
                rates=dict(zip(codec.spec.sources, r.tolist(), strict=True)),
                accuracy=codec.spec.accuracy,
                current_plan=env.current_plan(),
            )
            self.cache.solves += 1
            self._pcache[k] = codec.canonical_signature(res.plan) if res.feasible else None
        got = self._pcache[k]
        return got if got is not None else self.cache.plan_or_max(target)

    def __call__(self, env: ServingEnv) -> np.ndarray:
        codec = env.codec
        assert env.sig is not None
        target = np.max(np.array(env.rate_history[-self.k :]), axis=0) * (1.0 + self.headroom)
        keep = codec.keep_action()
        if not covers(codec, env.sig, target):
            self._cheaper_for = 0
            new = self.solve(env, target)
            return keep if new == env.sig else _apply(codec, new)
        cheapest = self.cache.plan(target)
        cur_cost = plan_cost(codec, env.sig, target)
        if cheapest is not None and cheapest[1] < cur_cost * (1.0 - self.tol):
            self._cheaper_for += 1
            if self._cheaper_for >= self.down_after:
                self._cheaper_for = 0
                new = self.solve(env, target)
                return keep if new == env.sig else _apply(codec, new)
        else:
            self._cheaper_for = 0
        return keep
