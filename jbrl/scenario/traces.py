"""Load traces: request rates over time (ARCHITECTURE.md, "Traces").

A trace is a CSV file, piecewise constant::

    # duration_s: 3600
    time_s,ReadImage,ReadSpeech
    0,40,40
    600,55.5,55.5

``time_s`` then one column per source (req/s), or a single column ``scale`` that multiplies every
source's nominal rate. A row's rates hold from its ``time_s`` until the next row; the last row holds
to the end of the run (rows before the first ``time_s`` take the first row's rates). The optional
``# duration_s:`` comment records the trace's length; without it the length is the last ``time_s``.

Generators (:func:`generate_trace`) are seeded through :class:`numpy.random.SeedSequence`, never a
global random state: constant, step, diurnal, bursty (a Markov-modulated two-level process with
flash crowds) and random walk (mean-reverting, on the log of the rate).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jbrl import limits
from jbrl.documents import read_text
from jbrl.errors import InputError, Param
from jbrl.scenario.generators import (
    GENERATORS,
    MAX_ONOFF_PERIODS,
    GeneratorSpec,
    onoff_periods,
)
from jbrl.scenario.model import Scenario

SCALE_COLUMN = "scale"
TIME_COLUMN = "time_s"
TRACE_KINDS: tuple[str, ...] = tuple(GENERATORS)
TRACE_PARAMS: dict[str, set[str]] = {k: set(g.defaults) for k, g in GENERATORS.items()}
"""The parameter names of every trace kind."""


@dataclass(frozen=True, eq=False)
class Trace:
    """Piecewise-constant rates: ``values[i]`` holds on ``[times[i], times[i+1])``.

    ``columns`` are source names (values in req/s) or the single column ``scale`` (a multiplier of
    the nominal rates; resolve it with :meth:`for_scenario` before simulating).
    """

    times: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]
    duration: float
    file: str | None = None

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=float).reshape(-1)
        values = np.asarray(self.values, dtype=float).reshape(len(times), len(self.columns))
        times.setflags(write=False)
        values.setflags(write=False)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)
        self._check_limits()

    def _check_limits(self) -> None:
        """Rows, times and rates within the limits (:mod:`jbrl.limits`), every number finite
        (the duration may be infinite: a constant load for ever)."""
        lim = limits.current()
        limits.check("trace_rows", len(self.times), file=self.file, field="rows")
        if math.isnan(self.duration) or (math.isfinite(self.duration) and self.duration < 0):
            raise InputError(
                "must be a number >= 0", file=self.file, field="duration_s", value=self.duration
            )
        if math.isfinite(self.duration):
            limits.check("trace_s", self.duration, file=self.file, field="duration_s")
        bad = ~np.isfinite(self.times) | (self.times < 0) | (self.times > lim.trace_s)
        if bad.any():
            i = int(np.argmax(bad))
            limits.check("trace_s", float(self.times[i]), file=self.file, field=f"row {i} time_s")
            raise InputError(
                "must be a finite time >= 0",
                file=self.file,
                field=f"row {i} {TIME_COLUMN}",
                value=float(self.times[i]),
            )
        cap = math.inf if self.is_scale else lim.rate
        bad_v = ~np.isfinite(self.values) | (self.values < 0) | (self.values > cap)
        if bad_v.any():
            i, j = (int(k) for k in np.argwhere(bad_v)[0])
            v, where = float(self.values[i, j]), f"row {i} {self.columns[j]}"
            limits.check("rate", v, file=self.file, field=where, what="a request rate")
            raise InputError(
                "must be a finite rate >= 0 (req/s)", file=self.file, field=where, value=v
            )

    # ------------------------------------------------------------------ shape

    @property
    def is_scale(self) -> bool:
        return self.columns == (SCALE_COLUMN,)

    @property
    def sources(self) -> tuple[str, ...]:
        return () if self.is_scale else self.columns

    def __len__(self) -> int:
        return len(self.times)

    # ------------------------------------------------------------------ lookups

    def _row(self, t: float) -> int:
        return max(0, int(np.searchsorted(self.times, t, side="right")) - 1)

    def array_at(self, t: float) -> np.ndarray:
        """Values at time ``t`` in column order."""
        return self.values[self._row(t)]

    def rates_at(self, t: float) -> dict[str, float]:
        """Values at time ``t`` (req/s per source, or ``{"scale": x}``)."""
        return dict(zip(self.columns, self.array_at(t).tolist(), strict=True))

    def _window_rows(self, t0: float, t1: float) -> tuple[int, int]:
        """Rows active somewhere in ``[t0, t1)`` (``t1 > t0``), as a slice ``[a, b)``."""
        a = self._row(t0)
        b = max(a + 1, int(np.searchsorted(self.times, t1, side="left")))
        return a, b

    def max_array(self, t0: float, t1: float) -> np.ndarray:
        """Peak value per column over ``[t0, t1)`` (the value at ``t0`` if the window is empty)."""
        if t1 <= t0:
            return self.array_at(t0).copy()
        a, b = self._window_rows(t0, t1)
        return self.values[a:b].max(axis=0)

    def max_over(self, t0: float, t1: float) -> dict[str, float]:
        """Peak rate per column over the window ``[t0, t1)``."""
        return dict(zip(self.columns, self.max_array(t0, t1).tolist(), strict=True))

    def peak(self) -> dict[str, float]:
        """Peak per column over the whole trace."""
        return dict(zip(self.columns, self.values.max(axis=0).tolist(), strict=True))

    def segments_array(self, t0: float, t1: float) -> list[tuple[float, np.ndarray]]:
        """``[(seconds, values)]`` pieces of constant rate covering ``[t0, t1)``."""
        if t1 <= t0:
            return []
        a, b = self._window_rows(t0, t1)
        out: list[tuple[float, np.ndarray]] = []
        start = t0
        for i in range(a, b):
            end = t1 if i + 1 >= b else min(t1, float(self.times[i + 1]))
            if end > start:
                out.append((end - start, self.values[i]))
            start = end
        return out

    def segments(self, t0: float, t1: float) -> list[tuple[float, dict[str, float]]]:
        """``[(seconds, rates)]`` pieces of constant rate covering ``[t0, t1)``."""
        return [
            (d, dict(zip(self.columns, v.tolist(), strict=True)))
            for d, v in self.segments_array(t0, t1)
        ]

    def mean_array(self, t0: float, t1: float) -> np.ndarray:
        segs = self.segments_array(t0, t1)
        if not segs:
            return self.array_at(t0).copy()
        total = sum(d for d, _ in segs)
        return np.asarray(sum(d * v for d, v in segs) / total)

    def mean_over(self, t0: float, t1: float) -> dict[str, float]:
        """Time-averaged value per column over ``[t0, t1)``."""
        return dict(zip(self.columns, self.mean_array(t0, t1).tolist(), strict=True))

    # ------------------------------------------------------------------ scenario

    def for_scenario(self, scenario: Scenario) -> Trace:
        """A per-source trace for ``scenario``: ``scale`` multiplies the nominal rates; source
        columns must name the scenario's sources, and every source needs a column. A trace
        that already is per source (in the scenario's order) is returned as it is."""
        names = [s.name for s in scenario.sources]
        if self.columns == tuple(names):
            return self  # already per source, in the scenario's order
        if self.is_scale:
            nominal = np.array([scenario.source_map[n].rate for n in names])
            return Trace(self.times, self.values * nominal, tuple(names), self.duration, self.file)
        for col in self.columns:
            if col not in scenario.source_map:
                raise InputError(
                    f"unknown source (scenario {scenario.name!r} has sources: "
                    f"{', '.join(names)}; or use a single '{SCALE_COLUMN}' column)",
                    file=self.file,
                    field="header",
                    value=col,
                )
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise InputError(
                f"no column for source(s) {', '.join(missing)} of scenario {scenario.name!r}",
                file=self.file,
                field="header",
                value=",".join((TIME_COLUMN, *self.columns)),
            )
        idx = [self.columns.index(n) for n in names]
        return Trace(self.times, self.values[:, idx], tuple(names), self.duration, self.file)

    def with_duration(self, duration: float) -> Trace:
        return Trace(self.times, self.values, self.columns, float(duration), self.file)

    # ------------------------------------------------------------------ output

    def to_csv(self) -> str:
        buf = io.StringIO()
        buf.write(f"# duration_s: {_fmt(self.duration)}\n")
        buf.write(",".join((TIME_COLUMN, *self.columns)) + "\n")
        for t, row in zip(self.times.tolist(), self.values.tolist(), strict=True):
            buf.write(",".join([_fmt(t), *(_fmt(v) for v in row)]) + "\n")
        return buf.getvalue()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_csv(), "utf-8")

    def summary(self) -> dict[str, Any]:
        """Per column: min, mean (time-weighted over the duration), max; rows; duration."""
        mean = self.mean_array(0.0, self.duration) if self.duration > 0 else self.values[0]
        return {
            "file": self.file,
            "rows": len(self),
            "duration_s": self.duration,
            "columns": {
                c: {
                    "min": float(self.values[:, i].min()),
                    "mean": float(mean[i]),
                    "max": float(self.values[:, i].max()),
                }
                for i, c in enumerate(self.columns)
            },
        }


def _fmt(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".") if math.isfinite(x) else str(x)


# --------------------------------------------------------------------------- parsing


def parse_trace(text: str, file: str = "<trace>") -> Trace:
    """Parse the CSV form; every problem is an :class:`InputError` naming file, field and value.

    Checked in order: the ``# duration_s`` comment, the header, then each data row.
    """
    duration, rows = _split_lines(text, file)
    if duration is not None:
        limits.check("trace_s", duration, file=file, field="duration_s", what="the duration")
    limits.check("trace_rows", len(rows) - 1, file=file, field="rows", what="the number of rows")
    if not rows:
        raise InputError(f"empty trace: expected a header '{TIME_COLUMN},...'", file=file)
    _, header = rows[0]
    columns = _rate_columns(header, file)
    if len(rows) == 1:
        raise InputError("no data rows after the header", file=file)
    times, values = _data_rows(rows[1:], header, columns, file)
    end = duration if duration is not None else times[-1]
    return Trace(np.array(times), np.array(values), columns, float(end), file)


def _split_lines(text: str, file: str) -> tuple[float | None, list[tuple[int, list[str]]]]:
    """The ``# duration_s`` value (None without one) and the non-comment rows as
    (line number, cells)."""
    duration: float | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.startswith("duration_s"):
                value = body[len("duration_s") :].lstrip(" :=").strip()
                duration = _number(value, file, "duration_s", allow_negative=False)
            continue
        rows.append((lineno, [c.strip() for c in line.split(",")]))
    return duration, rows


def _rate_columns(header: list[str], file: str) -> tuple[str, ...]:
    """The rate columns of the header: after ``t_s``, named, unique, ``scale`` alone."""
    if header[0] != TIME_COLUMN:
        raise InputError(
            f"the first column must be '{TIME_COLUMN}'", file=file, field="header", value=header[0]
        )
    columns = tuple(header[1:])
    if not columns:
        raise InputError(
            f"no rate columns: give one column per source or a single '{SCALE_COLUMN}' column",
            file=file,
            field="header",
            value=",".join(header),
        )
    seen: set[str] = set()
    for c in columns:
        if not c:
            raise InputError("empty column name", file=file, field="header", value=",".join(header))
        if c in seen:
            raise InputError("duplicate column", file=file, field="header", value=c)
        seen.add(c)
    if SCALE_COLUMN in columns and len(columns) > 1:
        raise InputError(
            f"'{SCALE_COLUMN}' must be the only rate column (it multiplies every nominal rate)",
            file=file,
            field="header",
            value=",".join(header),
        )
    return columns


def _data_rows(
    rows: list[tuple[int, list[str]]], header: list[str], columns: tuple[str, ...], file: str
) -> tuple[list[float], list[list[float]]]:
    """Times (strictly increasing) and rates (non-negative) of the data rows."""
    times: list[float] = []
    values: list[list[float]] = []
    for lineno, cells in rows:
        if len(cells) != len(header):
            raise InputError(
                f"row has {len(cells)} fields but the header has {len(header)}",
                file=file,
                field=f"line {lineno}",
                value=",".join(cells),
            )
        t = _number(cells[0], file, f"line {lineno}.{TIME_COLUMN}", allow_negative=False)
        limits.check("trace_s", t, file=file, field=f"line {lineno}.{TIME_COLUMN}", what="a time")
        if times and t <= times[-1]:
            raise InputError(
                f"{TIME_COLUMN} must increase strictly (previous row: {times[-1]:g})",
                file=file,
                field=f"line {lineno}.{TIME_COLUMN}",
                value=cells[0],
            )
        times.append(t)
        values.append(
            [
                _number(v, file, f"line {lineno}.{c}", allow_negative=False)
                for c, v in zip(columns, cells[1:], strict=True)
            ]
        )
    return times, values


def _number(value: str, file: str, field: str, *, allow_negative: bool) -> float:
    try:
        x = float(value)
    except ValueError:
        raise InputError("not a number", file=file, field=field, value=value) from None
    if not math.isfinite(x):
        raise InputError(
            "must be a finite number (no NaN or inf)", file=file, field=field, value=value
        )
    if x < 0 and not allow_negative:
        raise InputError("must not be negative", file=file, field=field, value=value)
    return x


def load_trace(path: str | Path, scenario: Scenario | None = None) -> Trace:
    """Read a trace file; with ``scenario``, check its sources and resolve ``scale``."""
    p = Path(path)
    trace = parse_trace(read_text(p), str(p))
    return trace.for_scenario(scenario) if scenario is not None else trace


def constant_trace(
    rates: Mapping[str, float] | Scenario, duration: float, scale: float = 1.0
) -> Trace:
    """One row: ``rates`` (or a scenario's nominal rates) times ``scale`` for ``duration`` s."""
    r = rates.nominal_rates() if isinstance(rates, Scenario) else dict(rates)
    return Trace(
        np.array([0.0]),
        np.array([[v * scale for v in r.values()]]),
        tuple(r),
        float(duration),
    )


# --------------------------------------------------------------------------- generators


def generate_trace(
    kind: str,
    duration: float,
    seed: int = 0,
    *,
    sources: Mapping[str, float] | Scenario | None = None,
    step_s: float = 60.0,
    params: Mapping[str, float] | None = None,
    max_scale: float | None = None,
) -> Trace:
    """A seeded synthetic trace of ``kind`` (one of :data:`TRACE_KINDS`, defined in
    :mod:`jbrl.scenario.generators`).

    Every kind produces multipliers m(t) (1.0 = nominal) on a grid of ``step_s`` seconds. With
    ``sources`` (a mapping of nominal rates, or a scenario) the trace has one column per source
    (nominal * m(t)); most kinds give every source the same multiplier, so joins stay
    balanced, ``phased`` (and ``onoff`` / ``flash_crowd`` with ``independent=1``) one series
    per source. Without ``sources``, a single ``scale`` column (one series). ``params`` tunes
    the kind (:data:`TRACE_PARAMS` lists the names; README "Load generators" the meanings).

    ``max_scale`` caps the multiplier (``jbrl trace generate --scenario`` passes the scenario's
    sustainable scale, ``jbrl plan --max-rate``); the same seed gives the same trace below it.
    """
    spec = _check_request(kind, duration, step_s, params)
    p = dict(params or {})
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    n = max(1, math.ceil(duration / step_s))
    times = np.arange(n) * step_s
    nominal = (
        None
        if sources is None
        else (sources.nominal_rates() if isinstance(sources, Scenario) else dict(sources))
    )
    k = 1 if nominal is None else len(nominal)
    mult = np.asarray(spec.fn(times, duration, step_s, rng, p, k), dtype=float)
    if max_scale is not None:
        mult = np.minimum(mult, max_scale)
    mult = np.round(np.maximum(mult, 0.0), 6).reshape(n, -1)
    if nominal is None:
        return Trace(times, mult[:, :1], (SCALE_COLUMN,), float(duration))
    base = np.array(list(nominal.values()), dtype=float)
    return Trace(times, np.round(mult * base, 6), tuple(nominal), float(duration))


def _check_request(
    kind: str, duration: float, step_s: float, params: Mapping[str, float] | None
) -> GeneratorSpec:
    """The kind's spec, after checking kind, duration, step and parameters (InputError)."""
    if kind not in GENERATORS:
        raise InputError(
            f"unknown trace kind (kinds: {', '.join(TRACE_KINDS)})",
            field=Param.TRACE_KIND,
            value=kind,
        )
    if not (math.isfinite(duration) and duration > 0):
        raise InputError(
            "must be a positive number of seconds", field=Param.DURATION, value=duration
        )
    if not (math.isfinite(step_s) and step_s > 0):
        raise InputError("must be a positive number of seconds", field=Param.STEP, value=step_s)
    limits.check("trace_s", duration, field=Param.DURATION, what="the duration")
    n = max(1, math.ceil(duration / step_s))
    limits.check("trace_rows", n, field=Param.STEP, what=f"duration / step ({n} rows)")
    spec = GENERATORS[kind]
    p = dict(params or {})
    for key, value in p.items():
        if not math.isfinite(float(value)):
            raise InputError("must be a finite number", field=Param.TRACE_PARAM, value=key)
    unknown = set(p) - set(spec.defaults)
    if unknown:
        raise InputError(
            f"unknown parameter for kind {kind!r} (parameters: {', '.join(sorted(spec.defaults))})",
            field=Param.TRACE_PARAM,
            value=sorted(unknown)[0],
        )
    bad = spec.check(p)
    if bad is not None:
        raise InputError(f"out of range for kind {kind!r}", field=Param.TRACE_PARAM, value=bad)
    if kind == "onoff" and onoff_periods(duration, p) > MAX_ONOFF_PERIODS:
        raise InputError(
            f"too many on/off periods to draw (about {onoff_periods(duration, p):.3g}, limit "
            f"{MAX_ONOFF_PERIODS:.3g}): fewer clients or longer on/off means",
            field=Param.TRACE_PARAM,
            value=f"clients={p.get('clients', 200):g}",
        )
    return spec


def rates_vector(scenario: Scenario, rates: Mapping[str, float] | Sequence[float]) -> np.ndarray:
    """Source rates in the scenario's source order; unknown names are an InputError."""
    if isinstance(rates, Mapping):
        for k in rates:
            if k not in scenario.source_map:
                raise InputError(
                    f"unknown source (sources: {', '.join(s.name for s in scenario.sources)})",
                    field="rates",
                    value=k,
                )
        arr = np.array([float(rates.get(s.name, 0.0)) for s in scenario.sources])
    else:
        arr = np.asarray(rates, dtype=float).reshape(-1)
        if len(arr) != len(scenario.sources):
            raise InputError(
                f"expected {len(scenario.sources)} rates (one per source)", field="rates", value=arr
            )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError("rates must be finite and non-negative (req/s)", field="rates", value=arr)
    return arr
