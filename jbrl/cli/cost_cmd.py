"""``jbrl cost``: cost and constraint check of a plan."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from jbrl import display
from jbrl.cli.common import (
    JsonOpt,
    ScenarioOpt,
    console,
    get_scenario,
    make_table,
    parse_rates,
    print_json,
)
from jbrl.errors import EXIT_BAD_INPUT, EXIT_INFEASIBLE
from jbrl.planning.cost import CostReport, evaluate_plan
from jbrl.planning.latency import PlanLatency
from jbrl.planning.plan import load_plan
from jbrl.planning.slo_check import check_latency


def cost(
    plan: Annotated[Path, typer.Option("--plan", "-p", help="Plan JSON file.")],
    scenario: ScenarioOpt = "vqa",
    rate: Annotated[
        list[str] | None,
        typer.Option("--rate", help="R for every source, or SOURCE=R (repeatable)."),
    ] = None,
    accuracy: Annotated[
        float | None, typer.Option("--accuracy", help="Accuracy target (default: the SLO's).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Cost ($/hour) and constraint check of a plan.

    Exit 0 when the plan meets every constraint, 3 when it breaks one (capacity, accuracy,
    a worker used twice, backward traffic, or - where the scenario has a latency bound - a
    predicted attainment below the SLO's target: ``latency_at_risk``), 2 when it names things
    the scenario lacks (an operator, variant or worker, or a batch size the worker's profile
    does not list). With a bound it reports, per source -> sink path, the predicted latency
    at the SLO percentile and the predicted attainment.
    """
    s = get_scenario(scenario)
    p = load_plan(plan)
    rates = parse_rates(s, rate)
    report = evaluate_plan(s, p, rates, accuracy)
    check = None if report.invalid else check_latency(s, p, rates)
    if check is not None and check.violation is not None:
        report.violations.append(check.violation)
    if json_out:
        data = report.to_dict()
        if check is not None and check.prediction is not None:
            data["latency"] = check.prediction.to_dict()
        print_json(data)
    else:
        print_report(report)
        if check is not None and check.prediction is not None:
            print_latency(check.prediction, s.slo.latency_ms)
    if report.invalid:
        raise typer.Exit(EXIT_BAD_INPUT)
    if not report.feasible:
        raise typer.Exit(EXIT_INFEASIBLE)


def print_latency(pred: PlanLatency, bound_ms: float | None) -> None:
    """Per path: predicted latency at the SLO percentile and attainment; then the request."""
    q = f"p{100 * pred.percentile:g}"
    t = make_table(
        ("path", f"{q} ms", "mean ms", "within bound"),
        title=f"Predicted latency (bound {bound_ms:g} ms)",
        right=(f"{q} ms", "mean ms", "within bound"),
    )
    for p in pred.paths:
        t.add_row(" -> ".join(p.path), _ms(p.latency_s), _ms(p.mean_s), _pct(p.attainment))
    t.add_row("request (all paths)", _ms(pred.latency_s), _ms(pred.mean_s), _pct(pred.attainment))
    console.print(t)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if math.isfinite(seconds) else "unbounded"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.3f} %"


def print_report(report: CostReport) -> None:
    t = make_table(
        ("operator", "variant", "demand", "capacity", "util", "workers (req/s / capacity)"),
        title="Operators",
        caption="demand, capacity: req/s; util: demand / capacity",
        right=("demand", "capacity", "util"),
    )
    for o in report.operators.values():
        ws = ", ".join(
            f"{w.worker} ({w.rate:.2f}/{w.capacity:.2f}{f', batch {w.batch}' if w.batch != 1 else ''})"
            for w in o.workers
        )
        t.add_row(
            o.operator,
            o.variant,
            f"{o.demand:.3f}",
            f"{o.capacity:.3f}",
            f"{o.utilization:.1%}",
            ws,
        )
    console.print(t)
    acc = "unknown" if report.accuracy is None else f"{report.accuracy:g}"
    console.print(
        f"compute_cost        {display.dollars(report.compute_cost)} $/hour\n"
        f"communication_cost  {display.dollars(report.communication_cost, 7)} $/hour\n"
        f"total_cost          {display.dollars(report.total_cost)} $/hour\n"
        f"accuracy            {acc} (target {report.accuracy_target:g})",
        highlight=False,
    )
    if report.violations:
        console.print(f"[red]{len(report.violations)} violated constraint(s):[/red]")
        for v in report.violations:
            console.print(f"  - [bold]{v.kind}[/bold]: {v.message}", highlight=False)
    else:
        console.print("[green]all constraints met[/green]")
