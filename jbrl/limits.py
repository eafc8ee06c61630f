"""Limits on every input that sizes work, so that a tiny hostile file cannot exhaust the machine.

A trace row at ``time_s = 1e308``, a worker pool of ``count: 100000000`` or a 1,000-deep JSON
document are well-formed but would run for ever or fill memory. Every loader and every run
checks the sizes it is about to commit to against the active :class:`Limits` first, and a value
over a limit is bad input (:class:`~jbrl.errors.InputError`, exit 2) naming the field, the value
and the limit, and how to raise it.

The defaults fit a 2-core machine with a few GB of memory: any input within them is read in
seconds and within about a gigabyte. ``jbrl --limit NAME=VALUE ...`` raises (or lowers) one for a
command; library callers use :func:`using` or pass a :class:`Limits` where a function takes one.

===============  ===========  ================================================================
limit            default      what it bounds
===============  ===========  ================================================================
file_bytes       16 MiB       size of any input file (CSV, JSON, zip)
yaml_bytes       2 MiB        size of any YAML file (PyYAML builds a node per value first)
depth            32           nesting of a JSON or YAML document
nodes            1,000,000    values in one document (YAML aliases counted where they expand)
trace_s          7,776,000    length of a trace or run in trace seconds (90 days)
trace_rows       1,000,000    rows of a trace
rate             100,000      one source's request rate (req/s) in a trace, a scenario, --rate
intervals        100,000      intervals of one run or episode (duration / interval)
requests         10,000,000   requests one discrete-event run is expected to simulate
workers          10,000       workers of a scenario once pools (``count``) are expanded
combinations     100,000      variant combinations of a scenario (product of variant counts)
processes        16           parallel worker processes (``--processes``)
envs             64           parallel training environments (``n_envs``)
threads          16           torch threads (training ``threads``, ``jbrl profile --threads``)
runs             10,000       runs of one evaluation (traces x seeds x policies)
timesteps        100,000,000  training steps (``total_timesteps``)
===============  ===========  ================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

from jbrl.errors import InputError, Param


@dataclass(frozen=True)
class Limits:
    """Upper bounds on input sizes (see the module docstring for each one)."""

    file_bytes: int = 16 * 1024 * 1024
    yaml_bytes: int = 2 * 1024 * 1024
    depth: int = 32
    nodes: int = 1_000_000
    trace_s: float = 90 * 86400.0  # multi-week generators (weekly, phased) need weeks
    trace_rows: int = 1_000_000
    rate: float = 100_000.0
    intervals: int = 100_000
    requests: float = 10_000_000.0
    workers: int = 10_000
    combinations: int = 100_000
    processes: int = 16
    envs: int = 64
    threads: int = 16
    runs: int = 10_000
    timesteps: int = 100_000_000

    def with_items(self, items: list[str] | tuple[str, ...]) -> Limits:
        """These limits with ``NAME=VALUE`` items applied (``--limit``); InputError for an
        unknown name or a value that is not a positive finite number."""
        types = {f.name: f.type for f in fields(self)}
        changes: dict[str, Any] = {}
        for item in items:
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or name not in types:
                raise InputError(
                    f"must be NAME=VALUE with NAME one of {', '.join(types)}",
                    field="--limit",
                    value=item,
                )
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise InputError("must be a positive finite number", field="--limit", value=item)
            changes[name] = int(value) if types[name] in (int, "int") else value
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()
_active: list[Limits] = [DEFAULT_LIMITS]


def current() -> Limits:
    """The limits in force (the defaults unless the command line or :func:`using` set others)."""
    return _active[-1]


def set_limits(limits: Limits) -> None:
    """Make ``limits`` the process-wide limits (the ``jbrl`` command does this once)."""
    _active[0] = limits


@contextmanager
def using(limits: Limits) -> Iterator[Limits]:
    """Run a block under ``limits`` (tests, library callers)."""
    _active.append(limits)
    try:
        yield limits
    finally:
        _active.pop()


def over_limit(
    name: str,
    value: float | None,
    *,
    file: str | None = None,
    field: str | Param | None = None,
    what: str = "",
) -> InputError:
    """The error for ``value`` over the limit ``name``: names the field, the value, the limit
    and the flag that raises it."""
    limit = getattr(current(), name)
    text = f"{what} exceeds the limit" if what else "exceeds the limit"
    return InputError(
        f"{text} {name}={_fmt(limit)} (raise it with `jbrl --limit {name}=N ...` if you mean it)",
        file=file,
        field=field,
        value=value,
        has_value=value is not None,
    )


def check(
    name: str,
    value: float,
    *,
    file: str | None = None,
    field: str | Param | None = None,
    what: str = "",
) -> None:
    """Raise :func:`over_limit` when ``value`` exceeds the limit ``name`` (or is NaN)."""
    limit = getattr(current(), name)
    if not value <= limit:
        raise over_limit(name, value, file=file, field=field, what=what)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
