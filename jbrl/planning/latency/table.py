"""A batching worker's steady state over a ladder of arrival rates (:class:`BatchTable`), for
models that move through rates (the fluid simulator): the sojourns of
:func:`~jbrl.planning.latency.batching.batch_sojourn`, with the groups its batching senders
bring at each rate (:func:`~jbrl.planning.latency.feeders.feeder_groups`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from jbrl.planning.latency.batching import batch_sojourn
from jbrl.planning.latency.feeders import Feeder, feeder_groups
from jbrl.planning.latency.service import BatchService
from jbrl.planning.latency.sojourn import Sojourn


@dataclass(frozen=True, eq=False)
class BatchTable:
    """A batching worker's steady state at a ladder of arrival rates (0 up to 0.995 of its
    capacity ``b / E[S_b]``, denser near it), for models that move through rates (the fluid
    simulator): per rate the mean number in system ``L = rate * E[T]`` (Little), the busy
    fraction, the mean sojourn and wait, and the :class:`Sojourn` itself."""

    capacity: float
    rates: np.ndarray
    number: np.ndarray
    busy: np.ndarray
    mean_s: np.ndarray
    wait_s: np.ndarray
    sojourns: tuple[Sojourn, ...]

    def at_number(self, x: float) -> tuple[int, float]:
        """Where a mean number in system ``x`` lies: ``(i, f)`` with ``x`` between entries
        ``i`` and ``i + 1`` at fraction ``f`` (``i`` is the last entry beyond the table)."""
        num = self.number
        i = int(np.searchsorted(num, x, side="right")) - 1
        if i >= len(num) - 1:
            return len(num) - 1, 0.0
        i = max(i, 0)
        span = num[i + 1] - num[i]
        return i, float((x - num[i]) / span) if span > 0 else 0.0


def _scv_groups(
    inflow: tuple[tuple[float, ...] | None, float],
) -> tuple[float, tuple[float, ...] | None]:
    return inflow[1], inflow[0]


TABLE_POINTS = 20
"""Rates in a :class:`BatchTable` besides 0."""


@lru_cache(maxsize=256)
def batch_table(
    bs: BatchService, b: int, tau: float, feeders: tuple[Feeder, ...] = ()
) -> BatchTable:
    """The :class:`BatchTable` of a worker with fits ``bs``, batch size ``b`` and fill timeout
    ``tau``, fed by the batching senders ``feeders`` (their groups at each rate:
    :func:`~jbrl.planning.latency.feeders.feeder_groups`) (cached: it costs
    :data:`TABLE_POINTS` sojourns, about a second)."""
    cap = bs.max_throughput(b)
    frac = 0.995 * (1.0 - (1.0 - np.arange(TABLE_POINTS + 1) / TABLE_POINTS) ** 2)
    frac[0] = 1e-6
    rates = cap * frac
    sojourns = tuple(
        batch_sojourn(bs, float(r), b, tau, *_scv_groups(feeder_groups(feeders, float(r), tau)))
        for r in rates
    )
    mean = np.array([s.mean_s for s in sojourns])
    own = np.array([bs.fit(max(1, min(b, round(s.mean_batch)))).mean_s for s in sojourns])
    return BatchTable(
        capacity=cap,
        rates=rates,
        number=rates * mean,
        busy=np.array([s.utilization for s in sojourns]),
        mean_s=mean,
        wait_s=np.maximum(mean - own, 0.0),
        sojourns=sojourns,
    )
