"""Planner scale benchmark: MILP solve time and gap, JellyBean heuristic time and cost ratio.

For N in {10, 100, 1000} workers and a few synthetic workflows (K operators, V variants,
shapes chain / diamond / fan-out, 3 tiers), plus JellyBean's published VQA inputs:

* MILP (HiGHS, worker aggregation on): wall time of ``plan()`` (model build + solve +
  disaggregation), status and relative gap;
* MILP without aggregation (every workflow at 10 workers, the first one up to
  ``max_plain_workers``) to show what aggregation buys;
* JellyBean heuristic: wall time and total cost / MILP total cost.

Writes a markdown table with the machine it ran on to ``--out``. Usage::

    .venv/bin/python experiments/bench_planners.py            # the full table (~5-8 min)
    .venv/bin/python experiments/bench_planners.py --quick    # N = 10, 100 only
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from dataclasses import dataclass, field, fields
from importlib.metadata import version
from pathlib import Path

from jbrl.planning import get_planner
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.groups import worker_groups
from jbrl.scenario import Scenario, load_scenario
from jbrl.scenario.synth import synth_scenario

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    """Benchmark settings (each is a command-line flag)."""

    sizes: list[int] = field(default_factory=lambda: [10, 100, 1000])
    """worker counts N"""
    workflows: list[str] = field(
        default_factory=lambda: ["5x3:chain", "10x5:diamond", "10x2:fanout"]
    )
    """K operators x V variants : shape"""
    tiers: int = 3
    """tiers of the synthetic infrastructures"""
    seed: int = 0
    """synthesis seed"""
    time_limit: float = 60.0
    """MILP time limit (s)"""
    gap: float = 1e-3
    """MILP relative gap at which HiGHS stops"""
    max_plain_workers: int = 100
    """also solve without aggregation: every workflow up to 10 workers, the first up to this"""
    jellybean_dir: str = str(REPO.parent / "shared" / "data" / "jellybean-vqa-medium")
    """JellyBean's VQA optimizer inputs (skipped if missing)"""
    out: str = str(REPO / "experiments" / "results" / "planners.md")
    """markdown file to write"""
    quick: bool = False
    """only N = 10 and 100"""


@dataclass
class Row:
    case: str
    n: int
    k: int
    v: int
    groups: int
    combos: str
    milp_status: str
    milp_s: float
    milp_gap: float | None
    milp_cost: float | None
    milp_cols: int
    plain_cols: int | None
    plain_s: float | None
    plain_gap: float | None
    plain_status: str
    heur_s: float
    heur_cost: float | None
    checked: bool


def run_case(name: str, s: Scenario, args: Args, plain: bool) -> Row:
    milp = get_planner("milp", time_limit=args.time_limit, mip_rel_gap=args.gap)
    m = milp.plan(s)
    checked = True
    if m.feasible:  # the plan must pass the cost model with the MILP's total
        report = evaluate_plan(s, m.plan)
        checked = not report.violations and abs(
            report.total_cost - m.extra["objective"]
        ) <= 1e-6 * max(1.0, report.total_cost)
    plain_s = plain_gap = plain_cols = None
    plain_status = "-"
    if plain:
        p = get_planner(
            "milp", time_limit=args.time_limit, mip_rel_gap=args.gap, aggregate=False
        ).plan(s)
        plain_s, plain_gap, plain_status = p.solve_time_s, p.gap, p.status
        if not p.feasible:
            plain_status = "no plan in time limit"
        plain_cols = p.extra.get("model", {}).get("columns")
    h = get_planner("jellybean").plan(s)
    model = m.extra.get("model", {})
    pruned = next((n for n in m.extra.get("notes", []) if "dominated" in n), "")
    total = model.get("combinations", 0) + (int(pruned.split()[0]) if pruned else 0)
    return Row(
        case=name,
        n=len(s.workers),
        k=len(s.operators),
        v=max(len(o.variants) for o in s.operators),
        groups=len(worker_groups(s)),
        combos=f"{model.get('combinations', '-')}/{total}" if model else "-",
        milp_status=m.status,
        milp_s=m.solve_time_s,
        milp_gap=m.gap,
        milp_cost=m.total_cost,
        milp_cols=model.get("columns", 0),
        plain_cols=plain_cols,
        plain_s=plain_s,
        plain_gap=plain_gap,
        plain_status=plain_status,
        heur_s=h.solve_time_s,
        heur_cost=h.total_cost if h.feasible else None,
        checked=checked,
    )


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- CPU: {cpu}, {cores} core(s) available (shared with other jobs)",
        f"- Python {platform.python_version()}, highspy {version('highspy')}, numpy {version('numpy')}",
        f"- OS: {platform.system()} {platform.release()}",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- load average when the table was written (1/5/15 min): {load_average()}",
    ]


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[Row]) -> list[str]:
    head = (
        "| case | N | K | V | groups | combos (kept/all) | MILP status | MILP s | MILP gap "
        "| MILP $/h | MILP columns | no-aggregation: s (gap, status, columns) | heuristic s "
        "| heuristic $/h | heuristic / MILP |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        ratio = (
            f"{r.heur_cost / r.milp_cost:.3f}"
            if r.heur_cost is not None and r.milp_cost
            else ("no plan" if r.heur_cost is None else "-")
        )
        plain = (
            "-"
            if r.plain_s is None
            else f"{r.plain_s:.2f} ({fmt(r.plain_gap, '.1e')}, {r.plain_status}, {r.plain_cols})"
        )
        out.append(
            f"| {r.case} | {r.n} | {r.k} | {r.v} | {r.groups} | {r.combos} | {r.milp_status}"
            f"{'' if r.checked else ' (cost check FAILED)'} | {r.milp_s:.2f} | {fmt(r.milp_gap, '.1e')} "
            f"| {fmt(r.milp_cost, '.3f')} | {r.milp_cols} | {plain} | {r.heur_s:.2f} | {fmt(r.heur_cost, '.3f')} "
            f"| {ratio} |"
        )
    return out


def main(args: Args) -> None:
    rows: list[Row] = []
    t_start = time.perf_counter()
    load_at_start = load_average()
    jb = Path(args.jellybean_dir)
    if jb.is_dir():
        rows.append(run_case("JellyBean VQA medium", load_scenario(jb), args, plain=True))
        print(table(rows)[-1], flush=True)
    sizes = [n for n in args.sizes if not args.quick or n <= 100]
    for n in sizes:
        for wf in args.workflows:
            kv, shape = wf.split(":")
            k, v = (int(x) for x in kv.split("x"))
            s = synth_scenario(
                operators=k, variants=v, workers=n, tiers=args.tiers, shape=shape, seed=args.seed
            )
            plain = n <= 10 or (n <= args.max_plain_workers and wf == args.workflows[0])
            rows.append(run_case(f"synth {shape}", s, args, plain))
            print(table(rows)[-1], flush=True)
    elapsed = time.perf_counter() - t_start
    lines = [
        "# Planner benchmark",
        "",
        "Generated by `experiments/bench_planners.py` "
        f"(seed {args.seed}, {args.tiers} tiers, MILP time limit {args.time_limit:g} s, "
        f"MILP gap target {args.gap:g}; total run {elapsed:.0f} s; load average at the start "
        f"{load_at_start}).",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Results",
        "",
        *table(rows),
        "",
        "Columns: *groups* = classes of interchangeable workers the MILP aggregates; *combos* = "
        "variant combinations meeting the accuracy target that the MILP keeps after dropping "
        "dominated ones / all meeting the target; *MILP s* = wall time of `plan()` (build, "
        "solve, disaggregate) with aggregation; *no-aggregation* = the same MILP over single "
        "workers (for every workflow at 10 workers, for the first up to "
        f"{args.max_plain_workers}); *heuristic / MILP* = JellyBean heuristic total "
        "$/hour over the MILP's. Every MILP plan was re-costed with `jbrl.planning.cost.evaluate_plan` "
        "and matched the MILP objective with no violated constraint unless marked.",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), "utf-8")
    print(f"wrote {out} in {elapsed:.0f} s")


def parse() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Args()
    for f in fields(Args):
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true")
        elif isinstance(value, list):
            parser.add_argument(flag, nargs="+", type=type(value[0]), default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse())
