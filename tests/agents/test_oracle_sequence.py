"""``oracle`` (jbrl.agents.rules.sequence): the dynamic programme is exact, the bound is never
dearer than MILP-static where both are feasible, load downtime is charged, and the answer is
deterministic."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from jbrl.agents.policy import ControlState, get_policy, policy_names
from jbrl.agents.rules import OraclePolicy, cheapest_sequence, coverage
from jbrl.agents.rules.sequence import SwitchCheck
from jbrl.errors import InputError
from jbrl.evaluation.runner import evaluate
from jbrl.planning.plan import Plan, WorkerShare
from jbrl.scenario import Scenario, scenario_from_dict
from jbrl.scenario.traces import Trace
from tests.conftest import tiny_scenario_dict

STEP_S = 300.0


def brute_force(step_cost, switch):
    """The least total cost over every sequence (the definition the DP must meet)."""
    n_steps, n = len(step_cost), len(step_cost[0])
    best = None
    for seq in itertools.product(range(n), repeat=n_steps):
        sw = [switch(k, seq[k - 1], seq[k]) for k in range(1, n_steps) if seq[k] != seq[k - 1]]
        risk = sum(step_cost[k][c][0] for k, c in enumerate(seq)) + sum(x[0] for x in sw)
        usd = sum(step_cost[k][c][1] for k, c in enumerate(seq)) + sum(x[1] for x in sw)
        best = (risk, usd) if best is None or (risk, usd) < best else best
    return best


@pytest.mark.parametrize("seed", range(6))
def test_dp_matches_brute_force_on_random_problems(seed):
    rng = np.random.default_rng(seed)
    n_steps, n = 5, 4
    step_cost = [
        [(float(rng.choice([0.0, 0.0, 3.0])), float(rng.uniform(1, 5))) for _ in range(n)]
        for _ in range(n_steps)
    ]
    pen = rng.choice([0.0, 0.0, 1.0, 4.0], size=(n_steps, n, n))
    usd = rng.choice([0.0, 0.5, 2.0], size=(n_steps, n, n))
    asked = []

    def switch(k, a, b):
        asked.append((k, a, b))
        return (float(pen[k, a, b]), float(usd[k, a, b]))

    seq, cost = cheapest_sequence(step_cost, switch)
    want = brute_force(step_cost, lambda k, a, b: (float(pen[k, a, b]), float(usd[k, a, b])))
    assert cost == pytest.approx(want)
    # the sequence it returns costs what it says
    again = brute_force([[step_cost[k][c]] for k, c in enumerate(seq)], lambda *_: (0.0, 0.0))
    sw = [switch(k, seq[k - 1], seq[k]) for k in range(1, n_steps) if seq[k] != seq[k - 1]]
    assert (again[0] + sum(x[0] for x in sw), again[1] + sum(x[1] for x in sw)) == pytest.approx(
        cost
    )
    assert all(k >= 1 and a != b for k, a, b in asked)  # staying and the first step cost no check


def test_dp_edge_cases():
    free = lambda *_: (0.0, 0.0)  # noqa: E731
    assert cheapest_sequence([], free) == ([], (0.0, 0.0))
    assert cheapest_sequence([[(0.0, 2.0), (0.0, 1.0)]], free) == ([1], (0.0, 1.0))
    with pytest.raises(ValueError):
        cheapest_sequence([[(0.0, 1.0)], []], free)
    # an unsafe switch is worth any number of dollars: stay in the dear plan
    cost = [[(0.0, 1.0), (0.0, 5.0)], [(0.0, 10.0), (0.0, 5.0)]]
    assert cheapest_sequence(cost, lambda k, a, b: (1.0, 0.0))[0] == [1, 1]
    assert cheapest_sequence(cost, free)[0] == [0, 1]
    # priced in dollars instead, it is worth switching when the saving is larger
    assert cheapest_sequence(cost, lambda k, a, b: (0.0, 3.0))[0] == [0, 1]
    assert cheapest_sequence(cost, lambda k, a, b: (0.0, 6.0))[0] == [1, 1]


@pytest.fixture(scope="module")
def slow_tiny() -> Scenario:
    """The tiny scenario with 120 s model loads (a switch costs a sizeable share of a step)."""
    d = tiny_scenario_dict()
    d["default_load_s"] = 120.0
    return scenario_from_dict(d, "<tiny-slow>")


@pytest.fixture(scope="module")
def swings() -> Trace:
    """Load that swings between low and high every 5 minutes."""
    vals = np.array([[5.0], [25.0], [8.0], [30.0], [6.0], [20.0]])
    return Trace(np.arange(len(vals)) * STEP_S, vals, ("cam",), len(vals) * STEP_S)


def test_registered_and_parameters():
    assert "oracle" in policy_names()
    p = get_policy("oracle:windows=4,1:headroom=0.1")
    assert isinstance(p, OraclePolicy) and p.clairvoyant
    assert p.windows == (1, 4) and p.headroom == pytest.approx(0.1)
    for bad in ("oracle:windows=0", "oracle:windows=a", "oracle:windows=", "oracle:nope=1"):
        with pytest.raises(InputError):
            get_policy(bad)


def test_needs_the_lookahead(slow_tiny):
    p = get_policy("oracle")
    p.reset(slow_tiny, 0)
    with pytest.raises(InputError):
        p.decide(ControlState(slow_tiny, 0.0, STEP_S))


def test_real_problem_dp_is_optimal_and_plans_cover(slow_tiny, swings):
    """On the tiny scenario: the DP's answer is the brute-force optimum of the policy's own
    problem (over every sequence of its candidates), every step's plan covers the step's peak,
    and no switch is unsafe."""
    p = OraclePolicy(windows="1,2")
    pb = p.problem(slow_tiny, swings.with_duration(4 * STEP_S), STEP_S)
    assert len(pb.candidates) >= 3
    for price in (math.inf, 1e-3):
        seq, cost = cheapest_sequence(pb.step_cost, pb.switch_cost(price))
        assert cost == pytest.approx(brute_force(pb.step_cost, pb.switch_cost(price)))
    seq, cost = cheapest_sequence(pb.step_cost, pb.switch_cost(math.inf))
    assert pb.total(seq) == pytest.approx(cost)
    assert cost[0] == 0.0
    for (t0, t1), c in zip(pb.steps, seq, strict=True):
        assert coverage(slow_tiny, pb.candidates[c], swings.max_over(t0, t1)).covers


def test_switch_check_charges_the_load_downtime(slow_tiny):
    """A switch is safe when the new plan without its loading workers covers the load during
    the load time; one that reloads every worker of an operator never is; staying is free."""
    track = [WorkerShare("c2")]
    gpu = Plan({"detect": "large"}, {"detect": [WorkerShare("c1")], "track": track})
    edge = Plan(
        {"detect": "large"}, {"detect": [WorkerShare("e1"), WorkerShare("e2")], "track": track}
    )
    both = Plan(
        {"detect": "large"},
        {"detect": [WorkerShare(w) for w in ("e1", "e2", "c1")], "track": track},
    )
    steps = [(0.0, STEP_S), (STEP_S, 2 * STEP_S)]

    def check(rate):
        trace = Trace(np.array([0.0]), np.array([[rate]]), ("cam",), 2 * STEP_S)
        required = [{"cam": rate}, {"cam": rate}]
        return SwitchCheck(slow_tiny, trace, [gpu, edge, both], required, steps, None)

    low, high = check(2.0), check(25.0)
    assert coverage(slow_tiny, edge, {"cam": 2.0}).covers
    assert not coverage(slow_tiny, edge, {"cam": 25.0}).covers
    assert coverage(slow_tiny, gpu, {"cam": 25.0}).covers
    assert low.penalty(1, 0, 1) == pytest.approx(2.0 * 120.0)  # gpu -> edge: detect all down
    assert low.penalty(1, 1, 2) == 0.0  # edge -> both: e1, e2 carry 2 req/s while c1 loads
    assert high.penalty(1, 1, 2) > 0  # ... but not 25 req/s
    assert high.penalty(1, 0, 2) == 0.0  # gpu -> both: c1 carries 25 req/s while e1, e2 load
    assert high.penalty(1, 2, 2) == 0.0
    assert low.degraded(0, 1) == (None, 120.0)


def test_never_dearer_than_static_and_deterministic(slow_tiny, swings):
    """Simulated (fluid): oracle's $ <= MILP-static's, both at >= 99 % attainment, while
    MILP-oracle, which ignores the load time, misses it; two runs give the same plans."""
    specs = ["milp-static", "milp-oracle", "oracle:windows=1,2"]
    ev = evaluate(slow_tiny, {"swings": swings}, specs, sim="fluid", interval=STEP_S)
    rows = {r.policy: r for r in ev.summary}
    static, oracle = rows["milp-static"], rows["oracle:windows=1,2"]
    assert static.slo_attainment >= 0.99 and oracle.slo_attainment >= 0.99
    assert oracle.dollars <= static.dollars * (1 + 1e-9)
    assert rows["milp-oracle"].slo_attainment < 0.99
    one = OraclePolicy(windows="1,2").schedule(slow_tiny, swings, STEP_S)
    two = OraclePolicy(windows="1,2").schedule(slow_tiny, swings, STEP_S)
    assert one.plans == two.plans  # plans compare without their meta (solve times)
    assert one.info["unsafe_switches"] == 0 and one.info["uncovered_steps"] == 0


def test_playback_keeps_the_plan_object(slow_tiny, swings):
    """Between changes it returns the very same plan (the run loop's "keep")."""
    p = OraclePolicy(windows="1")
    p.reset(slow_tiny, 0)
    st = ControlState(slow_tiny, 0.0, STEP_S, lookahead=swings)
    plans = [
        p.decide(ControlState(slow_tiny, k * STEP_S, STEP_S, lookahead=swings)) for k in range(6)
    ]
    assert p.last_schedule is not None
    assert plans == p.last_schedule.plans
    assert p.decide(st) is plans[0]
    assert p.decide(ControlState(slow_tiny, 99 * STEP_S, STEP_S, lookahead=swings)) is plans[-1]


def test_fresh_oracles_share_the_schedule_but_not_across_load_times(slow_tiny, swings):
    """A benchmark builds a fresh policy per seed: the second oracle on the same scenario and
    trace plays the first one's sequence back (no solve), while other load times, which decide
    which switches are safe, get their own sequence."""
    d = tiny_scenario_dict()
    d["default_load_s"] = 1.0
    quick_loads = scenario_from_dict(d, "<tiny-quick>")

    def first_schedule(scenario: Scenario) -> object:
        p = OraclePolicy(windows="1,3")
        p.reset(scenario, 0)
        p.decide(ControlState(scenario, 0.0, STEP_S, lookahead=swings))
        return p.last_schedule

    one, two = first_schedule(slow_tiny), first_schedule(slow_tiny)
    assert one is two
    other = first_schedule(quick_loads)
    assert other is not one and other is not None


def test_headroom_plans_cover_the_peak_with_margin(slow_tiny, swings):
    p = OraclePolicy(windows="1", headroom="0.2")
    sched = p.schedule(slow_tiny, swings, STEP_S)
    assert sched.info["uncovered_steps"] == 0
    for k, plan in enumerate(sched.plans):
        peak = swings.max_over(k * STEP_S, (k + 1) * STEP_S)
        assert coverage(slow_tiny, plan, {s: v * 1.2 for s, v in peak.items()}).covers


def test_risk_budget_trades_dollars_for_requests_at_risk(slow_tiny, swings):
    """A larger budget never costs more; every schedule keeps within its budget, and a zero
    budget allows no request at risk where a safe sequence exists."""
    strict = OraclePolicy(windows="1,2", risk_budget="0").schedule(slow_tiny, swings, STEP_S)
    loose = OraclePolicy(windows="1,2", risk_budget="1").schedule(slow_tiny, swings, STEP_S)
    assert strict.info["switch_risk"] == 0.0
    assert loose.info["switch_risk"] <= loose.info["risk_budget"] + 1e-9
    assert loose.info["predicted_dollars"] <= strict.info["predicted_dollars"] + 1e-9
    with pytest.raises(InputError):
        get_policy("oracle:risk_budget=2")
