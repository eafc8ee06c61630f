"""Output for people and for machines: tables fit 80 columns without cutting a character,
machine-readable output is never wrapped, --json is stdout JSON, --version, --rows 0.

The width tests run ``jbrl`` as a process with ``COLUMNS`` set, as a user's terminal or pipe
would (rich reads the width when the command starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import jbrl
from jbrl.cli import main
from jbrl.scenario import load_scenario
from jbrl.scenario.traces import generate_trace
from tests.conftest import JELLYBEAN_DIR

ENTRY = "import sys; from jbrl.cli import main; sys.exit(main())"


def jbrl_at(columns: int, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "MPLBACKEND": "Agg", "TERM": "xterm"}
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("out")
    trace = d / "t.csv"
    vqa = load_scenario("vqa")
    generate_trace("step", 240, seed=2, step_s=60, sources=vqa).save(trace)
    plan = d / "plan.json"
    assert main(["plan", "--scenario", "vqa", "--json", "-o", str(plan)]) == 0
    return {"dir": d, "trace": trace, "plan": plan}


TABLE_COMMANDS = {
    "scenario show vqa": ["scenario", "show", "vqa"],
    "scenario show jellybean": ["scenario", "show", str(JELLYBEAN_DIR)],
    "plan jellybean": ["plan", "--scenario", str(JELLYBEAN_DIR)],
    "plan max-rate": ["plan", "--scenario", "vqa", "--max-rate"],
    "cost": ["cost", "--scenario", "vqa", "--plan", "{plan}"],
    "simulate": ["simulate", "--scenario", "vqa", "--plan", "{plan}", "--trace", "{trace}"],
    "trace show": ["trace", "show", "{trace}"],
    "evaluate": [
        "evaluate",
        "--trace",
        "{trace}",
        "--trace",
        "step",
        "--duration",
        "240",
        "--policies",
        "milp-reactive:headroom=0.2,milp-hysteresis,autoscaler",
        "--no-progress",
    ],  # fmt: skip
    "demo plans": ["demo", "--plans-only", "-o", "{dir}/demo"],
    "profile list": ["profile", "--list"],
}


@pytest.mark.parametrize("name", list(TABLE_COMMANDS))
def test_tables_fit_80_columns(name: str, files: dict[str, Path]) -> None:
    argv = [a.format(**files) for a in TABLE_COMMANDS[name]]
    proc = jbrl_at(80, *argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) > 3
    long = [ln for ln in lines if len(ln) > 80]
    assert not long, long[:3]
    assert "…" not in proc.stdout


def test_wrapped_cells_keep_every_character(files: dict[str, Path]) -> None:
    """JellyBean's long variant and worker names wrap at 80 columns but are all there: the
    pieces of each cell, read column by column, join to the full names."""
    plan = json.loads(jbrl_at(80, "plan", "--scenario", str(JELLYBEAN_DIR), "--json").stdout)
    lines = jbrl_at(80, "plan", "--scenario", str(JELLYBEAN_DIR)).stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["operator"])
    v0, w0 = lines[head].index("variant"), lines[head].index("workers")
    rows: dict[str, list[str]] = {}
    op = ""
    for ln in lines[head + 2 :]:
        if not ln.strip():
            break
        op = ln[:v0].strip() or op
        cells = rows.setdefault(op, ["", ""])
        cells[0] += ln[v0:w0].strip()
        cells[1] += ln[w0:].strip()
    assert set(rows) == set(plan["model_assignment"])
    for name, var in plan["model_assignment"].items():
        assert rows[name][0] == var
        for share in plan["worker_assignment"][name]:
            assert share["worker"] in rows[name][1]


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_scenario_yaml_parses_at_any_width(columns: int) -> None:
    proc = jbrl_at(columns, "scenario", "show", "vqa", "--yaml")
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(proc.stdout)
    expected = load_scenario("vqa").model_dump(mode="json", by_alias=True, exclude_none=True)
    assert data == expected
    assert "\x1b[" not in proc.stdout  # no styles


def test_json_is_raw_at_narrow_width(files: dict[str, Path]) -> None:
    proc = jbrl_at(40, "scenario", "show", "vqa", "--json")
    assert json.loads(proc.stdout)["name"] == "vqa"
    proc = jbrl_at(40, "trace", "show", str(files["trace"]), "--json")
    assert json.loads(proc.stdout)["rows"] == 4


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"jbrl {jbrl.__version__}"


def test_rows_zero_prints_no_interval_table(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--scenario", "vqa", "--plan", str(files["plan"])]
    argv += ["--trace", str(files["trace"])]
    assert main([*argv, "--rows", "0"]) == 0
    out = capsys.readouterr().out
    assert "Totals" in out and "Per interval" not in out
    assert main([*argv, "--rows", "2"]) == 0
    out = capsys.readouterr().out
    assert "every 2th of 4" in out and "loads: model loads" in " ".join(out.split())
    assert main([*argv, "--rows", "-1"]) == 2


def test_max_rate_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--scenario", "vqa", "--max-rate"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "'" not in out  # no Python dict
    assert "Largest sustainable rate" in out and "Variants at that rate" in out
    assert "ExtractImageFeature" in out


def test_evaluation_caption_explains_the_columns(capsys: pytest.CaptureFixture[str]) -> None:
    from jbrl.evaluation.report import CAPTION

    for col in ("worst:", "reconf: model loads", "decide:", "SLO:", "acc:"):
        assert col in CAPTION


def test_plan_and_demo_print_the_same_cost(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same plan's $/hour reads the same in plan, cost and demo (one formatting function)."""
    from jbrl import display

    plan = json.loads(files["plan"].read_text())
    want = display.dollars(plan["total_cost"])
    assert main(["plan", "--scenario", "vqa"]) == 0
    assert f"total_cost          {want} $/hour" in capsys.readouterr().out
    assert main(["cost", "--scenario", "vqa", "--plan", str(files["plan"])]) == 0
    assert f"total_cost          {want} $/hour" in capsys.readouterr().out
    assert main(["demo", "--plans-only", "-o", str(files["dir"] / "demo2")]) == 0
    demo = capsys.readouterr().out
    milp_row = next(ln for ln in demo.splitlines() if ln.strip().startswith("milp "))
    assert want in milp_row.split()


def test_dollars_round_the_same_on_either_side_of_float_noise() -> None:
    from jbrl import display

    assert display.dollars(1.1507499999999998) == display.dollars(1.1507500000000002) == "1.1508"
    assert display.dollars(0.0) == "0.0000" and display.dollars(float("nan")) == "-"
    assert display.dollars(0.15097976334836233, 7) == "0.1509798"
