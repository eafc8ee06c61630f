"""Simulator speed: fluid intervals per second and DES simulated requests per second, one core.

* Fluid: ``advance(60 s, rates)`` on the embedded ``vqa`` scenario (JellyBean's VQA inputs when
  ``vqa`` is missing) with the MILP plan for the nominal rates; the rates change every interval
  (a random walk between 30 % and 115 % of nominal), so nothing is reused between intervals.
  Also timed: reading each interval's latency percentiles (computed lazily on first access).
* DES: ``advance(60 s, rates)`` at 50 %, 80 % and 95 % utilisation of the plan's busiest worker;
  simulated requests per second = arrivals / wall time.

The process is pinned to one CPU (``os.sched_setaffinity``, like ``taskset -c``) with
``OMP_NUM_THREADS=1``; each figure is the median (and best) of ``--repeats`` runs, wall clock and
CPU time (the CPU-time rate is what the code costs when other processes share the machine).
Writes its section of ``experiments/results/simulators.md`` with the machine it ran on::

    .venv/bin/python experiments/bench_sim.py [--repeats 7] [--intervals 3000] [--cpu N]

``--against REF`` times the code of a git ref (``git archive`` into a temporary folder) and this
code side by side instead: ``--rounds`` alternating runs of each (ref, this, ref, this, ...), each
a fresh process with the same harness pinned to the same core, so that load from other processes
falls on both; it reports per version the median over rounds of each run's median rate, and the
ratio, and writes the ``bench_sim_ab`` section::

    .venv/bin/python experiments/bench_sim.py --against e9ffda6 --rounds 6 --repeats 5
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _results import write_section  # noqa: E402  (sibling module of the scripts)

import jbrl  # noqa: E402
from jbrl.planning.plan import Plan  # noqa: E402
from jbrl.scenario import Scenario, embedded_scenarios, load_scenario  # noqa: E402
from jbrl.sim import DesSimulator, FluidSimulator  # noqa: E402
from jbrl.sim.agreement import busiest_utilization  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results" / "simulators.md"
JELLYBEAN_DIR = REPO.parent / "shared" / "data" / "jellybean-vqa-medium"
START, END = "<!-- bench_sim:start -->", "<!-- bench_sim:end -->"
AB_START, AB_END = "<!-- bench_sim_ab:start -->", "<!-- bench_sim_ab:end -->"


@dataclass
class Args:
    """Benchmark settings (each is a command-line flag)."""

    repeats: int = 7
    """timed runs per figure (median and best reported)"""
    intervals: int = 3000
    """fluid intervals per run"""
    des_seconds: float = 600.0
    """simulated seconds per DES run"""
    cpu: int = -1
    """CPU to pin to (-1: the last one this process may use)"""
    out: str = str(RESULTS)
    """markdown file whose bench_sim (or bench_sim_ab) section is (re)written"""
    against: str = ""
    """git ref whose code is timed alternately with this code (see the module docstring)"""
    rounds: int = 5
    """with --against: runs of each version"""
    emit_json: str = ""
    """(used by --against) write the figures as JSON to this file instead of the markdown"""


def scenario_and_plan() -> tuple[Scenario, Plan]:
    from jbrl.planning import get_planner

    s = load_scenario("vqa") if "vqa" in embedded_scenarios() else load_scenario(JELLYBEAN_DIR)
    result = get_planner("milp").plan(s)
    return s, result.plan


def rate_walk(s: Scenario, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    nominal = np.array([src.rate for src in s.sources])
    level, out = 0.75, []
    for _ in range(n):
        level = float(np.clip(level + rng.normal(0, 0.05), 0.3, 1.15))
        out.append(nominal * level)
    return out


def bench_fluid(s: Scenario, plan: Plan, args: Args, read_latency: bool) -> dict[str, float]:
    rates = rate_walk(s, args.intervals)
    walls, cpus = [], []
    for rep in range(args.repeats):
        sim = FluidSimulator()
        sim.reset(s, plan, seed=rep)
        w0, c0 = time.perf_counter(), time.process_time()
        for r in rates:
            m = sim.advance(60.0, r)
            if read_latency:
                _ = m.latency_ms["p99"]
        walls.append(args.intervals / (time.perf_counter() - w0))
        cpus.append(args.intervals / (time.process_time() - c0))
    return summarize(walls, cpus)


def bench_des(s: Scenario, plan: Plan, args: Args, rho: float) -> dict[str, float]:
    scale = rho / busiest_utilization(s, plan)
    rates = {k: v * scale for k, v in s.nominal_rates().items()}
    walls, cpus = [], []
    n = max(1, round(args.des_seconds / 60.0))
    for rep in range(args.repeats):
        sim = DesSimulator()
        sim.reset(s, plan, seed=rep)
        arrivals = 0.0
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            arrivals += sim.advance(60.0, rates).arrivals
        walls.append(arrivals / (time.perf_counter() - w0))
        cpus.append(arrivals / (time.process_time() - c0))
    return summarize(walls, cpus)


def summarize(walls: list[float], cpus: list[float]) -> dict[str, float]:
    return {
        "wall_median": statistics.median(walls),
        "wall_best": max(walls),
        "cpu_median": statistics.median(cpus),
        "cpu_best": max(cpus),
    }


def machine(cpu: int) -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": model,
        "cores": f"{os.cpu_count()} logical; pinned to CPU {cpu}",
        "load": "load average {:.2f} {:.2f} {:.2f} (1/5/15 min) at the start".format(*load),
        "python": platform.python_version(),
        "versions": f"numpy {np.__version__}, simpy {version('simpy')}, jbrl {version('jbrl')}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if args.cpu < 0 else args.cpu
    if args.against:
        side_by_side(args, cpu)
        return
    os.sched_setaffinity(0, {cpu})
    info = machine(cpu)
    s, plan = scenario_and_plan()
    rows = measure(s, plan, args)
    if args.emit_json:
        Path(args.emit_json).write_text(json.dumps({"jbrl": jbrl.__file__, "rows": rows}))
        return
    load_end = os.getloadavg()
    lines = [
        "## Speed (experiments/bench_sim.py)",
        "",
        f"Scenario `{s.name}`, the MILP plan for its nominal rates "
        f"(busiest worker at {busiest_utilization(s, plan):.2f} utilisation). Fluid: 60 s "
        f"intervals, rates changing every interval ({args.intervals} intervals per run). DES: "
        f"{args.des_seconds:g} simulated seconds per run. {args.repeats} runs per figure, one "
        "core (pinned), `OMP_NUM_THREADS=1`. Targets: fluid >= 20,000 intervals/s, DES >= "
        "20,000 simulated requests/s.",
        "",
        "| measure | median (wall) | best (wall) | median (CPU time) | best (CPU time) |",
        "|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['wall_median']:,.0f} | {r['wall_best']:,.0f} "
            f"| {r['cpu_median']:,.0f} | {r['cpu_best']:,.0f} |"
        )
    lines += ["", machine_line(info, load_end[0])]
    write_section(Path(args.out), START, END, "\n".join(lines))
    print(f"wrote {args.out}")


def measure(s: Scenario, plan: Plan, args: Args) -> list[tuple[str, dict[str, float]]]:
    """Every figure of the table: (label, rates)."""
    rows = []
    for read in (False, True):
        r = bench_fluid(s, plan, args, read)
        label = "fluid, intervals/s" + (" (reading p50/p95/p99 too)" if read else "")
        rows.append((label, r))
        print(label, {k: round(v) for k, v in r.items()}, flush=True)
    for rho in (0.5, 0.8, 0.95):
        r = bench_des(s, plan, args, rho)
        label = f"DES at utilisation {rho:g}, simulated requests/s"
        rows.append((label, r))
        print(label, {k: round(v) for k, v in r.items()}, flush=True)
    return rows


def machine_line(info: dict[str, str], load_end: float) -> str:
    return (
        f"Machine: {info['cpu']}, {info['cores']}; {info['load']}, {load_end:.2f} at the end "
        "(the machine is shared: wall-clock rates fall when other processes run on the same "
        f"core). Python {info['python']}, {info['versions']}. {info['date']}."
    )


def side_by_side(args: Args, cpu: int) -> None:
    """Time the code of ``args.against`` and this code alternately (see the module docstring)."""
    info = machine(cpu)
    runs: dict[str, list[list[tuple[str, dict[str, float]]]]] = {"ref": [], "this": []}
    with tempfile.TemporaryDirectory() as tmp:
        ref_root = Path(tmp) / "ref"
        ref_root.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.against], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(ref_root, filter="data")
        for i in range(args.rounds):
            for version, root in (("ref", ref_root), ("this", REPO)):
                out = Path(tmp) / f"{version}-{i}.json"
                cmd = [sys.executable, __file__, "--cpu", str(cpu), "--emit-json", str(out)]
                for name in ("repeats", "intervals", "des_seconds"):
                    cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
                print(f"round {i + 1}/{args.rounds}: {version}", flush=True)
                env = dict(os.environ, PYTHONPATH=str(root))
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                got = json.loads(out.read_text())
                assert Path(got["jbrl"]).is_relative_to(root), got["jbrl"]  # the right code
                runs[version].append([(label, r) for label, r in got["rows"]])
    lines = [
        "## Speed, side by side (experiments/bench_sim.py --against)",
        "",
        f"`{args.against}` (ref) and this code, {args.rounds} alternating runs of each (fresh "
        f"processes, CPU {cpu}), each run {args.repeats} repeats as in the table above; per "
        "version the median over runs of each run's median rate.",
        "",
        "| measure | ref (wall) | this (wall) | this / ref (wall) | ref (CPU time) "
        "| this (CPU time) | this / ref (CPU time) |",
        "|---|---|---|---|---|---|---|",
    ]
    for j, (label, _) in enumerate(runs["this"][0]):
        med = {
            (v, k): statistics.median(run[j][1][f"{k}_median"] for run in runs[v])
            for v in runs
            for k in ("wall", "cpu")
        }
        lines.append(
            f"| {label} | {med['ref', 'wall']:,.0f} | {med['this', 'wall']:,.0f} "
            f"| {med['this', 'wall'] / med['ref', 'wall']:.3f} | {med['ref', 'cpu']:,.0f} "
            f"| {med['this', 'cpu']:,.0f} | {med['this', 'cpu'] / med['ref', 'cpu']:.3f} |"
        )
    lines += ["", machine_line(info, os.getloadavg()[0])]
    print("\n".join(lines))
    write_section(Path(args.out), AB_START, AB_END, "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
