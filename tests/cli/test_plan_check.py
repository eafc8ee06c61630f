"""``jbrl plan --check-sim``: the plan simulated at its own load beside the latency model's
prediction; exit 0 when it holds, 3 when the simulation misses the SLO's target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jbrl.cli import main
from jbrl.planning import get_planner
from jbrl.scenario import load_scenario
from jbrl.scenario.loader import embedded_scenario_text
from jbrl.sim.plan_check import check_plan
from tests.cli.test_output import jbrl_at

CHECK_KEYS = {
    "simulator",
    "duration_s",
    "seed",
    "rates",
    "bound_ms",
    "attainment_target",
    "predicted",
    "simulated",
    "arrivals",
    "completed",
    "dropped",
    "in_flight",
    "holds",
    "reason",
}
FIGURE_KEYS = {"slo_attainment", "latency_ms", "dollars_per_hour"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_vqa_default_plan_holds(capsys: pytest.CaptureFixture[str]) -> None:
    """The SLO-aware plan of vqa meets 3 s for 99 % in the DES, as the latency model says."""
    code, out, _ = run(capsys, "plan", "-s", "vqa", "--check-sim", "--json")
    assert code == 0
    d = json.loads(out)
    c = d["check"]
    assert set(c) == CHECK_KEYS
    assert set(c["predicted"]) == set(c["simulated"]) == FIGURE_KEYS
    assert set(c["simulated"]["latency_ms"]) == {"p50", "p99"}
    assert c["holds"] is True and c["simulator"] == "des" and c["duration_s"] == 1800
    assert c["simulated"]["slo_attainment"] >= c["attainment_target"] == 0.99
    assert c["predicted"]["slo_attainment"] >= 0.99
    assert c["rates"] == load_scenario("vqa").nominal_rates()
    # the predicted $/h is the planner's; the simulated one counts the same workers
    assert c["predicted"]["dollars_per_hour"] == d["total_cost"]
    assert c["simulated"]["dollars_per_hour"] == pytest.approx(d["total_cost"], rel=0.01)
    # every arrival is accounted for, and a 30-minute run at 35.6 req/s has tens of thousands
    assert c["arrivals"] > 30000
    assert c["arrivals"] == pytest.approx(c["completed"] + c["dropped"] + c["in_flight"])
    lat = c["simulated"]["latency_ms"]
    assert 0 < lat["p50"] < lat["p99"] < c["bound_ms"]


def test_capacity_only_plan_misses_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Capacity-only planning runs workers near 100 %: the model predicts the miss and the
    DES confirms it; the JSON has the plan, the check and the numbers."""
    code, out, err = run(
        capsys, "plan", "-s", "vqa", "--latency-model", "none", "--check-sim", "--json"
    )
    assert code == 3
    assert "does not hold in simulation" in err
    d = json.loads(out)
    assert d["status"] == "infeasible" and d["plan_status"] == "optimal"
    assert d["model_assignment"] and d["worker_assignment"]
    c = d["check"]
    assert c["holds"] is False
    assert c["simulated"]["slo_attainment"] < 0.99
    assert c["predicted"]["slo_attainment"] < 0.99
    assert d["reason"]["simulated_attainment"] == c["simulated"]["slo_attainment"]
    assert d["reason"]["attainment_target"] == 0.99


def test_human_output_beside_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "plan", "-s", "vqa", "--latency-model", "none", "--check-sim", "--duration", "600"
    )
    assert code == 3
    assert "Plan (milp, optimal)" in out and "total_cost" in out
    assert "Predicted vs simulated" in out and "MISSES" in out
    for row in ("SLO attainment", "latency p50 ms", "latency p99 ms", "$/hour"):
        assert row in out
    assert "600 simulated s" in out
    assert "infeasible:" in err


def test_fluid_seed_duration(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "-s", "vqa", "--check-sim", "--sim", "fluid", "--duration", "300"]
    code, out, _ = run(capsys, *argv, "--seed", "4", "--json")
    assert code == 0
    c = json.loads(out)["check"]
    assert (c["simulator"], c["duration_s"], c["seed"]) == ("fluid", 300, 4)
    assert c["holds"] is True


def test_des_is_deterministic_under_a_seed() -> None:
    s = load_scenario("vqa")
    res = get_planner("milp").plan(s)
    rates = s.nominal_rates()
    a, b, c = (
        check_plan(s, res.plan, rates, res.total_cost, duration=300, seed=seed)
        for seed in (1, 1, 2)
    )
    assert a.to_dict() == b.to_dict()
    assert a.arrivals != c.arrivals


def test_no_latency_bound_checks_drops_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a latency bound there is no attainment: the check says so and judges the
    requests dropped or still queued (a stable plan: none beyond 1 - target)."""
    data = yaml.safe_load(embedded_scenario_text("vqa"))
    del data["slo"]["latency_ms"]
    path = tmp_path / "nobound.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    code, out, _ = run(capsys, "plan", "-s", str(path), "--check-sim", "--duration", "600")
    assert code == 0
    assert "no latency bound" in out
    code, out, _ = run(capsys, "plan", "-s", str(path), "--check-sim", "--json")
    c = json.loads(out)["check"]
    assert c["bound_ms"] is None and c["simulated"]["slo_attainment"] is None
    assert c["holds"] is True and "queued at the end" in c["reason"]


def test_overloaded_plan_without_bound_misses() -> None:
    """A plan at twice the rates it was planned for queues without bound: beyond 1 - target."""
    vqa = load_scenario("vqa")
    s = vqa.model_copy(update={"slo": vqa.slo.model_copy(update={"latency_ms": None})})
    assert s.slo.bound_s is None
    res = get_planner("milp").plan(s)
    rates = {k: 2 * v for k, v in s.nominal_rates().items()}
    chk = check_plan(s, res.plan, rates, res.total_cost, duration=600)
    assert chk.simulated.attainment is None
    assert chk.holds is False
    assert chk.dropped + chk.in_flight > 0.01 * chk.arrivals


def test_check_sim_with_max_rate_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "-s", "vqa", "--max-rate", "--check-sim")
    assert code == 2 and "--check-sim" in err


def test_fits_80_columns() -> None:
    proc = jbrl_at(80, "plan", "-s", "vqa", "--check-sim", "--latency-model", "none")
    assert proc.returncode == 3, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any("Predicted vs simulated" in ln for ln in lines)
    assert not [ln for ln in lines if len(ln) > 80]
    assert "…" not in proc.stdout
