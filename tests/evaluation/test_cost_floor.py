"""experiments/cost_floor.py: the floors it sums are floors. Per interval, the capacity-only
plan costs at most the SLO-aware one (a relaxation), and the SLO-aware one at most the static
plan for the trace's peak (which serves every interval's mean rates within the SLO too)."""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from tests.conftest import experiment_module


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    return experiment_module("cost_floor")


@pytest.mark.parametrize("scenario", ["vqa", "vehicle"])
def test_floors_are_ordered_and_the_report_says_so(floor, tmp_path, scenario):
    out = tmp_path / "floor.md"
    argv = ["--scenario", scenario, "--traces", "step,onoff", "--duration", "900"]
    assert floor.main([*argv, "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())[scenario]
    assert set(res["traces"]) == {"step", "onoff"}
    for name, row in res["traces"].items():
        assert row["intervals"] == 15
        assert 0 < row["capacity"] <= row["slo"] * (1 + 1e-6), name
        assert row["slo"] <= row["static"] * (1 + 1e-6), name
    total = res["total"]
    assert total["static"] == pytest.approx(sum(r["static"] for r in res["traces"].values()))
    text = out.read_text()
    bar = 0.9 * total["static"]
    verdict = "above it: no SLO-aware plan sequence" if total["slo"] > bar else "below it:"
    assert f"- slo floor {total['slo']:.3f} $, {verdict}" in text
    # a second scenario's section is added beside the first, not over it
    other = "vehicle" if scenario == "vqa" else "vqa"
    floor.main(["--scenario", other, "--traces", "step", "--duration", "120", "--out", str(out)])
    text = out.read_text()
    assert f"<!-- floor:{scenario} -->" in text and f"<!-- floor:{other} -->" in text
    assert set(json.loads(out.with_suffix(".json").read_text())) == {scenario, other}


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--traces", "step,nope"], "--traces: unknown trace 'nope'"),
        (["--scenario", "nope"], "--scenario: "),
        (["--interval", "0"], "--interval must be > 0"),
        (["--time-limit", "-1"], "--time-limit must be > 0"),
    ],
)
def test_bad_options_exit_2_with_one_message(floor, capsys, argv, says):
    with pytest.raises(SystemExit) as exc:
        floor.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
