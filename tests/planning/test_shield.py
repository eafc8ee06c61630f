"""The SLO shield (jbrl.planning.shield): a plan predicted to miss the SLO at the observed load x
margin is replaced by a scale-up of it that the latency model predicts meets the target; a plan
that meets it runs unchanged; verdicts are deterministic."""

from __future__ import annotations

from typing import Any

import pytest

from jbrl.errors import InputError
from jbrl.planning.coverage import coverage, plan_signature, scaled
from jbrl.planning.milp import MilpPlanner
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.planning.shield import SloShield
from jbrl.scenario import Scenario, scenario_from_dict
from tests.conftest import tiny_scenario_dict


@pytest.fixture(scope="module")
def scen() -> Scenario:
    d = tiny_scenario_dict()
    d["slo"] = {"min_accuracy": 75.0, "latency_ms": 3000.0, "attainment": 0.99}
    return scenario_from_dict(d, "<shield>")


def thin_plan() -> Plan:
    """detect (large) on one edge CPU, track on the cloud CPU: made for a light load."""
    return plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": [{"worker": "e1"}], "track": [{"worker": "c2"}]},
        }
    )


def test_under_provisioned_plan_is_scaled_up_and_keeps_every_wanted_worker(
    scen: Scenario,
) -> None:
    shield = SloShield(scen, margin=1.2)
    wanted = thin_plan()
    load = scen.nominal_rates()
    need = shield.target(load)
    assert not coverage(scen, wanted, need).covers  # the premise: it misses at load x 1.2
    v = shield.check(wanted, load)
    assert v.intervened and not v.missed and v.scale_up
    assert "below the target" in v.reason or "capacity" in v.reason
    got = coverage(scen, v.plan, need)
    assert got.covers and got.attainment is not None and got.attainment >= 0.99
    before, after = plan_signature(scen, wanted), plan_signature(scen, v.plan)
    assert before < after and v.added_workers == len(after - before) >= 1
    assert v.plan.model_assignment.get("detect") == "large"
    assert v.cost > v.wanted_cost
    # the cheapest such scale-up: no plan that keeps the wanted workers is cheaper
    best = MilpPlanner(current_plan=wanted, keep_current=True, variants={"detect": "large"}).plan(
        scen, shield._rounded(need)
    )
    assert best.feasible and v.cost <= best.total_cost * (1 + 1e-6) + 1e-9
    assert shield.stats.interventions == shield.stats.scale_ups == shield.stats.decisions == 1


def test_a_plan_that_meets_the_target_passes_unchanged(scen: Scenario) -> None:
    shield = SloShield(scen, margin=1.1)
    load = scaled(scen.nominal_rates(), 0.5)
    ok = MilpPlanner().plan(scen, scaled(load, 1.5)).plan
    v = shield.check(ok, load)
    assert not v.intervened and v.plan is ok and v.reason == ""
    assert shield.stats.interventions == 0 and shield.stats.decisions == 1


def test_verdicts_are_deterministic_and_memoized(scen: Scenario) -> None:
    load = scen.nominal_rates()
    a = SloShield(scen, margin=1.2).check(thin_plan(), load)
    s2 = SloShield(scen, margin=1.2)
    b = s2.check(thin_plan(), load)
    c = s2.check(thin_plan(), load)  # memoized
    assert body(a.plan) == body(b.plan) == body(c.plan)
    assert a.reason == b.reason == c.reason and a.cost == b.cost
    assert s2.stats.interventions == 2


def body(plan: Plan) -> dict[str, Any]:
    """The plan without its meta (which carries the solve time)."""
    d = plan.to_dict()
    return {k: d.get(k) for k in ("model_assignment", "worker_assignment", "routing")}


def test_no_plan_meets_it_the_wanted_plan_runs_and_the_verdict_says_so(scen: Scenario) -> None:
    shield = SloShield(scen, margin=1.0)
    load = scaled(scen.nominal_rates(), 50.0)  # far beyond every worker together
    v = shield.check(thin_plan(), load)
    assert v.missed and not v.intervened and v.plan.to_json() == thin_plan().to_json()
    assert "no plan meets the target" in v.reason
    assert shield.stats.missed == 1 and shield.stats.interventions == 0


def test_down_workers_are_not_added(scen: Scenario) -> None:
    v = SloShield(scen, margin=1.2).check(thin_plan(), scen.nominal_rates(), down={"e2"})
    assert v.intervened
    assert "e2" not in {w for w, _, _ in plan_signature(scen, v.plan)}


def test_bad_margin_is_refused(scen: Scenario) -> None:
    with pytest.raises(InputError, match="shield.margin"):
        SloShield(scen, margin=0.9)
