"""SIGKILL / restart cycles of the online controller under HTTP load (issue 14's benchmark).

Runs ``jbrl control`` (sim backend, the step trace at 60x, the MILP fallback policy) with one
``--state`` file and one log folder, kills it with SIGKILL at a random moment (sometimes during
start-up), restarts it, ``--cycles`` times, while clients hit ``GET /plan``, ``/metrics``,
``/healthz`` and ``POST /plan`` (the running plan as an override) all the time. Counts:

* **corrupt state**: the state file unreadable after a kill (``read_state`` fails);
* **start-up crashes**: a controller that exits by itself before it is killed;
* **500s**: server errors, in particular between a start and the first ``GET /plan`` 200;
* **replayed decisions**: interval decisions in the decision log (across all cycles) at a
  trace time at or before one already decided, and repeated ``seq`` numbers; the state file is
  written before each decision's log line, so a restart resumes after the last logged one;
* **stray temp files** left by a kill, and how many of them are still there once the next
  controller serves (it removes them at start).

``--jbrl`` picks the command (another checkout's, to measure the code before a change).
Figures: ``experiments/results/kill_restart.json`` (one entry per label), summarised in
``hardening.md`` by ``experiments/hardening_report.py``::

    python experiments/kill_restart.py --cycles 25 [--jbrl PATH] [--label after]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from http_probe import _get_body, _request, http  # experiments/ is on the path of its scripts

from jbrl.control import read_state
from jbrl.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
STEP = ROOT / "configs" / "traces" / "step.csv"


class Load:
    """Clients that call the API of whatever controller runs now (``port`` changes); every
    fourth call posts the running plan back as an override, so overrides (and their state
    saves, from the API's threads) race with the control loop's decisions (``overrides=False``:
    a malformed one, refused, so only the control loop saves)."""

    def __init__(self, clients: int = 4, overrides: bool = True) -> None:
        self.overrides = overrides
        self.port: int | None = None
        self.started = False  # the current controller has answered GET /plan with 200
        self.answers: Counter[str] = Counter()
        self.startup: Counter[str] = Counter()
        self.plan_body = json.dumps({"worker_assignment": {}}).encode()
        self.overrides_applied = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, i: int) -> None:
        k = 0
        while not self._stop.is_set():
            port = self.port
            if port is None:
                time.sleep(0.01)
                continue
            k += 1
            if k % 4 == 0:
                raw = http(port, "POST", "/plan", self.plan_body, Content_Type="application/json")
            else:
                raw = http(port, "GET", ("/plan", "/metrics", "/healthz")[(k + i) % 3])
            st, why = _request(port, raw, timeout=5)
            if st == 200 and raw.startswith(b"POST"):
                self.overrides_applied += 1
            if st == 200 and raw.startswith(b"GET /plan") and self.overrides:
                self._remember(port)
            key = str(st) if st is not None else why
            self.answers[key] += 1
            if not self.started:
                self.startup[key] += 1
                if st == 200 and b"GET /plan" in raw:
                    self.started = True
            time.sleep(0.005)

    def _remember(self, port: int) -> None:
        """The running plan, as the body of the next overrides."""
        try:
            body = _get_body(port, "/plan") or {}
        except OSError:
            return
        plan = {k: body[k] for k in ("model_assignment", "worker_assignment") if k in body}
        if plan:
            self.plan_body = json.dumps({"plan": plan, "hold_intervals": 1}).encode()

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def _port(run: Path, pid: int) -> int | None:
    """The API port of controller ``pid`` (from ``api.json``), None if it has none yet."""
    try:
        info = json.loads((run / "api.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("pid") != pid:
        return None
    return int(info["url"].rsplit(":", 1)[1])


def _state_ok(state: Path) -> bool:
    """The state file parses and passes every check of ``read_state``."""
    try:
        return read_state(state) is not None
    except InputError:
        return False


def cycles(
    jbrl: list[str], n: int, seed: int, work: Path, overrides: bool = True
) -> dict[str, Any]:
    """``n`` start / SIGKILL cycles under load (module docstring): the counts."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    run, state = work / "run", work / "state.json"
    args = [*jbrl, "control", "--trace", str(STEP), "--speedup", "60", "--interval", "60",
            "--port", "0", "--state", str(state), "--log-dir", str(run), "--no-tensorboard",
            "--duration", "100000"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load = Load(overrides=overrides)
    load.start()
    out: dict[str, Any] = {"cycles": n, "corrupt_state": 0, "startup_crashes": 0,
                           "stray_temp_after_kill": 0, "stray_temp_after_start": 0,
                           "killed_during_startup": 0, "crash_messages": []}  # fmt: skip
    stray: list[Path] = []
    try:
        for _ in range(n):
            load.port, load.started = None, False
            proc = subprocess.Popen(
                args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            t0, delay = time.monotonic(), float(rng.uniform(1.0, 9.0))  # start-up takes ~3 s
            while time.monotonic() - t0 < delay and proc.poll() is None:
                if load.port is None and (port := _port(run, proc.pid)) is not None:
                    load.port = port  # the temp files the last kill left must be gone now
                    out["stray_temp_after_start"] += sum(p.exists() for p in stray)
                time.sleep(0.01)
            if proc.poll() is not None:
                out["startup_crashes"] += 1
                out["crash_messages"].append(proc.stderr.read().decode()[-500:])  # type: ignore[union-attr]
            else:
                out["killed_during_startup"] += not load.started
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            load.port = None
            stray = list(work.glob(".state.json.*.tmp"))
            out["stray_temp_after_kill"] += len(stray)
            if state.exists() and not _state_ok(state):
                out["corrupt_state"] += 1
    finally:
        load.stop()
    out["answers"] = dict(load.answers)
    out["overrides_applied"] = load.overrides_applied
    out["startup_answers"] = dict(load.startup)
    out["server_errors"] = load.answers.get("500", 0)
    out["startup_server_errors"] = load.startup.get("500", 0)
    out.update(_replays(run / "decisions.jsonl"))
    return out


def _replays(log: Path) -> dict[str, Any]:
    times: list[float] = []
    seqs: list[int] = []
    for line in log.read_text().splitlines() if log.is_file() else []:
        try:
            d = json.loads(line)
        except ValueError:
            continue  # a line cut by SIGKILL
        seqs.append(d["seq"])
        if d.get("trigger") == "interval":
            times.append(d["time_s"])
    latest, replayed = -1.0, 0
    for t in times:  # an interval decided at or before a time already decided: a replay
        replayed += t <= latest
        latest = max(latest, t)
    return {
        "decisions_logged": len(seqs),
        "interval_decisions": len(times),
        "replayed_decisions": replayed,
        "repeated_seqs": len(seqs) - len(set(seqs)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cycles", type=int, default=25)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--jbrl", default=None, help="the jbrl command (default: this checkout's)")
    ap.add_argument("--label", default="after")
    ap.add_argument(
        "--overrides",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="post the running plan as overrides (else malformed ones, refused)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    jbrl = [args.jbrl] if args.jbrl else [sys.executable, "-c", "from jbrl.cli import run; run()"]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jbrl-kill-") as tmp:
        res = cycles(jbrl, args.cycles, args.seed, Path(tmp), args.overrides)
    res["overrides"] = args.overrides
    res["minutes"] = (time.monotonic() - t0) / 60
    res["machine"] = {"cores": os.cpu_count(), "load_average": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "kill_restart.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[args.label] = res
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
