"""Batch sizes in plans, profiles and the cost model: old plans still load and write the same,
bad batch sizes are input errors naming the field, capacity counts full batches."""

from __future__ import annotations

import json

import pytest
import yaml

from jbrl.cli import main
from jbrl.control.backends.base import diff_plans
from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.plan import WorkerShare, load_plan, plan_from_dict
from jbrl.scenario import scenario_from_dict
from tests.conftest import tiny_scenario_dict


def batched_tiny() -> dict:
    d = tiny_scenario_dict()
    d["profiles"][0]["batches"] = [
        {"batch": 1, "p50_ms": 80, "p90_ms": 100},
        {"batch": 4, "p50_ms": 200, "p90_ms": 250},
    ]
    return d


PLAN = {
    "model_assignment": {"detect": "small"},
    "worker_assignment": {"detect": [{"worker": "e1", "batch": 4}, "e2"], "track": ["c2"]},
}


def test_plans_without_batch_load_and_write_as_before():
    old = {"model_assignment": {"detect": "small"}, "worker_assignment": {"detect": ["e1"]}}
    plan = plan_from_dict(old)
    assert plan.worker_assignment["detect"] == [WorkerShare("e1", None, 1)]
    assert plan.to_dict()["worker_assignment"] == {"detect": [{"worker": "e1"}]}
    plan = plan_from_dict(PLAN)
    assert plan.batch_of("e1") == 4 and plan.batch_of("e2") == 1 and plan.batch_of("x") == 1
    assert plan.to_dict()["worker_assignment"]["detect"] == [
        {"worker": "e1", "batch": 4},
        {"worker": "e2"},
    ]
    assert plan_from_dict(json.loads(plan.to_json())) == plan


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None, 5000])
def test_a_bad_batch_size_names_the_field(bad):
    d = json.loads(json.dumps(PLAN))
    d["worker_assignment"]["detect"][0]["batch"] = bad
    with pytest.raises(InputError) as info:
        plan_from_dict(d, "p.json")
    assert info.value.field == "worker_assignment.detect[0].batch"
    assert "p.json" in str(info.value)


def test_capacity_counts_full_batches_and_an_unprofiled_size_is_invalid():
    sc = scenario_from_dict(batched_tiny(), "<tiny>")
    assert sc.capacity("detect", "small", "e1", 4) == pytest.approx(4000 / 250)
    assert sc.capacity("detect", "small", "e1") == pytest.approx(1000 / 100)
    assert sc.capacity("detect", "small", "e1", 2) == 0.0  # not profiled
    rep = evaluate_plan(sc, plan_from_dict(PLAN), {"cam": 20.0})
    e1 = next(w for w in rep.operators["detect"].workers if w.worker == "e1")
    assert e1.batch == 4 and e1.capacity == pytest.approx(16.0) and e1.rate == pytest.approx(16.0)
    assert not [v for v in rep.violations if v.kind.startswith("capacity")]
    d = json.loads(json.dumps(PLAN))
    d["worker_assignment"]["detect"][0]["batch"] = 2
    rep = evaluate_plan(sc, plan_from_dict(d))
    bad = [v for v in rep.violations if v.kind == "unknown_batch"]
    assert rep.invalid and len(bad) == 1
    assert "worker_assignment.detect[0].batch" in bad[0].message and "1, 4" in bad[0].message


def test_cost_cli_exits_2_for_unprofiled_or_bad_batch_sizes(tmp_path, capsys):
    s = tmp_path / "s.yaml"
    s.write_text(yaml.safe_dump(batched_tiny()))
    p = tmp_path / "p.json"
    d = json.loads(json.dumps(PLAN))
    assert main(["cost", "--scenario", str(s), "--plan", _write(p, d), "--accuracy", "70"]) == 0
    d["worker_assignment"]["detect"][0]["batch"] = 8
    assert main(["cost", "--scenario", str(s), "--plan", _write(p, d)]) == 2
    assert "unknown_batch" in capsys.readouterr().out
    d["worker_assignment"]["detect"][0]["batch"] = 0
    assert main(["cost", "--scenario", str(s), "--plan", _write(p, d)]) == 2
    err = capsys.readouterr().err
    assert "worker_assignment.detect[0].batch" in err and "Traceback" not in err
    assert load_plan(_write(p, PLAN)).batch_of("e1") == 4


def _write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("rows", "msg"),
    [
        ([{"batch": 4, "p50_ms": 200, "p90_ms": 250}] * 2, "listed twice"),
        ([{"batch": 1, "p50_ms": 81, "p90_ms": 100}], "batch-1 row"),
        ([{"batch": 4, "p50_ms": 200, "p90_ms": 150}], "below p50_ms"),
        ([{"batch": 0, "p50_ms": 200, "p90_ms": 250}], "batch"),
    ],
)
def test_bad_batch_rows_in_a_profile_name_the_profile(rows, msg):
    d = tiny_scenario_dict()
    d["profiles"][0]["batches"] = rows
    with pytest.raises(InputError) as info:
        scenario_from_dict(d, "s.yaml")
    assert msg in str(info.value) and "profiles[0]" in str(info.value)


def test_a_batch_change_alone_is_no_model_change():
    sc = scenario_from_dict(batched_tiny(), "<tiny>")
    old = plan_from_dict({**PLAN, "worker_assignment": {"detect": ["e1", "e2"], "track": ["c2"]}})
    diff = diff_plans(sc, old, plan_from_dict(PLAN))
    assert not diff.structural and not diff.empty
    assert diff.batches == (("e1", 1, 4),)
    assert diff.to_dict()["batches"] == [{"worker": "e1", "old": 1, "new": 4}]
