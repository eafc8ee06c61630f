"""Discrete-event simulator: queueing theory, determinism, joins, fan-out, reconfiguration,
faults, and the accounting invariant (a property test over random plans, traces and faults,
for both simulators)."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jbrl.planning.latency import bulk_ctmc_sojourn
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario import scenario_from_dict
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import constant_trace
from jbrl.sim import DesSimulator, FluidSimulator, SimConfig, rollout, totals_of
from jbrl.sim.faults import faults_from_data
from tests.conftest import JELLYBEAN_REFERENCE_PLAN, single_worker_scenario, tiny_scenario_dict

SINGLE_PLAN = plan_from_dict({"worker_assignment": {"op": [{"worker": "w"}]}})


def mean_wait_ms(family: str, rho: float, customers: int, seed: int = 0) -> float:
    """Mean queueing delay of one worker with mean service 100 ms at utilisation ``rho``."""
    m = 0.1
    lam = rho / m
    sim = DesSimulator(SimConfig(service=family, timeout_s=1e9))  # type: ignore[arg-type]
    sim.reset(single_worker_scenario(p50_ms=100.0, rate=lam), SINGLE_PLAN, seed=seed)
    step = customers / lam / 10
    num = den = 0.0
    for _ in range(10):
        iv = sim.advance(step, {"src": lam})
        num += iv.wait_ms["w"] * iv.completed
        den += iv.completed
    return num / den


def test_des_matches_queueing_theory_at_half_load():
    # M/M/1: Wq = rho m / (1 - rho); M/D/1: half of it (Pollaczek-Khinchine)
    assert mean_wait_ms("exponential", 0.5, 150_000) == pytest.approx(100.0, rel=0.05)
    assert mean_wait_ms("deterministic", 0.5, 150_000) == pytest.approx(50.0, rel=0.05)


@pytest.mark.slow
def test_des_matches_queueing_theory_at_0_9():
    assert mean_wait_ms("exponential", 0.9, 1_000_000) == pytest.approx(900.0, rel=0.05)
    assert mean_wait_ms("deterministic", 0.9, 1_000_000) == pytest.approx(450.0, rel=0.05)


def test_lognormal_service_matches_profile_percentiles():
    s = single_worker_scenario(p50_ms=100.0, p90_ms=150.0, rate=0.5)
    sim = DesSimulator()
    sim.reset(s, SINGLE_PLAN, seed=1)
    fit = sim.compiled.service[0]  # type: ignore[union-attr]
    import numpy as np

    draws = fit.sample(np.random.default_rng(0), 200_000) * 1000
    assert np.percentile(draws, 50) == pytest.approx(100, rel=0.01)
    assert np.percentile(draws, 90) == pytest.approx(150, rel=0.01)


def test_same_seed_same_result_and_seeds_differ(jellybean):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    trace = constant_trace(jellybean, 600, scale=0.8)

    def once(seed):
        res = rollout(DesSimulator(), jellybean, trace, plan, 60, seed=seed)
        return [m.to_dict() for m in res.intervals]

    assert once(7) == once(7)
    assert once(7) != once(8)


def test_joins_wait_for_both_inputs(jellybean):
    # 40 image requests/s, 20 with a question: every request completes, VQA runs 20 tasks/s
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    for sim in (DesSimulator(), FluidSimulator()):
        sim.reset(jellybean, plan, seed=2)
        ivs = [sim.advance(60, {"ReadImage": 30.0, "ReadSpeech": 15.0}) for _ in range(5)]
        t = totals_of(ivs)
        assert t.throughput == pytest.approx(30.0, rel=0.03)
        assert t.dropped_total == 0
        vqa_busy = sum(m.utilization["workflow-compute-cpu-6"] for m in ivs[1:]) / 4
        m_vqa = sim.compiled.service[sim.compiled.worker_index["workflow-compute-cpu-6"]].mean_s
        assert vqa_busy == pytest.approx(15.0 * m_vqa, rel=0.05), sim.kind


def fanout_scenario(ratio: float):
    d = tiny_scenario_dict()
    d["edges"][1]["ratio"] = ratio
    d["slo"]["latency_ms"] = 5000.0
    return scenario_from_dict(d, "<fanout>")


FANOUT_PLAN = plan_from_dict(
    {
        "model_assignment": {"detect": "small"},
        "worker_assignment": {"detect": [{"worker": "c1"}], "track": [{"worker": "c2"}]},
    }
)


@pytest.mark.parametrize("ratio", [2.5, 0.3, 1.0])
def test_fan_out_and_sampling(ratio):
    s = fanout_scenario(ratio)
    for sim in (DesSimulator(), FluidSimulator()):
        sim.reset(s, FANOUT_PLAN, seed=4)
        ivs = [sim.advance(60, {"cam": 8.0}) for _ in range(5)]
        t = totals_of(ivs)
        assert t.throughput == pytest.approx(8.0, rel=0.04), sim.kind
        track_busy = sum(m.utilization["c2"] for m in ivs[1:]) / 4
        m_track = sim.compiled.service[sim.compiled.worker_index["c2"]].mean_s
        assert track_busy == pytest.approx(8.0 * ratio * m_track, rel=0.06), sim.kind


def test_reconfiguration_loses_nothing(jellybean):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    other = copy.deepcopy(JELLYBEAN_REFERENCE_PLAN)
    other["worker_assignment"]["SpeechRecognition"] = [
        {"worker": "workflow-compute-gpu-2"},
        {"worker": "workflow-compute-cpu-3"},
    ]
    other["worker_assignment"]["VQA"] = [{"worker": "workflow-compute-cpu-4"}]
    sim = DesSimulator(SimConfig(timeout_s=1e6))
    sim.reset(jellybean, plan, seed=5)
    ivs = [sim.advance(60, {"ReadImage": 25.0, "ReadSpeech": 25.0})]
    busy_before = sim.in_flight
    assert busy_before > 0
    loading = sim.apply(plan_from_dict(other))
    assert set(loading) == {"workflow-compute-gpu-2", "workflow-compute-cpu-4"}
    ivs.append(sim.advance(60, {"ReadImage": 25.0, "ReadSpeech": 25.0}))
    assert ivs[-1].reconfigured == loading
    ivs.append(sim.advance(600, {"ReadImage": 0.0, "ReadSpeech": 0.0}))
    t = totals_of(ivs)
    assert t.dropped_total == 0 and t.in_flight == 0
    assert t.completed == t.arrivals
    # gpu-2 loaded for its model's load time, then served; gpu-1 left the plan
    assert ivs[1].utilization["workflow-compute-gpu-2"] > 0
    assert "workflow-compute-gpu-1" not in ivs[2].utilization


def test_loading_worker_serves_nothing_for_its_load_time(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": [{"worker": "c1"}], "track": [{"worker": "c2"}]},
        }
    )
    switched = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": [{"worker": "c1"}], "track": [{"worker": "c2"}]},
        }
    )
    for sim in (DesSimulator(), FluidSimulator()):
        sim.reset(tiny, plan, seed=1)
        sim.advance(30, {"cam": 10.0})
        assert sim.apply(switched) == ["c1"]
        m = sim.advance(8, {"cam": 10.0})  # default load time: 10 s
        assert m.completed <= m.in_flight_start + 1e-9, sim.kind  # nothing new served
        assert m.in_flight >= m.arrivals - 1e-9
        assert m.utilization["c1"] < 0.01
        m2 = sim.advance(30, {"cam": 10.0})
        assert m2.completed > m2.arrivals  # catches up
        assert m2.in_flight < 5
        assert sim.apply(switched) == []  # nothing changes: no load


def test_timeouts_crashes_and_no_worker_are_named():
    s = single_worker_scenario(p50_ms=100.0, rate=20.0)
    sim = DesSimulator(SimConfig(timeout_s=1.0))
    faults = faults_from_data([{"kind": "crash", "worker": "w", "at": 30, "until": 40}])
    sim.reset(s, SINGLE_PLAN, seed=3, faults=faults)
    ivs = [sim.advance(60, {"src": 20.0}) for _ in range(2)]  # twice the capacity
    t = totals_of(ivs)
    assert t.dropped["timeout"] > 500
    assert t.dropped["crash"] == 1
    assert t.arrivals == t.completed + t.dropped_total + t.in_flight
    done = [m for m in ivs if m.completed]
    assert max(m.latency_ms["p99"] for m in done) < 1000 + 600
    # a plan without a worker for an operator drops at once
    d = tiny_scenario_dict()
    nobody = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": [{"worker": "c1"}]},
        }
    )
    sim2 = DesSimulator()
    sim2.reset(scenario_from_dict(d, "<t>"), nobody, seed=0)
    m = sim2.advance(30, {"cam": 5.0})
    assert m.dropped["no_worker"] == m.arrivals - m.in_flight > 0


def test_crash_moves_the_queue_to_siblings(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {
                "detect": [{"worker": "e1", "rate": 5}, {"worker": "e2", "rate": 5}],
                "track": [{"worker": "c2"}],
            },
        }
    )
    faults = faults_from_data({"faults": [{"kind": "crash", "worker": "e1", "at": 5}]})
    for sim in (DesSimulator(), FluidSimulator()):
        sim.reset(tiny, plan, seed=0, faults=faults)
        m = sim.advance(60, {"cam": 8.0})
        assert m.dropped["crash"] <= 1
        assert m.utilization["e2"] > 0.55  # e2 takes e1's share after the crash
        assert m.utilization["e1"] < 0.1


def test_link_slowdown_stretches_transfers(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": [{"worker": "c1"}], "track": [{"worker": "c2"}]},
        }
    )
    # cam (edge) -> c1 (cloud): 100 KB at 125 MB/s + 10 ms = 10.8 ms; x20 -> 216 ms
    faults = faults_from_data(
        [{"kind": "slow_link", "from": "edge", "to": "cloud", "at": 0, "factor": 20}]
    )
    lat = {}
    for name, f in (("plain", None), ("slow", faults)):
        sim = DesSimulator()
        sim.reset(tiny, plan, seed=0, faults=f)
        lat[name] = sim.advance(120, {"cam": 5.0}).latency_ms["p50"]
    assert lat["slow"] - lat["plain"] == pytest.approx(19 * 10.78, rel=0.1)


# --------------------------------------------------------------------------- property test


def tiny_with_batches() -> Scenario:
    """The tiny scenario with whole-batch latencies at 2 and 4 for the detector and the
    tracker (test values), so that plans may batch."""
    d = tiny_scenario_dict()
    for prof in d["profiles"]:
        p50, p90 = prof["p50_ms"], prof["p90_ms"]
        prof["batches"] = [
            {"batch": 2, "p50_ms": 1.6 * p50, "p90_ms": 1.6 * p90},
            {"batch": 4, "p50_ms": 2.5 * p50, "p90_ms": 2.6 * p90},
        ]
    return scenario_from_dict(d, "<tiny-batches>")


TINY = tiny_with_batches()
DETECT_WORKERS = ["e1", "e2", "c1"]
TRACK_WORKERS = ["e1", "e2", "c2"]


@st.composite
def tiny_plans(draw):
    detect = draw(st.lists(st.sampled_from(DETECT_WORKERS), min_size=1, max_size=3, unique=True))
    free = [w for w in TRACK_WORKERS if w not in detect]
    track = draw(st.lists(st.sampled_from(free), max_size=len(free), unique=True)) if free else []

    def share(w):
        rate = draw(st.one_of(st.none(), st.floats(0.0, 20.0)))
        out = {"worker": w} if rate is None else {"worker": w, "rate": rate}
        batch = draw(st.sampled_from([1, 1, 2, 4]))
        if batch > 1:
            out["batch"] = batch
        return out

    return plan_from_dict(
        {
            "model_assignment": {"detect": draw(st.sampled_from(["small", "large"]))},
            "worker_assignment": {
                "detect": [share(w) for w in detect],
                "track": [share(w) for w in track],
            },
        }
    )


@st.composite
def fault_schedules(draw):
    items = []
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.floats(0, 200))
        until = draw(st.one_of(st.none(), st.floats(at + 1, at + 100)))
        if draw(st.booleans()):
            item = {"kind": "crash", "worker": draw(st.sampled_from(["e1", "e2", "c1", "c2"]))}
        else:
            item = {"kind": "slow_link", "from": "edge", "to": "cloud", "factor": 3.0}
        item["at"] = at
        if until is not None:
            item["until"] = until
        items.append(item)
    return faults_from_data(items)


@pytest.mark.parametrize("kind", ["fluid", "des"])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    plans=st.lists(tiny_plans(), min_size=1, max_size=3),
    steps=st.lists(
        st.tuples(st.floats(1.0, 40.0), st.floats(0.0, 25.0), st.integers(0, 2)),
        min_size=1,
        max_size=8,
    ),
    faults=fault_schedules(),
    seed=st.integers(0, 2**31 - 1),
    timeout=st.sampled_from([None, 0.5, 5.0]),
)
def test_accounting_invariant(kind, plans, steps, faults, seed, timeout):
    """arrived = completed + dropped + in flight, every interval and in total, whatever the
    plans (reconfigured mid-run, batch sizes included), load, faults and timeouts."""
    sim = (DesSimulator if kind == "des" else FluidSimulator)(SimConfig(timeout_s=timeout))
    sim.reset(TINY, plans[0], seed=seed, faults=faults)
    ivs = []
    for seconds, rate, which in steps:
        if which and which < len(plans):
            sim.apply(plans[which])
        m = sim.advance(seconds, [(seconds / 2, {"cam": rate}), (seconds / 2, {"cam": rate / 2})])
        ivs.append(m)
        scale = max(1.0, m.arrivals + m.in_flight_start)
        assert abs(m.accounting_error()) <= 1e-9 * scale
        assert m.completed >= -1e-9 and m.in_flight >= -1e-9 and m.within_slo <= m.completed + 1e-9
        assert all(v >= -1e-9 for v in m.dropped.values())
        assert m.compute_dollars >= 0 and m.communication_dollars >= 0
        assert all(0 <= u <= 1 + 1e-9 for u in m.utilization.values())
    t = totals_of(ivs)
    assert math.isclose(t.arrivals, t.completed + t.dropped_total + t.in_flight, abs_tol=1e-6)


# --------------------------------------------------------------------------- batching


def batch_scenario(
    p50_ms: list[float], rate: float, timeout_s: float = 0.0, p90_over_p50: float = 1.0
) -> Scenario:
    """One worker whose whole-batch p50 at size n is ``p50_ms[n - 1]`` (p90 = p50 times
    ``p90_over_p50``): the queue of the batching tests."""
    rows = [
        {"batch": n, "p50_ms": p, "p90_ms": p * p90_over_p50}
        for n, p in enumerate(p50_ms, start=1)
        if n > 1
    ]
    d = single_worker_scenario(p50_ms=p50_ms[0], rate=rate).model_dump(by_alias=True)
    d["profiles"][0]["p90_ms"] = p50_ms[0] * p90_over_p50
    d["profiles"][0]["batches"] = rows
    d["batch_wait_timeout_s"] = timeout_s
    return scenario_from_dict(d, "<batch>")


def batch_plan(b: int):
    return plan_from_dict({"worker_assignment": {"op": [{"worker": "w", "batch": b}]}})


@pytest.mark.parametrize(("lam", "b"), [(3.0, 4), (1.5, 2)])
def test_batching_matches_the_bulk_service_ctmc(lam, b):
    # exponential service of mean 1 s whatever the batch size; the lead's check: W = 3.55 at
    # lam = 3, b = 4
    want = bulk_ctmc_sojourn(lam, 1.0, b)
    if (lam, b) == (3.0, 4):
        assert want == pytest.approx(3.5525, abs=1e-3)
    sc = batch_scenario([1000.0] * b, lam)
    sim = DesSimulator(SimConfig(service="exponential", timeout_s=1e9))
    sim.reset(sc, batch_plan(b), seed=5)
    sim.advance(2000.0, {"src": lam})
    lat: list[float] = []
    for _ in range(4):
        sim.advance(12_000.0, {"src": lam})
        lat += sim.interval_latencies()
    assert sum(lat) / len(lat) / 1000.0 == pytest.approx(want, rel=0.05)


def test_saturated_batching_worker_serves_b_over_the_batch_time():
    # 4 per 130 ms: 30.77 req/s, offered 60 req/s
    sc = batch_scenario([70.0, 90.0, 110.0, 130.0], 60.0)
    sim = DesSimulator(SimConfig(service="deterministic", timeout_s=1e9))
    sim.reset(sc, batch_plan(4), seed=1)
    sim.advance(10.0, {"src": 60.0})
    m = sim.advance(200.0, {"src": 60.0})
    assert m.completed / m.duration == pytest.approx(4 / 0.130, rel=0.01)
    assert m.utilization["w"] == pytest.approx(1.0, abs=1e-3)
    assert sim.batches_started()["w"] == pytest.approx(m.completed / 4 + 77, rel=0.02)


def test_batch_timeout_waits_for_the_batch_to_fill():
    # at 1 req/s a worker with a 0.5 s fill timeout waits up to 0.5 s for a second request;
    # without one it starts at once (batches of 1 but for requests that queued behind one)
    out = {}
    for timeout in (0.0, 0.5):
        sc = batch_scenario([100.0, 100.0], 1.0, timeout_s=timeout)
        sim = DesSimulator(SimConfig(service="deterministic", timeout_s=1e9))
        sim.reset(sc, batch_plan(2), seed=2)
        m = sim.advance(20_000.0, {"src": 1.0})
        lat = sorted(sim.interval_latencies())
        out[timeout] = (m.completed / sim.batches_started()["w"], lat)
    size0, lat0 = out[0.0]
    size1, lat1 = out[0.5]
    assert size0 == pytest.approx(1.005, abs=0.005)  # 2 arrivals in one 0.1 s service: 0.5 %
    assert size1 == pytest.approx(1.4, abs=0.03)  # a second within 0.5 s: 1 - e^-0.5 = 0.39
    # the mean sojourns of the latency model (its bulk-queue chain): 105 ms and 384 ms
    assert sum(lat0) / len(lat0) == pytest.approx(105.1, rel=0.02)
    assert sum(lat1) / len(lat1) == pytest.approx(383.5, rel=0.03)


def test_a_batch_size_change_needs_no_model_load_and_a_crash_drops_the_whole_batch():
    sc = batch_scenario([100.0, 120.0, 140.0, 160.0], 20.0)
    sim = DesSimulator(SimConfig(service="deterministic", timeout_s=1e9))
    sim.reset(sc, batch_plan(1), seed=3)
    sim.advance(30.0, {"src": 20.0})  # overloaded at batch 1 (10 req/s)
    assert sim.apply(batch_plan(4)) == []  # no worker reloads
    m = sim.advance(60.0, {"src": 20.0})
    assert m.completed / m.duration > 20.0  # 25 req/s at batch 4 drains the backlog
    assert sim.batches_started()["w"] > 0
    faults = faults_from_data([{"kind": "crash", "worker": "w", "at": 10.05}])
    sim = DesSimulator(SimConfig(service="deterministic", timeout_s=1e9))
    sim.reset(sc, batch_plan(4), seed=3, faults=faults)
    m = sim.advance(20.0, {"src": 20.0})
    assert 1 <= m.dropped["crash"] <= 4
    assert abs(m.accounting_error()) < 1e-9
