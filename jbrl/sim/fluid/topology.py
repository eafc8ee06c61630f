"""What the fluid simulator precomputes once per scenario: the latency grid, the workflow's
structure (who joins whom), and per source mix the tasks per request and terminal fractions."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jbrl.scenario.model import Scenario
from jbrl.sim.base import reference_latency_s


class LatencyGrid:
    """Latency grid: ``n`` points on ``[0, t_max]`` with the SLO bound at a grid point.

    ``t_max`` covers three times the bound, or 1.5 times the longest chain of (1.5 x p90)
    services, so that very slow workflows stay on the grid. ``cap``: no request's latency
    exceeds it (every queue drops what waited the timeout).
    """

    def __init__(self, scenario: Scenario, n: int, timeout_s: float) -> None:
        bound = reference_latency_s(scenario)
        chain, depth = _chain_and_depth(scenario)
        self.cap = depth * timeout_s + chain
        span = max(3.0 * bound, 1.5 * chain)
        self.j_bound = max(1, round((n - 1) * bound / span))
        """index of the SLO bound on the grid"""
        self.h = bound / self.j_bound
        self.points = np.arange(n) * self.h
        self.t_max = float(self.points[-1])
        # P(A + B <= bound) on the grid, with A's cell masses at cell centres:
        # sum_i (A[i] - A[i-1]) * (B[jb-i] + B[jb-i+1]) / 2 = A . (K B) for a fixed matrix K
        jb = self.j_bound
        half = np.zeros((n + 1, n))  # half[i] . B = (B[jb-i] + B[jb+1-i]) / 2, 0 past jb
        for i in range(jb + 1):
            half[i, jb - i] += 0.5
            half[i, jb + 1 - i] += 0.5
        self.k_rows = jb + 2  # rows past jb + 1 are zero, and so are columns (B past jb + 1)
        self.k_bound = np.ascontiguousarray((half[:n] - half[1:])[: self.k_rows, : self.k_rows])
        # the exponent of a worker's waiting-time term at grid time t, (s + D - t) / E, as one
        # matrix product (n_dep, 2) @ (2, N): rows ((s + D) / E, 1 / E) times rows (1, -t)
        self.jmat = np.ones((2, n))
        self.jmat[1] = -self.points


def _chain_and_depth(scenario: Scenario) -> tuple[float, int]:
    """Longest chain of (1.5 x p90 + 50 ms) services, and the longest path in operators."""
    slowest: dict[str, float] = {}
    for op in scenario.topo_order:
        worst = (
            max((p.p90_ms for p in scenario.profiles if p.operator == op), default=0.0)
            / 1000.0
            * 1.5
        )
        prev = max((slowest.get(e.source, 0.0) for e in scenario.in_edges[op]), default=0.0)
        slowest[op] = prev + worst + 0.05
    chain = max(slowest.values(), default=0.0)
    depth: dict[str, int] = {}
    for op in scenario.topo_order:
        depth[op] = 1 + max((depth.get(e.source, 0) for e in scenario.in_edges[op]), default=0)
    return chain, max(depth.values(), default=1)


class SourceMix(NamedTuple):
    """For source emission probabilities ``p`` (a source emits for a fraction of requests)."""

    tasks_per_request: list[float]
    """per operator, v-tasks per request (``c``)"""
    terminal: list[float]
    """per operator, the fraction of requests that end there (``tau``)"""
    joinable: list[list[float]]
    """per operator and input edge, the fraction of the input that finds its partners"""
    done: list[tuple[int, float, float]]
    """terminal operators ``(v, tau, c)`` with ``tau, c > 0`` (the step counts completions)"""
    terminal_pos: list[tuple[int, float]]
    """terminal operators ``(v, tau)`` with ``tau > 0`` (the latency mixture)"""


class Topology:
    """The scenario's workflow as the fluid step reads it (operators in topological order)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        order = scenario.topo_order
        pos = {op: i for i, op in enumerate(order)}
        self.n_ops = len(order)
        self.n_sources = len(scenario.sources)
        self.source_names = [src.name for src in scenario.sources]
        self.all_sources = (1.0,) * self.n_sources
        """the mix key when every source emits for every request"""
        anc = _ancestor_sets(scenario)
        self.kill: list[list[list[int]]] = []
        """per join input: operators whose drops mean the input never finds its partner"""
        for op in order:
            per_edge = []
            for e in scenario.in_edges[op]:
                own = anc[e.source] | {e.source} if e.source in anc else set()
                per_edge.append(sorted(pos[z] for z in anc[op] - own))
            self.kill.append(per_edge)
        self.op_parents = [
            (v, [pos[e.source] for e in scenario.in_edges[op] if e.source in pos])
            for v, op in enumerate(order)
            if any(e.source in pos for e in scenario.in_edges[op])
        ]
        """operators with operator inputs, and those inputs"""
        self.needs_full = {pos[op] for op in order if scenario.out_edges[op]}
        """operators whose full latency CDF the step needs (they feed another)"""
        self._mixes: dict[tuple[float, ...], SourceMix] = {}

    def mix(self, p: tuple[float, ...]) -> SourceMix:
        """The :class:`SourceMix` for source emission probabilities ``p`` (cached)."""
        st = self._mixes.get(p)
        if st is not None:
            return st
        s = self.scenario
        rates = {src.name: p[i] for i, src in enumerate(s.sources)}
        d = s.demand(rates)
        pres: dict[str, float] = dict(rates)
        for op in s.topo_order:
            vals = []
            for e in s.in_edges[op]:
                pu = pres[e.source]
                cu = d[e.source]
                vals.append(pu * min(1.0, e.ratio * cu / pu) if pu > 0 else 0.0)
            pres[op] = min(vals)
        tau = []
        for op in s.topo_order:
            kids = [e.target for e in s.out_edges[op]]
            nxt = max((pres[k] for k in kids), default=0.0)
            tau.append(max(0.0, pres[op] - nxt))
        tot = sum(tau)
        tau = [t / tot for t in tau] if tot > 0 else tau
        c = [d[op] for op in s.topo_order]
        joinable = []
        for op in s.topo_order:
            fr = []
            for e in s.in_edges[op]:
                denom = d[e.source] * e.ratio
                fr.append(min(1.0, d[op] / denom) if denom > 0 else 0.0)
            joinable.append(fr)
        done = [
            (v, tv, cv) for v, (tv, cv) in enumerate(zip(tau, c, strict=True)) if tv > 0 and cv > 0
        ]
        tau_pos = [(v, tv) for v, tv in enumerate(tau) if tv > 0]
        st = SourceMix(c, tau, joinable, done, tau_pos)
        if len(self._mixes) < 4096:
            self._mixes[p] = st
        return st


def _ancestor_sets(scenario: Scenario) -> dict[str, set[str]]:
    """Per operator, the operators upstream of it."""
    anc: dict[str, set[str]] = {}
    for op in scenario.topo_order:
        s: set[str] = set()
        for e in scenario.in_edges[op]:
            if e.source in anc:
                s |= anc[e.source] | {e.source}
        anc[op] = s
    return anc
