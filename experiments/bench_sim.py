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
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _results import write_section  # noqa: E402  (sibling module of the scripts)

from jbrl.planning.plan import Plan  # noqa: E402
from jbrl.scenario import Scenario, embedded_scenarios, load_scenario  # noqa: E402
from jbrl.sim import DesSimulator, FluidSimulator  # noqa: E402
from jbrl.sim.agreement import busiest_utilization  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results" / "simulators.md"
JELLYBEAN_DIR = REPO.parent / "shared" / "data" / "jellybean-vqa-medium"
START, END = "<!-- bench_sim:start -->", "<!-- bench_sim:end -->"


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
    """markdown file whose bench_sim section is (re)written"""


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
    os.sched_setaffinity(0, {cpu})
    info = machine(cpu)
    s, plan = scenario_and_plan()
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
    lines += [
        "",
        f"Machine: {info['cpu']}, {info['cores']}; {info['load']}, "
        "{:.2f} at the end (the machine is shared: wall-clock rates fall when other "
        "processes run on the same core). Python {}, {}. {}.".format(
            load_end[0], info["python"], info["versions"], info["date"]
        ),
    ]
    write_section(Path(args.out), START, END, "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
