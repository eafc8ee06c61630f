"""Groups of interchangeable workers, and link costs between groups.

The one rule for interchangeable workers: the planners (the MILP and the JellyBean heuristic
aggregate a group into an integer count) and the RL environment's action codec
(:attr:`jbrl.planning.tables.ServingSpec.groups`: a plan change keeps a group's loaded workers
where they are) both use :func:`worker_groups`.

Two workers are interchangeable when they have the same type, tier and price, the
same capacity for every (operator, variant), and the same explicitly listed links (the same
other end, direction, cost, bandwidth and latency). Then every link from or to one of them costs
and carries what it does for the other, so a planner may decide *how many* workers of a group
serve an operator instead of *which* ones. Large synthetic infrastructures (1000 workers of a
handful of types) collapse to a few groups; JellyBean's VQA inputs (one type per worker) do not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jbrl.scenario.model import Scenario

KB_PER_MB = 1024.0


@dataclass(frozen=True)
class WorkerGroup:
    """Interchangeable workers; ``members`` are in scenario order."""

    index: int
    members: tuple[str, ...]
    tier: int
    price: float

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def rep(self) -> str:
        return self.members[0]

    @property
    def peer(self) -> str:
        """A second member (for the link between two members), or the representative."""
        return self.members[1] if len(self.members) > 1 else self.members[0]


def worker_groups(
    scenario: Scenario, workers: Sequence[str] | None = None, aggregate: bool = True
) -> list[WorkerGroup]:
    """Partition ``workers`` (default: all) into groups; singletons when ``aggregate`` is off."""
    names = [w.name for w in scenario.workers] if workers is None else list(workers)
    wmap = scenario.worker_map
    if not aggregate:
        return [
            WorkerGroup(i, (n,), scenario.worker_tier[n], wmap[n].price)
            for i, n in enumerate(names)
        ]
    link_sig: dict[str, list[tuple[object, ...]]] = {}
    for lk in scenario.links:
        row = (lk.cost_per_gb, lk.bandwidth_mb_s, lk.latency_ms)
        if lk.source in wmap:
            link_sig.setdefault(lk.source, []).append(("out", lk.target, *row))
        if lk.target in wmap:
            link_sig.setdefault(lk.target, []).append(("in", lk.source, *row))
    pairs = [(o.name, v) for o in scenario.operators for v in o.variants]
    by_key: dict[tuple[object, ...], list[str]] = {}
    for n in names:
        w = wmap[n]
        caps = tuple(round(scenario.capacity(o, v, n), 9) for o, v in pairs)
        key = (
            w.type,
            scenario.worker_tier[n],
            w.price,
            caps,
            tuple(sorted(link_sig.get(n, []), key=repr)),
        )
        by_key.setdefault(key, []).append(n)
    return [
        WorkerGroup(i, tuple(members), scenario.worker_tier[members[0]], wmap[members[0]].price)
        for i, members in enumerate(by_key.values())
    ]


@dataclass(frozen=True)
class GroupLinks:
    """Per unit of traffic (1 KB/s): $/hour between groups and from sources; inf = forbidden.

    ``cost[g, h]``: from a member of g to a (different) member of h. ``bw_kb_s[g, h]``: that
    link's bandwidth in KB/s. ``source_cost[s][h]`` and ``source_bw_kb_s[s][h]`` likewise.
    """

    cost: np.ndarray
    bw_kb_s: np.ndarray
    source_cost: dict[str, np.ndarray]
    source_bw_kb_s: dict[str, np.ndarray]
    allowed: np.ndarray  # np.isfinite(cost)


def group_links(scenario: Scenario, groups: Sequence[WorkerGroup]) -> GroupLinks:
    n = len(groups)
    cost = np.zeros((n, n))
    bw = np.zeros((n, n))
    for g in groups:
        for h in groups:
            receiver = h.rep if g.index != h.index else g.peer
            cost[g.index, h.index], bw[g.index, h.index] = _unit(scenario, g.rep, receiver)
    scost: dict[str, np.ndarray] = {}
    sbw: dict[str, np.ndarray] = {}
    for s in scenario.sources:
        scost[s.name] = np.zeros(n)
        sbw[s.name] = np.zeros(n)
        for h in groups:
            scost[s.name][h.index], sbw[s.name][h.index] = _unit(scenario, s.name, h.rep)
    return GroupLinks(cost, bw, scost, sbw, np.isfinite(cost))


def _unit(scenario: Scenario, sender: str, receiver: str) -> tuple[float, float]:
    info = scenario.link(sender, receiver)
    c = scenario.comm_cost_per_kb_s(sender, receiver) if info.allowed else math.inf
    return c, info.bandwidth_mb_s * KB_PER_MB
