"""``jbrl plan --check-sim``: the plan simulated at its own load, beside the latency model's
prediction (:func:`jbrl.sim.plan_check.check_plan`); exit 3 when the simulation misses the SLO."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from jbrl import display
from jbrl.cli.common import console, err_console, make_table
from jbrl.cli.simulate_cmd import SimKind
from jbrl.errors import InfeasibleError
from jbrl.planning.plan import Plan
from jbrl.progress import ProgressBar
from jbrl.scenario.model import Scenario
from jbrl.sim.plan_check import PlanCheck, check_plan

CheckSimOpt = Annotated[
    bool,
    typer.Option(
        "--check-sim",
        help="After planning, simulate the plan at its own rates (constant load, Poisson "
        "arrivals in the DES) and print predicted vs simulated SLO attainment, p50/p99 and $/h; "
        "exit 3 if the simulation misses the SLO's attainment target.",
    ),
]
CheckSimKindOpt = Annotated[
    SimKind, typer.Option("--sim", help="Simulator of --check-sim (request-level DES or fluid).")
]
CheckDurationOpt = Annotated[
    float,
    typer.Option("--duration", min=1.0, help="Simulated seconds of --check-sim."),
]
CheckSeedOpt = Annotated[int, typer.Option("--seed", help="Random seed of --check-sim (DES).")]


def run_check(
    s: Scenario,
    plan: Plan,
    rates: Mapping[str, float],
    data: dict[str, Any],
    sim: str,
    duration: float,
    seed: int,
    quiet: bool,
) -> PlanCheck:
    """Simulate ``plan`` (planner output ``data``) at ``rates``, under a progress bar of
    simulated seconds on a terminal for the DES (unless ``quiet``: JSON output)."""
    show_bar = not quiet and err_console.is_terminal and sim == SimKind.des.value
    with ProgressBar(show_bar, duration, label="check-sim", unit="simulated s") as bar:
        return check_plan(
            s,
            plan,
            rates,
            data.get("total_cost"),
            sim=sim,
            duration=duration,
            seed=seed,
            progress=lambda t, _end: bar.update(t),
        )


def raise_if_missed(check: PlanCheck, data: dict[str, Any]) -> None:
    """Exit 3 (infeasible) with the numbers when the simulated plan misses the SLO; the JSON
    then has status "infeasible", the plan, its solver status as ``plan_status`` and the
    ``check``."""
    if check.holds:
        return
    message = f"the plan does not hold in simulation: {check.reason}"
    reason = {
        "message": message,
        "simulated_attainment": check.simulated.attainment,
        "predicted_attainment": check.predicted.attainment,
        "attainment_target": check.target,
    }
    details = {
        **data,
        "status": "infeasible",
        "plan_status": data.get("status"),
        "reason": reason,
        "check": check.to_dict(),
    }
    raise InfeasibleError(message, details)


def print_check(check: PlanCheck) -> None:
    """The predicted and simulated figures side by side, the run's counts and the verdict."""
    rates = ", ".join(f"{src} {r:g}" for src, r in check.rates.items())
    slo = (
        "no latency bound: throughput and drops checked only"
        if check.bound_ms is None
        else f"{check.bound_ms:g} ms for {display.pct(check.target)} of the requests"
    )
    console.print(
        f"check run           {check.simulator}, {check.duration_s:g} simulated s, seed "
        f"{check.seed}\n"
        f"check load          {rates} req/s (constant"
        + (", Poisson)" if check.simulator == "des" else ")")
        + f"\ncheck SLO           {slo}",
        highlight=False,
    )
    t = make_table(
        ("", "predicted", "simulated"),
        title="Predicted vs simulated",
        caption="predicted: latency model; $/h: planner's",
        right=("predicted", "simulated"),
    )
    p, m = check.predicted, check.simulated
    t.add_row("SLO attainment", display.pct(p.attainment), display.pct(m.attainment))
    t.add_row("latency p50 ms", display.ms(p.p50_ms), display.ms(m.p50_ms))
    t.add_row("latency p99 ms", display.ms(p.p99_ms), display.ms(m.p99_ms))
    t.add_row("$/hour", display.dollars(p.dollars_per_hour), display.dollars(m.dollars_per_hour))
    console.print(t)
    console.print(
        f"check requests      {check.arrivals:.0f} arrived, {check.completed:.0f} done, "
        f"{check.dropped:.0f} dropped, {check.in_flight:.0f} queued at the end\n"
        f"check               {'holds' if check.holds else 'MISSES'}: {check.reason}",
        highlight=False,
    )
