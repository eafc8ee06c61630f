"""Fuzz campaign over every loader of jbrl: >= 10,000 generated hostile inputs, each run as a
subprocess with time and memory limits (issue 14's benchmark).

Inputs are drawn from one seeded generator (numpy ``SeedSequence``): structural mutations of
valid documents (a part replaced by a hostile value — NaN, 1e308, a 400-digit integer, a
40-deep list, a 1,000-key mapping, a wrong type — deleted, duplicated or nested), mangled bytes,
and known hostile shapes (YAML alias bombs and cycles, deep JSON, huge counts and times). Each
goes to the command that reads it:

=========  ================================================================================
loader     command
=========  ================================================================================
scenario   ``jbrl scenario validate FILE`` (YAML or JSON)
jellybean  ``jbrl scenario validate DIR`` (one file of JellyBean's inputs mutated or removed)
trace      ``jbrl trace show FILE --scenario vqa``; some ``jbrl simulate --trace FILE``
faults     ``jbrl simulate ... --faults FILE`` (fluid or DES)
plan       ``jbrl cost --plan FILE``; some ``jbrl simulate --plan FILE``
train      ``jbrl train --config FILE --check`` (training config; ``env`` mutated: env config)
state      ``jbrl control --state FILE --duration 120 --speedup 600``
policy     ``jbrl evaluate --policies ppo:path=DIR`` (one policy file mutated or removed)
args       numbers on the command line (rates, durations, intervals, limits, policy specs)
=========  ================================================================================

A run is a child forked from a parent that has imported jbrl (and torch, for the policy runs)
once, with an address-space cap (``RLIMIT_AS``), a CPU-time limit (``RLIMIT_CPU``) and a kill
after 300 wall seconds; its CPU time and peak RSS come from ``wait4``. A run fails the campaign when it prints a traceback, exits with a code
other than 0/2/3, runs over 60 s of CPU or peaks over 1 GB. Figures go to
``experiments/results/fuzz.{md,json}``; failing inputs are kept under ``--keep``::

    python experiments/fuzz_campaign.py --runs 10000 --jobs 2 --seed 14
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
JELLYBEAN = ROOT.parent / "shared" / "data" / "jellybean-vqa-medium"
RESULTS = ROOT / "experiments" / "results"
STEP = ROOT / "configs" / "traces" / "step.csv"
TIME_LIMIT_S = 60.0  # CPU seconds of one run (RLIMIT_CPU)
WALL_KILL_S = 300.0  # a run that sleeps this long is killed (the machine may be shared)
MEMORY_LIMIT_MB = 1024.0

Case = tuple[str, list[str]]  # (loader, jbrl arguments); files are written in the case folder


# --------------------------------------------------------------------------- hostile values


def hostile(rng: np.random.Generator) -> Any:
    """A value that a loader should refuse or survive."""
    pick = int(rng.integers(0, 22))
    table: list[Callable[[], Any]] = [
        lambda: None,
        lambda: True,
        lambda: 0,
        lambda: -1,
        lambda: 1e308,
        lambda: -1e308,
        lambda: math.nan,
        lambda: math.inf,
        lambda: 10**400,
        lambda: "",
        lambda: "x" * int(rng.integers(1, 5000)),
        lambda: [],
        lambda: {},
        lambda: _deep(int(rng.integers(20, 200))),
        lambda: {f"k{i}": i for i in range(1000)},
        lambda: float(rng.normal() * 10.0 ** int(rng.integers(-5, 12))),
        lambda: int(rng.integers(-(2**62), 2**62)),
        lambda: "".join(chr(int(c)) for c in rng.integers(1, 0x2FF, 8)),
        lambda: [hostile(rng) for _ in range(int(rng.integers(1, 4)))],
        lambda: {"a": hostile(rng)},
        lambda: 10**7,
        lambda: "1e999",
    ]
    return table[pick]()


def _deep(n: int) -> Any:
    out: Any = 1
    for _ in range(n):
        out = [out]
    return out


def _places(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _places(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _places(v, (*prefix, i))


def mutate(doc: Any, rng: np.random.Generator) -> Any:
    """``doc`` (a copy) with 1-3 parts replaced, deleted, duplicated or nested."""
    doc = json.loads(json.dumps(doc))
    for _ in range(int(rng.integers(1, 4))):
        places = [p for p in _places(doc) if p]
        if not places:
            return hostile(rng)
        path = places[int(rng.integers(0, len(places)))]
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = int(rng.integers(0, 5))
        if op <= 1:
            parent[key] = hostile(rng)
        elif op == 2:
            del parent[key]
        elif op == 3:
            if isinstance(parent, list):
                parent.extend([parent[key]] * int(rng.integers(1, 50)))
            else:
                parent[f"{key}_x"] = parent[key]
        else:
            parent[key] = [parent[key]] if rng.random() < 0.5 else {"x": parent[key]}
    return doc


def mangle(data: bytes, rng: np.random.Generator) -> bytes:
    """``data`` with a few bytes inserted, deleted or replaced."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        i = int(rng.integers(0, max(1, len(b))))
        chunk = rng.bytes(int(rng.integers(1, 12)))
        op = int(rng.integers(0, 3))
        if op == 0:
            b[i:i] = chunk
        elif op == 1:
            del b[i : i + len(chunk)]
        else:
            b[i : i + len(chunk)] = chunk
    return bytes(b)


def write_doc(doc: Any, path: Path, rng: np.random.Generator) -> Path:
    """``doc`` as JSON (``.json``) or YAML; NaN and huge numbers as the format writes them."""
    try:
        text = json.dumps(doc) if path.suffix == ".json" else yaml.safe_dump(doc)
    except (TypeError, ValueError):
        text = json.dumps(doc, default=str)
    data = text.encode()
    if rng.random() < 0.15:
        data = mangle(data, rng)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- the loaders


@dataclass
class Bases:
    """The valid inputs the mutations start from."""

    scenarios: list[dict[str, Any]]
    plan: dict[str, Any]
    train: dict[str, Any]
    state: dict[str, Any]
    faults: dict[str, Any]
    policy_dir: Path
    jellybean: Path | None
    plan_file: Path


SEEDS_SCENARIO = [
    "a: " + "[" * 3000 + "]" * 3000,
    "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
    + "".join(f"a{i}: &a{i} [{','.join([f'*a{i - 1}' if i > 1 else '*a'] * 10)}]\n"
              for i in range(1, 9)),
    "a: &x [*x]",
    "name: .nan",
    "x: " + "9" * 5000,
]  # fmt: skip


def case_scenario(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    r = rng.random()
    if r < 0.05:
        f = d / "s.yaml"
        f.write_text(SEEDS_SCENARIO[int(rng.integers(0, len(SEEDS_SCENARIO)))])
    else:
        base = b.scenarios[int(rng.integers(0, len(b.scenarios)))]
        doc = mutate(base, rng)
        if rng.random() < 0.1 and isinstance(doc, dict) and isinstance(doc.get("workers"), list):
            doc["workers"].append({"name": "p", "type": "t", "tier": 0, "price": 1,
                                   "count": int(10 ** rng.integers(3, 9))})  # fmt: skip
        f = write_doc(doc, d / ("s.json" if rng.random() < 0.3 else "s.yaml"), rng)
    return ["scenario", "validate", str(f)]


def case_jellybean(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    assert b.jellybean is not None
    jb = d / "jb"
    shutil.copytree(b.jellybean, jb)
    files = sorted(p for p in jb.iterdir() if p.suffix in (".csv", ".json", ".yaml"))
    f = files[int(rng.integers(0, len(files)))]
    r = rng.random()
    if r < 0.1:
        f.unlink()
    elif f.suffix == ".json" and r < 0.6:
        write_doc(mutate(json.loads(f.read_text()), rng), f, rng)
    elif f.suffix == ".yaml" and r < 0.6:
        write_doc(mutate(yaml.safe_load(f.read_text()), rng), f, rng)
    elif f.suffix == ".csv" and r < 0.6:
        rows = [line.split(",") for line in f.read_text().splitlines()]
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(rows)))
            j = int(rng.integers(0, len(rows[i])))
            rows[i][j] = str(hostile(rng))[:200]
        if rng.random() < 0.3:
            rows.append(list(rows[int(rng.integers(0, len(rows)))]))
        f.write_text("\n".join(",".join(r) for r in rows) + "\n")
    else:
        f.write_bytes(mangle(f.read_bytes(), rng))
    return ["scenario", "validate", str(jb)]


CELLS = ["0", "1", "17.8", "-1", "nan", "inf", "1e308", "1e9", "", "x", "1e5", "600", "3600",
         "1e-9", "7200", "0x1", "1_000"]  # fmt: skip
HEADERS = ["time_s,scale", "time_s,ReadImage,ReadSpeech", "time_s,ReadImage", "t,scale",
           "time_s,scale,scale", "time_s", "time_s,ReadImage,ReadSpeech,extra"]  # fmt: skip


def _cell(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.5:
        return CELLS[int(rng.integers(0, len(CELLS)))]
    if r < 0.8:
        return f"{rng.random() * 10.0 ** int(rng.integers(0, 6)):.6g}"
    return str(hostile(rng))[:50]


def case_trace(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    header = HEADERS[int(rng.integers(0, len(HEADERS)))]
    width = len(header.split(","))
    lines = [f"# duration_s: {_cell(rng)}"] if rng.random() < 0.4 else []
    lines.append(header)
    t = 0.0
    for _ in range(int(rng.integers(0, 40))):
        t += float(rng.integers(1, 600))
        cells = [str(t) if rng.random() < 0.8 else _cell(rng)]
        n = width - 1 if rng.random() < 0.85 else int(rng.integers(0, 4))
        cells += [f"{rng.random() * 3:.3f}" if rng.random() < 0.7 else _cell(rng) for _ in range(n)]
        lines.append(",".join(cells))
    f = d / "t.csv"
    data = ("\n".join(lines) + "\n").encode()
    f.write_bytes(mangle(data, rng) if rng.random() < 0.1 else data)
    if rng.random() < 0.3:
        return ["simulate", "--scenario", "vqa", "--plan", str(b.plan_file), "--trace", str(f),
                "--sim", "fluid", "--json"]  # fmt: skip
    return ["trace", "show", str(f), "--scenario", "vqa"]


def case_faults(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    f = write_doc(mutate(b.faults, rng), d / ("f.json" if rng.random() < 0.3 else "f.yaml"), rng)
    sim = "des" if rng.random() < 0.25 else "fluid"
    return ["simulate", "--scenario", "vqa", "--plan", str(b.plan_file), "--trace", str(STEP),
            "--sim", sim, "--duration", "300", "--faults", str(f), "--json"]  # fmt: skip


def case_plan(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    f = write_doc(mutate(b.plan, rng), d / "p.json", rng)
    if rng.random() < 0.2:
        return ["simulate", "--scenario", "vqa", "--plan", str(f), "--trace", str(STEP),
                "--sim", "fluid", "--duration", "900", "--json"]  # fmt: skip
    return ["cost", "--scenario", "vqa", "--plan", str(f)]


def case_train(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    doc = json.loads(json.dumps(b.train))
    if rng.random() < 0.5:
        doc["env"] = mutate(doc["env"], rng)  # the env config inside the training config
        if rng.random() < 0.3:
            write_doc(doc["env"], d / "env.yaml", rng)
            doc["env"] = "env.yaml"
    else:
        doc = mutate(doc, rng)
    f = write_doc(doc, d / "train.yaml", rng)
    return ["train", "--config", str(f), "--check", "--runs-dir", str(d / "runs")]


def case_state(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    f = write_doc(mutate(b.state, rng) if rng.random() < 0.9 else hostile(rng), d / "s.json", rng)
    return ["control", "--state", str(f), "--duration", "120", "--speedup", "600", "--port", "0",
            "--log-dir", str(d / "run"), "--no-tensorboard"]  # fmt: skip


def case_policy(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    p = d / "policy"
    shutil.copytree(b.policy_dir, p)
    name = ["model.zip", "normalization.json", "config.yaml", "ladder.json"][
        int(rng.integers(0, 4))
    ]
    f = p / name
    r = rng.random()
    if r < 0.1:
        f.unlink()
    elif name == "model.zip" or r < 0.3:
        f.write_bytes(mangle(f.read_bytes(), rng))
    elif name.endswith(".json"):
        write_doc(mutate(json.loads(f.read_text()), rng), f, rng)
    else:
        write_doc(mutate(yaml.safe_load(f.read_text()), rng), f, rng)
    return ["evaluate", "--scenario", "vqa", "--trace", str(STEP), "--policies", f"ppo:path={p}",
            "--sim", "fluid", "--seeds", "1", "--duration", "1800", "--no-progress"]  # fmt: skip


def case_args(b: Bases, d: Path, rng: np.random.Generator) -> list[str]:
    num = _cell(rng)
    forms = [
        ["plan", "--scenario", "vqa", "--rate", num],
        ["plan", "--scenario", "vqa", "--accuracy", num, "--time-limit", "5"],
        ["trace", "generate", "--kind", "step", "--duration", num, "-o", str(d / "t.csv")],
        ["trace", "generate", "--kind", "bursty", "--duration", "3600", "--step", num,
         "-o", str(d / "t.csv")],
        ["trace", "generate", "--kind", "diurnal", "--duration", "3600", "-p", f"amplitude={num}",
         "-o", str(d / "t.csv")],
        ["simulate", "--scenario", "vqa", "--plan", str(b.plan_file), "--trace", str(STEP),
         "--sim", "fluid", "--interval", num, "--duration", "600"],
        ["simulate", "--scenario", "vqa", "--plan", str(b.plan_file), "--trace", str(STEP),
         "--sim", "fluid", "--duration", num],
        ["--limit", f"depth={num}", "scenario", "validate", "vqa"],
        ["evaluate", "--scenario", "vqa", "--trace", str(STEP), "--sim", "fluid",
         "--policies", f"milp-reactive:headroom={num}", "--seeds", "1", "--duration", "600",
         "--no-progress"],
        ["scenario", "synth", "--operators", str(int(rng.integers(1, 30))), "--variants", "3",
         "--workers", str(int(10 ** rng.uniform(0, 5))), "--tiers", "3", "--shape", "chain",
         "--seed", "1", "-o", str(d / "s.yaml")],
    ]  # fmt: skip
    return forms[int(rng.integers(0, len(forms)))]


LOADERS: dict[str, tuple[Callable[[Bases, Path, np.random.Generator], list[str]], float]] = {
    "scenario": (case_scenario, 0.17),
    "jellybean": (case_jellybean, 0.14),
    "trace": (case_trace, 0.14),
    "faults": (case_faults, 0.08),
    "plan": (case_plan, 0.12),
    "train": (case_train, 0.10),
    "state": (case_state, 0.06),
    "policy": (case_policy, 0.06),
    "args": (case_args, 0.13),
}


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    loader: str
    args: list[str]
    code: int
    wall_s: float
    cpu_s: float
    rss_mb: float
    traceback: bool
    killed: bool
    folder: Path

    @property
    def failed(self) -> bool:
        return (
            self.traceback
            or self.killed
            or self.code not in (0, 2, 3)
            or self.cpu_s > TIME_LIMIT_S
            or self.rss_mb > MEMORY_LIMIT_MB
        )


def _child(args: list[str], folder: Path, as_cap: int) -> None:
    """Run ``jbrl ARGS`` in this forked child and exit with its code (70: an escape)."""
    resource.setrlimit(resource.RLIMIT_AS, (as_cap, as_cap))
    cpu = int(TIME_LIMIT_S) + 1  # SIGXCPU just past the limit
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    os.chdir(folder)
    out = os.open(os.devnull, os.O_WRONLY)
    err = os.open(folder / "stderr.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    code = 70
    try:
        from jbrl.cli import main

        code = main(args)
    except BaseException:  # noqa: BLE001 - what a traceback would be
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


@dataclass
class Runner:
    jobs: int
    as_cap: int
    running: dict[int, tuple[str, list[str], Path, float]] = field(default_factory=dict)
    done: list[Outcome] = field(default_factory=list)

    def submit(self, loader: str, args: list[str], folder: Path) -> None:
        while len(self.running) >= self.jobs:
            self.reap(block=True)
        pid = os.fork()
        if pid == 0:
            _child(args, folder, self.as_cap)
        self.running[pid] = (loader, args, folder, time.monotonic())

    def reap(self, block: bool) -> None:
        while self.running:
            now = time.monotonic()
            for pid, (_, _, _, t0) in self.running.items():
                if now - t0 > WALL_KILL_S:
                    os.kill(pid, signal.SIGKILL)
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                if not block:
                    return
                time.sleep(0.005)
                continue
            loader, args, folder, t0 = self.running.pop(pid)
            wall = time.monotonic() - t0
            killed = os.WIFSIGNALED(status)
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
            err = (folder / "stderr.txt").read_text("utf-8", "replace")
            self.done.append(
                Outcome(
                    loader,
                    args,
                    code,
                    wall,
                    usage.ru_utime + usage.ru_stime,
                    usage.ru_maxrss / 1024.0,
                    "Traceback" in err,
                    killed,
                    folder,
                )  # fmt: skip
            )
            return


def _jbrl(args: list[str]) -> None:
    import subprocess

    cmd = [sys.executable, "-c", "from jbrl.cli import run; run()", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def _bases(work: Path) -> Bases:
    """Valid inputs: vqa, vehicle and a synthetic scenario, a MILP plan, the training config,
    a state file, a fault schedule, the shipped policy and JellyBean's inputs."""
    from jbrl.agents.ppo import shipped_policy_dir

    # in subprocesses: HiGHS must not run in this parent, whose forked children would spin
    plan_file = work / "plan.json"
    _jbrl(["plan", "--scenario", "vqa", "--json", "-o", str(plan_file)])
    synth = work / "synth.yaml"
    synth_args = ["--operators", "4", "--variants", "3", "--workers", "12", "--tiers", "3"]
    _jbrl(["scenario", "synth", *synth_args, "--seed", "1", "-o", str(synth)])
    scenarios = [yaml.safe_load((ROOT / "configs" / "scenarios" / f"{n}.yaml").read_text())
                 for n in ("vqa", "vehicle")]  # fmt: skip
    scenarios.append(yaml.safe_load(synth.read_text()))
    plan = json.loads(plan_file.read_text())
    return Bases(
        scenarios=scenarios,
        plan=plan,
        train=yaml.safe_load((ROOT / "configs" / "train" / "ppo_vqa.yaml").read_text()),
        state={"version": 1, "scenario": "vqa", "time_s": 600.0, "seq": 3, "final": False,
               "counters": {"decisions": 3}, "plan": plan},
        faults={"faults": [
            {"kind": "crash", "worker": "cloud-gpu-1", "at": 60, "until": 120},
            {"kind": "slow_link", "from": "edge", "to": "cloud", "at": 30, "until": 90,
             "factor": 4}]},
        policy_dir=shipped_policy_dir("vqa"),
        jellybean=JELLYBEAN if JELLYBEAN.is_dir() else None,
        plan_file=plan_file,
    )  # fmt: skip


def campaign(
    runs: int,
    jobs: int,
    seed: int,
    keep: Path,
    work: Path,
    checkpoint: Callable[[list[Outcome]], object] = lambda _done: None,
) -> list[Outcome]:
    """Generate and run ``runs`` cases; keep the folders of failing ones under ``keep``;
    ``checkpoint(outcomes so far)`` every 500 runs (the figures survive an interrupted run)."""
    import torch  # noqa: F401 - imported once here, so the policy runs do not each import it
    from sb3_contrib import MaskablePPO  # noqa: F401

    import jbrl.cli  # noqa: F401 - likewise the command line, once, before the forks

    bases = _bases(work)
    names = [n for n in LOADERS if n != "jellybean" or bases.jellybean is not None]
    weights = np.array([LOADERS[n][1] for n in names])
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    page = resource.getpagesize()
    vm = int(Path("/proc/self/statm").read_text().split()[0]) * page
    runner = Runner(jobs, as_cap=vm + 3 * 2**30)  # the parent's mappings + 3 GB of its own
    seen = [0]
    t0 = time.monotonic()
    for i in range(runs):
        loader = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        folder = work / f"case{i:05d}"
        folder.mkdir()
        args = LOADERS[loader][0](bases, folder, rng)
        (folder / "args.json").write_text(json.dumps([loader, args]))
        runner.submit(loader, args, folder)
        _collect(runner, keep, seen)
        if (i + 1) % 500 == 0:
            print(f"{i + 1} runs, {time.monotonic() - t0:.0f} s", flush=True)
            checkpoint(list(runner.done))
    while runner.running:
        runner.reap(block=True)
        _collect(runner, keep, seen)
    return runner.done


def _collect(runner: Runner, keep: Path, seen: list[int]) -> None:
    """Keep the folders of failed runs under ``keep``, remove the others."""
    runner.reap(block=False)
    for out in runner.done[seen[0] :]:
        if out.failed:
            shutil.copytree(out.folder, keep / out.folder.name, dirs_exist_ok=True)
        shutil.rmtree(out.folder, ignore_errors=True)
    seen[0] = len(runner.done)


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per loader and in all: runs, exit codes, tracebacks, runs over the limits, time, RSS."""

    def block(items: list[Outcome]) -> dict[str, Any]:
        wall = np.array([o.wall_s for o in items]) if items else np.zeros(1)
        cpu = np.array([o.cpu_s for o in items]) if items else np.zeros(1)
        rss = np.array([o.rss_mb for o in items]) if items else np.zeros(1)
        return {
            "runs": len(items),
            "exit_codes": dict(sorted(Counter(str(o.code) for o in items).items())),
            "tracebacks": sum(o.traceback for o in items),
            "other_exit_codes": sum(o.code not in (0, 2, 3) for o in items),
            "over_60_s": sum(o.cpu_s > TIME_LIMIT_S or o.killed for o in items),
            "over_60_s_wall": sum(o.wall_s > TIME_LIMIT_S for o in items),
            "over_1_gb": sum(o.rss_mb > MEMORY_LIMIT_MB for o in items),
            "wall_s": {"p50": float(np.median(wall)), "p99": float(np.quantile(wall, 0.99)),
                       "max": float(wall.max())},
            "cpu_s": {"p50": float(np.median(cpu)), "p99": float(np.quantile(cpu, 0.99)),
                      "max": float(cpu.max())},
            "peak_rss_mb": {"p50": float(np.median(rss)), "max": float(rss.max())},
        }  # fmt: skip

    loaders = sorted({o.loader for o in outcomes})
    return {
        "all": block(outcomes),
        "loaders": {n: block([o for o in outcomes if o.loader == n]) for n in loaders},
        "failures": [
            {"loader": o.loader, "args": o.args, "code": o.code, "wall_s": o.wall_s,
             "cpu_s": o.cpu_s,
             "rss_mb": o.rss_mb, "case": o.folder.name}
            for o in outcomes if o.failed
        ][:50],
    }  # fmt: skip


def report(s: dict[str, Any], meta: dict[str, Any]) -> str:
    """The Markdown table of ``experiments/results/fuzz.md``."""
    a = s["all"]
    lines = [
        "# Fuzz campaign (issue 14)",
        "",
        f"`python experiments/fuzz_campaign.py --runs {meta['planned']} --jobs {meta['jobs']} "
        f"--seed {meta['seed']}` on {meta['machine']}, {meta['minutes']:.0f} minutes. Each input "
        "ran as a forked subprocess of a parent that had imported jbrl and torch, with an "
        f"address-space cap, a CPU-time limit of {TIME_LIMIT_S:.0f} s (`RLIMIT_CPU`) and a kill "
        f"after {WALL_KILL_S:.0f} wall s; CPU time and peak RSS from `wait4` (the RSS counts the "
        "parent's pages the child touched, so it over-states the run's own memory). Time is "
        "judged in CPU seconds: on a shared machine the wall time measures the other users' load "
        f"as much as the run ({a['over_60_s_wall']} runs took over 60 wall s).",
        "",
        (
            ""
            if a["runs"] == meta["planned"]
            else f"Interrupted: {a['runs']} of {meta['planned']} runs. "
        )
        + f"**{a['runs']} inputs: {a['tracebacks']} tracebacks, {a['other_exit_codes']} exit codes "
        f"outside 0/2/3, {a['over_60_s']} runs over 60 CPU s, {a['over_1_gb']} over 1 GB** "
        f"(most CPU {a['cpu_s']['max']:.1f} s, slowest {a['wall_s']['max']:.1f} wall s, largest "
        f"{a['peak_rss_mb']['max']:.0f} MB).",
        "",
        "| loader | runs | exit 0 | exit 2 | exit 3 | other | tracebacks | > 60 CPU s | > 1 GB | "
        "CPU p50 / max s | wall p50 / max s | RSS p50 / max MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, b in [*s["loaders"].items(), ("**all**", a)]:
        ec = b["exit_codes"]
        lines.append(
            f"| {name} | {b['runs']} | {ec.get('0', 0)} | {ec.get('2', 0)} | {ec.get('3', 0)} | "
            f"{b['other_exit_codes']} | {b['tracebacks']} | {b['over_60_s']} | {b['over_1_gb']} | "
            f"{b['cpu_s']['p50']:.2f} / {b['cpu_s']['max']:.1f} | "
            f"{b['wall_s']['p50']:.2f} / {b['wall_s']['max']:.1f} | "
            f"{b['peak_rss_mb']['p50']:.0f} / {b['peak_rss_mb']['max']:.0f} |"
        )
    lines += ["", "Loaders and commands: see the docstring of `experiments/fuzz_campaign.py`."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000, help="inputs to generate and run")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--seed", type=int, default=14, help="root seed of the generator")
    ap.add_argument("--keep", type=Path, default=Path("runs/fuzz-failures"),
                    help="where the inputs of failing runs are kept")  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args.keep.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def write(outcomes: list[Outcome]) -> dict[str, Any]:
        s = summary(outcomes)
        load = os.getloadavg()
        meta = {"runs": len(outcomes), "planned": args.runs, "jobs": args.jobs,
                "seed": args.seed, "minutes": (time.monotonic() - t0) / 60,
                "machine": f"{os.cpu_count()} cores, load average {load[0]:.1f} at the end"}  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fuzz.json").write_text(json.dumps({"meta": meta, **s}, indent=1) + "\n")
        (args.out / "fuzz.md").write_text(report(s, meta))
        return s

    with tempfile.TemporaryDirectory(prefix="jbrl-fuzz-") as tmp:
        outcomes = campaign(args.runs, args.jobs, args.seed, args.keep, Path(tmp), write)
    s = write(outcomes)
    print((args.out / "fuzz.md").read_text())
    a = s["all"]
    bad = a["tracebacks"] + a["other_exit_codes"] + a["over_60_s"] + a["over_1_gb"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
