"""The controller against Ray Serve with real (small) PyTorch models, at a low request rate.

A variant change and a placement change are applied through the HTTP API (``POST /plan``)
while the load generator keeps sending requests; every accepted request must complete. Ray
binds to 127.0.0.1 and keeps its session files in a temporary directory removed afterwards.
About a minute and a half on two cores (most of it Ray start-up and model loading).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_control import control_scenario

from jbrl.agents.policy import ControlState, Policy
from jbrl.control import ApiServer, Clock, Controller, ControllerConfig
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario import scenario_from_dict
from jbrl.scenario.traces import constant_trace

pytest.importorskip("ray.serve")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

MODELS = {"detect:small": "resnet18", "detect:large": "resnet34", "track": "tracker-hungarian"}


def _plan(variant: str, worker: str) -> dict[str, Any]:
    return {
        "model_assignment": {"detect": variant},
        "worker_assignment": {"detect": [worker], "track": ["c2"]},
    }


class _Static(Policy):
    """Keeps whatever runs (the first plan: small detector on e1)."""

    name = "static"

    def decide(self, state: ControlState) -> Plan:
        return state.current_plan or plan_from_dict(_plan("small", "e1"))


def _post(url: str, data: Any) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, json.dumps(data).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_ray_variant_and_placement_change_lose_no_request(tmp_path: Path) -> None:
    from jbrl.control.backends.ray import RayBackend

    # the tracker runs twice per detection (fan-out 2): the ingress must call it twice
    data = control_scenario().model_dump(by_alias=True, exclude_none=True)
    for e in data["edges"]:
        if e["from"] == "detect":
            e["ratio"] = 2.0
    scen = scenario_from_dict(data, "<control, fan-out 2>")
    trace = constant_trace(scen, math.inf, scale=0.2)  # 2 req/s in scenario units
    clock = Clock(1.0)
    backend = RayBackend(
        scen,
        clock,
        trace,
        rate_scale=0.5,
        models=MODELS,
        run_dir=tmp_path,
        keep_session=False,
        seed=1,
    )
    cfg = ControllerConfig(
        interval_s=10.0,
        headroom=0.3,
        accuracy=65.0,
        state_file=tmp_path / "state.json",
        log_dir=tmp_path / "run",
        tensorboard=False,
        policy_timeout_s=30.0,
    )
    ctl = Controller(scen, _Static(), backend, cfg, initial_rates={"cam": 2.0})
    api = ApiServer(ctl, "127.0.0.1", 0)
    stop = threading.Event()
    loop: threading.Thread | None = None
    results: dict[str, Any] = {}
    try:
        api.start()
        ctl.start()
        assert (tmp_path / "ray-session").is_symlink()
        session = os.readlink(tmp_path / "ray-session")
        loop = threading.Thread(target=lambda: results.setdefault("summary", ctl.run(stop)))
        loop.start()
        time.sleep(4.0)
        before = backend.counts()["arrived"]
        results["variant"] = _post(api.url + "/plan", _plan("large", "e1"))
        results["mid"] = backend.counts()["arrived"]
        time.sleep(3.0)
        results["placement"] = _post(api.url + "/plan", _plan("large", "e2"))
        time.sleep(4.0)
        results["stats"] = backend.ingress_stats()
    finally:
        stop.set()
        if loop is not None:
            loop.join(timeout=120)
        api.close()
        ctl.close()
    assert not Path(session).exists()  # session files removed (keep_session=False)

    for key in ("variant", "placement"):
        code, body = results[key]
        assert code == 200, body
        assert body["diff"]["structural"]
    assert results["variant"][1]["diff"]["changes"][0]["kind"] == "swap"
    kinds = {c["worker"]: c["kind"] for c in results["placement"][1]["diff"]["changes"]}
    assert kinds == {"e1": "unload", "e2": "load"}
    # requests kept flowing while the changes were applied
    assert results["mid"] > before
    counts = backend.counts()
    assert counts["arrived"] > 10
    assert counts["lost"] == 0 and counts["in_flight"] == 0
    assert counts["dropped"]["failed"] == 0
    assert counts["completed"] == counts["arrived"]
    # after the changes the large detector on e2 served requests
    served = results["stats"]["served"]
    assert served.get("jbrl-detect-large-e2", 0) > 0
    assert served.get("jbrl-detect-small-e1", 0) > 0
    stats = results["stats"]
    track = sum(n for app, n in served.items() if app.startswith("jbrl-track-"))
    assert 2 * stats["completed"] <= track <= 2 * stats["requests"]
    assert [a["deployed"] for a in backend.apply_log] == [
        ["jbrl-detect-small-e1", "jbrl-track-default-c2"],
        ["jbrl-detect-large-e1"],
        ["jbrl-detect-large-e2"],
    ]
