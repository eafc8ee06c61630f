"""``jbrl scenario ...``: inspect, validate, export the schema, import JellyBean inputs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from jbrl.cli.common import (
    DEFAULT_SCENARIO_NAME,
    JsonOpt,
    console,
    get_scenario,
    make_table,
    print_json,
    print_text,
)
from jbrl.errors import InputError
from jbrl.scenario import (
    Scenario,
    embedded_scenarios,
    scenario_json_schema,
    scenario_to_yaml,
)
from jbrl.scenario.jellybean import import_jellybean

app = typer.Typer(
    help="Inspect, validate and convert scenarios (workflow + infrastructure + profiles + SLO).",
    no_args_is_help=True,
)


@app.command("show")
def show(
    scenario: Annotated[
        str, typer.Argument(help="Embedded name, YAML file or JellyBean inputs directory.")
    ] = DEFAULT_SCENARIO_NAME,
    json_out: JsonOpt = False,
    yaml_out: Annotated[
        bool, typer.Option("--yaml", help="Print the full scenario as YAML.")
    ] = False,
) -> None:
    """Summarise a scenario: workflow, variants and accuracy, workers, SLO."""
    s = get_scenario(scenario)
    if json_out:
        print_json(s.model_dump(mode="json", by_alias=True, exclude_none=True))
        return
    if yaml_out:
        print_text(scenario_to_yaml(s))
        return
    console.print(f"[bold]{s.name}[/bold]: {s.description}", highlight=False)
    demand = s.demand()
    t = make_table(
        ("node", "kind", "inputs (ratio, KB)", "variants", "req/s"),
        title="Workflow (topological order)",
        caption="req/s: nominal request rate",
        right=("req/s",),
    )
    for src in s.sources:
        t.add_row(src.name, f"source @ {s.tiers[s.source_tier[src.name]]}", "", "", f"{src.rate:g}")
    for op in s.topo_order:
        ins = ", ".join(
            f"{e.source} (x{e.ratio:g}, "
            + (f"{e.message_kb:g}" if not isinstance(e.message_kb, dict) else "by variant")
            + ")"
            for e in s.in_edges[op]
        )
        t.add_row(op, "operator", ins, ", ".join(s.operator_map[op].variants), f"{demand[op]:g}")
    console.print(t)
    _print_accuracy(s)
    _print_workers(s)
    bound = (
        "no latency bound (capacity-only planning)"
        if s.slo.latency_ms is None
        else f"{s.slo.attainment:.1%} of requests within {s.slo.latency_ms:g} ms"
    )
    console.print(
        f"SLO: accuracy >= {s.slo.min_accuracy:g}, {bound}. Backward traffic "
        f"{s.backward_traffic}; link cost scale "
        f"{s.comm_cost_scale:g}; {len(s.profiles)} profiles.",
        highlight=False,
    )


SHOW_ROWS = 24
"""Longer accuracy tables and worker lists are summarised (``--yaml`` prints everything)."""


def _print_accuracy(s: Scenario) -> None:
    """The accuracy table; a long one shows only the combinations that meet the target."""
    if not s.accuracy.operators:
        return
    combos = sorted(s.variant_combinations(), key=lambda c: c[1])
    meeting = [c for c in combos if c[1] >= s.slo.min_accuracy]
    shown = combos if len(combos) <= SHOW_ROWS else meeting[:SHOW_ROWS]
    ops = s.accuracy.operators
    wide = len(ops) > 3  # one column per operator would not fit: one column of variants
    t = make_table(
        (*(["variants (" + ", ".join(ops) + ")"] if wide else ops), "accuracy", "meets SLO"),
        title=f"End-to-end accuracy ({s.accuracy.metric})",
        right=("accuracy",),
    )
    for assign, acc in shown:
        ok = "yes" if acc >= s.slo.min_accuracy else ""
        cells = [" ".join(assign[o] for o in ops)] if wide else [assign[o] for o in ops]
        t.add_row(*cells, f"{acc:g}", ok)
    console.print(t)
    if len(shown) < len(combos):
        console.print(
            f"{len(meeting)} of {len(combos)} combinations meet the target "
            f"{s.slo.min_accuracy:g} ({len(shown)} shown, least accurate first; --yaml lists "
            "them all)",
            highlight=False,
        )


def _print_workers(s: Scenario) -> None:
    """Workers, or for a long list the pools (workers of one type, tier and price)."""
    if len(s.workers) <= SHOW_ROWS:
        t = make_table(("worker", "type", "tier", "$/hour"), title="Workers", right=("$/hour",))
        for w in s.workers:
            t.add_row(w.name, w.type, s.tiers[s.worker_tier[w.name]], f"{w.price:g}")
    else:
        pools: dict[tuple[str, str, float], list[str]] = {}
        for w in s.workers:
            pools.setdefault((w.type, s.tiers[s.worker_tier[w.name]], w.price), []).append(w.name)
        t = make_table(
            ("workers", "count", "type", "tier", "$/hour"),
            title="Workers (pools: workers of one type, tier and price)",
            right=("count", "$/hour"),
        )
        for (wtype, tier, price), names in pools.items():
            span = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"
            t.add_row(span, str(len(names)), wtype, tier, f"{price:g}")
    console.print(t)


@app.command("validate")
def validate(
    scenario: Annotated[str, typer.Argument(help="Embedded name, YAML file or JellyBean dir.")],
    json_out: JsonOpt = False,
) -> None:
    """Validate a scenario; exit 0 if valid, 2 with one clear message if not."""
    s = get_scenario(scenario)
    summary = {
        "valid": True,
        "name": s.name,
        "operators": len(s.operators),
        "workers": len(s.workers),
        "profiles": len(s.profiles),
        "variant_combinations": sum(1 for _ in s.variant_combinations()),
    }
    if json_out:
        print_json(summary)
    else:
        console.print(
            f"[green]valid[/green]: {s.name} ({summary['operators']} operators, "
            f"{summary['workers']} workers, {summary['profiles']} profiles)"
        )


@app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the scenario format."""
    import json

    text = json.dumps(scenario_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n", "utf-8")
        console.print(f"wrote {output}")
    else:
        print(text)


@app.command("list")
def list_embedded() -> None:
    """List the embedded scenarios."""
    for name in embedded_scenarios():
        print(name)


@app.command("import-jellybean")
def import_jb(
    directory: Annotated[Path, typer.Argument(help="JellyBean optimizer-inputs directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Scenario YAML to write.")],
    latency_ms: Annotated[
        float | None,
        typer.Option(
            "--latency-ms",
            help="End-to-end latency bound (ms) to give the scenario; JellyBean's inputs have "
            "none, so without it plans are capacity-only.",
        ),
    ] = None,
    attainment: Annotated[
        float,
        typer.Option(
            "--attainment", help="Fraction of requests within the bound (with --latency-ms)."
        ),
    ] = 0.99,
) -> None:
    """Convert JellyBean's optimizer-input files into a jbrl scenario YAML."""
    if not directory.is_dir():
        raise InputError("not a directory", file=str(directory))
    if latency_ms is not None and not (math.isfinite(latency_ms) and latency_ms > 0):
        raise InputError("must be a positive number of ms", field="--latency-ms", value=latency_ms)
    if not (0 < attainment <= 1):
        raise InputError("must be in (0, 1]", field="--attainment", value=attainment)
    s = import_jellybean(directory, latency_ms, attainment)
    output.write_text(scenario_to_yaml(s), "utf-8")
    console.print(
        f"wrote {output}: {len(s.operators)} operators, {len(s.workers)} workers, "
        f"{len(s.profiles)} profiles"
    )
