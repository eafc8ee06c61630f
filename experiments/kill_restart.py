"""SIGKILL / restart cycles of the online controller under HTTP load (issue 14's benchmark).

Runs ``jbrl control`` (sim backend, the step trace at 60x, the MILP fallback policy) with one
``--state`` file and one log folder, kills it with SIGKILL at a random moment (sometimes during
start-up), restarts it, ``--cycles`` times, while clients hit ``GET /plan``, ``/metrics``,
``/healthz`` and ``POST /plan`` (the running plan as an override) all the time. Counts:

* **corrupt state**: the state file unreadable after a kill (``read_state`` fails);
* **start-up crashes**: a controller that exits by itself before it is killed;
* **500s**: server errors, in particular between a start and the first ``GET /plan`` 200;
* **replayed decisions**: interval decisions of the same trace time (or the same ``seq``) in
  the decision log across all cycles; the state file is written before each decision's log
  line, so a restart resumes after the last logged decision;
* **stray temp files** left by a kill, and how many of them are still there once the next
  controller serves (it removes them at start).

``--jbrl`` picks the command (another checkout's, to measure the code before a change).
Figures: ``experiments/results/kill_restart.{md,json}``::

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
from http_probe import _request, http  # experiments/ is on the path of its scripts

from jbrl.control import read_state
from jbrl.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
STEP = ROOT / "configs" / "traces" / "step.csv"


class Load:
    """Clients that call the API of whatever controller runs now (``port`` changes)."""

    def __init__(self, clients: int = 4) -> None:
        self.port: int | None = None
        self.started = False  # the current controller has answered GET /plan with 200
        self.answers: Counter[str] = Counter()
        self.startup: Counter[str] = Counter()
        self.plan_body = json.dumps({"worker_assignment": {}}).encode()
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
            key = str(st) if st is not None else why
            self.answers[key] += 1
            if not self.started:
                self.startup[key] += 1
                if st == 200 and b"GET /plan" in raw:
                    self.started = True
            time.sleep(0.005)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def _port(run: Path, pid: int, proc: subprocess.Popen[bytes], wait_s: float) -> int | None:
    """The API port of controller ``pid`` (from ``api.json``), None if it has none yet."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end and proc.poll() is None:
        try:
            info = json.loads((run / "api.json").read_text())
            if info.get("pid") == pid:
                return int(info["url"].rsplit(":", 1)[1])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    return None


def _state_ok(state: Path) -> bool:
    """The state file parses and passes every check of ``read_state``."""
    try:
        return read_state(state) is not None
    except InputError:
        return False


def cycles(jbrl: list[str], n: int, seed: int, work: Path) -> dict[str, Any]:
    """``n`` start / SIGKILL cycles under load (module docstring): the counts."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    run, state = work / "run", work / "state.json"
    args = [*jbrl, "control", "--trace", str(STEP), "--speedup", "60", "--interval", "60",
            "--port", "0", "--state", str(state), "--log-dir", str(run), "--no-tensorboard",
            "--duration", "100000"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load = Load()
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
            port = _port(run, proc.pid, proc, wait_s=60)
            load.port = port
            if port is not None:  # the temp files the last kill left must be gone by now
                out["stray_temp_after_start"] += sum(p.exists() for p in stray)
            time.sleep(float(rng.uniform(0.0, 6.0)))
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
    return {
        "decisions_logged": len(seqs),
        "interval_decisions": len(times),
        "replayed_interval_times": len(times) - len(set(times)),
        "repeated_seqs": len(seqs) - len(set(seqs)),
        "time_went_back": sum(b < a for a, b in zip(times, times[1:], strict=False)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cycles", type=int, default=25)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--jbrl", default=None, help="the jbrl command (default: this checkout's)")
    ap.add_argument("--label", default="after")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    jbrl = [args.jbrl] if args.jbrl else [sys.executable, "-c", "from jbrl.cli import run; run()"]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jbrl-kill-") as tmp:
        res = cycles(jbrl, args.cycles, args.seed, Path(tmp))
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
