"""Issue 11's other planner figures: speed of the SLO-aware MILP and "batching pays".

* ``speed``: wall and CPU time of ``jbrl plan --scenario vqa`` as a user runs it (a fresh
  process each time: imports and scenario parsing included; median of ``--repeats``), of the
  default MILP on vqa in one process (each plan in a fresh planner; with every profiled batch
  size and restricted to batch 1), and on a 1000-worker synth scenario with ``--types`` distinct
  worker types (time limit 60 s, gap 1 %). CPU time (this process's, or the child's) is
  what a busy shared machine does not inflate: the planner is single-threaded.
* ``batching``: on ``--scenario`` (default vehicle, whose CPU profiles list batch 4), at
  ``--load`` of its SLO-aware max rate, the batch-aware plan against the same planner restricted
  to batch 1 (``max_batch=1``): $/hour, batch sizes, predicted and DES attainment (constant
  Poisson load, ``--duration`` s, ``--seeds`` seeds), and the profiles' throughput gains that
  bound what batching can save.

Writes its section of ``experiments/results/slo_planning_extras.md``::

    .venv/bin/python experiments/bench_slo_extras.py speed|batching [options]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import write_section
from bench_planners import machine

from jbrl.planning.milp import MilpPlanner
from jbrl.planning.plan import Plan
from jbrl.planning.slo_check import check_latency
from jbrl.scenario import Scenario, load_scenario
from jbrl.scenario.synth import synth_scenario

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
OUT = RESULTS / "slo_planning_extras.md"


def timed(
    planner: MilpPlanner, s: Scenario
) -> tuple[float, float, float | None, float | None, str]:
    """(wall s, CPU s, $/hour, gap, status) of one plan in a fresh planner."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = planner.plan(s)
    return (
        time.perf_counter() - t0, time.process_time() - c0, res.total_cost, res.gap, res.status
    )  # fmt: skip


def cli_plan(scenario: str) -> tuple[float, float]:
    """(wall s, CPU s) of ``jbrl plan --scenario S`` in a fresh process."""
    jbrl = str(Path(sys.executable).with_name("jbrl"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([jbrl, "plan", "--scenario", scenario], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def speed(args: argparse.Namespace) -> None:
    vqa = load_scenario("vqa")
    lines = [
        "| case | runs | median wall s | min / max wall s | median CPU s | $/h | gap | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cli = [cli_plan("vqa") for _ in range(args.repeats)]
    walls, cpus = [w for w, _ in cli], [c for _, c in cli]
    lines.append(
        f"| `jbrl plan --scenario vqa` (fresh process) | {len(cli)} "
        f"| {statistics.median(walls):.2f} | {min(walls):.2f} / {max(walls):.2f} "
        f"| {statistics.median(cpus):.2f} | - | - | - |"
    )
    print(lines[-1], flush=True)
    for label, opts in (
        ("vqa in-process (batch 1, the default)", {"max_batch": 1}),
        ("vqa in-process (every profiled batch size)", {"max_batch": None}),
    ):
        runs = [timed(MilpPlanner(**opts), vqa) for _ in range(args.repeats)]
        walls = [r[0] for r in runs]
        lines.append(
            f"| {label} | {len(runs)} | {statistics.median(walls):.2f} | {min(walls):.2f} / "
            f"{max(walls):.2f} | {statistics.median(r[1] for r in runs):.2f} "
            f"| {runs[-1][2]:.4f} | {runs[-1][3]} | {runs[-1][4]} |"
        )
        print(lines[-1], flush=True)
    big = synth_scenario(
        operators=4, variants=3, workers=1000, tiers=3, seed=0, worker_types=args.types
    )
    types = len({w.type for w in big.workers})
    for label, opts in (
        ("SLO-aware", {}),
        ("capacity only", {"latency_model": "none"}),
    ):
        wall, cpu, cost, gap, status = timed(
            MilpPlanner(time_limit=60.0, mip_rel_gap=0.01, **opts), big
        )
        lines.append(
            f"| synth 1000 workers, {types} worker types, bound {big.slo.latency_ms:g} ms, "
            f"{label} | 1 | {wall:.2f} | {wall:.2f} / {wall:.2f} | {cpu:.2f} "
            f"| {cost if cost is None else f'{cost:.4f}'} "
            f"| {gap if gap is None else f'{gap:.2%}'} | {status} |"
        )
        print(lines[-1], flush=True)
    body = [*machine(), "", *lines]
    write_section(OUT, "<!-- speed:start -->", "<!-- speed:end -->", "\n".join(body))


def des_attainment(
    s: Scenario, plan: Plan, rates: dict[str, float], args: argparse.Namespace
) -> float:
    from jbrl.sim.des import DesSimulator
    from jbrl.sim.rollout import totals_of

    vals = []
    for seed in range(args.seeds):
        des = DesSimulator()
        des.reset(s, plan, seed=seed)
        n = max(1, round(args.duration / 600.0))
        vals.append(float(totals_of(des.advance(600.0, rates) for _ in range(n)).slo_attainment))
    return sum(vals) / len(vals)


def batch_gains(s: Scenario) -> list[str]:
    """Per variant and worker type, the profiled batch size with the largest throughput gain
    over batch 1 (p90); worker types with the same gain are named together (a scenario repeats
    its profiles per operator copy and site)."""
    best: dict[tuple[str, str], tuple[float, int]] = {}
    for p in s.profiles:
        for r in p.batches:
            if r.batch > 1:
                gain = round(r.batch * p.p90_ms / r.p90_ms, 2)
                key = (p.variant, p.worker_type)
                if gain > best.get(key, (0.0, 0))[0]:
                    best[key] = (gain, r.batch)
    same: dict[tuple[str, float, int], list[str]] = {}
    for (v, w), (g, b) in best.items():
        same.setdefault((v, g, b), []).append(w)
    return [
        f"{v} x{g:.2f} at batch {b} ({', '.join(sorted(ws))})"
        for (v, g, b), ws in sorted(same.items())
    ]


def batching(args: argparse.Namespace) -> None:
    s = load_scenario(args.scenario)
    gains = batch_gains(s)
    mr = MilpPlanner().max_rate(s)
    rates = {k: v * args.load for k, v in mr.rates.items()}
    lines = [
        f"Scenario `{s.name}` at {args.load:g} x its SLO-aware max rate ({mr.scale:.3g} x nominal); "
        f"largest profiled throughput gain (p90) per variant and worker type: "
        f"{'; '.join(gains) or 'none'}.",
        "",
        "| planner | $/h | batch sizes | predicted % | DES % | plan s |",
        "|---|---|---|---|---|---|",
    ]
    costs = {}
    for label, opts in (("batch-aware", {"max_batch": None}), ("batch 1 only", {"max_batch": 1})):
        t0 = time.perf_counter()
        res = MilpPlanner(**opts).plan(s, rates)
        wall = time.perf_counter() - t0
        if not res.feasible:
            lines.append(f"| {label} | - | - | - | - | {wall:.1f} ({res.status}) |")
            continue
        sizes = sorted({sh.batch for shs in res.plan.worker_assignment.values() for sh in shs})
        pred = check_latency(s, res.plan, rates).attainment or 0.0
        sim = des_attainment(s, res.plan, rates, args)
        costs[label] = res.total_cost
        lines.append(
            f"| {label} | {res.total_cost:.4f} | {','.join(map(str, sizes))} | {100 * pred:.2f} "
            f"| {100 * sim:.2f} | {wall:.1f} |"
        )
        print(lines[-1], flush=True)
    if len(costs) == 2:
        saving = 1 - costs["batch-aware"] / costs["batch 1 only"]
        lines += ["", f"Batching saves {100 * saving:.1f} % (criterion: >= 20 %)."]
    body = [
        *machine(),
        f"- DES: {args.duration:g} s constant Poisson load, {args.seeds} seed(s)",
        "",
        *lines,
    ]
    write_section(OUT, "<!-- batching:start -->", "<!-- batching:end -->", "\n".join(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("mode", choices=("speed", "batching"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--types", type=int, default=50)
    parser.add_argument("--scenario", default="vehicle")
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    speed(args) if args.mode == "speed" else batching(args)


if __name__ == "__main__":
    main()
