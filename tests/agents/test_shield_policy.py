"""Any policy behind the SLO shield: the spec parameter, the wrapper, and the interventions the
evaluation reports per run (the same count the wrapper's verdicts give)."""

from __future__ import annotations

import math

import pytest

from jbrl.agents.policy import ControlState, Policy, get_policy, register_policy
from jbrl.agents.shield import ShieldedPolicy, shield_margin
from jbrl.cli.evaluate_cmd import with_shielded
from jbrl.errors import InputError
from jbrl.evaluation.report import markdown_table
from jbrl.evaluation.runner import evaluate
from jbrl.planning.coverage import coverage, plan_signature, scaled
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario import Scenario, scenario_from_dict
from jbrl.scenario.traces import constant_trace
from tests.conftest import tiny_scenario_dict


def bounded_tiny() -> Scenario:
    d = tiny_scenario_dict()
    d["slo"] = {"min_accuracy": 75.0, "latency_ms": 3000.0, "attainment": 0.99}
    return scenario_from_dict(d, "<shield>")


class ThinPolicy(Policy):
    """Always one edge CPU for detect (large) and the cloud CPU for track: too little for the
    nominal load."""

    name = "thin-test"

    def decide(self, state: ControlState) -> Plan:
        return plan_from_dict(
            {
                "model_assignment": {"detect": "large"},
                "worker_assignment": {"detect": [{"worker": "e1"}], "track": [{"worker": "c2"}]},
            }
        )


register_policy("thin-test", ThinPolicy)


def test_spec_parameter_wraps_any_policy() -> None:
    p = get_policy("autoscaler:shield=1.25")
    assert isinstance(p, ShieldedPolicy) and p.margin == 1.25 and p.name == "autoscaler+shield"
    assert isinstance(get_policy("milp-reactive:headroom=0.1:shield=on"), ShieldedPolicy)
    assert not isinstance(get_policy("milp-reactive:shield=off"), ShieldedPolicy)
    assert shield_margin("on") == pytest.approx(1.1) and shield_margin(None) is None
    for bad in ("0.5", "maybe", "inf"):
        with pytest.raises(InputError, match="shield is on, off or a margin"):
            get_policy(f"autoscaler:shield={bad}")
    assert with_shielded(["a", "b:shield=off"]) == ["a", "b:shield=off", "a:shield=on"]


def test_wrapper_replaces_an_under_provisioned_plan_by_a_scale_up() -> None:
    scen = bounded_tiny()
    p = get_policy("thin-test:shield=1.2")
    assert isinstance(p, ShieldedPolicy)
    p.reset(scen, 0)
    load = scen.nominal_rates()
    wanted = ThinPolicy().decide(ControlState(scen, 0.0, 60.0))
    plan = p.decide(ControlState(scen, 0.0, 60.0, rate_history=[load]))
    assert p.stats.interventions == 1 and p.verdicts[0].intervened
    assert plan_signature(scen, wanted) < plan_signature(scen, plan)
    assert coverage(scen, plan, scaled(load, 1.2)).covers


def test_evaluation_reports_interventions_per_run() -> None:
    scen = bounded_tiny()
    trace = constant_trace(scen, 600.0, scale=1.0)
    ev = evaluate(
        scen, {"const": trace}, ["thin-test", "thin-test:shield=on"], sim="fluid", seeds=1
    )
    plain = next(r for r in ev.runs if r.policy == "thin-test")
    shielded = next(r for r in ev.runs if r.policy == "thin-test:shield=on")
    assert plain.shield is None and plain.error is None and shielded.error is None
    assert shielded.shield is not None
    # every decision of the thin plan misses at nominal x 1.1: the shield replaces each one
    n = len(shielded.decision_ms)
    assert shielded.shield["decisions"] == n and shielded.shield["interventions"] == n
    assert shielded.totals["slo_attainment"] > plain.totals["slo_attainment"]
    row = ev.row("thin-test:shield=on", "const")
    assert row is not None and row.shield_interventions == n
    plain_row = ev.row("thin-test", "const")
    assert plain_row is not None and math.isnan(plain_row.shield_interventions)
    assert "| shield |" in markdown_table(ev)
    d = ev.to_dict(series=False, timings=False)
    assert d["runs"][1]["shield"]["interventions"] == n and "mean_ms" not in d["runs"][1]["shield"]
