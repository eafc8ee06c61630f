"""The controller's SLO shield: a policy's under-provisioned plan is replaced by a scale-up
before the checks; the interventions agree between the decision log, summary.json's counters
and /metrics; with the shield off the plan goes to the checks (and the MILP fallback) as it is."""

from __future__ import annotations

import math
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from jbrl.agents.policy import ControlState, Policy
from jbrl.planning.coverage import plan_signature
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario.traces import constant_trace
from tests.control.test_control import (
    control_scenario,
    decisions,
    make_controller,
    run_and_scrape_metrics,
)


class ThinPolicy(Policy):
    """detect (large) on one edge CPU, track on the cloud CPU: too little at 0.9 x nominal."""

    name = "thin"

    def decide(self, state: ControlState) -> Plan:
        return plan_from_dict(
            {
                "model_assignment": {"detect": "large"},
                "worker_assignment": {"detect": [{"worker": "e1"}], "track": [{"worker": "c2"}]},
            }
        )


def test_shield_interventions_agree_between_log_summary_and_metrics(tmp_path: Path) -> None:
    scen = control_scenario()
    trace = constant_trace(scen, math.inf, scale=0.9)
    ctl = make_controller(scen, trace, tmp_path, ThinPolicy(), duration=100.0)
    summary, raw = run_and_scrape_metrics(ctl)
    fams = {f.name: f for f in text_string_to_metric_families(raw.decode())}
    ds = decisions(tmp_path)
    logged = sum(1 for d in ds if d["shield"] and d["shield"]["intervened"])
    assert logged >= 1
    assert summary["counters"]["shield_interventions"] == logged
    assert fams["jbrl_shield_interventions"].samples[0].value == logged
    thin = plan_signature(scen, ThinPolicy().decide(ControlState(scen, 0.0, 20.0)))
    for d in ds:
        if d["shield"] and d["shield"]["intervened"] and d["source"] == "policy":
            # the shield's scale-up ran (it passed the checks): every wanted worker kept
            assert d["shield"]["scale_up"]
            assert thin <= plan_signature(scen, plan_from_dict(d["plan"]))


def test_shield_off_leaves_the_plan_to_the_checks(tmp_path: Path) -> None:
    scen = control_scenario()
    trace = constant_trace(scen, math.inf, scale=0.9)
    ctl = make_controller(scen, trace, tmp_path, ThinPolicy(), duration=60.0, shield=False)
    try:
        summary = ctl.run()
    finally:
        ctl.close()
    ds = decisions(tmp_path)
    assert all(d["shield"] is None for d in ds)
    assert summary["counters"].get("shield_interventions", 0) == 0
    assert summary["counters"]["fallbacks"] >= 1  # the thin plan fails latency_at_risk
