"""The online controller against the simulated backend (accelerated), and its HTTP API.

All traffic goes to 127.0.0.1. Runs are a few wall seconds each at high speed-up.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jbrl.agents.policy import ControlState, Policy
from jbrl.control import (
    ApiServer,
    Clock,
    Controller,
    ControllerConfig,
    FallbackPolicy,
    SimBackend,
    check_plan,
    diff_plans,
    read_state,
)
from jbrl.control.api import is_loopback
from jbrl.control.backends.base import calls_per_request, fanout_count
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario import Scenario, scenario_from_dict
from jbrl.scenario.traces import constant_trace, generate_trace
from jbrl.sim.faults import faults_from_data
from tests.conftest import tiny_scenario_dict

INTERVAL = 20.0
HEADROOM = 0.3


def control_scenario() -> Scenario:
    """The tiny fixture with a 3 s latency bound (its 1 s bound is tight for a queue at 80 %)."""
    d = tiny_scenario_dict()
    d["slo"] = {"min_accuracy": 75.0, "latency_ms": 3000.0, "attainment": 0.99}
    return scenario_from_dict(d, "<control>")


@pytest.fixture
def scen() -> Scenario:
    return control_scenario()


def make_controller(
    scen: Scenario,
    trace: Any,
    tmp: Path,
    policy: Policy | None = None,
    *,
    speedup: float = 100.0,
    duration: float | None = 400.0,
    faults: Any = None,
    resume: Any = None,
    policy_timeout: float = 5.0,
    tensorboard: bool = False,
    shield: bool = True,
) -> Controller:
    pol = policy or FallbackPolicy(headroom=HEADROOM)
    pol.reset(scen, 0)
    offset = resume.time_s if resume is not None else 0.0
    clock = Clock(speedup, offset)
    backend = SimBackend(scen, clock, trace, faults, seed=3)
    cfg = ControllerConfig(
        interval_s=INTERVAL,
        headroom=HEADROOM,
        duration_s=duration,
        policy_timeout_s=policy_timeout,
        state_file=tmp / "state.json",
        log_dir=tmp / "run",
        tensorboard=tensorboard,
        shield=shield,
    )
    return Controller(scen, pol, backend, cfg, initial_rates=trace.rates_at(offset), resume=resume)


def decisions(tmp: Path) -> list[dict[str, Any]]:
    lines = (tmp / "run" / "decisions.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run_and_scrape_metrics(ctl: Controller) -> tuple[dict[str, Any], bytes]:
    """Run ``ctl`` to the end with the API beside it on loopback; its summary and what
    ``/metrics`` said afterwards. Closes both."""
    api = ApiServer(ctl, "127.0.0.1", 0).start()
    try:
        summary = ctl.run()
        _, raw = get(api.url + "/metrics")
    finally:
        api.close()
        ctl.close()
    return summary, raw


def post(url: str, data: Any) -> tuple[int, dict[str, Any]]:
    body = json.dumps(data).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# --------------------------------------------------------------------------- units


def test_diff_plans_names_worker_changes(scen: Scenario) -> None:
    a = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": ["e1", "e2"], "track": ["c2"]},
        }
    )
    b = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": ["e1", "c1"], "track": ["c2"]},
        }
    )
    d = diff_plans(scen, a, b)
    assert {(c.worker, c.kind) for c in d.changes} == {("e2", "unload"), ("c1", "load")}
    assert diff_plans(scen, a, a).empty
    swap = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": ["e1", "e2"], "track": ["c2"]},
        }
    )
    assert {c.kind for c in diff_plans(scen, a, swap).changes} == {"swap"}


def test_check_plan_accuracy_capacity_reuse_and_down(scen: Scenario) -> None:
    load = {"cam": 5.0}
    ok = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": ["e1", "e2"], "track": ["c2"]},
        }
    )
    assert check_plan(scen, ok, load, 0.3) == []
    kinds = lambda ps: {p.kind for p in ps}  # noqa: E731
    low_acc = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": ["e1"], "track": ["c2"]},
        }
    )
    assert "accuracy_below_target" in kinds(check_plan(scen, low_acc, load, 0.3))
    assert "capacity_short" in kinds(check_plan(scen, ok, {"cam": 9.0}, 0.3))
    reuse = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": ["e1", "c1"], "track": ["c1"]},
        }
    )
    assert "worker_reused" in kinds(check_plan(scen, reuse, load, 0.3))
    assert "worker_down" in kinds(check_plan(scen, ok, load, 0.3, down=["e2"]))
    # explicit rates made for a smaller load do not fail a plan whose workers have the capacity
    rated = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {
                "detect": [{"worker": "c1", "rate": 1.0}],
                "track": [{"worker": "c2", "rate": 1.0}],
            },
        }
    )
    assert check_plan(scen, rated, {"cam": 20.0}, 0.3) == []


def test_fanout_calls_per_request() -> None:
    """The Ray ingress calls an operator as often per request as the DAG's ratios say."""
    from jbrl.scenario import load_scenario

    calls = calls_per_request(load_scenario("vehicle"))
    assert calls["Detector"] == pytest.approx(1.0)
    assert calls["ReId"] == pytest.approx(8.2)
    assert calls["Tracker"] == pytest.approx(1.0)
    assert set(calls_per_request(load_scenario("vqa")).values()) == {1.0}
    # whole ratios are exact; fractional ones are right on average
    assert {fanout_count(1.0, u) for u in (0.0, 0.5, 0.999)} == {1}
    rng = np.random.default_rng(0)
    draws = [fanout_count(8.2, float(rng.random())) for _ in range(20000)]
    assert set(draws) == {8, 9}
    assert np.mean(draws) == pytest.approx(8.2, abs=0.02)
    assert {fanout_count(0.25, u) for u in (0.1, 0.3)} == {1, 0}


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


# --------------------------------------------------------------------------- integration


def test_step_load_slo_metrics_override(scen: Scenario, tmp_path: Path) -> None:
    """Step 5 -> 9 req/s at t=200: a plan change within two intervals, SLO >= 99 %, /metrics
    parses, an override below the accuracy target is rejected with 400 and a reason."""
    from prometheus_client.parser import text_string_to_metric_families

    step_at = 200.0
    trace = generate_trace(
        "step",
        400.0,
        sources=scen,
        step_s=INTERVAL,
        params={"low": 0.5, "high": 0.9, "at_s": step_at},
    )
    ctl = make_controller(scen, trace, tmp_path, tensorboard=True)
    api = ApiServer(ctl, "127.0.0.1", 0).start()
    results: dict[str, Any] = {}
    try:
        ctl.start()

        def probe() -> None:
            time.sleep(1.0)
            results["health"] = get(api.url + "/healthz")
            results["plan"] = get(api.url + "/plan")
            bad = {
                "model_assignment": {"detect": "small"},
                "worker_assignment": {"detect": ["e1", "e2"], "track": ["c2"]},
            }
            results["rejected"] = post(api.url + "/plan", bad)
            results["malformed"] = post(api.url + "/plan", {"worker_assignment": 3})
            results["metrics"] = get(api.url + "/metrics")

        t = threading.Thread(target=probe)
        t.start()
        summary = ctl.run()
        t.join()
        results["metrics_end"] = get(api.url + "/metrics")
    finally:
        api.close()
        ctl.close()

    # health and plan endpoints
    code, body = results["health"]
    assert code == 200 and json.loads(body)["status"] == "ok"
    code, body = results["plan"]
    assert code == 200 and "worker_assignment" in json.loads(body)
    # the rejected override: 400 with a reason naming the violated constraint
    code, body = results["rejected"]
    assert code == 400
    assert any("accuracy_below_target" in r for r in body["reasons"])
    code, body = results["malformed"]
    assert code == 400 and body["reasons"]
    # Prometheus text format, parsed by the reference parser
    for key in ("metrics", "metrics_end"):
        code, body = results[key]
        assert code == 200
        fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
        for name in (
            "jbrl_dollars_per_hour",
            "jbrl_slo_attainment",
            "jbrl_request_latency_ms",
            "jbrl_decisions",
            "jbrl_fallbacks",
        ):
            assert name in fams, name
    fams = {f.name: f for f in text_string_to_metric_families(results["metrics_end"][1].decode())}
    assert fams["jbrl_decisions"].type == "counter"
    assert fams["jbrl_decisions"].samples[0].value >= 15
    assert fams["jbrl_overrides_rejected"].samples[0].value == 2
    quantiles = {s.labels["quantile"] for s in fams["jbrl_request_latency_ms"].samples}
    assert quantiles == {"0.5", "0.95", "0.99"}

    # a plan change within two intervals of the step
    ds = decisions(tmp_path)
    changes = [d for d in ds if d["time_s"] >= step_at and d["diff"]["structural"]]
    assert changes, "no plan change after the load step"
    assert changes[0]["time_s"] - step_at <= 2 * INTERVAL + 1.0
    final = plan_from_dict(ds[-1]["plan"])
    assert check_plan(scen, final, {"cam": 9.0}, 0.0) == []
    # SLO attainment over the run, and the accounting
    assert summary["slo_attainment"] >= 0.99, summary
    counts = summary["backend_counts"]
    assert counts["lost"] == 0 and sum(counts["dropped"].values()) == 0
    assert counts["arrived"] == counts["completed"] + counts["in_flight"]
    # TensorBoard event files and the decision log
    if importlib.util.find_spec("torch") is not None:  # TensorBoard comes with the rl extra
        assert list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert all(d["decision_ms"] > 0 for d in ds)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["policy"]


def test_accepted_override_is_applied_and_held(scen: Scenario, tmp_path: Path) -> None:
    trace = constant_trace(scen, math.inf, scale=0.5)
    ctl = make_controller(scen, trace, tmp_path, duration=100.0)
    api = ApiServer(ctl, "127.0.0.1", 0).start()
    try:
        ctl.start()
        override = {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": ["c1"], "track": ["c2"]},
        }
        code, body = post(api.url + "/plan", {"plan": override, "hold_intervals": 2})
        assert code == 200 and body["applied"] and body["hold_intervals"] == 2
        code, raw = get(api.url + "/plan")
        plan = json.loads(raw)
        assert plan["source"] == "override"
        assert [w["worker"] for w in plan["worker_assignment"]["detect"]] == ["c1"]
        ctl.run()
    finally:
        api.close()
        ctl.close()
    ds = decisions(tmp_path)
    sources = [d["source"] for d in ds]
    assert sources[1] == "override" and sources[2:4] == ["override", "override"]
    assert "policy" in sources[4:]


def test_crashed_worker_is_replaced_within_one_interval(scen: Scenario, tmp_path: Path) -> None:
    trace = constant_trace(scen, math.inf, scale=0.5)
    # which workers the policy uses at this load: crash one of them
    probe = FallbackPolicy(headroom=HEADROOM)
    first = probe.decide(ControlState(scen, 0.0, INTERVAL, rate_history=[{"cam": 5.0}]))
    victim = first.worker_assignment["detect"][0].worker
    crash_at = 90.0
    faults = faults_from_data([{"kind": "crash", "worker": victim, "at": crash_at}])
    ctl = make_controller(scen, trace, tmp_path, duration=240.0, faults=faults)
    try:
        summary = ctl.run()
    finally:
        ctl.close()
    ds = decisions(tmp_path)
    assert victim in {s["worker"] for s in ds[0]["plan"]["worker_assignment"]["detect"]}
    after = [d for d in ds if d["time_s"] >= crash_at]
    replaced = next(
        d
        for d in after
        if victim not in {s["worker"] for ss in d["plan"]["worker_assignment"].values() for s in ss}
    )
    assert replaced["time_s"] - crash_at <= INTERVAL + 1.0
    assert replaced["trigger"] == "crash" and victim in replaced["down"]
    # no later plan puts the crashed worker back
    for d in ds[ds.index(replaced) :]:
        assert victim not in {
            s["worker"] for ss in d["plan"]["worker_assignment"].values() for s in ss
        }
    counts = summary["backend_counts"]
    assert counts["lost"] == 0
    # only the request in service at the crash may be dropped; reconfiguration drops nothing
    assert counts["dropped"]["no_worker"] == 0 and counts["dropped"]["crash"] <= 1


class _Raising(Policy):
    name = "raising"

    def decide(self, state: ControlState) -> Plan:
        if state.current_plan is None:
            return FallbackPolicy(HEADROOM).decide(state)
        raise RuntimeError("boom")


class _Slow(Policy):
    name = "slow"

    def decide(self, state: ControlState) -> Plan:
        if state.current_plan is None:
            return FallbackPolicy(HEADROOM).decide(state)
        time.sleep(1.0)
        return state.current_plan


class _Greedy(Policy):
    """Always the cheapest-looking plan: one edge worker (fails the capacity check)."""

    name = "greedy"

    def decide(self, state: ControlState) -> Plan:
        return plan_from_dict(
            {
                "model_assignment": {"detect": "large"},
                "worker_assignment": {"detect": ["e1"], "track": ["e2"]},
            }
        )


@pytest.mark.parametrize(
    ("policy", "reason"),
    [(_Raising(), "policy_error"), (_Slow(), "policy_timeout"), (_Greedy(), "capacity_short")],
)
def test_failing_policy_falls_back_to_milp(
    scen: Scenario, tmp_path: Path, policy: Policy, reason: str
) -> None:
    trace = constant_trace(scen, math.inf, scale=0.5)
    # the shield off: the policy's plan goes to the checks as it is (with the shield on, the
    # greedy plan is scaled up instead: tests/control/test_shield_control.py)
    ctl = make_controller(
        scen, trace, tmp_path, policy, duration=80.0, speedup=40.0, policy_timeout=0.3,
        shield=False,
    )  # fmt: skip
    try:
        summary = ctl.run()
    finally:
        ctl.close()
    assert summary["counters"]["fallbacks"] >= 2
    assert reason in summary["fallback_reasons"]
    ds = decisions(tmp_path)
    fb = [d for d in ds if d["source"] == "fallback"]
    assert fb and all(d["fallback_reason"] for d in fb)
    for d in fb:
        assert check_plan(scen, plan_from_dict(d["plan"]), d["load"], HEADROOM) == []
    assert summary["backend_counts"]["lost"] == 0


def test_state_resume(scen: Scenario, tmp_path: Path) -> None:
    trace = constant_trace(scen, math.inf, scale=0.5)
    ctl = make_controller(scen, trace, tmp_path, duration=60.0)
    try:
        ctl.run()
    finally:
        ctl.close()
    saved = read_state(tmp_path / "state.json")
    assert saved is not None and saved.final and saved.time_s >= 60.0
    ctl2 = make_controller(scen, trace, tmp_path, duration=40.0, resume=saved)
    try:
        first = ctl2.start()
        assert first.source == "resume" and first.trigger == "resume"
        assert first.plan.model_assignment == saved.plan.model_assignment
        assert first.plan.worker_assignment == saved.plan.worker_assignment
        assert ctl2.clock.now() >= saved.time_s
        ctl2.run()
    finally:
        ctl2.close()
    again = read_state(tmp_path / "state.json")
    assert again is not None and again.seq > saved.seq


class _Alternating(Policy):
    """Moves the detector between two valid placements every interval."""

    name = "alternating"

    def decide(self, state: ControlState) -> Plan:
        on_c1 = state.current_plan is not None and "c1" in state.current_plan.workers_of("detect")
        workers = ["e1", "e2"] if on_c1 else ["c1"]
        return plan_from_dict(
            {
                "model_assignment": {"detect": "large"},
                "worker_assignment": {"detect": workers, "track": ["c2"]},
            }
        )


def test_failed_apply_keeps_the_running_plan(scen: Scenario, tmp_path: Path) -> None:
    trace = constant_trace(scen, math.inf, scale=0.3)
    ctl = make_controller(scen, trace, tmp_path, _Alternating(), duration=100.0, speedup=50.0)
    real_apply = ctl.backend.apply
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("deployment failed")
        return real_apply(*args, **kwargs)

    ctl.backend.apply = flaky  # type: ignore[method-assign]
    try:
        summary = ctl.run()
    finally:
        ctl.close()
    ds = decisions(tmp_path)
    failed = [d for d in ds if d["source"] == "apply_failed"]
    assert len(failed) == 1 and "deployment failed" in failed[0]["fallback_reason"]
    assert failed[0]["plan"]["worker_assignment"] == ds[0]["plan"]["worker_assignment"]
    assert summary["counters"]["apply_failures"] == 1
    assert summary["counters"]["plan_changes"] >= 2  # later changes went through
    assert summary["backend_counts"]["lost"] == 0


def test_ray_model_resolution_prefers_the_operators_model() -> None:
    from jbrl.control.backends.ray_models import resolve_models
    from jbrl.errors import InputError
    from jbrl.scenario import load_scenario

    vehicle = resolve_models(load_scenario("vehicle"))  # registry names = variant names
    assert vehicle[("ReId", "reid-resnet50")] == "reid-resnet50"
    assert vehicle[("Detector", "deformable-detr")] == "deformable-detr"
    assert vehicle[("Tracker", "hungarian")] == "hungarian"
    vqa = resolve_models(load_scenario("vqa"), {"SpeechRecognition": "wav2vec2-base"})
    assert vqa[("VQA", "visualbert")] == "visualbert"
    assert vqa[("SpeechRecognition", "wav2vec2-large")] == "wav2vec2-base"
    with pytest.raises(InputError):
        resolve_models(load_scenario("vqa"), {"VQA": "no-such-model"})


def test_bearer_token_is_required_when_set(scen: Scenario, tmp_path: Path) -> None:
    trace = constant_trace(scen, math.inf, scale=0.5)
    ctl = make_controller(scen, trace, tmp_path, duration=20.0)
    api = ApiServer(ctl, "127.0.0.1", 0, token="s3cret-token-0123456789").start()
    try:
        ctl.start()
        assert get(api.url + "/healthz")[0] == 401
        assert get(api.url + "/metrics", token="wrong")[0] == 401
        code, body = get(api.url + "/plan", token="s3cret-token-0123456789")
        assert code == 200 and json.loads(body)["source"] == "policy"
    finally:
        api.close()
        ctl.close()
    with pytest.raises(ValueError):
        ApiServer(ctl, "0.0.0.0", 0)
