"""Issue 14: the controller's state file — malformed fields, racing writers, when and with which
time it is saved, stale temp files, and a restart after SIGKILL replaying no decision."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_control import INTERVAL, control_scenario, make_controller

from jbrl.control import read_state, write_state
from jbrl.control.state import StateStore
from jbrl.errors import InputError
from jbrl.scenario import scenario_to_yaml
from jbrl.scenario.traces import constant_trace
from tests.conftest import assert_bad_input, run_jbrl

PLAN = {"worker_assignment": {"detect": ["c1"], "track": ["c2"]}}


def _state(tmp: Path, **fields: object) -> Path:
    p = tmp / "state.json"
    body = {"version": 1, "scenario": "tiny", "time_s": 0.0, "seq": 1, "plan": PLAN, **fields}
    text = json.dumps(body)
    for literal in ("NaN", "Infinity"):  # json.dumps writes these for float('nan'), inf
        text = text.replace(f'"{literal}"', literal)
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "fields",
    [
        {"time_s": "NaN"},
        {"time_s": "Infinity"},
        {"time_s": 1e308},
        {"time_s": -1},
        {"seq": "abc"},
        {"seq": 1.5},
        {"counters": [1, 2]},
        {"counters": {"decisions": "x"}},
        {"final": "yes"},
        {"scenario": 7},
        {"colour": "blue"},
    ],
    ids=lambda f: next(iter(f)) + "=" + str(next(iter(f.values()))),
)
def test_malformed_state_fields_are_bad_input(tmp_path: Path, fields: dict) -> None:
    with pytest.raises(InputError):
        read_state(_state(tmp_path, **fields))


@pytest.mark.parametrize("value", ["NaN", 1e308])
def test_control_refuses_a_hostile_state_file_at_once(tmp_path: Path, value: object) -> None:
    """Before issue 14 a NaN time_s span at 100 % CPU for ever, ignoring --duration."""
    state = _state(tmp_path, time_s=value, scenario="vqa")
    args = ["control", "--state", str(state), "--duration", "60", "--speedup", "600"]
    result = run_jbrl([*args, "--port", "0", "--log-dir", str(tmp_path / "run")], timeout=60)
    assert_bad_input(result, "time_s")


def test_state_path_that_cannot_be_written(tmp_path: Path) -> None:
    args = ["control", "--duration", "60", "--speedup", "600", "--port", "0"]
    result = run_jbrl(
        [*args, "--state", "/proc/x.json", "--log-dir", str(tmp_path / "r")], timeout=60
    )
    assert_bad_input(result, "/proc/x.json")
    (tmp_path / "dir.json").mkdir()
    result = run_jbrl([*args, "--state", str(tmp_path / "dir.json"), "--log-dir", str(tmp_path)])
    assert_bad_input(result, "dir.json")


def test_concurrent_writers_never_collide(tmp_path: Path) -> None:
    """Each write has a temp file of its own: 8 threads x 100 writes, no error, valid JSON."""
    path = tmp_path / "state.json"
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(100):
                write_state(path, {"time_s": float(i), "seq": k * 1000 + i, "plan": PLAN})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read_state(path) is not None
    assert not list(tmp_path.glob(".state.json.*.tmp"))


def test_state_is_saved_after_every_decision_with_trace_time(tmp_path: Path) -> None:
    scen = control_scenario()
    trace = constant_trace(scen, math.inf, scale=0.5)
    ctl = make_controller(scen, trace, tmp_path, duration=6 * INTERVAL, speedup=40.0)
    seen: list[tuple[int, int, float, float]] = []
    log_decision = ctl.log.decision

    def observed(record, scalars, seq):  # noqa: ANN001, ANN202
        # every decision is in the state file before it is in the log
        saved = read_state(tmp_path / "state.json")
        assert saved is not None
        seen.append((seq, saved.seq, record["time_s"], saved.time_s))
        log_decision(record, scalars, seq)

    ctl.log.decision = observed  # type: ignore[method-assign]
    try:
        ctl.run()
    finally:
        ctl.close()
    assert len(seen) >= 4
    assert all(seq == saved_seq and t == saved_t for seq, saved_seq, t, saved_t in seen), seen
    final = read_state(tmp_path / "state.json")
    assert final is not None and final.final and final.seq == seen[-1][0]


def test_final_state_time_is_the_time_the_backend_served(tmp_path: Path) -> None:
    """At a speed-up the simulator cannot follow, the wall clock runs ahead of the simulation:
    the final state must stand where the simulation stands, or a resume would skip trace."""
    scen = control_scenario()
    trace = constant_trace(scen, math.inf, scale=0.9)
    ctl = make_controller(scen, trace, tmp_path, duration=50 * INTERVAL, speedup=50_000.0)
    try:
        ctl.run()
        time.sleep(0.2)
    finally:
        ctl.close()
    served = ctl.backend.trace_time()
    final = read_state(tmp_path / "state.json")
    assert final is not None and final.final
    assert final.time_s <= served + 1e-6, (final.time_s, served, ctl.clock.now())


def test_stale_temp_files_are_removed_and_one_controller_per_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    stale = [tmp_path / ".state.json.1234.tmp", tmp_path / ".state.json.abcd1234.tmp"]
    for p in stale:
        p.write_text("{")
    other = tmp_path / ".other.json.1.tmp"
    other.write_text("{")
    store = StateStore(path)
    try:
        assert not any(p.exists() for p in stale)
        assert other.exists()
        with pytest.raises(InputError, match="another controller"):
            StateStore(path)
    finally:
        store.close()
    StateStore(path).close()  # free again once closed


def _interval_times(log: Path) -> list[float]:
    times = []
    for line in log.read_text().splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed process may be cut
        if d.get("trigger") == "interval":
            times.append(d["time_s"])
    return times


def test_restart_after_sigkill_replays_no_decision(tmp_path: Path) -> None:
    scen_file = tmp_path / "control.yaml"
    scen_file.write_text(scenario_to_yaml(control_scenario()))
    args = [
        sys.executable, "-c", "from jbrl.cli import run; run()", "control",
        "--scenario", str(scen_file), "--speedup", "100", "--interval", "10", "--port", "0",
        "--state", str(tmp_path / "state.json"), "--log-dir", str(tmp_path / "run"),
        "--no-tensorboard", "--policy", "fallback:headroom=0.3", "--headroom", "0.3",
        "--duration", "100000",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "run" / "decisions.jsonl"
    for _ in range(2):
        before = len(_interval_times(log)) if log.exists() else 0
        proc = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while time.monotonic() < end and len(_interval_times(log) if log.exists() else []) < (
            before + 3
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    times = _interval_times(log)
    assert len(times) >= 6
    assert len(times) == len(set(times)), f"an interval was decided twice: {times}"
    assert times == sorted(times)
