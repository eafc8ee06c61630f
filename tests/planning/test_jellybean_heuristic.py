"""JellyBean's heuristic: reproduces the published plan on its own inputs; plans that pass the
cost model; the end-to-end-table fallback; honest infeasibility."""

from __future__ import annotations

import pytest

from jbrl.planning import get_planner
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.jellybean import JellyBeanPlanner
from jbrl.scenario.synth import synth_scenario
from tests.conftest import JELLYBEAN_REFERENCE_PLAN


def test_reproduces_published_plan(jellybean):
    res = get_planner("jellybean").plan(jellybean)
    assert res.status == "feasible"
    assert res.plan.model_assignment == JELLYBEAN_REFERENCE_PLAN["model_assignment"]
    got = {op: [s.worker for s in shares] for op, shares in res.plan.worker_assignment.items()}
    want = {
        op: [w["worker"] for w in shares]
        for op, shares in JELLYBEAN_REFERENCE_PLAN["worker_assignment"].items()
    }
    assert got == want  # same workers, in JellyBean's fill order
    assert res.compute_cost == pytest.approx(6.242)
    assert res.communication_cost == pytest.approx(1.2667783, abs=1e-6)
    assert res.accuracy == pytest.approx(56.59)
    assert res.extra["variant_ranking"].startswith("beam search")


def test_rates_are_jellybeans_fill_order(jellybean):
    res = get_planner("jellybean").plan(jellybean)
    ref = evaluate_plan(jellybean, res.plan.without_routing())
    for op, shares in res.plan.worker_assignment.items():
        for s in shares:
            cap = jellybean.capacity(op, res.plan.model_assignment[op], s.worker)
            assert s.rate <= cap * (1 + 1e-9)
    assert ref.violations == []


def test_beam_search_candidates(jellybean):
    cands = JellyBeanPlanner().beam_search(jellybean, 56.0)
    assert cands is not None and len(cands) >= 1
    first = cands[0]
    assert first.assignment["ExtractImageFeature"] == "resnet18"
    assert first.assignment["SpeechRecognition"] == "wav2vec2-large-960h-lv60-self"
    costs = [c.model_cost for c in cands]
    assert costs == sorted(costs)
    assert all(c.accuracy is not None for c in cands)


@pytest.mark.parametrize(
    "rates,acc",
    [(None, 54.0), ({"ReadImage": 30, "ReadSpeech": 30}, 56.0), ({"ReadImage": 50}, 57.0)],
)
def test_heuristic_plans_pass_cost_model(jellybean, rates, acc):
    res = get_planner("jellybean").plan(jellybean, rates, acc)
    assert res.feasible
    full = {**jellybean.nominal_rates(), **(rates or {})}
    report = evaluate_plan(jellybean, res.plan, full, acc)
    assert report.violations == []
    assert report.total_cost == pytest.approx(res.extra["heuristic_cost"], rel=1e-9)
    assert res.total_cost == pytest.approx(report.total_cost)


def test_gap_to_milp_on_vqa(jellybean):
    h = get_planner("jellybean").plan(jellybean)
    m = get_planner("milp").plan(jellybean)
    gap = h.total_cost / m.total_cost - 1
    assert 0 <= gap < 0.01  # the published plan is 0.3 % above the optimum


def test_infeasible_accuracy(jellybean):
    res = get_planner("jellybean").plan(jellybean, accuracy=60)
    assert res.status == "infeasible"
    assert res.reason["best_reachable_accuracy"] == pytest.approx(58.33)
    assert res.reason["max_rate_scale"] > 0


def test_infeasible_rate(jellybean):
    res = get_planner("jellybean").plan(jellybean, {"ReadImage": 1000, "ReadSpeech": 1000})
    assert res.status == "infeasible"
    assert res.reason["max_rate_scale"] < 1


def test_fallback_without_per_operator_profiles():
    s = synth_scenario(operators=4, variants=3, workers=40, tiers=3, shape="diamond", seed=2)
    assert not s.accuracy.per_operator
    res = get_planner("jellybean").plan(s)
    assert res.feasible
    assert res.extra["variant_ranking"].startswith("end-to-end table")
    assert evaluate_plan(s, res.plan).violations == []
    assert res.accuracy >= s.slo.min_accuracy
    milp = get_planner("milp", latency_model="none").plan(s)  # both capacity-only
    assert milp.total_cost <= res.total_cost + 1e-9


def test_operators_never_below_their_inputs():
    s = synth_scenario(operators=4, variants=2, workers=30, tiers=3, shape="fanout", seed=3)
    res = get_planner("jellybean").plan(s)
    assert res.feasible
    tiers = {
        op: [s.worker_tier[w.worker] for w in ws] for op, ws in res.plan.worker_assignment.items()
    }
    for e in s.edges:
        if e.source in tiers:  # JellyBean places v from the highest tier of its inputs upward
            assert min(tiers[e.target]) >= max(tiers[e.source])


def test_deterministic(jellybean):
    a = get_planner("jellybean").plan(jellybean).to_dict()
    b = get_planner("jellybean").plan(jellybean).to_dict()
    a.pop("solve_time_s")
    b.pop("solve_time_s")
    assert a == b


def test_options_validated():
    from jbrl.errors import InputError

    with pytest.raises(InputError):
        JellyBeanPlanner(beam_k=0)
    with pytest.raises(InputError):
        JellyBeanPlanner(max_util=1.5)
