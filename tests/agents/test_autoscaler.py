"""The autoscaler baseline: Ray Serve's replica-count rule step by step (jbrl.agents.rules.
serve_rule) and the policy on vqa in the fluid simulator: steady load, steps, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jbrl.agents.policy import get_policy, policy_decider
from jbrl.agents.rules.serve_rule import (
    DelayState,
    LookBack,
    ServeAutoscalingConfig,
    apply_bounds,
    apply_scaling_factors,
    desired_replicas,
    stable_downscale,
)
from jbrl.errors import InputError
from jbrl.planning.coverage import effective_capacity, plan_signature, served_rates
from jbrl.scenario import Scenario, load_scenario
from jbrl.scenario.traces import Trace, constant_trace
from jbrl.sim import make_simulator
from jbrl.sim.rollout import BaseObserver, SimResult, rollout

CFG = ServeAutoscalingConfig()


# --------------------------------------------------------------------------- the rule


def test_defaults_are_ray_serves():
    assert (CFG.target_ongoing_requests, CFG.min_replicas) == (2.0, 1)
    assert (CFG.upscale_delay_s, CFG.downscale_delay_s, CFG.look_back_period_s) == (30, 600, 30)
    assert CFG.upscaling_factor == CFG.downscaling_factor == 1.0


def test_desired_replicas_is_ongoing_over_target():
    assert desired_replicas(10.0, 3, 2.0) == pytest.approx(5.0)
    assert desired_replicas(1.0, 4, 2.0) == pytest.approx(0.5)
    assert desired_replicas(7.0, 0, 2.0) == 4.0


def test_scaling_factors_smooth_and_never_stall_a_downscale():
    assert apply_scaling_factors(9.0, 3, CFG) == 9
    half = ServeAutoscalingConfig(upscaling_factor=0.5, downscaling_factor=0.5)
    assert apply_scaling_factors(9.0, 3, half) == 6  # 3 + 0.5 * 6
    assert apply_scaling_factors(1.0, 4, half) == 3  # ceil(4 - 1.5) = 3
    tiny = ServeAutoscalingConfig(downscaling_factor=0.1)
    assert apply_scaling_factors(2.0, 4, tiny) == 3  # ceil(3.8) = 4 would stall: one less


def test_bounds():
    assert apply_bounds(0, CFG, 5) == 1
    assert apply_bounds(9, CFG, 5) == 5
    assert apply_bounds(9, ServeAutoscalingConfig(max_replicas=3), 5) == 3
    assert apply_bounds(1, ServeAutoscalingConfig(min_replicas=2, max_replicas=3), 5) == 2


def test_delays_in_intervals():
    d = DelayState()
    assert d.decide(5, 3, 60.0, CFG) == 5  # 60 s wanted >= 30 s: at once
    for _ in range(9):  # 9 x 60 s < 600 s
        assert d.decide(2, 3, 60.0, CFG) == 3
    assert d.decide(2, 3, 60.0, CFG) == 2
    for _ in range(5):
        d.decide(2, 3, 60.0, CFG)
    d.decide(3, 3, 60.0, CFG)  # no change wanted: the clock restarts
    for _ in range(9):
        assert d.decide(2, 3, 60.0, CFG) == 3
    slow = ServeAutoscalingConfig(upscale_delay_s=120.0)
    d = DelayState()
    assert d.decide(4, 3, 60.0, slow) == 3
    assert d.decide(4, 3, 60.0, slow) == 4


def test_look_back_averages_the_period():
    lb = LookBack(30.0)
    assert lb.add(60.0, {"a": 4.0}) == {"a": 4.0}
    assert lb.add(60.0, {"a": 2.0}) == {"a": 2.0}  # 30 s < one interval: the last one
    lb = LookBack(120.0)
    lb.add(60.0, {"a": 4.0})
    assert lb.add(60.0, {"a": 2.0})["a"] == pytest.approx(3.0)
    assert lb.add(60.0, {"a": 0.0})["a"] == pytest.approx(1.0)


def test_stable_downscale_keeps_a_count_that_would_scale_up_again():
    # 8 replicas at 50 % busy, M/M/1-like: 8 requests ongoing, 4 wanted by the rule; at 4 the
    # replicas would be saturated, at 5 (80 %) 20 ongoing > 2 x 5: 6 (67 %) is the stable one
    assert stable_downscale(8, 4, 8.0, 4.0, 8.0, 2.0) == 6
    assert stable_downscale(8, 4, 8.0, 4.0, 8.0, 2.0, margin=0.5) == 8
    assert stable_downscale(8, 2, 2.0, 0.8, 8.0, 2.0) == 2  # light load: the full step
    assert stable_downscale(4, 5, 1.0, 1.0, 8.0, 2.0) == 4  # not a downscale


def test_bad_parameters():
    for spec in (
        "autoscaler:target=0",
        "autoscaler:min=0",
        "autoscaler:min=3:max=2",
        "autoscaler:down_delay=-1",
        "autoscaler:up_factor=0",
        "autoscaler:margin=1",
        "autoscaler:high=0.8",
        "autoscaler:design=-1",
        "autoscaler:design=nan",
    ):
        with pytest.raises(InputError):
            get_policy(spec)


# --------------------------------------------------------------------------- the policy


@pytest.fixture(scope="module")
def vqa() -> Scenario:
    return load_scenario("vqa")


class Plans(BaseObserver):
    def __init__(self) -> None:
        self.plans: list[tuple[float, object]] = []
        self.changes: list[float] = []

    def on_decision(self, point, plan, changed) -> None:
        self.plans.append((point.time_s, plan))
        if changed:
            self.changes.append(point.time_s)


def run(s: Scenario, trace: Trace, spec: str = "autoscaler") -> tuple[SimResult, Plans]:
    pol = get_policy(spec)
    pol.reset(s, 0)
    ob = Plans()
    res = rollout(
        make_simulator("fluid"), s, trace, policy_decider(pol, s, trace), seed=0, observers=[ob]
    )
    return res, ob


def attainment(res: SimResult, start: float, end: float = math.inf) -> float:
    ms = [m for m in res.intervals if start <= m.t_start < end]
    return sum(m.within_slo for m in ms) / sum(m.completed + m.dropped_total for m in ms)


def test_steady_load_settles_at_static_attainment(vqa):
    """Constant 1.35x nominal (the issue's case: the threshold rule attained 0.1 %): settled
    after 30 min, no plan change, attainment >= static's - 1 point; deterministic."""
    trace = constant_trace(vqa, 7200.0, scale=1.35)
    res, ob = run(vqa, trace)
    static, _ = run(vqa, trace, "milp-static")
    assert [t for t in ob.changes if t >= 1800.0] == []
    settled = attainment(res, 1800.0)
    assert settled >= min(0.99, attainment(static, 1800.0) - 0.01)
    again, ob2 = run(vqa, trace)
    assert again.totals.to_dict() == res.totals.to_dict()
    assert [plan_signature(vqa, p) for _, p in ob2.plans] == [
        plan_signature(vqa, p) for _, p in ob.plans
    ]


@pytest.mark.parametrize(
    ("scale", "spec"),
    [(1.0, "autoscaler:target=0.75"), (1.35, "autoscaler:target=0.75:design=1.5")],
)
def test_steady_load_on_a_heterogeneous_fleet(scale: float, spec: str) -> None:
    """vehicle: the only free workers that run the detector are CPUs at 4.4 s a frame. At a
    steady 1.0x the autoscaler used to re-place onto them and settle at 79 % (static: 100 %);
    now a replica or re-placement predicted to serve worse is not taken. At 1.35x the models
    of the cheapest 1x plan sustain only 1.02x; ``design=1.5`` picks models for the peak."""
    vehicle = load_scenario("vehicle")
    trace = constant_trace(vehicle, 3600.0, scale=scale)
    res, _ = run(vehicle, trace, spec)
    static, _ = run(vehicle, trace, "milp-static")
    assert attainment(static, 600.0) >= 0.99
    assert attainment(res, 600.0) >= 0.99
    if scale > 1.02:  # without design the deployments' models cannot carry the load
        short, _ = run(vehicle, trace, "autoscaler:target=0.75")
        assert attainment(short, 600.0) < 0.9


def test_scales_up_on_a_step_and_down_after_the_delay(vqa):
    low, high = vqa.nominal_rates(), {k: 1.4 * v for k, v in vqa.nominal_rates().items()}
    names = list(low)
    times = [0.0, 1800.0, 3600.0]
    rows = [[low[n] for n in names], [high[n] for n in names], [low[n] for n in names]]
    trace = Trace(np.array(times), np.array(rows), tuple(names), 5400.0, "step")
    res, ob = run(vqa, trace)
    plans = dict(ob.plans)

    def capacity(t: float) -> float:
        return effective_capacity(vqa, plans[t], high)

    def workers(t: float) -> int:
        return sum(len(ws) for ws in served_rates(vqa, plans[t]).values())

    assert capacity(1740.0) < 1.4 * max(low.values())  # sized for the low load
    assert capacity(1860.0) > capacity(1740.0)  # up at the first decision that sees the step
    assert attainment(res, 2400.0, 3600.0) >= 0.99
    n_high = workers(3600.0)
    # down only after the 600 s downscale delay (10 intervals that want fewer replicas)
    assert all(workers(t) == n_high for t in range(3660, 3600 + 600, 60))
    assert workers(5340.0) < n_high
