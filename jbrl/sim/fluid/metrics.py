"""What the fluid simulator reports per interval: sums over its steps, and the interval's
:class:`FluidIntervalMetrics`, whose latency percentiles and per-worker figures are computed when
first read."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, overload

import numpy as np

from jbrl.planning.latency import cdf_of_sum, percentiles_with_tail
from jbrl.sim.base import IntervalMetrics, empty_drops

LatencyPart = tuple[float, np.ndarray, np.ndarray | None]
"""A terminal operator's share of completions and its latency CDF on the grid: ``(tau, cdf,
None)``, or ``(tau, inputs, sojourn)`` when the CDF is that of the sum of the two (a stage after
a join; the convolution waits until percentiles are read)."""

Lazy = Callable[[], dict[str, float]]
"""A figure computed when first read."""

_NO_DROPS = empty_drops()  # copied: a dict copy is cheaper than building one
_NO_LATENCY = {"p50": math.nan, "p95": math.nan, "p99": math.nan, "mean": math.nan}


class IntervalSums:
    """Sums over the steps of one interval (the step adds to them)."""

    __slots__ = (
        "arrivals",
        "completed",
        "comm",
        "drops",
        "dep_w",
        "busy_w",
        "wait_w",
        "rates",
        "parts",
        "weight",
        "within",
        "e_tail",
        "mean_sum",
        "cap",
    )

    def __init__(self, n_workers: int, n_sources: int, cap: float) -> None:
        self.cap = cap  # no latency beyond: every queue drops what waited the timeout
        self.arrivals = 0.0
        self.completed = 0.0
        self.comm = 0.0
        self.drops = _NO_DROPS.copy()
        self.dep_w = [0.0] * n_workers  # tasks served per worker
        self.busy_w = [0.0] * n_workers  # busy seconds per worker
        self.wait_w = [0.0] * n_workers  # summed waits of the tasks served per worker
        self.rates = [0.0] * n_sources  # requests per source (rate x time)
        self.parts: list[tuple[float, list[LatencyPart]]] = []  # (completed, CDF) per step
        self.weight = 0.0  # requests completed in steps with latency parts
        self.within = 0.0  # of those, within the bound
        self.e_tail = 0.0  # the slowest exponential stage of a loaded worker
        self.mean_sum = 0.0  # summed latency (s) of the completed requests

    def total_drops(self) -> float:
        return sum(self.drops.values())

    def latency(self, grid: np.ndarray) -> tuple[Lazy, float]:
        """(a function computing the latency figures, requests completed within the bound)."""
        if self.weight <= 0:
            return _NO_LATENCY.copy, 0.0
        mean = self.mean_sum / self.weight
        figures = partial(
            latency_figures, grid, self.parts, self.weight, self.e_tail, mean, self.cap
        )
        return figures, self.within


def worker_utilization(
    names: list[tuple[int, str]], busy: list[float], inv_seconds: float
) -> dict[str, float]:
    """Busy share of each named worker (index, name) over an interval."""
    return {n: busy[w] * inv_seconds for w, n in names}


def worker_wait_ms(
    names: list[tuple[int, str]], waits: list[float], served: list[float]
) -> dict[str, float]:
    """Mean wait (ms) of the tasks each named worker served (NaN: none)."""
    return {n: (waits[w] / served[w] * 1000.0 if served[w] > 0 else math.nan) for w, n in names}


def latency_figures(
    grid: np.ndarray,
    parts: list[tuple[float, list[LatencyPart]]],
    weight: float,
    e_tail: float,
    mean_s: float,
    cap: float,
) -> dict[str, float]:
    """p50/p95/p99/mean (ms) of an interval: the completion-weighted mixture of its steps'
    latency CDFs on the grid, with the tail beyond it (:func:`percentiles_with_tail`)."""
    cdf: np.ndarray | None = None
    for w, terms in parts:
        for tv, a, b in terms:
            part = a if b is None else cdf_of_sum(a, b)
            if cdf is None:
                cdf = (w / weight * tv) * part
            else:
                cdf += (w / weight * tv) * part
    if cdf is None:  # (not reached: a step that completes requests has a terminal part)
        cdf = np.zeros(len(grid))
    return percentiles_with_tail(grid, cdf, e_tail, mean_s, cap)


class _LazyField:
    """A field of :class:`FluidIntervalMetrics` given as a function and computed on first read.

    A non-data descriptor (no ``__set__``): the computed value is stored in the instance, which
    then shadows the descriptor, so later reads are plain attribute reads; so does an assignment.
    """

    def __init__(self, index: int) -> None:
        self.index = index  # position in FluidIntervalMetrics._lazy

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _LazyField: ...
    @overload
    def __get__(self, obj: FluidIntervalMetrics, owner: type | None = None) -> dict[str, float]: ...
    def __get__(
        self, obj: FluidIntervalMetrics | None, owner: type | None = None
    ) -> dict[str, float] | _LazyField:
        if obj is None:
            return self
        value = obj._lazy[self.index]()
        obj.__dict__[self.name] = value
        return value


class FluidIntervalMetrics(IntervalMetrics):
    """:class:`IntervalMetrics` whose ``latency_ms``, ``utilization`` and ``wait_ms`` are given as
    functions, called on first read (plain dicts then): a training loop that reads neither pays
    for neither."""

    latency_ms = _LazyField(0)
    utilization = _LazyField(1)
    wait_ms = _LazyField(2)

    def __init__(
        self,
        t_start: float,
        duration: float,
        arrivals: float,
        completed: float,
        within_slo: float,
        dropped: dict[str, float],
        in_flight_start: float,
        in_flight: float,
        latency_ms: Lazy,
        utilization: Lazy,
        wait_ms: Lazy,
        operator_backlog: dict[str, float],
        operator_utilization: dict[str, float],
        compute_dollars: float,
        communication_dollars: float,
        rates: dict[str, float],
        reconfigured: list[str],
    ) -> None:
        # the dataclass fields, as IntervalMetrics.__init__ sets them, but the lazy three
        self.t_start = t_start
        self.duration = duration
        self.arrivals = arrivals
        self.completed = completed
        self.within_slo = within_slo
        self.dropped = dropped
        self.in_flight_start = in_flight_start
        self.in_flight = in_flight
        self._lazy = (latency_ms, utilization, wait_ms)
        self.operator_backlog = operator_backlog
        self.operator_utilization = operator_utilization
        self.compute_dollars = compute_dollars
        self.communication_dollars = communication_dollars
        self.rates = rates
        self.reconfigured = reconfigured

    def __getstate__(self) -> dict[str, Any]:
        # (the functions do not pickle: compute them)
        out = {k: v for k, v in self.__dict__.items() if k != "_lazy"}
        out["latency_ms"] = self.latency_ms
        out["utilization"] = self.utilization
        out["wait_ms"] = self.wait_ms
        return out
