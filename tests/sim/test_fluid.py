"""Fluid simulator: queueing formulas, costs against the cost model, backlog, overload and
timeouts, reconfiguration downtime, crashes, the interface contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario.traces import constant_trace, generate_trace
from jbrl.sim import FluidSimulator, SimConfig, make_simulator, rollout, totals_of
from jbrl.sim.faults import faults_from_data
from tests.conftest import JELLYBEAN_REFERENCE_PLAN, single_worker_scenario

SINGLE_PLAN = plan_from_dict({"worker_assignment": {"op": [{"worker": "w"}]}})


@pytest.mark.parametrize(
    ("family", "factor"), [("exponential", 1.0), ("deterministic", 0.5), ("lognormal", None)]
)
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_steady_state_wait_is_pollaczek_khinchine(family, factor, rho):
    s = single_worker_scenario(p50_ms=100.0, p90_ms=130.0 if family == "lognormal" else None)
    sim = FluidSimulator(SimConfig(service=family))
    sim.reset(s, SINGLE_PLAN)
    fit = sim.compiled.service[0]  # type: ignore[union-attr]
    lam = rho / fit.mean_s
    for _ in range(5):
        m = sim.advance(60, {"src": lam})
    k = factor if factor is not None else (1 + fit.scv) / 2
    expected = rho * fit.mean_s * k / (1 - rho) * 1000
    assert m.wait_ms["w"] == pytest.approx(expected, rel=1e-3)
    assert m.utilization["w"] == pytest.approx(rho, rel=1e-3)
    assert m.completed == pytest.approx(m.arrivals, rel=1e-3)
    # P(W > t) = rho exp(-t (1 - rho) / (k m)): check the median end-to-end latency is finite
    assert 0 < m.latency_ms["p50"] < m.latency_ms["p95"] < m.latency_ms["p99"]


def test_dollars_match_the_cost_model(jellybean):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    report = evaluate_plan(jellybean, plan)
    sim = FluidSimulator()
    sim.reset(jellybean, plan)
    ivs = [sim.advance(600, {"ReadImage": 30.0, "ReadSpeech": 30.0}) for _ in range(4)]
    for m in ivs:
        assert m.compute_dollars == pytest.approx(report.compute_cost / 6, rel=1e-12)
    # routing weights stay those of the design rates (40/s): traffic scales by 30/40
    comm_per_hour = ivs[-1].communication_dollars * 6
    assert comm_per_hour == pytest.approx(0.75 * report.communication_cost, rel=1e-3)


def test_backlog_carries_over_and_overload_is_capped_by_timeouts():
    s = single_worker_scenario(p50_ms=100.0, rate=15.0)
    sim = FluidSimulator(SimConfig(service="deterministic", timeout_s=30.0))
    sim.reset(s, SINGLE_PLAN)
    m1 = sim.advance(10, {"src": 15.0})  # 1.5x capacity
    assert m1.completed == pytest.approx(100, rel=0.02)
    assert m1.operator_backlog["op"] == pytest.approx(50, rel=0.05)
    assert m1.dropped_total == 0
    m2 = sim.advance(10, {"src": 15.0})
    assert m2.operator_backlog["op"] == pytest.approx(100, rel=0.05)  # carried over, growing
    ivs = [sim.advance(60, {"src": 15.0}) for _ in range(5)]
    last = ivs[-1]
    assert last.throughput == pytest.approx(10.0, rel=0.01)  # served at capacity
    assert last.dropped["timeout"] / last.duration == pytest.approx(5.0, rel=0.02)
    assert last.operator_backlog["op"] <= 15.0 * 30.0 + 1
    assert last.slo_attainment < 0.01  # everything served waited ~ the timeout
    m3 = sim.advance(600, {"src": 0.0})
    assert m3.in_flight < 0.1 and m3.completed > 400  # one implicit step drains nearly all
    assert sim.advance(600, {"src": 0.0}).in_flight < 1e-3


def test_downtime_of_a_reloaded_worker(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": [{"worker": "e1"}], "track": [{"worker": "c2"}]},
        }
    )
    moved = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": [{"worker": "e2"}], "track": [{"worker": "c2"}]},
        }
    )
    sim = FluidSimulator()
    sim.reset(tiny, plan)
    sim.advance(60, {"cam": 5.0})
    assert sim.apply(moved) == ["e2"]
    m = sim.advance(60, {"cam": 5.0})
    assert m.reconfigured == ["e2"]
    # e2 loads for 10 s (the scenario default), then serves the 10 s backlog and the flow
    fit = sim.compiled.service[sim.compiled.worker_index["e2"]]  # type: ignore[union-attr]
    assert m.utilization["e2"] == pytest.approx(5.0 * fit.mean_s, rel=0.03)
    assert m.latency_ms["p99"] > 5000
    assert "e1" not in m.utilization
    m2 = sim.advance(60, {"cam": 5.0})
    assert m2.latency_ms["p99"] < 1000


def test_crash_and_recovery(tiny):
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": [{"worker": "e1"}], "track": [{"worker": "c2"}]},
        }
    )
    faults = faults_from_data([{"kind": "crash", "worker": "e1", "at": 60, "until": 90}])
    sim = FluidSimulator()
    sim.reset(tiny, plan, faults=faults)
    ivs = [sim.advance(60, {"cam": 5.0}) for _ in range(3)]
    assert ivs[0].dropped["crash"] == 0
    assert 0 < ivs[1].dropped["crash"] <= 1  # the request in service
    assert ivs[1].utilization["e1"] < 0.5 * ivs[0].utilization["e1"] + 0.2
    assert ivs[2].completed > ivs[2].arrivals  # the backlog drains after the recovery
    for m in ivs:
        assert abs(m.accounting_error()) < 1e-9


def test_interface_contract_and_errors(jellybean, tiny):
    assert make_simulator("fluid").kind == "fluid"
    with pytest.raises(InputError, match="unknown simulator"):
        make_simulator("analog")
    with pytest.raises(InputError, match="service"):
        SimConfig(service="gamma")  # type: ignore[arg-type]
    sim = FluidSimulator()
    with pytest.raises(RuntimeError):
        sim.advance(60, {"cam": 1.0})


def test_unknown_worker_or_reused_worker_is_an_input_error(tiny):
    sim = FluidSimulator()
    with pytest.raises(InputError, match="cannot be simulated"):
        sim.reset(
            tiny,
            plan_from_dict(
                {
                    "model_assignment": {"detect": "small"},
                    "worker_assignment": {"detect": [{"worker": "zz"}]},
                }
            ),
        )
    with pytest.raises(InputError, match="at most one operator"):
        sim.reset(
            tiny,
            plan_from_dict(
                {
                    "model_assignment": {"detect": "small"},
                    "worker_assignment": {
                        "detect": [{"worker": "e1"}],
                        "track": [{"worker": "e1"}],
                    },
                }
            ),
        )


def test_rate_arguments(jellybean):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    a, b, c = FluidSimulator(), FluidSimulator(), FluidSimulator()
    for sim in (a, b, c):
        sim.reset(jellybean, plan)
    ma = a.advance(60, {"ReadImage": 20.0, "ReadSpeech": 20.0})
    mb = b.advance(60, np.array([20.0, 20.0]))
    mc = c.advance(60, [(30, {"ReadImage": 10.0, "ReadSpeech": 10.0}), (30, [30.0, 30.0])])
    assert ma.completed == mb.completed
    assert ma.arrivals == mc.arrivals == 1200
    with pytest.raises(InputError, match="unknown source"):
        a.advance(60, {"Camera": 1.0})
    with pytest.raises(InputError, match="non-negative"):
        a.advance(60, {"ReadImage": -1.0, "ReadSpeech": 1.0})
    with pytest.raises(InputError, match="pieces"):
        a.advance(60, [(30, [1.0, 1.0])])


def test_run_driver_with_a_policy_and_trace(jellybean):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    seen = []

    def policy(point):
        seen.append((point.time_s, point.last is None))
        return plan if point.last is None else None

    trace = generate_trace("diurnal", 3600, seed=1, sources=jellybean, step_s=90)
    res = rollout(FluidSimulator(), jellybean, trace, policy, interval=60)
    assert len(res.intervals) == 60
    assert seen[0] == (0.0, True) and len(seen) == 60
    t = res.totals
    assert math.isclose(t.arrivals, t.completed + t.dropped_total + t.in_flight, abs_tol=1e-6)
    # the run follows the trace's exact pieces (90 s steps inside 60 s intervals)
    assert t.arrivals == pytest.approx(
        sum(d * r["ReadImage"] for d, r in trace.segments(0, 3600)), rel=1e-9
    )
    assert res.to_dict()["totals"]["arrivals"] == t.arrivals
    assert totals_of(res.intervals).completed == t.completed


def test_constant_run_is_steady(vqa):
    from jbrl.planning import get_planner

    plan = get_planner("milp").plan(vqa).plan
    res = rollout(FluidSimulator(), vqa, constant_trace(vqa, 1800), plan, interval=60)
    late = res.intervals[5:]
    assert max(m.throughput for m in late) == pytest.approx(
        min(m.throughput for m in late), rel=1e-3
    )
    assert res.totals.dropped_total < 0.01 * res.totals.arrivals


def test_lazy_figures_are_computed_once_and_survive_pickling_and_assignment(jellybean):
    import pickle

    from jbrl.sim.fluid import FluidIntervalMetrics

    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    sim = FluidSimulator()
    sim.reset(jellybean, plan)
    m = sim.advance(60, {"ReadImage": 20.0, "ReadSpeech": 20.0})
    assert isinstance(m, FluidIntervalMetrics)
    assert "latency_ms" not in vars(m)  # not computed until read
    lat = m.latency_ms
    assert m.latency_ms is lat and vars(m)["latency_ms"] is lat  # then a plain attribute
    copy = pickle.loads(pickle.dumps(m))  # the other lazy figures are computed to pickle
    # (to_dict: JellyBean's inputs have no latency bound, so within_slo is NaN, never == NaN)
    assert copy.to_dict() == m.to_dict() and math.isnan(copy.within_slo)
    assert copy.wait_ms == m.wait_ms and copy.utilization == m.utilization
    other = sim.advance(60, {"ReadImage": 20.0, "ReadSpeech": 20.0})
    other.latency_ms = {"p99": 1.0}
    assert other.latency_ms == {"p99": 1.0}
    assert other.to_dict()["latency_ms"] == {"p99": 1.0}
