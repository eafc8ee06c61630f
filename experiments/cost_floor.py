"""The cost floor of a scenario's test traces: the least $ any sequence of plans can pay.

Issue 13 asks the shipped policy to cost >= 10 % less than the cheapest causal baseline that
reaches 99 % (``milp-static``, JellyBean's one plan for the trace's peak, is one of them). This
script asks whether any policy could, whatever it learns: for each test trace and each control
interval it solves the MILP at the interval's *mean* rates and sums those plans' $ over the
trace, as if a policy knew the future and reconfigured for free, with no load downtime, at every
interval boundary. Two floors:

* ``capacity``: the cheapest plan whose capacity serves the interval's mean rates (MILP,
  capacity only, utilisation 1). With less, the queue grows through the interval, and (first
  come, first served) every request that finds more than an SLO's worth of work ahead of it
  misses: past the interval's first seconds, nearly all. This floor holds for any plan,
  SLO-aware or not, up to the 1 % of requests the attainment target lets a policy miss.
* ``slo``: the cheapest plan the SLO-aware MILP (the planner every issue-13 policy deploys)
  finds for the interval's mean rates - the least such a policy pays in the latency model.

Both are compared with ``milp-static`` (JellyBean's one SLO-aware plan for the trace's peak,
held for the whole trace). Every plan is priced as the simulators charge, without simulating:
its compute $/h over the interval plus the communication of the interval's mean rates along its
routing. Where a floor is above 0.9 x the static plan's $, no policy of that kind can be 10 %
cheaper than ``milp-static``.

    python experiments/cost_floor.py --scenario vehicle  # about 3 min
    python experiments/cost_floor.py --scenario vqa  # about 6 min
    python experiments/cost_floor.py --scenario fleet --interval 300  # about 10 min

Writes its section of ``experiments/results/cost_floor.md`` and ``cost_floor.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _results import field_help, write_section
from evaluate_vqa import git_commit, machine

from jbrl.agents.rules.cache import PlanCache
from jbrl.envs.workload import ALL_TRACE_SPECS, eval_traces
from jbrl.errors import JbrlError
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.coverage import rescale_plan
from jbrl.planning.plan import Plan
from jbrl.progress import ProgressBar
from jbrl.scenario import load_scenario
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace

RESULTS = Path(__file__).resolve().parent / "results"
HEADER = """# Cost floors of the test traces

The least $ any sequence of plans can pay on the policy benchmark's test traces: one plan per
control interval at the interval's mean rates, reconfigured for free with perfect foresight,
capacity-only and SLO-aware, against `milp-static` priced alike. Written by
`experiments/cost_floor.py` (its docstring says how and why these are floors), one section per
scenario.
"""
TARGET = 0.10
"""issue 13: >= 10 % below the cheapest causal baseline at 99 %"""
FLEET_TARGET = 0.15
"""issue 13, on the fleet scenario: >= 15 % below ``milp-static``"""


@dataclass
class Args:
    """Settings (each field is a command-line option)."""

    scenario: str = "vqa"
    """embedded scenario name or YAML file"""
    traces: str = ",".join(ALL_TRACE_SPECS)
    """test traces (names of jbrl.envs.workload.ALL_TRACE_SPECS, seed 0), as the benchmark's"""
    interval: float = 60.0
    """control interval (s): one plan per interval (the benchmark's: 60 s, 300 s on the fleet)"""
    duration: float = 7200.0
    """trace length (s), as the benchmark's"""
    time_limit: float = 10.0
    """seconds per MILP solve (the planner policies' default)"""
    out: str = ""
    """Markdown file (default experiments/results/cost_floor.md; its .json beside it)"""


def parse_args(argv: list[str] | None = None) -> Args:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    helps = field_help(Args)
    for f in dataclasses.fields(Args):
        ap.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(f.default),
            default=f.default,
            help=helps.get(f.name),
        )
    args = Args(**vars(ap.parse_args(argv)))
    if not (args.interval > 0 and args.duration >= args.interval):
        ap.error(f"--interval must be > 0 and <= --duration, not {args.interval:g}")
    if not args.time_limit > 0:
        ap.error(f"--time-limit must be > 0, not {args.time_limit:g}")
    try:
        load_scenario(args.scenario)
    except JbrlError as e:
        ap.error(f"--scenario: {e}")
    unknown = [n for n in args.traces.split(",") if n.strip() and n.strip() not in ALL_TRACE_SPECS]
    if unknown:
        ap.error(f"--traces: unknown trace {unknown[0]!r} (one of {', '.join(ALL_TRACE_SPECS)})")
    return args


class Floor:
    """One planner's cheapest plan at given rates, with the share of its $ that is proven: 1 -
    HiGHS's relative gap (0 when a solve stopped at its time limit without a bound), so the sum
    stays a floor when a solve is not optimal. When the planner cannot serve the rates in full
    it plans a scaled-down share (cheaper than any plan serving them all, so still a floor),
    counted in :attr:`clamped`."""

    def __init__(self, scenario: Scenario, max_util: float | None, time_limit: float) -> None:
        self.cache = PlanCache("milp", max_util=max_util, time_limit=time_limit, tie_penalty=0.0)
        self.cache.bind(scenario)
        self.clamped = 0
        self.not_optimal = 0
        self.max_gap = 0.0

    def plan(self, rates: dict[str, float]) -> tuple[Plan, float]:
        """The plan at ``rates`` and the proven share of its $."""
        res, solved_at = self.cache.solve_clamped(rates)
        if res is None:
            raise RuntimeError(f"no plan at any share of the rates {rates}")
        if any(abs(solved_at[k] - v) > 1e-9 for k, v in rates.items()):
            self.clamped += 1
        gap = 1.0 if res.gap is None else min(max(float(res.gap), 0.0), 1.0)
        self.max_gap = max(self.max_gap, gap)
        self.not_optimal += res.status != "optimal"
        return res.plan, 1.0 - gap


def dollars(scenario: Scenario, plan: Plan, rates: dict[str, float], seconds: float) -> float:
    """What ``plan`` costs for ``seconds`` at ``rates``: its compute $/h, and the communication
    of the requests that arrive, with its routing weights (as the simulators charge)."""
    served = rescale_plan(scenario, plan, rates) or plan
    rep = evaluate_plan(scenario, served, rates)
    return (rep.compute_cost + rep.communication_cost) * seconds / 3600.0


def trace_floor(
    scenario: Scenario,
    trace: Trace,
    floors: dict[str, Floor],
    static: Plan,
    interval: float,
    bar: ProgressBar,
) -> dict[str, Any]:
    """``floors``' $ over ``trace`` (one plan per interval at its mean rates), and ``static``'s
    (the same plan throughout), each priced at every interval's mean rates."""
    sources = [s.name for s in scenario.sources]
    out: dict[str, Any] = {k: 0.0 for k in (*floors, "static")}
    starts = np.arange(0.0, trace.duration, interval)
    for t0 in starts:
        t1 = min(float(t0) + interval, trace.duration)
        mean = trace.mean_over(float(t0), t1)
        rates = {s: float(mean[s]) for s in sources}
        for name, fl in floors.items():
            plan, proven = fl.plan(rates)
            out[name] += proven * dollars(scenario, plan, rates, t1 - t0)
        out["static"] += dollars(scenario, static, rates, t1 - t0)
        bar.advance()
    out["intervals"] = len(starts)
    return out


def run(args: Args) -> dict[str, Any]:
    scenario = load_scenario(args.scenario)
    sources = [s.name for s in scenario.sources]
    names = [n.strip() for n in args.traces.split(",") if n.strip()]
    traces = eval_traces(scenario, duration=args.duration, seed=0, names=names)
    slo = Floor(scenario, None, args.time_limit)
    floors = {"capacity": Floor(scenario, 1.0, args.time_limit), "slo": slo}
    per_trace: dict[str, dict[str, Any]] = {}
    n_int = int(np.ceil(args.duration / args.interval))
    t_start = time.perf_counter()
    with ProgressBar(sys.stderr.isatty(), len(names) * n_int, "floors", "intervals") as bar:
        for name, tr in traces.items():
            bar.describe(name)
            peak = tr.max_over(0.0, tr.duration)
            static, _ = slo.plan({s: float(peak[s]) for s in sources})
            per_trace[name] = trace_floor(scenario, tr, floors, static, args.interval, bar)
    total = {k: sum(r[k] for r in per_trace.values()) for k in ("capacity", "slo", "static")}
    return {
        "scenario": args.scenario,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "time_limit_s": args.time_limit,
        "traces": per_trace,
        "total": total,
        "clamped_solves": {k: f.clamped for k, f in floors.items()},
        "max_gap": {k: f.max_gap for k, f in floors.items()},
        "not_optimal": {k: f.not_optimal for k, f in floors.items()},
        "wall_s": time.perf_counter() - t_start,
        "machine": machine(),
        "commit": git_commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python experiments/cost_floor.py " + " ".join(sys.argv[1:]),
    }


def pct(x: float, ref: float) -> str:
    d = 100.0 * (x / ref - 1.0)
    return f"{0.0 if abs(d) < 0.05 else d:+.1f} %"


def report(res: dict[str, Any]) -> str:
    tot = res["total"]
    lines = [
        f"## {res['scenario']}",
        "",
        f"Generated by `{res['command']}` on {res['date']} (git {res['commit']}), "
        f"{res['wall_s'] / 60:.1f} min wall time.",
        "",
        f"- Machine: {res['machine']}.",
        f"- One plan per {res['interval_s']:g} s interval at the interval's mean rates, "
        f"{res['duration_s'] / 3600:.3g} h test traces (seed 0, the benchmark's); HiGHS "
        f"{res['time_limit_s']:g} s per solve, largest relative gap "
        f"{res['max_gap']['capacity']:.1e} (capacity) / {res['max_gap']['slo']:.1e} (SLO-aware; "
        "each floor counts only the proven share, 1 - gap, of a plan's $), solves stopped short "
        f"of optimal {res['not_optimal']['capacity']} / {res['not_optimal']['slo']}; "
        f"solves at a scaled-down share of unservable rates: "
        f"{res['clamped_solves']['capacity']} / {res['clamped_solves']['slo']}.",
        "",
        "| trace | capacity floor $ | SLO-aware floor $ | milp-static $ "
        "| capacity floor vs static | SLO-aware floor vs static |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["traces"].items():
        lines.append(
            f"| {name} | {r['capacity']:.3f} | {r['slo']:.3f} | {r['static']:.3f} "
            f"| {pct(r['capacity'], r['static'])} | {pct(r['slo'], r['static'])} |"
        )
    lines.append(
        f"| **all** | **{tot['capacity']:.3f}** | **{tot['slo']:.3f}** | **{tot['static']:.3f}** "
        f"| **{pct(tot['capacity'], tot['static'])}** | **{pct(tot['slo'], tot['static'])}** |"
    )
    fleet = Path(res["scenario"]).stem == "fleet"
    for frac in (TARGET, FLEET_TARGET) if fleet else (TARGET,):
        bar = (1.0 - frac) * tot["static"]
        lines += ["", f"The issue's bar, {100 * frac:g} % below `milp-static`: {bar:.3f} $."]
        for k, what in (("capacity", "plan sequence"), ("slo", "SLO-aware plan sequence")):
            verdict = (
                f"above it: no {what} is {100 * frac:g} % cheaper than `milp-static` on these "
                "traces"
                if tot[k] > bar
                else "below it: it does not rule the target out"
            )
            lines.append(f"- {k} floor {tot[k]:.3f} $, {verdict}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    out = Path(args.out) if args.out else RESULTS / "cost_floor.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    js = out.with_suffix(".json")
    name = res["scenario"]
    with js.open("a+", encoding="utf-8") as fh:  # one scenario's run at a time writes both files
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read()
        data = json.loads(text) if text.strip() else {}
        data[name] = res
        if not out.exists():
            out.write_text(HEADER, "utf-8")
        write_section(out, f"<!-- floor:{name} -->", f"<!-- /floor:{name} -->", report(res))
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(report(res))
    print(f"wrote {out} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
