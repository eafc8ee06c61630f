"""Dynamic batching on Ray Serve: a plan with batch size 4 on a real (small) PyTorch detector.

The replica must serve its requests in batches (fewer forward passes than requests, none larger
than the plan's size), lose no request, and take a plan that changes only the batch size
without a redeployment or a model reload. Ray binds to 127.0.0.1 and keeps its session files
in a temporary directory removed afterwards. About a minute on two cores.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from test_control import control_scenario

from jbrl.control import Clock
from jbrl.control.backends.base import diff_plans
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario import scenario_from_dict
from jbrl.scenario.traces import constant_trace

pytest.importorskip("ray.serve")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

MODELS = {"detect:small": "resnet18", "detect:large": "resnet34", "track": "tracker-hungarian"}
DETECT_APP = "jbrl-detect-small-e1"


def _plan(batch: int) -> dict[str, Any]:
    return {
        "model_assignment": {"detect": "small"},
        "worker_assignment": {"detect": [{"worker": "e1", "batch": batch}], "track": ["c2"]},
    }


def _replica_stats() -> dict[str, Any]:
    from ray import serve

    stats: dict[str, Any] = serve.get_app_handle(DETECT_APP).stats.remote().result(timeout_s=60)
    return stats


def test_ray_replica_serves_in_batches_and_changes_batch_without_reload(tmp_path: Path) -> None:
    from jbrl.control.backends.ray import RayBackend

    data = control_scenario().model_dump(by_alias=True, exclude_none=True)
    for p in data["profiles"]:
        if (p["operator"], p["variant"], p["worker_type"]) == ("detect", "small", "edge-cpu"):
            p["batches"] = [
                {"batch": 2, "p50_ms": 120.0, "p90_ms": 150.0},
                {"batch": 4, "p50_ms": 200.0, "p90_ms": 250.0},
            ]
    data["batch_wait_timeout_s"] = 0.1
    scen = scenario_from_dict(data, "<control, batching>")
    trace = constant_trace(scen, math.inf, scale=0.5)  # 5 req/s in scenario units
    backend = RayBackend(
        scen,
        Clock(1.0),
        trace,
        rate_scale=2.0,  # 10 real requests per second
        models=MODELS,
        run_dir=tmp_path,
        keep_session=False,
        seed=2,
    )
    first, second = plan_from_dict(_plan(4)), plan_from_dict(_plan(2))
    diff = diff_plans(scen, first, second)
    try:
        backend.start(first)
        time.sleep(6.0)
        before = _replica_stats()
        result = backend.apply(second, diff)
        time.sleep(4.0)
        stats = backend.ingress_stats()
        after = _replica_stats()  # (later: it has counted every call the ingress got back)
    finally:
        backend.close()

    # only the batch size changed: nothing deployed or removed, the model not loaded again
    assert not diff.structural and diff.batches == (("e1", 4, 2),)
    assert result.details["deployed"] == [] and result.details["removed"] == []
    assert before["batch"] == 4 and after["batch"] == 2
    assert after["loaded_at"] == before["loaded_at"]
    # the detector served its requests in batches, none above the plan's size
    sizes = {int(n): k for n, k in after["batch_sizes"].items()}
    passes = sum(sizes.values())
    served = sum(n * k for n, k in sizes.items())
    assert served >= stats["served"][DETECT_APP] > 30
    assert max(sizes) <= 4 and max(sizes) > 1
    assert passes < served
    # no request lost
    counts = backend.counts()
    assert counts["arrived"] > 30
    assert counts["lost"] == 0 and counts["in_flight"] == 0
    assert counts["dropped"]["failed"] == 0
    assert counts["completed"] == counts["arrived"]
