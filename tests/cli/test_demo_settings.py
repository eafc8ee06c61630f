"""A scenario's ``demo:`` settings: how ``jbrl demo`` runs its policies unless told otherwise
(simulator, decision interval, trace length), and what they must not change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jbrl.cli import main
from jbrl.planning.coverage import scenario_fingerprint
from jbrl.scenario import load_scenario
from jbrl.scenario.model import DemoSettings

REPO = Path(__file__).resolve().parents[2]


def test_small_scenarios_keep_the_des_at_60_s_and_the_fleet_asks_for_less() -> None:
    assert load_scenario("vqa").demo == DemoSettings()
    assert DemoSettings().sim == "des" and DemoSettings().interval_s == 60.0
    assert DemoSettings().duration_s is None
    fleet = load_scenario("fleet").demo
    assert (fleet.sim, fleet.interval_s, fleet.duration_s) == ("fluid", 300.0, 1800.0)
    assert "300 s" in fleet.reason


def test_demo_settings_do_not_change_what_planners_see() -> None:
    s = load_scenario("vqa")
    other = s.model_copy(update={"demo": DemoSettings(sim="fluid", interval_s=600.0)})
    assert scenario_fingerprint(other) == scenario_fingerprint(s)


def _vqa_with_demo(tmp_path: Path, demo: dict) -> Path:
    data = yaml.safe_load((REPO / "configs" / "scenarios" / "vqa.yaml").read_text("utf-8"))
    data["demo"] = demo
    path = tmp_path / "vqa-demo.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


def test_demo_runs_with_the_scenario_settings_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _vqa_with_demo(
        tmp_path, {"sim": "fluid", "interval_s": 600, "duration_s": 1200, "reason": "quick"}
    )
    out = tmp_path / "a"
    assert main(["demo", "--scenario", str(path), "-p", "milp-static", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "every 600 s" in printed and "demo settings: quick" in printed
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["simulator"] == "fluid" and ev["interval_s"] == 600
    assert len(ev["runs"][0]["series"]["t"]) == 2  # 1200 s cut at 600 s per decision

    out = tmp_path / "b"
    argv = ["demo", "--scenario", str(path), "-p", "milp-static", "-o", str(out)]
    assert main([*argv, "--sim", "des", "--interval", "300", "--duration", "900"]) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["simulator"] == "des" and ev["interval_s"] == 300
    assert len(ev["runs"][0]["series"]["t"]) == 3


def test_a_bad_demo_setting_names_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _vqa_with_demo(tmp_path, {"sim": "gpu", "interval_s": 60})
    assert main(["scenario", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "demo.sim" in err and "gpu" in err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--sim", "gpu"], "gpu"),
        (["--interval", "0"], "interval"),
        (["--duration", "-5"], "duration"),
        (["--trace", "no-such-trace"], "no-such-trace"),
        (["-p", "no-such-policy"], "no-such-policy"),
    ],
)
def test_bad_run_flags_exit_2_before_any_planning(
    flags: list[str],
    named: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import jbrl.planning

    def no_planning(name: str) -> None:
        raise AssertionError(f"planner {name} asked for before the flags were checked")

    monkeypatch.setattr(jbrl.planning, "get_planner", no_planning)
    assert main(["demo", "-o", str(tmp_path / "d"), *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()  # nothing written either
