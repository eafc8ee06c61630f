"""The SLO-aware MILP: plans predicted to meet their latency SLO, batching as a decision (equal
to exhaustive enumeration on a one-stage scenario), and honest answers where the SLO cannot be
met."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest

from jbrl.cli import main
from jbrl.control.safety import check_plan
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.latency import batch_service, slo_safe_rate
from jbrl.planning.milp import MilpPlanner
from jbrl.planning.slo_check import check_latency
from jbrl.scenario import Scenario, scenario_from_dict
from tests.conftest import tiny_scenario_dict

BOUND_MS = 600.0
ATTAINMENT = 0.99


def one_stage_dict(rate: float = 40.0, bound_ms: float = BOUND_MS) -> dict[str, Any]:
    """One source and one operator on four identical workers in the source's tier (no
    transfer time), whose profile gains 2.4x throughput at batch 4. Numbers are test values."""
    return {
        "name": "one-stage",
        "description": "test fixture",
        "tiers": ["edge"],
        "sources": [{"name": "cam", "rate": rate, "tier": "edge"}],
        "operators": [{"name": "detect"}],
        "edges": [{"from": "cam", "to": "detect", "ratio": 1.0, "message_kb": 10.0}],
        "workers": [
            {"name": f"w{i}", "type": "cpu", "tier": "edge", "price": 0.25} for i in range(4)
        ],
        "profiles": [
            {
                "operator": "detect",
                "worker_type": "cpu",
                "p50_ms": 40,
                "p90_ms": 50,
                "batches": [{"batch": 4, "p50_ms": 70, "p90_ms": 85}],
            }
        ],
        "slo": {"min_accuracy": 0.0, "latency_ms": bound_ms, "attainment": ATTAINMENT},
    }


def one_stage(**kw: Any) -> Scenario:
    return scenario_from_dict(one_stage_dict(**kw), "<one-stage>")


def enumerate_one_stage(s: Scenario, max_batch: int) -> float:
    """Cheapest $/hour over every choice of workers and per-worker batch size (among the
    profiled ones up to ``max_batch``) where each worker's share of the load, split in
    proportion to its SLO-safe rate, stays within that rate (each worker meets the tail on its
    own: then the mixture does too)."""
    demand = s.demand()["detect"]
    bound = s.slo.bound_s
    assert bound is not None
    tail = 1.0 - s.slo.attainment
    best = math.inf
    workers = [w.name for w in s.workers]
    service = batch_service(s, "detect", "default", workers[0])
    sizes = [b for b in service.sizes if b <= max_batch]
    safe = {b: slo_safe_rate(service, bound, tail, b) for b in sizes}
    for k in range(1, len(workers) + 1):
        for batches in itertools.combinations_with_replacement(sizes, k):
            if sum(safe[b] for b in batches) >= demand * (1 - 1e-9):
                best = min(best, k * s.worker_map[workers[0]].price)
    return best


@pytest.mark.parametrize("rate", [20.0, 40.0, 60.0])
def test_batching_equals_enumeration_on_one_stage(rate: float) -> None:
    s = one_stage(rate=rate)
    for max_batch in (1, 4):
        want = enumerate_one_stage(s, max_batch)
        res = MilpPlanner(max_batch=max_batch).plan(s)
        if math.isinf(want):
            assert res.status == "infeasible"
            continue
        assert res.feasible
        assert res.total_cost == pytest.approx(want, rel=1e-6)
        rep = evaluate_plan(s, res.plan)
        assert not rep.violations
        assert check_latency(s, res.plan).violation is None
        if max_batch == 1:
            assert all(sh.batch == 1 for shs in res.plan.worker_assignment.values() for sh in shs)


def test_batching_pays_on_one_stage() -> None:
    """At a load batch 1 needs all four workers for, batch 4 needs fewer."""
    s = one_stage(rate=60.0)
    plain = MilpPlanner(max_batch=1).plan(s)
    batched = MilpPlanner(max_batch=4).plan(s)
    assert batched.feasible
    assert batched.total_cost is not None
    assert not plain.feasible or batched.total_cost < (plain.total_cost or math.inf)
    used = [sh.batch for shs in batched.plan.worker_assignment.values() for sh in shs]
    assert 4 in used
    assert '"batch": 4' in json.dumps(batched.plan.to_dict())


def test_slo_aware_plan_meets_its_prediction_where_capacity_only_does_not() -> None:
    s = scenario_from_dict(tiny_scenario_dict(), "<tiny>")
    aware = MilpPlanner().plan(s, {"cam": 14.0})
    assert aware.feasible
    check = check_latency(s, aware.plan, {"cam": 14.0})
    assert check.violation is None and check.attainment is not None
    assert check.attainment >= s.slo.attainment
    capacity = MilpPlanner(latency_model="none").plan(s, {"cam": 14.0})
    assert capacity.feasible and capacity.total_cost is not None
    assert aware.total_cost is not None and aware.total_cost >= capacity.total_cost - 1e-9
    missed = check_latency(s, capacity.plan, {"cam": 14.0})
    if aware.total_cost > capacity.total_cost + 1e-9:
        # the cheaper capacity-only plan is cheaper because it runs a worker too hot
        assert missed.violation is not None and missed.violation.kind == "latency_at_risk"


def test_bound_below_the_service_time_is_infeasible_with_numbers(tmp_path, capsys) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(one_stage_dict(bound_ms=30.0)))
    assert main(["plan", "--scenario", str(path), "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "infeasible"
    reason = out["reason"]
    assert reason["latency_bound_ms"] == 30.0 and reason["attainment_target"] == ATTAINMENT
    assert "30 ms" in reason["message"]


def test_cost_names_latency_at_risk_and_exits_3(tmp_path, capsys) -> None:
    """Four workers' capacity-only plan at 100 % utilisation is predicted to miss the SLO."""
    d = one_stage_dict(rate=75.0, bound_ms=200.0)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(d))
    s = scenario_from_dict(d, "<one-stage>")
    hot = MilpPlanner(latency_model="none").plan(s)
    assert hot.feasible
    plan_path = tmp_path / "p.json"
    plan_path.write_text(json.dumps(hot.plan.to_dict()))
    assert main(["cost", "--scenario", str(path), "--plan", str(plan_path)]) == 3
    assert "latency_at_risk" in capsys.readouterr().out
    problems = check_plan(s, hot.plan, {"cam": 75.0}, headroom=0.0)
    assert any(p.kind == "latency_at_risk" for p in problems)


def test_max_batch_is_checked() -> None:
    from jbrl.errors import InputError

    with pytest.raises(InputError):
        MilpPlanner(max_batch=0)
