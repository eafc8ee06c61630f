"""``jbrl evaluate --ray``: the runs as Ray tasks on a Ray started for the run (127.0.0.1, its
session files in the run directory, removed afterwards) give the same JSON and plots as the
local path; bad ``--ray`` values exit 2. Runs on a multi-node cluster: tests/test_cluster.py."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from jbrl.cli import main
from jbrl.scenario.traces import generate_trace


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ray", "http://head:8265"], "'auto'"),
        (["--ray", "--processes", "2"], "not both"),
    ],
)
def test_bad_ray_options(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    pytest.importorskip("ray")
    code = main(["evaluate", "--policies", "autoscaler", "--duration", "120", "--no-progress",
                 *args])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_ray_gives_the_local_json_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    trace = tmp_path / "t.csv"
    generate_trace("step", 480, seed=2, step_s=60, params={"low": 0.7, "high": 1.3}).save(trace)
    common = ["evaluate", "--trace", str(trace), "--trace", "flash_crowd", "--duration", "300",
              "--policies", "milp-hysteresis,ppo", "--seeds", "2", "--no-progress"]  # fmt: skip
    run_dir = Path(tempfile.mkdtemp(prefix="jbrl-ev-", dir="/tmp"))  # short: session inside
    try:
        out = {}
        for name, extra in (("local", []), ("ray", ["--ray", "--run-dir", str(run_dir)])):
            out[name] = tmp_path / f"{name}.json"
            args = [*common, "--json-out", str(out[name]), "--plots", str(tmp_path / name), *extra]
            assert main(args) == 0, capsys.readouterr().err
        err = capsys.readouterr().err
        assert f"local Ray on 127.0.0.1 (session files in {run_dir}/ray-session)" in err
        assert "8 runs as Ray tasks on 1 node(s)" in err
        assert not (run_dir / "ray-session").exists()  # the session files are removed
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    local, ray = (json.loads(out[k].read_text()) for k in ("local", "ray"))
    assert _without_timings(ray) == _without_timings(local)
    plots = sorted((tmp_path / "local").glob("*.png"))
    assert plots
    for p in plots:
        assert (tmp_path / "ray" / p.name).read_bytes() == p.read_bytes(), p.name


def _without_timings(data: dict) -> dict:
    """The evaluation JSON less its wall-clock measurements (as ``to_dict(timings=False)``)."""
    data.pop("wall_s")
    for row in data["rows"] + data["summary"]:
        row.pop("decision_mean_ms"), row.pop("decision_max_ms")
    for run in data["runs"]:
        run.pop("decision_ms"), run["series"].pop("decision_ms")
    return data
