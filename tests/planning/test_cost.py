"""Cost model: the JellyBean reference plan (golden) and constraint checks."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jbrl.planning.cost import evaluate_plan
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario import scenario_from_dict
from tests.conftest import JELLYBEAN_REFERENCE_PLAN, tiny_scenario_dict

TINY = scenario_from_dict(tiny_scenario_dict(), "<tiny>")


def kinds(report):
    return {v.kind for v in report.violations}


def test_jellybean_reference_plan_golden(jellybean):
    report = evaluate_plan(jellybean, plan_from_dict(JELLYBEAN_REFERENCE_PLAN))
    assert report.compute_cost == pytest.approx(6.242, abs=1e-9)
    assert report.communication_cost == pytest.approx(1.2667783, abs=1e-4)
    assert report.accuracy == pytest.approx(56.59)
    assert report.feasible, report.violations
    # fill order: cpu-1 runs at its full capacity, cpu-5 takes the rest
    eif = report.operators["ExtractImageFeature"]
    assert eif.workers[0].rate == pytest.approx(1000 / 135.08435991666667)
    assert eif.served == pytest.approx(40.0)


def test_explicit_routing_equal_to_proportional_costs_the_same(jellybean):
    base = evaluate_plan(jellybean, plan_from_dict(JELLYBEAN_REFERENCE_PLAN))
    routed = dict(JELLYBEAN_REFERENCE_PLAN)
    routed["routing"] = [
        {"edge": list(f.edge), "from": f.sender, "to": f.receiver, "rate": f.rate}
        for f in base.flows
    ]
    report = evaluate_plan(jellybean, plan_from_dict(routed))
    assert report.feasible, report.violations
    assert report.communication_cost == pytest.approx(base.communication_cost, rel=1e-9)


def test_violations_are_named(jellybean):
    plan = copy.deepcopy(JELLYBEAN_REFERENCE_PLAN)
    plan["model_assignment"]["SpeechRecognition"] = "wav2vec2-base-960h"  # accuracy 54.02
    plan["worker_assignment"]["VQA"].append({"worker": "workflow-compute-cpu-1"})  # reused
    plan["worker_assignment"]["ExtractImageFeature"] = [{"worker": "workflow-compute-cpu-1"}]
    plan["worker_assignment"]["SpeechRecognition"].append({"worker": "nope"})
    report = evaluate_plan(jellybean, plan_from_dict(plan))
    assert {"accuracy_below_target", "worker_reused", "capacity_short", "unknown_worker"} <= kinds(
        report
    )
    assert report.invalid


def test_backward_traffic_is_a_violation(jellybean):
    plan = copy.deepcopy(JELLYBEAN_REFERENCE_PLAN)
    # VQA on a tier-0 worker receives from gpu-1 (tier 1): backward
    plan["worker_assignment"]["VQA"] = [{"worker": "workflow-compute-cpu-4"}]
    report = evaluate_plan(jellybean, plan_from_dict(plan))
    assert "backward_traffic" in kinds(report)


def test_unknown_variant_and_operator(jellybean):
    plan = copy.deepcopy(JELLYBEAN_REFERENCE_PLAN)
    plan["model_assignment"]["ExtractImageFeature"] = "resnet9000"
    plan["worker_assignment"]["Nope"] = [{"worker": "workflow-compute-cpu-4"}]
    report = evaluate_plan(jellybean, plan_from_dict(plan))
    assert {"unknown_variant", "unknown_operator"} <= kinds(report)


def test_explicit_rate_above_capacity(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {
                "detect": [{"worker": "e1", "rate": 6.0}, {"worker": "e2", "rate": 4.0}],
                "track": [{"worker": "c2"}],
            },
        }
    )
    report = evaluate_plan(tiny, plan)
    assert "capacity_exceeded" in kinds(report)  # large on edge: 5 req/s


def test_tiny_cost_by_hand(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": [{"worker": "c1"}], "track": [{"worker": "c2"}]},
        }
    )
    report = evaluate_plan(tiny, plan)
    assert report.feasible, report.violations
    assert report.compute_cost == pytest.approx(1.4)
    # cam (edge) -> c1 (cloud): 10 req/s * 100 KB at 0.5 $/GB; c1 -> c2 same tier: free
    assert report.communication_cost == pytest.approx(10 * 100 * 0.5 * 3600 / 1024**2)


def test_idle_workers_cost_nothing(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {
                "detect": [{"worker": "c1"}, {"worker": "e1"}],
                "track": [{"worker": "c2"}],
            },
        }
    )
    report = evaluate_plan(tiny, plan)
    assert report.compute_cost == pytest.approx(1.4)  # e1 serves nothing: c1 covers 10 req/s


@settings(max_examples=60, deadline=None)
@given(
    variant=st.sampled_from(["small", "large"]),
    det=st.lists(st.sampled_from(["e1", "e2", "c1", "c2"]), min_size=0, max_size=4, unique=True),
    trk=st.lists(st.sampled_from(["e1", "e2", "c1", "c2"]), min_size=0, max_size=2, unique=True),
    rate=st.floats(0.0, 200.0),
)
def test_costs_are_nonnegative_and_finite(variant, det, trk, rate):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": variant},
            "worker_assignment": {"detect": det, "track": trk},
        }
    )
    report = evaluate_plan(TINY, plan, rates={"cam": rate})
    assert report.compute_cost >= 0 and math.isfinite(report.compute_cost)
    assert report.communication_cost >= 0 and math.isfinite(report.communication_cost)
    for o in report.operators.values():
        assert o.served <= o.demand * (1 + 1e-9) + 1e-9  # fill order never over-serves
        assert all(w.rate >= 0 for w in o.workers)
    if report.feasible:
        assert report.accuracy is not None and report.accuracy >= 75.0


def test_compute_cost_is_the_same_in_every_process():
    """The compute cost sums worker prices in plan order, not in a set's (hash-seeded) order, so
    its last bits do not change from one Python process to the next."""
    code = (
        "from jbrl.planning.cost import evaluate_plan; "
        "from jbrl.planning.plan import Plan, WorkerShare; "
        "from jbrl.scenario.synth import synth_scenario; "
        "s = synth_scenario(operators=2, variants=1, workers=60, tiers=6, seed=3); "
        "shares = [WorkerShare(w.name, 1e-3) for w in s.workers]; "
        "print(repr(evaluate_plan(s, Plan({}, {'op1': shares}, [], {})).compute_cost))"
    )
    seen = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        seen.add(out.stdout.strip())
    assert len(seen) == 1, seen
