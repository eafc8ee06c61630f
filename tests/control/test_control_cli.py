"""``jbrl control`` as a process: SIGTERM stops it cleanly, ``--state`` resumes, bad input exits 2.

The API binds 127.0.0.1 on a free port (``--port 0``); the port is read from ``api.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_control import HEADROOM, control_scenario

from jbrl.cli import main
from jbrl.control import read_state
from jbrl.scenario import scenario_to_yaml

CLI = [sys.executable, "-c", "from jbrl.cli import run; run()"]


def _scenario_file(tmp: Path) -> Path:
    p = tmp / "control.yaml"
    p.write_text(scenario_to_yaml(control_scenario()))
    return p


def _args(scen: Path, tmp: Path, log: str) -> list[str]:
    return [
        "control",
        "--scenario",
        str(scen),
        "--backend",
        "sim",
        "--speedup",
        "50",
        "--interval",
        "10",
        "--port",
        "0",
        "--state",
        str(tmp / "state.json"),
        "--log-dir",
        str(tmp / log),
        "--no-tensorboard",
        "--headroom",
        str(HEADROOM),
        "--policy",
        f"fallback:headroom={HEADROOM}",
    ]


def _wait_for(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_sigterm_stops_cleanly_and_state_resumes(tmp_path: Path) -> None:
    scen = _scenario_file(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*CLI, *_args(scen, tmp_path, "run1")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    try:
        api = tmp_path / "run1" / "api.json"
        _wait_for(api.exists, 90, "the API to start")
        url = json.loads(api.read_text())["url"]
        assert url.startswith("http://127.0.0.1:")
        decisions = tmp_path / "run1" / "decisions.jsonl"
        _wait_for(lambda: len(_lines(decisions)) >= 3, 90, "three decisions")
        with urllib.request.urlopen(url + "/healthz", timeout=10) as r:
            assert json.loads(r.read())["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    state = read_state(tmp_path / "state.json")
    assert state is not None and state.final and state.time_s > 0
    summary = json.loads((tmp_path / "run1" / "summary.json").read_text())
    assert summary["backend_counts"]["lost"] == 0
    last_plan = _lines(decisions)[-1]["plan"]

    # restart from the state file: the saved plan runs first, the trace time goes on
    res = subprocess.run(
        [*CLI, *_args(scen, tmp_path, "run2"), "--duration", "30", "--json"],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr.decode()
    first = _lines(tmp_path / "run2" / "decisions.jsonl")[0]
    assert first["source"] == "resume" and first["trigger"] == "resume"
    assert first["plan"]["worker_assignment"] == last_plan["worker_assignment"]
    assert first["time_s"] >= state.time_s
    assert json.loads(res.stdout)["backend_counts"]["lost"] == 0


def test_non_loopback_host_needs_a_token(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scen = _scenario_file(tmp_path)
    code = main(["control", "--scenario", str(scen), "--host", "0.0.0.0", "--duration", "10"])
    assert code == 2
    assert "--token" in capsys.readouterr().err


def test_ray_backend_without_ray_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jbrl.control.backends.ray as rb

    monkeypatch.setattr(rb, "ray_available", lambda: False)
    scen = _scenario_file(tmp_path)
    code = main(["control", "--scenario", str(scen), "--backend", "ray", "--duration", "10"])
    assert code == 2
    assert "'ray' extra" in capsys.readouterr().err


def test_unknown_policy_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scen = _scenario_file(tmp_path)
    code = main(
        [
            "control",
            "--scenario",
            str(scen),
            "--policy",
            "no-such-policy",
            "--duration",
            "10",
            "--log-dir",
            str(tmp_path / "x"),
            "--port",
            "0",
        ]
    )
    assert code == 2
    assert "fallback" in capsys.readouterr().err
