"""What the MILP is built over: worker groups, their capacities and where each operator may run.

:func:`plan_layout` settles everything the model needs before any variable exists: the groups of
interchangeable workers (:mod:`jbrl.planning.groups`), the variant combinations left after
dominance pruning, each group's capacity for each (operator, variant, batch size), the variants
each group may run for each operator, whether aggregation stays on (it is switched off when a
worker-to-worker link's bandwidth could bind, since the bound is only exact per worker pair),
and, with a latency target, the stage budget levels and SLO-safe rates
(:func:`~jbrl.planning.milp.slo.stage_layout`). Capacity-only planning uses batch 1 only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from jbrl.errors import InputError
from jbrl.planning.cost import RATE_TOL
from jbrl.planning.groups import GroupLinks, WorkerGroup, group_links, worker_groups
from jbrl.planning.milp.combos import Combo, prune_dominated, used_variants
from jbrl.planning.milp.slo import (
    DEFAULT_LEVELS,
    Key,
    SloTarget,
    StageLayout,
    batch_capacity,
    batch_sizes,
    stage_layout,
)
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario

__all__ = ["Key", "Layout", "ModelOptions", "plan_layout"]


@dataclass(frozen=True)
class ModelOptions:
    """The :class:`~jbrl.planning.milp.MilpPlanner` options that shape the model."""

    max_util: float
    aggregate: bool
    bandwidth: bool
    prune_dominated: bool
    reconfig_penalty: float
    workers: list[str] | None
    slo: SloTarget | None = None
    """The latency target (None: capacity-only planning)."""
    levels: int = DEFAULT_LEVELS
    family: str = "lognormal"
    """Service-time distribution of the latency model."""
    max_batch: int | None = None
    """The largest batch size the SLO-aware model may choose (None: every profiled size)."""
    keep_current: bool = False
    """Every worker of the current plan keeps its (operator, variant): scale-up only."""


@dataclass
class Layout:
    """Groups, combinations and capacities the model is built over."""

    combos: list[Combo]
    groups: list[WorkerGroup]
    links: GroupLinks
    variants: dict[str, list[str]]
    """Per operator, the variants some combination uses."""
    caps: dict[Key, float]
    """req/s one worker of the group serves (max_util and source bandwidth applied; with a
    latency target, the largest SLO-safe rate over the levels)."""
    placeable: dict[tuple[int, str], list[str]]
    """(group index, operator) -> the variants that group may run for it."""
    aggregated: bool
    notes: list[str]
    stages: StageLayout | None = None
    """Budget levels and per-level SLO-safe rates (with a latency target)."""

    batches: dict[tuple[int, str, str], list[int]] = field(default_factory=dict)
    """(group index, operator, variant) -> the batch sizes it may run with (ascending)."""


def plan_layout(
    scenario: Scenario,
    combos: list[Combo],
    current: Plan | None,
    options: ModelOptions,
) -> Layout:
    """Groups (aggregated when allowed), pruned combinations, capacities and placements."""
    notes: list[str] = []
    aggregated = options.aggregate
    groups = select_groups(scenario, options.workers, aggregated)
    links = group_links(scenario, groups)
    prune = options.prune_dominated and not (
        current is not None and (options.reconfig_penalty > 0 or options.keep_current)
    )
    if prune and options.slo is None:  # (with a latency target: on SLO-safe rates, below)
        combos = _pruned(scenario, combos, [g.rep for g in groups], None, notes)
    variants = used_variants(scenario, combos)
    caps = capacities(scenario, groups, links, variants, options)
    if (
        aggregated
        and options.bandwidth
        and any(g.size > 1 for g in groups)
        and bandwidth_may_bind(scenario, groups, links, caps, variants)
    ):
        notes.append("aggregation off: a worker-to-worker link's bandwidth may bind")
        aggregated = False
        groups = select_groups(scenario, options.workers, False)
        links = group_links(scenario, groups)
        caps = capacities(scenario, groups, links, variants, options)
    stages = None
    if options.slo is not None:
        stages = stage_layout(
            scenario, groups, links.allowed, variants, caps, options.slo, options.levels,
            options.family,
        )  # fmt: skip
        if prune:
            combos = _pruned(scenario, combos, [], safe_rate_table(scenario, stages), notes)
            variants = used_variants(scenario, combos)
        caps = {
            k: max(c, default=0.0) for k, c in stages.level_caps.items() if k[2] in variants[k[1]]
        }
        caps = {k: c for k, c in caps.items() if c > 0}
    batches: dict[tuple[int, str, str], list[int]] = {}
    for gi, o, v, b in sorted(caps, key=lambda k: k[3]):
        batches.setdefault((gi, o, v), []).append(b)
    place = placeable(scenario, groups, links, batches)
    return Layout(combos, groups, links, variants, caps, place, aggregated, notes, stages, batches)


def _pruned(
    scenario: Scenario,
    combos: list[Combo],
    workers: list[str],
    rates: Mapping[tuple[str, str], np.ndarray] | None,
    notes: list[str],
) -> list[Combo]:
    """``combos`` without the dominated ones (:func:`prune_dominated`), noted in ``notes``."""
    before = len(combos)
    combos = prune_dominated(scenario, combos, workers, rates)
    if len(combos) < before:
        notes.append(f"{before - len(combos)} dominated variant combination(s) dropped")
    return combos


def safe_rate_table(scenario: Scenario, stages: StageLayout) -> dict[tuple[str, str], np.ndarray]:
    """Per (operator, variant), its SLO-safe rates on one axis of (group, batch size, level)
    shared by the operator's variants (0 where a variant has no such worker key): capacity
    dominance says nothing about latency tails, so with a latency target variants are
    compared on these."""
    axes: dict[str, dict[tuple[int, int, int], int]] = {o: {} for o in scenario.topo_order}
    for gi, o, _v, b in stages.level_caps:
        for k in range(len(stages.levels[o])):
            axes[o].setdefault((gi, b, k), len(axes[o]))
    out = {(o.name, v): np.zeros(len(axes[o.name])) for o in scenario.operators for v in o.variants}
    for (gi, o, v, b), caps in stages.level_caps.items():
        for k, c in enumerate(caps):
            out[(o, v)][axes[o][(gi, b, k)]] = c
    return out


def select_groups(
    scenario: Scenario, workers: Sequence[str] | None, aggregate: bool
) -> list[WorkerGroup]:
    """Groups of ``workers`` (default: all); an unknown name raises :class:`InputError`."""
    if workers is not None:
        unknown = [w for w in workers if w not in scenario.worker_map]
        if unknown:
            raise InputError("unknown worker", field="workers", value=unknown[0])
    return worker_groups(scenario, workers, aggregate)


def capacities(
    scenario: Scenario,
    groups: list[WorkerGroup],
    links: GroupLinks,
    variants: Mapping[str, list[str]],
    options: ModelOptions,
) -> dict[Key, float]:
    """max_util * capacity per worker and batch size, also bounded by source-link bandwidth
    (batch 1 only without a latency target)."""
    caps: dict[Key, float] = {}
    for g in groups:
        for o in scenario.topo_order:
            src_edges = [e for e in scenario.in_edges[o] if e.source in scenario.source_map]
            if any(not np.isfinite(links.source_cost[e.source][g.index]) for e in src_edges):
                continue  # the source's data would have to flow backward
            for v in variants[o]:
                sizes = (
                    batch_sizes(scenario, o, v, g.rep, options.max_batch)
                    if options.slo is not None
                    else (1,)
                )
                for b in sizes:
                    cap = batch_capacity(scenario, o, v, g.rep, b) * options.max_util
                    if options.bandwidth:
                        for e in src_edges:
                            kb = e.message_kb_for("default")
                            if kb > 0:
                                cap = min(cap, links.source_bw_kb_s[e.source][g.index] / kb)
                    if cap > 0:
                        caps[(g.index, o, v, b)] = cap
    return caps


def placeable(
    scenario: Scenario,
    groups: list[WorkerGroup],
    links: GroupLinks,
    batches: Mapping[tuple[int, str, str], list[int]],
) -> dict[tuple[int, str], list[str]]:
    """Variants each group may run for each operator: it has capacity, and every operator input
    has some group that may run it and send to this group without backward traffic."""
    out: dict[tuple[int, str], list[str]] = {}
    for o in scenario.topo_order:
        feeders = [e.source for e in scenario.in_edges[o] if e.source not in scenario.source_map]
        for g in groups:
            ok = all(
                any((h.index, u) in out and links.allowed[h.index, g.index] for h in groups)
                for u in feeders
            )
            if not ok:
                continue
            vs = [v for v in scenario.operator_map[o].variants if (g.index, o, v) in batches]
            if vs:
                out[(g.index, o)] = vs
    return out


def bandwidth_may_bind(
    scenario: Scenario,
    groups: list[WorkerGroup],
    links: GroupLinks,
    caps: Mapping[Key, float],
    variants: Mapping[str, list[str]],
) -> bool:
    """Could any single worker-to-worker flow exceed its link's bandwidth?"""
    best: dict[tuple[int, str], float] = {}
    for (gi, o, _v, _b), c in caps.items():
        best[(gi, o)] = max(best.get((gi, o), 0.0), c)
    for e in scenario.edges:
        u, v = e.source, e.target
        if u in scenario.source_map:
            continue
        for g in groups:
            kb_max = max((e.message_kb_for(var) for var in variants[u]), default=0.0)
            send = best.get((g.index, u), 0.0)
            send *= e.ratio
            if send <= 0 or kb_max <= 0:
                continue
            for h in groups:
                if (g.size == 1 and h.size == 1) or not links.allowed[g.index, h.index]:
                    continue
                recv = best.get((h.index, v), 0.0)
                if min(send, recv) * kb_max > links.bw_kb_s[g.index, h.index] * (1 - 1e-9):
                    return True
    return False


def held_by_worker(scenario: Scenario, plan: Plan) -> dict[str, tuple[str, str]]:
    """worker -> (operator, variant) it hosts in ``plan``."""
    out: dict[str, tuple[str, str]] = {}
    for o in scenario.operators:
        var = plan.model_assignment.get(o.name, o.variants[0])
        for s in plan.worker_assignment.get(o.name, []):
            if s.rate is None or s.rate > RATE_TOL:
                out.setdefault(s.worker, (o.name, var))
    return out


def current_counts(
    scenario: Scenario, groups: list[WorkerGroup], current: Plan | None
) -> dict[tuple[int, str, str], int]:
    """How many workers of each group already run each (operator, variant) in ``current``
    (whatever their batch size: changing only the batch size loads no model)."""
    if current is None:
        return {}
    gi = {w: g.index for g in groups for w in g.members}
    out: dict[tuple[int, str, str], int] = {}
    for w, (o, v) in held_by_worker(scenario, current).items():
        if w in gi:
            key = (gi[w], o, v)
            out[key] = out.get(key, 0) + 1
    return out


def restrict_levels(scenario: Scenario, layout: Layout, keep: Mapping[str, list[int]]) -> Layout:
    """``layout`` with each operator's budget levels restricted to the indices ``keep[o]``
    (capacities, batch sizes and placements recomputed from the levels left)."""
    stages = layout.stages
    assert stages is not None
    levels = {o: [lv[i] for i in keep[o]] for o, lv in stages.levels.items()}
    level_caps = {k: [c[i] for i in keep[k[1]]] for k, c in stages.level_caps.items()}
    narrowed = replace(stages, levels=levels, level_caps=level_caps)
    caps = {k: max(c, default=0.0) for k, c in level_caps.items() if k in layout.caps}
    caps = {k: c for k, c in caps.items() if c > 0}
    batches: dict[tuple[int, str, str], list[int]] = {}
    for gi, o, v, b in sorted(caps, key=lambda k: k[3]):
        batches.setdefault((gi, o, v), []).append(b)
    place = placeable(scenario, layout.groups, layout.links, batches)
    return replace(layout, caps=caps, stages=narrowed, batches=batches, placeable=place)
