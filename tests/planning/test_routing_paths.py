"""The end-to-end prediction follows the plan's routing, as the DES does: a request's stages are
combined per (sender, receiver) flow, not as independent mixtures over each operator's workers."""

from __future__ import annotations

import numpy as np
import pytest

from jbrl.planning.latency import predict_plan
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario import Scenario, scenario_from_dict
from tests.conftest import des_latencies

RATE = 4.0
BOUND_MS = 700.0


def two_stages() -> Scenario:
    """src -> a -> b; each operator on one fast (gpu) and one slow (cpu) worker."""
    prof = [
        {"operator": op, "worker_type": t, "p50_ms": p50, "p90_ms": p50 * 1.3}
        for op in ("a", "b")
        for t, p50 in (("cpu", 200.0), ("gpu", 40.0))
    ]
    return scenario_from_dict(
        {
            "name": "two-stages",
            "tiers": ["edge"],
            "sources": [{"name": "src", "rate": RATE}],
            "operators": [{"name": "a"}, {"name": "b"}],
            "edges": [
                {"from": "src", "to": "a", "message_kb": 1.0},
                {"from": "a", "to": "b", "message_kb": 1.0},
            ],
            "workers": [
                {"name": n, "type": t, "tier": "edge", "price": 1.0}
                for n, t in (("a-cpu", "cpu"), ("a-gpu", "gpu"), ("b-cpu", "cpu"), ("b-gpu", "gpu"))
            ],
            "profiles": prof,
            "slo": {"min_accuracy": 0.0, "latency_ms": BOUND_MS},
        },
        "<two-stages>",
    )


def plan_of(routing: str) -> Plan:
    """Half the load on each worker; ``routing``: ``crossed`` (slow a -> fast b, fast a -> slow
    b), ``aligned`` (slow -> slow, fast -> fast) or ``mixed`` (no routing: proportional)."""
    half = RATE / 2
    d: dict = {
        "worker_assignment": {
            op: [{"worker": f"{op}-cpu", "rate": half}, {"worker": f"{op}-gpu", "rate": half}]
            for op in ("a", "b")
        }
    }
    pairs = {
        "crossed": (("cpu", "gpu"), ("gpu", "cpu")),
        "aligned": (("cpu", "cpu"), ("gpu", "gpu")),
    }
    if routing in pairs:
        d["routing"] = [
            {"edge": ["a", "b"], "from": f"a-{x}", "to": f"b-{y}", "rate": half}
            for x, y in pairs[routing]
        ]
    return plan_from_dict(d)


def des_attainment(sc: Scenario, plan: Plan) -> float:
    lat = des_latencies(sc, plan, {"src": RATE}, seconds=3000.0, warmup=100.0, seed=11, chunks=2)
    return float(np.mean(lat <= BOUND_MS / 1000.0))


def test_mixed_routing_is_the_operator_mixture_and_explicit_proportional_routing_equals_it() -> (
    None
):
    sc = two_stages()
    mixed = predict_plan(sc, plan_of("mixed"), {"src": RATE})
    d = plan_of("mixed").to_dict()
    d["routing"] = [
        {"edge": ["a", "b"], "from": f"a-{x}", "to": f"b-{y}", "rate": RATE / 4}
        for x in ("cpu", "gpu")
        for y in ("cpu", "gpu")
    ]
    explicit = predict_plan(sc, plan_from_dict(d), {"src": RATE})
    assert explicit.attainment == pytest.approx(mixed.attainment, abs=1e-9)
    assert explicit.latency_s == pytest.approx(mixed.latency_s, abs=1e-9)


def test_crossed_routing_has_the_lighter_tail_in_the_prediction_as_in_the_des() -> None:
    """Sending the slow stage's tasks on to the fast worker avoids slow + slow paths. The
    prediction follows the DES within 1.5 points on ``crossed`` and ``mixed``; the operator-level
    mixture (the model before routing was followed) predicted ``mixed``'s figure for every
    routing, 3.3 points under the DES on ``crossed``. On ``aligned`` it stays on the safe side
    (91.65 % against 94.39 %): a slow worker fed the whole output of an equally slow one waits
    less in the DES than QNA says, but by how much depends on the services' jitter around their
    equal means; Friedman's deterministic tandem (no wait at all) would predict 96.0 %, so the
    model keeps QNA there (:func:`~jbrl.planning.latency.queueing.spacing_jitter_scv`)."""
    sc = two_stages()
    routings = ("crossed", "mixed", "aligned")
    pred = {r: predict_plan(sc, plan_of(r), {"src": RATE}).attainment for r in routings}
    des = {r: des_attainment(sc, plan_of(r)) for r in routings}
    assert pred["crossed"] > pred["mixed"] > pred["aligned"]
    assert des["crossed"] > des["mixed"] + 0.02
    assert pred["mixed"] - des["crossed"] < -0.025  # the old model's error on crossed
    for r in ("crossed", "mixed"):
        assert pred[r] == pytest.approx(des[r], abs=0.015), (r, pred, des)
    assert pred["aligned"] <= des["aligned"]
