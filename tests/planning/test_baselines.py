"""Baselines (cloud-only, most-accurate) and the planner interface they share."""

from __future__ import annotations

import pytest

from jbrl.errors import InputError
from jbrl.planning import Planner, PlanResult, get_planner, planner_names, register_planner
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.plan import Plan, plan_from_dict
from tests.conftest import PLAN_JSON_KEYS


def test_registry_names_and_protocol():
    assert {"milp", "jellybean", "cloud-only", "most-accurate"} <= set(planner_names())
    for name in ("milp", "jellybean", "cloud-only", "most-accurate"):
        p = get_planner(name)
        assert isinstance(p, Planner)
        assert p.name == name
    with pytest.raises(InputError):
        get_planner("simulated-annealing")
    with pytest.raises(InputError):
        get_planner("milp", no_such_option=1)


def test_register_planner(tiny):
    class Fixed:
        name = "fixed"

        def plan(self, scenario, rates=None, accuracy=None):
            return get_planner("milp").plan(scenario, rates, accuracy)

    register_planner("fixed", Fixed)
    assert get_planner("fixed").plan(tiny).feasible


@pytest.mark.parametrize("name", ["milp", "jellybean", "cloud-only", "most-accurate"])
def test_output_keys_and_plan_round_trip(jellybean, name):
    res = get_planner(name).plan(jellybean)
    assert isinstance(res, PlanResult) and isinstance(res.plan, Plan)
    d = res.to_dict()
    assert set(d) >= PLAN_JSON_KEYS
    assert res.feasible
    # the written JSON is a plan the cost model reads back, with the same total
    back = plan_from_dict(d)
    report = evaluate_plan(jellybean, back)
    assert report.violations == []
    assert report.total_cost == pytest.approx(d["total_cost"], rel=1e-9)
    assert back.meta["solver"] == name


def test_cloud_only_uses_top_tier(jellybean):
    res = get_planner("cloud-only").plan(jellybean)
    assert res.status == "optimal"
    used = {s.worker for shares in res.plan.worker_assignment.values() for s in shares}
    assert used and all(jellybean.worker_tier[w] == 1 for w in used)
    optimum = get_planner("milp").plan(jellybean)
    assert res.total_cost > optimum.total_cost * 2  # what JellyBean's paper argues
    assert res.accuracy >= jellybean.slo.min_accuracy


def test_most_accurate(jellybean):
    res = get_planner("most-accurate").plan(jellybean)
    assert res.accuracy == pytest.approx(jellybean.best_accuracy())
    assert res.total_cost >= get_planner("milp").plan(jellybean).total_cost
    assert get_planner("most-accurate").plan(jellybean, accuracy=60).status == "infeasible"


def test_baselines_infeasible_with_numbers(jellybean):
    res = get_planner("cloud-only").plan(jellybean, {"ReadImage": 400, "ReadSpeech": 400})
    assert res.status == "infeasible"
    assert 0 < res.reason["max_rate_scale"] < 1
    res = get_planner("most-accurate").plan(jellybean, {"ReadImage": 60, "ReadSpeech": 60})
    assert res.status == "infeasible"
    assert res.reason["max_rate_accuracy"] == pytest.approx(58.33)
    assert 0 < res.reason["max_rate_scale"] < 1


def test_baseline_options_pass_through(jellybean):
    res = get_planner("cloud-only", max_util=0.5).plan(jellybean)
    report = evaluate_plan(jellybean, res.plan)
    for load in report.operators.values():
        for w in load.workers:
            assert w.rate <= 0.5 * w.capacity * (1 + 1e-6)
