"""Calibration of the SLO-aware MILP: loosen the per-stage model while the end-to-end
predictor confirms the target (solve -> predict -> loosen or tighten -> re-solve).

The per-stage model (:mod:`jbrl.planning.milp.slo`) is safe at looseness ``theta = 1`` (the
union bound) and pads: a looser stage tail admits more load per worker and so cheaper plans.
:func:`search_looseness` walks a ladder of ``theta`` values for the loosest one whose optimal
plan the predictor still confirms, in few solves:

1. the loosest rung first: its optimum is a lower bound on every rung's cost (looser rows, same
   objective), so when it is confirmed nothing can beat it;
2. ``theta = 1``: when it costs the same as the loosest rung, it is as cheap and it is safe;
3. otherwise bisection between the two (the rung's objective is monotone in ``theta``; the
   prediction nearly so), keeping the loosest confirmed rung;
4. when ``theta = 1`` is not confirmed (the predictor, which knows each worker's actual rate and
   the flows' actual links, can be stricter than the per-stage bound), tighter rungs;
5. when ``theta = 1`` has no plan at all (near the largest load: the union bound is too strict
   to serve it), the rungs between it and the loosest, loosest first;
6. when the loosest rung is confirmed, the **floor** below the ladder: capacity-only plans (no
   per-stage latency rows at all, ``theta = inf``) at a utilisation cap ``u`` of
   :data:`FLOOR_UTILS`. Even the loosest per-stage model can pad at light load (its plan
   predicted at 100 % where a cheaper plan still meets the target). ``u = 1`` is a lower bound
   on every rung's cost; when the predictor rejects it, the caps are tried downwards (cost rises
   as ``u`` falls) until one is confirmed or its plan is no longer cheaper than the loosest
   rung's. A scan, not bisection: the prediction is not monotone in ``u`` (a tighter cap can move
   work to a worker on a slower link, or onto fewer, busier workers of another type).

Each solve is exact for its rung's model, so the result is the optimum of the loosest rung
confirmed; rungs in between are not searched (the ladder is geometric, factor 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

LADDER: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Values of ``theta`` tried, tightest first (``theta = 1`` is the union bound)."""
FLOOR = math.inf
"""The ``theta`` of the floor (step 6 of the module docstring): no per-stage latency model."""
FLOOR_UTILS: tuple[float, ...] = tuple(round(1.0 - 0.05 * k, 2) for k in range(11))
"""Utilisation caps of the floor, loosest first (1.0 ... 0.5, step 0.05)."""

S = TypeVar("S")


@dataclass
class Attempt(Generic[S]):
    """One rung: its solution (None: infeasible), objective, and the prediction's verdict."""

    theta: float
    solution: S | None
    objective: float
    confirmed: bool
    predicted: float | None = None
    util: float | None = None
    """The floor's utilisation cap (None on the ladder's rungs)."""


@dataclass
class Search(Generic[S]):
    """The outcome: the chosen attempt (None: no rung confirmed) and every attempt made."""

    chosen: Attempt[S] | None
    attempts: list[Attempt[S]] = field(default_factory=list)

    def best_rejected(self) -> Attempt[S] | None:
        """The unconfirmed attempt with the best prediction (for an infeasibility reason)."""
        tried = [a for a in self.attempts if a.solution is not None]
        return max(tried, key=lambda a: -1.0 if a.predicted is None else a.predicted, default=None)


def search_looseness(
    attempt: Callable[[float], Attempt[S]],
    ladder: tuple[float, ...] = LADDER,
    floor: Callable[[float], Attempt[S]] | None = None,
) -> Search[S]:
    """The loosest confirmed rung of ``ladder`` (module docstring). ``attempt(theta)`` solves
    and predicts one rung (its objective: a cost, or minus a rate); ``floor(u)``, where given,
    the capacity-only optimum at utilisation cap ``u``, tried when the loosest rung is
    confirmed."""
    out: Search[S] = Search(None)

    def run(i: int) -> Attempt[S]:
        a = attempt(ladder[i])
        out.attempts.append(a)
        return a

    def same(a: Attempt[S], b: Attempt[S]) -> bool:
        return abs(a.objective - b.objective) <= 1e-9 * max(1.0, abs(b.objective))

    top = len(ladder) - 1
    one = ladder.index(1.0)
    loosest = run(top)
    if loosest.solution is None or loosest.confirmed:
        out.chosen = loosest if loosest.confirmed else None
        if floor is not None and loosest.confirmed:
            out.chosen = search_floor(floor, loosest, out.attempts)
        return out
    safe = run(one)
    if safe.solution is not None and safe.confirmed:
        lo, hi, best = one, top, safe
        while hi - lo > 1 and not same(best, loosest):
            mid = (lo + hi) // 2
            a = run(mid)
            if a.solution is not None and a.confirmed:
                lo, best = mid, a
            else:
                hi = mid
        out.chosen = best
        return out
    between = range(one - 1, -1, -1) if safe.solution is not None else range(top - 1, one, -1)
    for i in between:
        a = run(i)
        if a.solution is None:
            break  # (tighter rungs have no plan either)
        if a.confirmed:
            out.chosen = a
            return out
    return out


def search_floor(
    floor: Callable[[float], Attempt[S]],
    loosest: Attempt[S],
    attempts: list[Attempt[S]],
    utils: tuple[float, ...] = FLOOR_UTILS,
) -> Attempt[S]:
    """The floor's largest confirmed utilisation cap whose plan is cheaper than the confirmed
    ``loosest`` rung's (step 6 of the module docstring: a downward scan that stops at the first
    cap confirmed or not cheaper), else ``loosest``. Every attempt made is appended to
    ``attempts``."""

    def run(u: float) -> Attempt[S]:
        a = floor(u)
        attempts.append(a)
        return a

    def cheaper(a: Attempt[S]) -> bool:
        return a.solution is not None and a.objective < loosest.objective - 1e-9 * max(
            1.0, abs(loosest.objective)
        )

    for u in utils:
        a = run(u)
        if not cheaper(a):
            return loosest  # (tighter caps cost at least as much)
        if a.confirmed:
            return a
    return loosest
