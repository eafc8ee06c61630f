"""``jbrl scenario synth``: generate a synthetic scenario (see :mod:`jbrl.scenario.synth`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from jbrl.cli.common import console
from jbrl.errors import InputError
from jbrl.scenario import scenario_to_yaml
from jbrl.scenario.synth import DEFAULT_LATENCY_MS, DEFAULT_MAX_COMBINATIONS, synth_scenario


class Shape(StrEnum):
    chain = "chain"
    diamond = "diamond"
    fanout = "fanout"


def synth(
    operators: Annotated[int, typer.Option("--operators", min=1, help="Operators K.")] = 4,
    variants: Annotated[
        int, typer.Option("--variants", min=1, help="Variants per varied operator V.")
    ] = 3,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Workers N.")] = 20,
    tiers: Annotated[int, typer.Option("--tiers", min=1, help="Tiers T.")] = 2,
    shape: Annotated[Shape, typer.Option("--shape", help="Workflow DAG shape.")] = Shape.chain,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    max_combinations: Annotated[
        int,
        typer.Option(
            "--max-combinations",
            min=1,
            help="Largest end-to-end accuracy table: only as many operators get V variants.",
        ),
    ] = DEFAULT_MAX_COMBINATIONS,
    worker_types: Annotated[
        int | None,
        typer.Option(
            "--worker-types",
            help="Distinct worker types (default: a CPU and a GPU type per tier); each type has "
            "its own speed and price, so many types do not aggregate into a few groups.",
        ),
    ] = None,
    latency_ms: Annotated[
        float | None,
        typer.Option("--latency-ms", help="End-to-end latency bound (ms); 0: none."),
    ] = DEFAULT_LATENCY_MS,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Scenario YAML to write (default: stdout)."),
    ] = None,
) -> None:
    """Generate a valid synthetic scenario: repeated worker types on T tiers, a K-operator DAG,
    V variants with a complete accuracy table monotone in variant size. Same seed, same file."""
    s = synth_scenario(
        operators=operators,
        variants=variants,
        workers=workers,
        tiers=tiers,
        shape=Shape(shape).value,
        seed=seed,
        max_combinations=max_combinations,
        worker_types=worker_types,
        latency_ms=latency_ms or None,
    )
    text = scenario_to_yaml(s)
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text, "utf-8")
    except OSError as exc:
        raise InputError(f"cannot write file: {exc}", file=str(output)) from None
    console.print(
        f"wrote {output}: {len(s.operators)} operators, {len(s.workers)} workers, "
        f"{len(s.accuracy.table)} accuracy rows",
        highlight=False,
    )
