"""Figures of the embedded ``fleet`` scenario, written to ``experiments/results/fleet.md``.

``timing``: wall-clock seconds of ``jbrl plan --scenario fleet`` (the MILP, target <= 10 s) and
of ``jbrl demo --scenario fleet`` (target <= 3 min on 2 cores), each run as a fresh process,
with the machine's load average and CPU count recorded.

``static-gap``: the room that adaptation is for. On a generated multi-day diurnal trace
(``phased``: each site its own daily cycle, shifted by up to ``--spread`` hours, lower
weekends, minute noise; seeds from the evaluation range, never used for training) it runs
MILP-static (one plan for the trace's peak, as JellyBean would deploy) and MILP-oracle (the
clairvoyant reference: the MILP for the true peak of every coming interval) with
``jbrl evaluate`` (fluid simulator) and reports how much more the static plan costs.

    .venv/bin/python experiments/fleet_scenario.py timing
    .venv/bin/python experiments/fleet_scenario.py static-gap [--days 3] [--interval 1800]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "fleet.md"
JBRL = str(Path(sys.executable).with_name("jbrl"))
TRACE_SEED = 1_000_003 + 50_000  # in the evaluation range (envs.workload.EVAL_SEED_BASE on)


def machine() -> str:
    return f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _timed(cmd: list[str]) -> tuple[float, int, float]:
    """(wall s, exit code, CPU s of the command and every process it waited for): the CPU
    time does not grow with the machine's load, the wall time does."""
    t0, c0 = time.perf_counter(), _cpu_children()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    return time.perf_counter() - t0, proc.returncode, _cpu_children() - c0


def timing(repeats: int, demo: bool = True) -> None:
    """Plan and demo wall times (fresh processes), median of ``repeats`` for the plan;
    ``demo=False`` times the plan only."""
    before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        plan_out = Path(tmp) / "plan.json"
        plans = [
            _timed([JBRL, "plan", "--scenario", "fleet", "--json", "-o", str(plan_out)])
            for _ in range(repeats)
        ]
        plan = json.loads(plan_out.read_text())
        demo_run = (
            _timed([JBRL, "demo", "--scenario", "fleet", "-o", str(Path(tmp) / "demo")])
            if demo
            else None
        )
    after = machine()
    plans.sort()
    wall, _rc, cpu = plans[len(plans) // 2]
    body = "\n".join(
        [
            "## Timing",
            "",
            "| command | wall s | CPU s | target | exit |",
            "|---|---|---|---|---|",
            f"| `jbrl plan --scenario fleet` (MILP, median of {repeats}) | {wall:.2f} (solver "
            f"{plan['solve_time_s']:.2f}) | {cpu:.2f} | <= 10 | {max(p[1] for p in plans)} |",
            "| `jbrl demo --scenario fleet` | "
            + (
                f"{demo_run[0]:.1f} | {demo_run[2]:.1f} | <= 180 | {demo_run[1]} |"
                if demo_run
                else "not run (--no-demo) | | <= 180 | |"
            ),
            "",
            f"MILP plan at nominal load: {plan['status']}, {plan['total_cost']:.4f} $/h, "
            f"{sum(len(v) for v in plan['worker_assignment'].values())} workers, model "
            f"{plan['solver_info']['model']}.",
            "",
            f"Machine before: {before}; after: {after}. Each command is a fresh process "
            "(imports and scenario parsing included). CPU s: user + system time of the command "
            "and every process it started (independent of the other load on a shared machine; "
            "on 2 otherwise idle cores the wall time is between CPU/2 and CPU).",
        ]
    )
    write_section(RESULTS, "<!-- timing -->", "<!-- /timing -->", body)
    print(body)


def static_gap(days: int, interval: float, spread: float) -> dict[str, Any]:
    """Run MILP-static and MILP-oracle on a multi-day diurnal trace; the cost ratio."""
    from jbrl.evaluation.runner import evaluate
    from jbrl.scenario import load_scenario
    from jbrl.scenario.trace_stats import trace_statistics
    from jbrl.scenario.traces import generate_trace

    sc = load_scenario("fleet")
    params = {"amplitude": 0.5, "spread_h": spread, "weekend": 0.6, "start_day": 3, "burst": 1.0}
    trace = generate_trace(
        "phased", days * 86400.0, TRACE_SEED, sources=sc, step_s=300.0, params=params
    )
    stats = trace_statistics(trace)
    t0 = time.perf_counter()
    ev = evaluate(
        sc,
        {"phased": trace},
        ["milp-static", "milp-oracle"],
        sim="fluid",
        interval=interval,
        processes=2,
    )
    rows = {r.policy: r for r in ev.summary}
    static, oracle = rows["milp-static"], rows["milp-oracle"]
    result = {
        "days": days,
        "interval_s": interval,
        "trace_params": params,
        "trace_seed": TRACE_SEED,
        "trace_stats": stats,
        "static": static.to_dict(),
        "oracle": oracle.to_dict(),
        "static_over_oracle": static.dollars / oracle.dollars - 1.0,
        "wall_s": time.perf_counter() - t0,
        "machine": machine(),
    }
    RESULTS.with_name("fleet_static_gap.json").write_text(json.dumps(result, indent=1) + "\n")
    _write_gap(result)
    return result


def _write_gap(r: dict[str, Any]) -> None:
    st = r["trace_stats"]
    lines = [
        "## Static provisioning for the peak vs the clairvoyant reference",
        "",
        f"Trace: `phased` ({r['days']} days from a Thursday, 5-min rows, seed {r['trace_seed']} "
        f"from the evaluation range; parameters {r['trace_params']}): peak/mean "
        f"{st['peak_to_mean']:.2f} of the total load, sites' peaks {st['peak_spread_h']:.1f} h "
        f"apart, pairwise correlation {st['mean_pairwise_corr']:.2f}. `jbrl evaluate --sim "
        f"fluid --interval {r['interval_s']:g}`.",
        "",
        "| policy | $ | SLO attainment | plan changes |",
        "|---|---|---|---|",
    ]
    for key in ("static", "oracle"):
        row = r[key]
        lines.append(
            f"| {row['policy']} | {row['dollars']:.2f} | {row['slo_attainment']:.4f} | "
            f"{row['plan_changes']:g} |"
        )
    lines += [
        "",
        f"**MILP-static costs {r['static_over_oracle']:+.1%} against MILP-oracle** "
        f"(issue target: at least +25 %). Wall {r['wall_s']:.0f} s; machine: {r['machine']}.",
    ]
    write_section(RESULTS, "<!-- static-gap -->", "<!-- /static-gap -->", "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("timing", help="jbrl plan and jbrl demo wall times")
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--no-demo", action="store_true", help="time the plan only")
    g = sub.add_parser("static-gap", help="MILP-static vs MILP-oracle on a multi-day trace")
    g.add_argument("--days", type=int, default=3)
    g.add_argument("--interval", type=float, default=1800.0)
    g.add_argument("--spread", type=float, default=8.0, help="hours between the sites' peaks")
    args = ap.parse_args()
    if not RESULTS.exists():
        RESULTS.write_text("# Fleet scenario\n\nWritten by `experiments/fleet_scenario.py`.\n")
    if args.cmd == "timing":
        timing(args.repeats, not args.no_demo)
    else:
        static_gap(args.days, args.interval, args.spread)


if __name__ == "__main__":
    main()
