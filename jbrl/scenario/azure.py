"""Import the Azure Functions 2019 per-minute invocation counts as a jbrl trace.

The public trace (Shahrad et al., "Serverless in the Wild", USENIX ATC '20; files
``invocations_per_function_md.anon.dNN.csv``, one per day, described in the AzurePublicDataset
repository's ``AzureFunctionsDataset2019.md``) has a header ``HashOwner, HashApp,
HashFunction, Trigger, 1, 2, ..., 1440`` and one row per function with its invocations in each
minute of the day. jbrl never downloads it: give it the files you have.

:func:`azure_trace` sums the rows of the selected functions (``HashFunction``) and whole
applications (``HashApp``; an ID may be a unique prefix of at least 8 characters) over the
files in the order given (day after day, one row per minute), and scales the result
(:func:`parse_scale`): ``mean`` makes the mean 1 (the scenario's nominal rate is the trace's
mean load), ``peak`` makes the peak 1, ``mean=X`` / ``peak=X`` make them X, and a number r
turns invocations per second into a multiplier (x r). Without a scenario the trace has one
``scale`` column; with one, a column per source. ``sources`` maps each source to its own
selection (each column scaled on its own), so the sites of a scenario can follow different
applications. Files are read row by row; only the selected rows' minutes are parsed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jbrl.errors import InputError, Param
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import SCALE_COLUMN, Trace

ID_COLUMNS = ("HashOwner", "HashApp", "HashFunction", "Trigger")
MINUTES = 1440
MIN_PREFIX = 8


@dataclass(frozen=True)
class Selection:
    """Functions and applications whose invocations are summed (IDs or unique prefixes);
    ``either`` IDs name a function or an application, whichever has that hash."""

    functions: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()
    either: tuple[str, ...] = ()

    def ids(self) -> list[tuple[str, str, Param]]:
        """(ID, what it names, the argument it came from) for every ID."""
        return [
            *((i, "HashFunction", Param.FUNCTION) for i in self.functions),
            *((i, "HashApp", Param.APP) for i in self.apps),
            *((i, "HashFunction or HashApp", Param.SOURCE) for i in self.either),
        ]

    def matches(self, app: str, function: str) -> list[tuple[str, str]]:
        """(ID, the full hash it matched) for the IDs that select this row."""
        hits = [(i, function) for i in self.functions if function.startswith(i)]
        hits += [(i, app) for i in self.apps if app.startswith(i)]
        for i in self.either:
            if function.startswith(i):
                hits.append((i, function))
            elif app.startswith(i):
                hits.append((i, app))
        return hits


@dataclass
class _Sum:
    """Running sum of one selection over the files, and which full hashes each ID matched."""

    minutes: list[np.ndarray] = field(default_factory=list)
    matched: dict[str, set[str]] = field(default_factory=dict)


def parse_scale(text: str) -> tuple[str, float]:
    """``mean`` | ``peak`` | ``mean=X`` | ``peak=X`` | a positive number r -> (mode, value)."""
    raw = text.strip()
    mode, _, value = raw.partition("=")
    if mode in ("mean", "peak"):
        number = value or "1"
    else:
        mode, number = "per_rps", raw
    try:
        x = float(number)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x > 0):
        raise InputError(
            "must be mean, peak, mean=X, peak=X or a positive number (multiplier per invocation/s)",
            field=Param.SCALE,
            value=text,
        )
    return mode, x


def _check_ids(sel: Selection) -> None:
    for i, _what, param in sel.ids():
        if len(i) < MIN_PREFIX:
            raise InputError(
                f"an ID must have at least {MIN_PREFIX} characters (a full hash or a unique "
                "prefix)",
                field=param,
                value=i,
            )


def _check_header(header: list[str], file: str) -> None:
    expected = [*ID_COLUMNS, *(str(i) for i in range(1, MINUTES + 1))]
    if [h.strip() for h in header] != expected:
        got = ",".join(header[:6]) + (",..." if len(header) > 6 else "")
        raise InputError(
            f"not an Azure Functions 2019 invocations file: the header must be "
            f"{','.join(ID_COLUMNS)},1,...,{MINUTES} ({len(expected)} fields; this one has "
            f"{len(header)})",
            file=file,
            field="header",
            value=got,
        )


def _minutes(row: list[str], file: str, lineno: int) -> np.ndarray:
    try:
        x = np.array(row[len(ID_COLUMNS) :], dtype=float)
    except ValueError:
        bad = next(v for v in row[len(ID_COLUMNS) :] if not _is_number(v))
        raise InputError("not a number", file=file, field=f"line {lineno}", value=bad) from None
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        bad_i = int(np.flatnonzero(~np.isfinite(x) | (x < 0))[0])
        raise InputError(
            "invocation counts must be finite and >= 0",
            file=file,
            field=f"line {lineno}.{bad_i + 1}",
            value=row[len(ID_COLUMNS) + bad_i],
        )
    return x


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _read_day(path: Path, selections: Mapping[str, Selection], sums: dict[str, _Sum]) -> None:
    """Add one day file's selected rows to ``sums`` (a zero day where nothing matches)."""
    file = str(path)
    day = {name: np.zeros(MINUTES) for name in selections}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise InputError("empty file", file=file)
            _check_header(header, file)
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(ID_COLUMNS) + MINUTES:
                    raise InputError(
                        f"row has {len(row)} fields, expected {len(ID_COLUMNS) + MINUTES}",
                        file=file,
                        field=f"line {lineno}",
                        value=",".join(row[:4]),
                    )
                _add_row(row, selections, sums, day, file, lineno)
    except FileNotFoundError:
        raise InputError("no such file", file=file) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read file: {exc}", file=file) from None
    for name in selections:
        sums[name].minutes.append(day[name])


def _add_row(
    row: list[str],
    selections: Mapping[str, Selection],
    sums: dict[str, _Sum],
    day: dict[str, np.ndarray],
    file: str,
    lineno: int,
) -> None:
    app, function = row[1].strip(), row[2].strip()
    counts: np.ndarray | None = None
    for name, sel in selections.items():
        hits = sel.matches(app, function)
        if not hits:
            continue
        for i, full in hits:
            sums[name].matched.setdefault(i, set()).add(full)
        if counts is None:
            counts = _minutes(row, file, lineno)
        day[name] += counts


def read_invocations(
    paths: Sequence[str | Path], selections: Mapping[str, Selection]
) -> dict[str, np.ndarray]:
    """Invocations per minute of every selection over ``paths`` (one day per file, in order);
    an ID that matches nothing, or a prefix that matches several hashes, is an InputError."""
    if not paths:
        raise InputError("no invocations file given", field="FILE")
    for sel in selections.values():
        _check_ids(sel)
    sums = {name: _Sum() for name in selections}
    for path in paths:
        _read_day(Path(path), selections, sums)
    for name, sel in selections.items():
        for i, what, param in sel.ids():
            _check_matched(i, what, param, sums[name].matched.get(i, set()), len(paths))
    return {name: np.concatenate(s.minutes) for name, s in sums.items()}


def _check_matched(ident: str, what: str, param: Param, found: set[str], files: int) -> None:
    if not found:
        raise InputError(f"no row in {files} file(s) has this {what}", field=param, value=ident)
    if len(found) > 1:
        raise InputError(
            f"ambiguous prefix: it matches {len(found)} different hashes "
            f"({', '.join(sorted(found)[:3])}...)",
            field=param,
            value=ident,
        )


def scale_series(per_minute: np.ndarray, mode: str, value: float) -> np.ndarray:
    """Multipliers from invocations per minute (see :func:`parse_scale`)."""
    if mode == "per_rps":
        return per_minute / 60.0 * value
    ref = per_minute.mean() if mode == "mean" else per_minute.max()
    if ref <= 0:
        raise InputError(
            "the selected rows have no invocations in these files: nothing to scale",
            field=Param.SCALE,
            value=mode,
        )
    return per_minute / ref * value


def azure_trace(
    paths: Sequence[str | Path],
    *,
    selection: Selection | None = None,
    sources: Mapping[str, Selection] | None = None,
    scale: str = "mean",
    scenario: Scenario | None = None,
) -> Trace:
    """The trace of the module docstring: ``selection`` (all columns follow it) or ``sources``
    (one selection per source of ``scenario``)."""
    mode, value = parse_scale(scale)
    if (selection is None) == (sources is None):
        raise InputError("give --function/--app, or --source SOURCE=ID, not both", field="FILE")
    if sources is not None:
        if scenario is None:
            raise InputError("--source needs --scenario", field=Param.SOURCE)
        unknown = [s for s in sources if s not in scenario.source_map]
        if unknown:
            raise InputError(
                f"unknown source (sources: {', '.join(scenario.source_map)})",
                field=Param.SOURCE,
                value=unknown[0],
            )
        missing = [s.name for s in scenario.sources if s.name not in sources]
        if missing:
            raise InputError(
                "every source needs a --source SOURCE=ID", field=Param.SOURCE, value=missing[0]
            )
    selections = dict(sources) if sources is not None else {SCALE_COLUMN: selection or Selection()}
    series = read_invocations(paths, selections)
    mult = {name: scale_series(x, mode, value) for name, x in series.items()}
    n = len(next(iter(mult.values())))
    times = np.arange(n) * 60.0
    label = f"<azure {', '.join(Path(p).name for p in paths)}>"
    if scenario is None:
        return Trace(
            times, np.round(mult[SCALE_COLUMN], 6)[:, None], (SCALE_COLUMN,), n * 60.0, label
        )
    names = [s.name for s in scenario.sources]
    cols = [mult[nm] if sources is not None else mult[SCALE_COLUMN] for nm in names]
    rates = np.column_stack(cols) * np.array([scenario.source_map[nm].rate for nm in names])
    return Trace(times, np.round(rates, 6), tuple(names), n * 60.0, label)
