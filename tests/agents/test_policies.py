"""The baseline control policies (jbrl.agents.rules): valid plans, keep-on-ties, hysteresis,
autoscaler, and the plan helpers they rest on."""

from __future__ import annotations

import math

import pytest

from jbrl.agents.policy import ControlState, get_policy, policy_names
from jbrl.agents.rules import (
    AutoscalerPolicy,
    coverage,
    effective_capacity,
    plan_signature,
    rescale_plan,
    scaled,
)
from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.scenario import Scenario, load_scenario
from jbrl.scenario.traces import constant_trace, generate_trace
from jbrl.sim.base import IntervalMetrics, empty_drops

SPECS = [
    "milp-reactive:headroom=0.2",
    "milp-hysteresis",
    "milp-oracle",
    "oracle:windows=16",
    "milp-static",
    "milp-static-peak",
    "jellybean",
    "jellybean-reactive:headroom=0.1",
    "autoscaler",
]
STRUCTURAL = {
    "unknown_operator",
    "unknown_variant",
    "unknown_worker",
    "missing_variant",
    "unknown_flow_endpoint",
    "worker_reused",
    "no_profile",
    "backward_traffic",
    "routing_mismatch",
    "accuracy_below_target",
    "accuracy_unknown",
}


@pytest.fixture(scope="module")
def vqa() -> Scenario:
    return load_scenario("vqa")


def state(s: Scenario, plan=None, history=None, t=0.0, metrics=None, lookahead=None):
    return ControlState(s, t, 60.0, plan, list(history or []), metrics, lookahead)


def metrics(s: Scenario, rates: dict[str, float], util: dict[str, float]) -> IntervalMetrics:
    return IntervalMetrics(
        t_start=0.0,
        duration=60.0,
        arrivals=0.0,
        completed=0.0,
        within_slo=0.0,
        dropped=empty_drops(),
        in_flight_start=0.0,
        in_flight=0.0,
        latency_ms={"p50": 1.0, "p95": 1.0, "p99": 1.0, "mean": 1.0},
        utilization={},
        wait_ms={},
        operator_backlog={o: 0.0 for o in util},
        operator_utilization=dict(util),
        compute_dollars=0.0,
        communication_dollars=0.0,
        rates=dict(rates),
    )


def test_registered():
    names = set(policy_names())
    assert {s.split(":")[0] for s in SPECS} <= names


@pytest.mark.parametrize("which", ["vqa", "jellybean"])
@pytest.mark.parametrize("spec", SPECS)
def test_decides_a_valid_plan(spec, which, vqa, jellybean):
    s = vqa if which == "vqa" else jellybean
    policy = get_policy(spec)
    policy.reset(s, 0)
    trace = generate_trace("diurnal", 1800, seed=3, sources=s, params={"mean": 0.8})
    look = trace if policy.clairvoyant else None
    plan = policy.decide(state(s, lookahead=look))
    rates = plan.meta.get("rates") or s.nominal_rates()
    report = evaluate_plan(s, plan, rates)
    assert not [v for v in report.violations if v.kind in STRUCTURAL], report.violations
    assert report.accuracy is not None and report.accuracy >= s.slo.min_accuracy - 1e-9
    # and a second decision, after an interval at the trace's rates
    hist = [trace.rates_at(0.0)]
    plan2 = policy.decide(state(s, plan, hist, 60.0, metrics(s, hist[0], {}), look))
    report2 = evaluate_plan(s, plan2, plan2.meta.get("rates") or rates)
    assert not [v for v in report2.violations if v.kind in STRUCTURAL]


def test_reactive_keeps_the_plan_under_constant_load(vqa):
    policy = get_policy("milp-reactive:headroom=0.1")
    policy.reset(vqa, 0)
    rates = scaled(vqa.nominal_rates(), 0.9)
    plan = policy.decide(state(vqa, history=[rates]))
    for i in range(4):
        nxt = policy.decide(state(vqa, plan, [rates] * (i + 2), 60.0 * (i + 1)))
        assert nxt is plan  # ties and equal re-solves keep the running plan: no reconfiguration


def test_reactive_keeps_a_covering_plan_that_is_not_dearer(vqa):
    policy = get_policy("milp-reactive:headroom=0")
    policy.reset(vqa, 0)
    high = scaled(vqa.nominal_rates(), 1.2)
    plan = policy.decide(state(vqa, history=[high]))
    # a slightly lower load that the same plan covers at the optimal cost keeps it
    lower = scaled(vqa.nominal_rates(), 1.19)
    nxt = policy.decide(state(vqa, plan, [high, lower], 60.0))
    cov = coverage(vqa, plan, lower)
    assert cov.covers
    assert nxt is plan or evaluate_plan(vqa, nxt, lower).total_cost < cov.cost


def test_reactive_re_plans_when_load_leaves_the_plan(vqa):
    policy = get_policy("milp-reactive:headroom=0")
    policy.reset(vqa, 0)
    low = scaled(vqa.nominal_rates(), 0.6)
    high = scaled(vqa.nominal_rates(), 1.5)
    plan = policy.decide(state(vqa, history=[low]))
    up = policy.decide(state(vqa, plan, [low, high], 60.0))
    assert up is not plan and coverage(vqa, up, high).covers


def test_hysteresis_scales_up_at_once_and_down_late(vqa):
    policy = get_policy("milp-hysteresis:headroom=0:window=1:down_after=3:tolerance=0.02")
    policy.reset(vqa, 0)
    low = scaled(vqa.nominal_rates(), 0.6)
    high = scaled(vqa.nominal_rates(), 1.6)
    plan = policy.decide(state(vqa, history=[low]))
    assert coverage(vqa, plan, low).covers
    hist = [low]
    # up: the first interval at the high load re-plans
    hist.append(high)
    up = policy.decide(state(vqa, plan, hist, 60.0))
    assert up is not plan and coverage(vqa, up, high).covers
    # down: the cheaper plan is taken only after down_after intervals of saving
    plan = up
    for i in range(2):
        hist.append(low)
        nxt = policy.decide(state(vqa, plan, hist, 120.0 + 60 * i))
        assert nxt is plan, f"scaled down after {i + 1} interval(s)"
    hist.append(low)
    down = policy.decide(state(vqa, plan, hist, 240.0))
    assert down is not plan
    assert coverage(vqa, down, low).cost < coverage(vqa, plan, low).cost


def test_hysteresis_prefers_free_capacity(vqa):
    """Within the cost tolerance it takes the plan that covers the most load."""
    rates = scaled(vqa.nominal_rates(), 0.7)
    roomy = get_policy("milp-hysteresis:headroom=0:tolerance=0.05")
    tight = get_policy("milp-reactive:headroom=0")
    for p in (roomy, tight):
        p.reset(vqa, 0)
    a = roomy.decide(state(vqa, history=[rates]))
    b = tight.decide(state(vqa, history=[rates]))
    ca, cb = coverage(vqa, a, rates), coverage(vqa, b, rates)
    assert ca.cost <= cb.cost * 1.05 + 1e-9
    assert effective_capacity(vqa, a, rates) >= effective_capacity(vqa, b, rates) - 1e-9


def test_oracle_reads_the_coming_peak(vqa):
    policy = get_policy("milp-oracle")
    assert policy.clairvoyant
    policy.reset(vqa, 0)
    with pytest.raises(InputError):
        policy.decide(state(vqa))
    trace = constant_trace(vqa, 600, scale=1.4)
    plan = policy.decide(state(vqa, lookahead=trace))
    assert coverage(vqa, plan, trace.peak()).covers


def test_static_plans_once_for_the_peak(vqa):
    policy = get_policy("milp-static")
    policy.reset(vqa, 0)
    trace = generate_trace("step", 1200, sources=vqa, params={"low": 0.5, "high": 1.5})
    plan = policy.decide(state(vqa, lookahead=trace))
    assert coverage(vqa, plan, trace.peak()).covers
    low = trace.rates_at(0.0)
    assert policy.decide(state(vqa, plan, [low], 60.0, lookahead=trace)) is plan


def test_autoscaler_adds_workers_where_requests_queue(vqa):
    """An operator whose workers hold many ongoing requests gets more workers at once (the
    upscale delay is shorter than an interval); the plan stays valid."""
    policy = AutoscalerPolicy()
    policy.reset(vqa, 0)
    rates = vqa.nominal_rates()
    plan = policy.decide(state(vqa, history=[rates]))
    ops = [o.name for o in vqa.operators]
    n0 = {o: len(plan.worker_assignment[o]) for o in ops}
    hot = ops[0]
    m = metrics(vqa, rates, {**dict.fromkeys(ops, 0.3), hot: 1.0})
    m.operator_backlog[hot] = 40.0  # no per-worker figures: busy x workers, or the backlog
    up = policy.decide(state(vqa, plan, [rates], 60.0, m))
    assert len(up.worker_assignment[hot]) > n0[hot]
    assert not [v for v in evaluate_plan(vqa, up, rates).violations if v.kind in STRUCTURAL]


def test_bad_parameters_are_input_errors():
    for spec in (
        "milp-reactive:headroom=-1",
        "milp-reactive:bogus=1",
        "milp-hysteresis:window=0",
        "autoscaler:target=0",
        "milp-reactive:headroom=abc",
        "milp-reactive:grid=-0.01",
        "milp-hysteresis:grid=1",
    ):
        with pytest.raises(InputError):
            get_policy(spec)


def test_policies_that_plan_alike_share_one_memo_when_asked(vqa):
    """PlanCache.share: teachers that differ only in their rule (headroom here) reuse each
    other's solves, with the same plans; other planner options keep their own memo."""
    nominal = vqa.nominal_rates()
    stores: dict = {}
    first = get_policy("milp-reactive:headroom=0.1:grid=0.01")
    second = get_policy("milp-reactive:headroom=0.2:grid=0.01")
    other = get_policy("milp-reactive:headroom=0.2:grid=0.01:max_util=0.8")
    for p in (first, second, other):
        p.cache.share(stores)
        p.reset(vqa, 0)
    plan = first.decide(state(vqa, history=[scaled(nominal, 1.0)]))
    again = second.decide(state(vqa, history=[scaled(nominal, 1.1 / 1.2)]))  # the same target
    assert first.cache.solves == 1 and second.cache.solves == 0
    assert again.worker_assignment == plan.worker_assignment
    other.decide(state(vqa, history=[scaled(nominal, 1.1 / 1.2)]))
    assert other.cache.solves == 1 and len(stores) == 2


def test_grid_rounds_targets_up_and_memoizes(vqa):
    """``grid=0.01``: targets become multiples of 1 % of the nominal rates, rounded up, so
    nearby loads reuse one solve; without a grid (the default) targets are exact."""
    nominal = vqa.nominal_rates()
    policy = get_policy("milp-reactive:headroom=0.1:grid=0.01")
    exact = get_policy("milp-reactive:headroom=0.1")
    policy.reset(vqa, 0)
    loads = [scaled(nominal, f) for f in (0.901, 0.9015, 0.902)]
    plans = [policy.decide(state(vqa, history=[r])) for r in loads]
    assert policy.cache.solves == 1 and all(
        p.meta["rates"] == plans[0].meta["rates"] for p in plans
    )
    for src, v in plans[0].meta["rates"].items():
        step = 0.01 * nominal[src]
        assert v >= loads[-1][src] * 1.1 - 1e-9 and abs(v / step - round(v / step)) < 1e-6
    exact.reset(vqa, 0)
    plan = exact.decide(state(vqa, history=[loads[0]]))
    assert plan.meta["rates"] == pytest.approx(scaled(loads[0], 1.1), rel=1e-12)


def test_lookahead_only_for_clairvoyant_policies(vqa):
    """The one Policy -> run-loop adapter hands the true trace to clairvoyant policies only."""
    from jbrl.agents.policy import policy_decider
    from jbrl.sim.rollout import DecisionPoint

    seen = []

    class Probe(AutoscalerPolicy):
        def decide(self, st):
            seen.append(st.lookahead)
            return super().decide(st)

    trace = constant_trace(vqa.nominal_rates(), 600.0)
    point = DecisionPoint(0.0, 60.0, None, [], None)
    for clairvoyant in (False, True):
        probe = Probe()
        probe.clairvoyant = clairvoyant
        probe.reset(vqa, 0)
        policy_decider(probe, vqa, trace)(point)
    assert seen == [None, trace]


def test_rescale_and_coverage(vqa):
    from jbrl.planning import get_planner

    rates = scaled(vqa.nominal_rates(), 1.2)
    plan = get_planner("milp").plan(vqa, rates).plan
    own = coverage(vqa, plan, rates)
    assert own.covers and own.utilization <= 1 + 1e-6
    assert math.isclose(own.cost, evaluate_plan(vqa, plan, rates).total_cost, rel_tol=1e-6)
    assert not coverage(vqa, plan, scaled(rates, 1.5)).covers
    assert effective_capacity(vqa, plan, rates) >= max(rates.values()) * (1 - 1e-6)
    half = rescale_plan(vqa, plan, scaled(rates, 0.5))
    assert half is not None and plan_signature(vqa, half) == plan_signature(vqa, plan)
    assert evaluate_plan(vqa, half, scaled(rates, 0.5)).feasible
