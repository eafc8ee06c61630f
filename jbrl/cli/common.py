"""Shared pieces of the command line: option types, error handling, output helpers."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from jbrl.errors import InputError, Param
from jbrl.scenario import DEFAULT_SCENARIO, Scenario, load_scenario

#: human output (tables, summaries) on stdout: rich wraps it to the terminal, 80 columns when
#: piped. Machine output (JSON, YAML, CSV) never goes through it: see :func:`print_json`,
#: :func:`print_text`.
console = Console()
err_console = Console(stderr=True)

ScenarioOpt = Annotated[
    str,
    typer.Option(
        "--scenario",
        "-s",
        help="Embedded scenario name (e.g. vqa), a scenario YAML file, or a JellyBean "
        "optimizer-inputs directory.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

DEFAULT_SCENARIO_NAME = DEFAULT_SCENARIO

#: the option that gives each library argument (errors name the option, not the argument)
FLAGS: dict[Param, str] = {p: "--" + p.value.replace("_", "-") for p in Param}


def get_scenario(spec: str) -> Scenario:
    return load_scenario(spec)


def parse_rates(scenario: Scenario, rate: list[str] | None) -> dict[str, float] | None:
    """``--rate R`` sets every source to R; ``--rate SOURCE=R`` sets one source."""
    if not rate:
        return None
    rates = scenario.nominal_rates()
    for item in rate:
        name, _, value = item.rpartition("=")
        try:
            v = float(value)
        except ValueError:
            raise InputError(
                "must be a number or SOURCE=number", field="--rate", value=item
            ) from None
        if not math.isfinite(v) or v < 0:
            raise InputError("must be a finite rate >= 0 (req/s)", field="--rate", value=item)
        if name:
            if name not in rates:
                raise InputError(
                    f"unknown source (sources: {', '.join(rates)})", field="--rate", value=item
                )
            rates[name] = v
        else:
            rates = {k: v for k in rates}
    return rates


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as a PNG; a path that cannot be written is bad input."""
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError(f"cannot write file: {exc}", file=str(path)) from None


def make_table(
    columns: Sequence[str],
    *,
    title: str | None = None,
    caption: str | None = None,
    right: Collection[str] = (),
) -> Table:
    """A table that fits the terminal (80 columns when piped) without losing a character: a
    cell too wide for its column wraps (``overflow="fold"``), never ends in "…". Columns named
    in ``right`` are right-aligned (numbers); ``caption`` explains the column headings."""
    t = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left", overflow="fold")
    return t


def print_text(text: str) -> None:
    """Machine-readable text (YAML, CSV) on stdout exactly as given: never wrapped at the
    terminal width nor styled, so a pipe or a file receives text that parses."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout (raw, like :func:`print_text`)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
