"""Figures of the embedded ``fleet`` scenario, written to ``experiments/results/fleet.md``.

``timing``: wall-clock seconds of ``jbrl plan --scenario fleet`` (the MILP, target <= 10 s) and
of ``jbrl demo --scenario fleet`` (target <= 3 min on 2 cores), each run as a fresh process,
with the machine's load average and CPU count recorded.

``static-gap``: the room that adaptation is for. On a generated multi-day diurnal trace
(``phased``: each site its own daily cycle, shifted by up to ``--spread`` hours, lower
weekends, minute noise; seeds from the evaluation range, never used for training) it runs
MILP-static (one plan for the trace's peak, as JellyBean would deploy), MILP-oracle (the MILP for
the true peak of every coming interval, blind to model-load downtime) and ``oracle`` (the
clairvoyant bound: the cheapest plan sequence given the whole trace, load downtime charged,
:mod:`jbrl.agents.rules.sequence`) with ``jbrl evaluate`` (fluid simulator) and reports how much
more the static plan costs than ``oracle``. ``--sim des --hours 4``: the same on the trace's
first hours in the request-level DES (a cross-check of the simulators).

``oracle-headroom``: the headroom ``oracle`` plans with (candidates planned for, and required
to cover, the true peaks x (1 + headroom)), chosen on a validation trace (same generator, a
seed below the evaluation range): the least of 0, 0.1, 0.2 whose simulated attainment reaches
the SLO target; ``static-gap`` reads it from ``fleet_oracle_headroom.json``.

    .venv/bin/python experiments/fleet_scenario.py timing
    .venv/bin/python experiments/fleet_scenario.py oracle-headroom [--days 1]
    .venv/bin/python experiments/fleet_scenario.py static-gap [--days 3] [--interval 1800]
    .venv/bin/python experiments/fleet_scenario.py static-gap --sim des --hours 4
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
HEADROOM_FILE = RESULTS.with_name("fleet_oracle_headroom.json")
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


ORACLE_WINDOWS = "12"
"""``oracle``'s candidate windows on the fleet (intervals): the peaks of 6 h windows every 3 h
(and of the trace). Coarser than the policy's default (1, 4, 16), which would take about 300
MILP solves on 3 days at 2-5 CPU s each: coarser candidates make the bound dearer, so the gap
it reports is an underestimate. (The 3-day run with windows 3,12 - 97 solves - did not finish
in the time the shared machine left this session.)"""
VALIDATION_SEED = 4242
"""The trace seed ``oracle-headroom`` chooses the oracle's headroom on (below the evaluation
range: never an evaluation trace)."""
HEADROOMS = (0.0, 0.1, 0.2)


def oracle_headroom(days: float, interval: float, spread: float) -> float:
    """``oracle`` at each of :data:`HEADROOMS` on a validation trace (same generator and
    parameters as ``static-gap``, seed :data:`VALIDATION_SEED`); the least headroom whose
    simulated attainment reaches the SLO target is the one ``static-gap`` uses."""
    from jbrl.evaluation.runner import evaluate
    from jbrl.scenario import load_scenario

    sc = load_scenario("fleet")
    trace = _phased(sc, days, spread, VALIDATION_SEED)
    specs = [f"oracle:windows={ORACLE_WINDOWS}:headroom={h:g}" for h in HEADROOMS]
    t0, c0 = time.perf_counter(), _cpu_self()
    ev = evaluate(sc, {"validation": trace}, specs, sim="fluid", interval=interval, processes=2)
    rows = {r.policy: r for r in ev.summary}
    target = sc.slo.attainment
    chosen = next(
        (h for h, sp in zip(HEADROOMS, specs, strict=True) if rows[sp].slo_attainment >= target),
        HEADROOMS[-1],
    )
    lines = [
        "## The oracle's headroom (validation trace)",
        "",
        f"`phased`, {days:g} days, seed {VALIDATION_SEED} (not an evaluation seed), "
        f"`--interval {interval:g}`, fluid simulator; windows {ORACLE_WINDOWS}.",
        "",
        "| policy | $ | SLO attainment | plan changes | model loads |",
        "|---|---|---|---|---|",
        *(
            f"| {sp} | {rows[sp].dollars:.2f} | {rows[sp].slo_attainment:.4f} | "
            f"{rows[sp].plan_changes:g} | {rows[sp].reconfigurations:g} |"
            for sp in specs
        ),
        "",
        f"Chosen: headroom {chosen:g} (the least reaching {target:.0%}). Wall "
        f"{time.perf_counter() - t0:.0f} s, CPU {_cpu_self() - c0:.0f} s; machine: {machine()}.",
    ]
    HEADROOM_FILE.write_text(json.dumps({"headroom": chosen, "seed": VALIDATION_SEED}) + "\n")
    write_section(RESULTS, "<!-- headroom -->", "<!-- /headroom -->", "\n".join(lines))
    print("\n".join(lines))
    return chosen


def downtime(hours: float, interval: float, spread: float) -> None:
    """MILP-oracle on the first ``hours`` of the ``static-gap`` trace, with the scenario's model
    load times and with every load instant (one policy instance: the second run reuses the
    first's memoized solves, whose keys leave load times out): how much of its attainment
    shortfall the load downtime explains."""
    from jbrl.agents.policy import get_policy, policy_decider
    from jbrl.scenario import load_scenario
    from jbrl.scenario.derive import with_load_time
    from jbrl.sim.fluid import FluidSimulator
    from jbrl.sim.rollout import rollout

    sc = load_scenario("fleet")
    trace = _phased(sc, 3, spread, TRACE_SEED).with_duration(hours * 3600.0).for_scenario(sc)
    policy = get_policy("milp-oracle")
    rows = []
    for label, scen in (("own load times", sc), ("0 s loads", with_load_time(sc, 0.0))):
        policy.reset(scen, 0)
        res = rollout(FluidSimulator(), scen, trace, policy_decider(policy, scen, trace), interval)
        tot = res.totals
        rows.append(
            f"| {label} | {tot.dollars:.2f} | {tot.slo_attainment:.4f} | {res.plans_applied} | "
            f"{tot.reconfigurations} |"
        )
    loads = sorted({p.load_s or sc.default_load_s for p in sc.profiles})
    lines = [
        "## MILP-oracle's attainment and the model-load downtime",
        "",
        f"MILP-oracle on the first {hours:g} h of the `static-gap` trace, fluid simulator, "
        f"`--interval {interval:g}`; the scenario's load times range {loads[0]:g}-{loads[-1]:g} s.",
        "",
        "| load times | $ | SLO attainment | plans applied | model loads |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Machine: {machine()}.",
    ]
    write_section(RESULTS, "<!-- downtime -->", "<!-- /downtime -->", "\n".join(lines))
    print("\n".join(lines))


def _phased(sc: Any, days: float, spread: float, seed: int) -> Any:
    """The multi-day ``phased`` trace of these figures."""
    from jbrl.scenario.traces import generate_trace

    return generate_trace(
        "phased", days * 86400.0, seed, sources=sc, step_s=300.0, params=_trace_params(spread)
    )


def _trace_params(spread: float) -> dict[str, float]:
    return {"amplitude": 0.5, "spread_h": spread, "weekend": 0.6, "start_day": 3, "burst": 1.0}


def _oracle_spec() -> str:
    """``oracle`` with the windows above and the headroom ``oracle-headroom`` chose."""
    h = json.loads(HEADROOM_FILE.read_text())["headroom"] if HEADROOM_FILE.exists() else 0.0
    return f"oracle:windows={ORACLE_WINDOWS}:headroom={h:g}"


ROWS = ("static", "milp_oracle", "oracle")
"""The rows of the static-gap table."""


def static_gap(
    days: int,
    interval: float,
    spread: float,
    sim: str = "fluid",
    hours: float | None = None,
    only: tuple[str, ...] = ROWS,
) -> dict[str, Any]:
    """Run MILP-static, MILP-oracle and oracle on a multi-day diurnal trace; the cost ratio.
    ``hours``: only the trace's first hours (the DES cross-check: the DES simulates every
    request, so a shorter window). ``only``: run these rows and keep the others from the
    results file when it holds the same trace and settings (each row's own wall and CPU
    seconds are kept with it)."""
    from jbrl.evaluation.runner import evaluate
    from jbrl.scenario import load_scenario
    from jbrl.scenario.trace_stats import trace_statistics

    sc = load_scenario("fleet")
    trace = _phased(sc, days, spread, TRACE_SEED)
    if hours is not None:
        trace = trace.with_duration(hours * 3600.0)
    specs = {"static": "milp-static", "milp_oracle": "milp-oracle", "oracle": _oracle_spec()}
    result: dict[str, Any] = {
        "sim": sim,
        "days": days if hours is None else hours / 24.0,
        "interval_s": interval,
        "trace_params": _trace_params(spread),
        "trace_seed": TRACE_SEED,
        "trace_stats": trace_statistics(trace),
    }
    path = RESULTS.with_name(
        "fleet_static_gap.json" if sim == "fluid" else f"fleet_static_gap_{sim}.json"
    )
    t0, c0 = time.perf_counter(), _cpu_self()
    ev = evaluate(
        sc,
        {"phased": trace},
        [specs[k] for k in only],
        sim=sim,
        interval=interval,
        processes=min(2, len(only)),
    )
    rows = {r.policy: r.to_dict() for r in ev.summary}
    spent = {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu_self() - c0, "machine": machine()}
    result.update({k: {**rows[specs[k]], **spent, "with": list(only)} for k in only})
    old = json.loads(path.read_text()) if path.exists() else {}  # read now: runs may overlap
    if all(old.get(k) == v for k, v in result.items() if k not in ROWS and k != "trace_stats"):
        result.update({k: old[k] for k in ROWS if k in old and k not in only})
    if all(k in result for k in ROWS):
        dollars = {k: result[k]["dollars"] for k in ROWS}
        result["static_over_oracle"] = dollars["static"] / dollars["oracle"] - 1.0
        result["static_over_milp_oracle"] = dollars["static"] / dollars["milp_oracle"] - 1.0
    path.write_text(json.dumps(result, indent=1) + "\n")
    if "static_over_oracle" in result:
        _write_gap(result)
    return result


def _cpu_self() -> float:
    """CPU seconds of this process and its finished children (the evaluation's workers)."""
    ru, rc = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime


def _write_gap(r: dict[str, Any]) -> None:
    st = r["trace_stats"]
    lines = [
        "## Static provisioning for the peak vs the clairvoyant reference",
        "",
        f"Trace: `phased` ({r['days']:g} days from a Thursday, 5-min rows, seed {r['trace_seed']} "
        f"from the evaluation range; parameters {r['trace_params']}): peak/mean "
        f"{st['peak_to_mean']:.2f} of the total load, sites' peaks {st['peak_spread_h']:.1f} h "
        f"apart, pairwise correlation {st['mean_pairwise_corr']:.2f}. `jbrl evaluate --sim "
        f"{r['sim']} --interval {r['interval_s']:g}`, the scenario's own model load times.",
        "",
        "| policy | $ | SLO attainment | plan changes | model loads | first decision s |",
        "|---|---|---|---|---|---|",
    ]
    for key in ROWS:
        row = r[key]
        lines.append(
            f"| {row['policy']} | {row['dollars']:.2f} | {row['slo_attainment']:.4f} | "
            f"{row['plan_changes']:g} | {row['reconfigurations']:g} | "
            f"{row['decision_max_ms'] / 1000:.0f} |"
        )
    lines += [
        "",
        f"**MILP-static costs {r['static_over_oracle']:+.1%} against `oracle`** (the cheapest "
        "plan sequence given the whole trace, model-load downtime charged; issue target: at "
        f"least +25 %), {r['static_over_milp_oracle']:+.1%} against MILP-oracle (per-interval "
        "optima, blind to the load downtime, which costs it little here: the fleet's model "
        "loads take at most 3.2 s). `oracle`'s first decision computes the whole sequence (its candidate MILP solves "
        "and the dynamic programme); later decisions play it back. Runs (the rows run together "
        "share the wall and CPU time):",
    ]
    for key in ROWS:
        row = r[key]
        lines.append(
            f"* {row['policy']} (with {', '.join(row['with'])}): wall {row['wall_s']:.0f} s, "
            f"CPU {row['cpu_s']:.0f} s (up to 2 worker processes); machine: {row['machine']}."
        )
    tag = "static-gap" if r["sim"] == "fluid" else f"static-gap-{r['sim']}"
    if r["sim"] != "fluid":
        lines[0] += f" ({r['sim']} cross-check)"
    write_section(RESULTS, f"<!-- {tag} -->", f"<!-- /{tag} -->", "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("timing", help="jbrl plan and jbrl demo wall times")
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--no-demo", action="store_true", help="time the plan only")
    g = sub.add_parser("static-gap", help="MILP-static vs oracle on a multi-day trace")
    g.add_argument("--days", type=int, default=3)
    g.add_argument("--interval", type=float, default=1800.0)
    g.add_argument("--spread", type=float, default=8.0, help="hours between the sites' peaks")
    g.add_argument("--sim", choices=("fluid", "des"), default="fluid")
    g.add_argument("--hours", type=float, default=None, help="only the trace's first hours")
    g.add_argument(
        "--only", default=",".join(ROWS), help=f"rows to run (of {','.join(ROWS)}); keep the rest"
    )
    h = sub.add_parser("oracle-headroom", help="the oracle's headroom, on a validation trace")
    h.add_argument("--days", type=float, default=1.0)
    h.add_argument("--interval", type=float, default=1800.0)
    h.add_argument("--spread", type=float, default=8.0)
    d = sub.add_parser("downtime", help="MILP-oracle with and without model-load downtime")
    d.add_argument("--hours", type=float, default=24.0)
    d.add_argument("--interval", type=float, default=1800.0)
    d.add_argument("--spread", type=float, default=8.0)
    args = ap.parse_args()
    if not RESULTS.exists():
        RESULTS.write_text("# Fleet scenario\n\nWritten by `experiments/fleet_scenario.py`.\n")
    if args.cmd == "timing":
        timing(args.repeats, not args.no_demo)
    elif args.cmd == "downtime":
        downtime(args.hours, args.interval, args.spread)
    elif args.cmd == "oracle-headroom":
        oracle_headroom(args.days, args.interval, args.spread)
    else:
        only = tuple(x for x in args.only.split(",") if x)
        if not only or not set(only) <= set(ROWS):
            ap.error(f"--only: choose from {','.join(ROWS)}")
        static_gap(args.days, args.interval, args.spread, args.sim, args.hours, only)


if __name__ == "__main__":
    main()
