"""The group sizes a worker's arrivals come in when batching workers feed it (one home for the
planner's :func:`~jbrl.planning.latency.paths.predict_plan` and the fluid simulator).

A sender serving batches of ``n`` (its batch-size law from its own chain,
:func:`~jbrl.planning.latency.batching.batch_size_law` at its rate) routes each output task to
this worker with probability ``p``: a batch brings ``Binomial(n, p)`` tasks at once (0: none).
Per sender, the groups that reach the worker have the law of that binomial given at least one;
the worker's groups mix the senders' by their group rates (a sender's tasks per second here
divided by its mean group), single tasks (sources, senders with batch 1) counting as groups of
one. The result is the ``groups`` and ``arrival_scv`` arguments of
:func:`~jbrl.planning.latency.sojourn.worker_sojourn`: a busy sender's batches leave about one
service apart, so the groups come more regularly than a Poisson stream; the batched sojourn
corrects its wait for that (Kingman's factor, :func:`~jbrl.planning.latency.batching.
batch_sojourn`).

What is approximated: only the worker's primary input is followed (at a join the other inputs,
arriving one by one, break groups up in the DES; their smoothing is left out, which errs on the
slow side); a sender's own arrivals are taken as Poisson when its batch-size law is computed;
edges whose ratio is not 1 count as single tasks; the group epochs' regularity enters through
their SCV only (QNA's departure, thinning and superposition formulas).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from jbrl.planning.latency.batching import batch_size_law
from jbrl.planning.latency.service import BatchService


@dataclass(frozen=True)
class Feeder:
    """A batching sender on a worker's primary input: ``share`` of the worker's tasks come from
    it, it routes a fraction ``p`` of its tasks to the worker, and it serves batches of at most
    ``batch`` with fits ``service`` (its rate is the worker's times ``share / p``)."""

    share: float
    p: float
    service: BatchService
    batch: int


def feeder_groups(
    feeders: Iterable[Feeder], rate: float, batch_timeout_s: float
) -> tuple[tuple[float, ...] | None, float]:
    """The arrivals at a worker receiving ``rate`` tasks/s, ``feeders`` being its batching
    senders (the rest of its tasks single): the group-size law (``g[k]`` = P(a group holds
    ``k`` tasks); None when every group is one task) and the SCV of the group epochs (QNA: a
    sender's batch departures ``rho^2 cs^2 + 1 - rho^2``, thinned to the batches that send
    here, superposed with the single tasks' Poisson stream by their shares of the tasks: the
    wait is driven by the work that comes, and a stream of large groups brings most of it)."""
    # (groups/s per unit rate, law, epoch SCV, share of the tasks)
    parts: list[tuple[float, np.ndarray, float, float]] = []
    single = 1.0
    for f in feeders:
        if f.batch <= 1 or f.share <= 0 or f.p <= 0:
            continue
        single -= f.share
        sender = rate * f.share / min(f.p, 1.0)
        law, busy = batch_size_law(f.service, sender, f.batch, batch_timeout_s)
        k = np.arange(f.batch + 1)
        got = law @ _binomial(f.batch, min(f.p, 1.0))  # P(k reach the worker)
        got[0] = 0.0
        if got.sum() <= 0:
            continue
        q = float(got.sum())  # P(a batch sends here)
        got /= q
        rho = min(busy, 1.0)
        cd2 = rho * rho * f.service.fit(f.batch).scv + 1.0 - rho * rho
        parts.append((f.share / float(got @ k), got, q * cd2 + 1.0 - q, f.share))
    if not parts:
        return None, 1.0
    size = max(len(g) for _, g, _, _ in parts)
    out = np.zeros(size)
    out[1] += max(single, 0.0)
    scv = max(single, 0.0)
    for rate_g, g, c2, share in parts:
        out[: len(g)] += rate_g * g
        scv += share * c2
    scv /= max(single, 0.0) + sum(share for *_, share in parts)
    out /= out.sum()
    if out[1] >= 1.0 - 1e-12:
        return None, 1.0
    return tuple(float(x) for x in out), float(scv)


def _binomial(nmax: int, p: float) -> np.ndarray:
    """``out[n, k]`` = P(Binomial(n, p) = k), n, k = 0..nmax (scipy.stats costs a second to
    import, on the planner's start-up)."""
    out = np.zeros((nmax + 1, nmax + 1))
    for n in range(nmax + 1):
        for k in range(n + 1):
            out[n, k] = math.comb(n, k) * p**k * (1.0 - p) ** (n - k)
    return out
