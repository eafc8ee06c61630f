"""``jbrl plan``: a plan from one of the planners (MILP, JellyBean heuristic, baselines)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

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
from jbrl.cli.plan_check import (
    CheckDurationOpt,
    CheckSeedOpt,
    CheckSimKindOpt,
    CheckSimOpt,
    print_check,
    raise_if_missed,
    run_check,
)
from jbrl.cli.simulate_cmd import SimKind
from jbrl.errors import InfeasibleError, InputError
from jbrl.scenario.model import Scenario
from jbrl.sim.plan_check import DEFAULT_DURATION_S, DEFAULT_SIM


class Solver(StrEnum):
    milp = "milp"
    jellybean = "jellybean"
    cloud_only = "cloud-only"
    most_accurate = "most-accurate"


MILP_BASED = {"milp", "cloud-only", "most-accurate"}

SolverOpt = Annotated[
    Solver,
    typer.Option("--solver", help="Planner: exact MILP, JellyBean's heuristic, or a baseline."),
]
AccuracyOpt = Annotated[
    float | None, typer.Option("--accuracy", help="Accuracy target (default: the SLO's).")
]
RateOpt = Annotated[
    list[str] | None,
    typer.Option("--rate", help="R for every source, or SOURCE=R (repeatable), req/s."),
]
MaxUtilOpt = Annotated[
    float | None,
    typer.Option(
        "--max-util",
        help="Use at most this fraction of each worker's capacity: capacity-only planning at "
        "this utilisation, overriding the latency model (default: SLO-aware where the "
        "scenario has a latency bound, else 1).",
    ),
]


class LatencyModel(StrEnum):
    queueing = "queueing"
    none = "none"


LatencyModelOpt = Annotated[
    LatencyModel,
    typer.Option(
        "--latency-model",
        help="queueing: plans meet the scenario's latency bound at its attainment target by the "
        "latency model (where it has one); none: capacity-only planning.",
    ),
]
MaxBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--max-batch",
        help="The largest batch size the SLO-aware MILP may give a worker, among the profiled "
        "ones (default 1: no batching; batched planning is slower).",
    ),
]
TimeLimitOpt = Annotated[
    float | None, typer.Option("--time-limit", help="MILP time limit (s); best plan so far.")
]
GapOpt = Annotated[
    float | None, typer.Option("--gap", help="MILP relative optimality gap (default 1e-6).")
]
WriteModelOpt = Annotated[
    Path | None, typer.Option("--write-model", help="Write the MILP to this .lp/.mps file.")
]
MaxRateOpt = Annotated[
    bool,
    typer.Option(
        "--max-rate",
        help="Report the largest rate the infrastructure sustains at the accuracy target "
        "(a uniform scale of the given or nominal rates) instead of a plan.",
    ),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the plan JSON to this file.")
]


def plan(
    scenario: ScenarioOpt = "vqa",
    solver: SolverOpt = Solver.milp,
    accuracy: AccuracyOpt = None,
    rate: RateOpt = None,
    max_util: MaxUtilOpt = None,
    latency_model: LatencyModelOpt = LatencyModel.queueing,
    max_batch: MaxBatchOpt = None,
    time_limit: TimeLimitOpt = None,
    gap: GapOpt = None,
    write_model: WriteModelOpt = None,
    max_rate: MaxRateOpt = False,
    output: OutputOpt = None,
    check_sim: CheckSimOpt = False,
    sim: CheckSimKindOpt = SimKind(DEFAULT_SIM),
    duration: CheckDurationOpt = DEFAULT_DURATION_S,
    seed: CheckSeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Plan which variants run and which workers serve them, at the lowest $/hour.

    Where the scenario has a latency bound, the MILP-based solvers plan so that every request
    path meets it at the SLO's attainment target by the latency model (``--max-util`` or
    ``--latency-model none``: capacity only). Exit 0 with a plan, 3 when the request is
    infeasible (the JSON then has status "infeasible" and a reason with numbers: the best
    reachable accuracy, the largest sustainable rate, or the latency bound and the best
    predicted attainment), 2 on bad input. ``--check-sim`` then simulates the plan at its
    own rates and exits 3 when the simulated SLO attainment misses the target.
    """
    solver_name = Solver(solver).value
    s = get_scenario(scenario)
    rates = parse_rates(s, rate)
    options = _solver_options(
        solver_name, max_util, LatencyModel(latency_model).value, time_limit, gap, write_model
    )
    if max_batch is not None:
        if solver_name not in MILP_BASED:
            raise InputError(
                "only the MILP-based solvers take --max-batch", field="--max-batch", value=max_batch
            )
        options["max_batch"] = max_batch
    if max_rate:
        if check_sim:
            raise InputError("--check-sim checks a plan, not --max-rate", field="--check-sim")
        _max_rate(s, solver_name, options, accuracy, rates, json_out)
    else:
        check = (SimKind(sim).value, duration, seed) if check_sim else None
        _plan(s, solver_name, options, accuracy, rates, output, json_out, check)


def _solver_options(
    solver_name: str,
    max_util: float | None,
    latency_model: str,
    time_limit: float | None,
    gap: float | None,
    write_model: Path | None,
) -> dict[str, Any]:
    """The planner's options; the MILP-only ones are bad input for the other solvers."""
    options: dict[str, Any] = {} if max_util is None else {"max_util": max_util}
    if solver_name in MILP_BASED:
        options["latency_model"] = latency_model
        options["time_limit"] = 60.0 if time_limit is None else time_limit
        if gap is not None:
            options["mip_rel_gap"] = gap
        if write_model is not None:
            options["write_model"] = write_model
        return options
    for flag, value in (
        ("--time-limit", time_limit),
        ("--gap", gap),
        ("--write-model", write_model),
    ):
        if value is not None:
            raise InputError(
                f"only the MILP-based solvers take {flag}", field=flag, value=str(value)
            )
    return options


def _max_rate(
    s: Scenario,
    solver_name: str,
    options: dict[str, Any],
    accuracy: float | None,
    rates: dict[str, float] | None,
    json_out: bool,
) -> None:
    """``--max-rate``: the largest uniform scale of the rates the solver's workers sustain
    (within the latency bound at its attainment target, where the planning is SLO-aware)."""
    from jbrl.planning.milp import MilpPlanner, infeasibility_reason

    probe_opts = {k: v for k, v in options.items() if k != "write_model"}
    probe_opts.setdefault("mip_rel_gap", 1e-4)
    if solver_name == "cloud-only":
        from jbrl.planning.baselines import CloudOnlyPlanner

        probe_opts["workers"] = CloudOnlyPlanner().top_tier_workers(s)
    if solver_name == "most-accurate":
        probe_opts["most_accurate"] = True
    probe = MilpPlanner(**probe_opts)
    target = s.slo.min_accuracy if accuracy is None else accuracy
    result = probe.max_rate(s, target, rates)
    if result.status == "infeasible":
        reason = infeasibility_reason(s, rates or s.nominal_rates(), target, probe)
        raise InfeasibleError(reason["message"], {"status": "infeasible", "reason": reason})
    data = result.to_dict()
    if json_out:
        print_json(data)
    else:
        _print_max_rate(data, given=rates is not None)


def _plan(
    s: Scenario,
    solver_name: str,
    options: dict[str, Any],
    accuracy: float | None,
    rates: dict[str, float] | None,
    output: Path | None,
    json_out: bool,
    check_sim: tuple[str, float, int] | None = None,
) -> None:
    """A plan from the solver: printed (or JSON), and written to ``output`` when given;
    ``check_sim`` = (simulator, duration, seed): simulated at its rates and checked."""
    from jbrl.planning.base import get_planner

    result = get_planner(solver_name, **options).plan(s, rates, accuracy)
    data = result.to_dict()
    if not result.feasible:
        reason = result.reason or {}
        raise InfeasibleError(str(reason.get("message", "infeasible")), data)
    if output is not None:
        try:
            output.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
        except OSError as exc:
            raise InputError(f"cannot write file: {exc}", file=str(output)) from None
    check = None
    if check_sim is not None:
        sim, duration, seed = check_sim
        load = dict(rates) if rates is not None else s.nominal_rates()
        check = run_check(s, result.plan, load, data, sim, duration, seed, quiet=json_out)
    if json_out:
        if check is not None:
            raise_if_missed(check, data)
            data["check"] = check.to_dict()
        print_json(data)
        return
    _print_plan(s, data)
    if output is not None:
        console.print(f"wrote {output}")
    if check is not None:
        print_check(check)
        raise_if_missed(check, data)


def _print_plan(scenario: Scenario, data: dict[str, Any]) -> None:
    t = make_table(
        ("operator", "variant", "workers (req/s / capacity)"),
        title=f"Plan ({data['solver']}, {data['status']})",
    )
    variants = data["model_assignment"]
    for op in scenario.topo_order:
        shares = data["worker_assignment"].get(op, [])
        var = variants.get(op, scenario.operator_map[op].variants[0])
        ws = ", ".join(
            f"{sh['worker']} ({sh.get('rate', 0):.2f}/{scenario.capacity(op, var, sh['worker']):.2f})"
            for sh in shares
        )
        t.add_row(op, var, ws or "-")
    console.print(t)
    gap = data.get("gap")
    console.print(
        f"compute_cost        {display.dollars(data['compute_cost'])} $/hour\n"
        f"communication_cost  {display.dollars(data['communication_cost'], 7)} $/hour\n"
        f"total_cost          {display.dollars(data['total_cost'])} $/hour\n"
        f"accuracy            {data['accuracy']}\n"
        f"solve_time_s        {data['solve_time_s']:.3f}\n"
        f"gap                 {'-' if gap is None else f'{gap:.2e}'}",
        highlight=False,
    )
    lat = data.get("solver_info", {}).get("latency")
    if lat:
        pred = lat.get("predicted") or {}
        att, ms = pred.get("attainment"), pred.get("latency_ms")
        console.print(
            f"latency             bound {lat['bound_ms']:g} ms at {lat['attainment_target']:.4g}: "
            f"predicted {'-' if att is None else f'{att:.4%}'} within\n"
            f"                    p{100 * lat['attainment_target']:g} "
            f"{'-' if ms is None else f'{ms:.0f} ms'} "
            + (
                f"(capacity-only plan at max-util {lat.get('max_util') or 1:g}, "
                "confirmed by the prediction)"
                if lat["theta"] is None
                else f"(stage tail {lat['stage_tail']:.3g}, theta {lat['theta']:g})"
            ),
            highlight=False,
        )
    for v in data.get("solver_info", {}).get("violations", []):
        console.print(f"[red]violation[/red] {v}", highlight=False)


def _print_max_rate(data: dict[str, Any], given: bool) -> None:
    """The largest sustainable rates per source, then the variants that sustain them."""
    basis = "given" if given else "nominal"
    within = ""
    if data.get("latency_bound_ms") is not None:
        within = (
            f" within {data['latency_bound_ms']:g} ms for {data['attainment_target']:.4g} of "
            "the requests"
        )
    console.print(
        f"At accuracy {data['accuracy']:g} the infrastructure sustains "
        f"{data['max_rate_scale']:.4g}x the {basis} rates{within} ({data['status']}).",
        highlight=False,
    )
    t = make_table(
        ("source", f"{basis} req/s", "max req/s"),
        title="Largest sustainable rate",
        right=(f"{basis} req/s", "max req/s"),
    )
    for src, r in data["max_rates"].items():
        t.add_row(src, f"{data['base_rates'][src]:g}", f"{r:.4g}")
    console.print(t)
    t = make_table(("operator", "variant"), title="Variants at that rate")
    for op, var in data["model_assignment"].items():
        t.add_row(op, var)
    console.print(t)
