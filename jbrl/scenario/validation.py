"""Cross-reference checks of a :class:`~jbrl.scenario.model.Scenario`.

Pydantic checks each part on its own (types, ranges); :func:`reference_errors` checks that the
parts fit together: names are unique, every tier, operator, variant, worker and source a part
names exists, the workflow is a DAG in which every operator has an input, the accuracy table
covers the operators with variants, and every variant has a profile. The scenario validator
joins the messages into one error, so a user sees every problem of a file at once.

The checks run in a fixed order and two of them (:func:`check_workflow_shape`,
:func:`check_profile_coverage`) only when no earlier check failed: their messages would
otherwise repeat what is already reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from jbrl import limits
from jbrl.errors import InputError

if TYPE_CHECKING:
    from jbrl.scenario.model import Edge, Operator, Scenario, Source


def check_worker_counts(items: Sequence[Any]) -> None:
    """Worker pools (``count``) are positive integers and expand to at most the limit
    ``workers`` (checked before anything is expanded)."""
    total = 0
    for i, item in enumerate(items):
        count = item.get("count", 1) if isinstance(item, dict) else 1
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InputError("must be a positive integer", field=f"workers[{i}].count", value=count)
        total += count
        if total > limits.current().workers:
            raise limits.over_limit(
                "workers", total, field=f"workers[{i}].count", what="the number of workers"
            )


def check_source_rates(sources: Sequence[Source]) -> None:
    """Nominal source rates within the limit ``rate`` (they size every simulation)."""
    for i, src in enumerate(sources):
        limits.check("rate", src.rate, field=f"sources[{i}].rate", what="a request rate")


def check_combinations(operators: Sequence[Operator]) -> None:
    """The variant combinations (the product of every operator's variant count), which
    planners enumerate, stay within the limit ``combinations``."""
    n = math.prod(len(o.variants) for o in operators)
    limits.check("combinations", n, field="operators", what="the number of variant combinations")


def reference_errors(scenario: Scenario) -> list[str]:
    """Every cross-reference problem of ``scenario``, one message each (empty when none)."""
    errors: list[str] = []
    check_unique_names(scenario, errors)
    check_tiers(scenario, errors)
    check_edges(scenario, errors)
    if not errors:
        check_workflow_shape(scenario, errors)
    check_accuracy(scenario, errors)
    check_links(scenario, errors)
    check_profiles(scenario, errors)
    if not errors:
        check_profile_coverage(scenario, errors)
    return errors


def first_duplicate(names: Iterable[str]) -> str | None:
    """The first name that occurs a second time, or None."""
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


def endpoint_names(scenario: Scenario) -> list[str]:
    """Names a link end may use: tiers, sources and workers."""
    return (
        list(scenario.tiers)
        + [s.name for s in scenario.sources]
        + [w.name for w in scenario.workers]
    )


def check_unique_names(scenario: Scenario, errors: list[str]) -> None:
    """Unique names per kind; sources and operators share one namespace (DAG nodes), and
    tiers, sources and workers another (link ends)."""
    for label, names in (
        ("tiers", scenario.tiers),
        ("sources", [s.name for s in scenario.sources]),
        ("operators", [o.name for o in scenario.operators]),
        ("workers", [w.name for w in scenario.workers]),
    ):
        dup = first_duplicate(names)
        if dup is not None:
            errors.append(f"{label}: duplicate name {dup!r}")
    node_names = [s.name for s in scenario.sources] + [o.name for o in scenario.operators]
    dup = first_duplicate(node_names)
    if dup is not None:
        errors.append(f"sources/operators: name {dup!r} is used twice")
    dup = first_duplicate(endpoint_names(scenario))
    if dup is not None:
        errors.append(
            f"tiers/sources/workers: name {dup!r} is used twice (link ends must be unambiguous)"
        )


def check_tiers(scenario: Scenario, errors: list[str]) -> None:
    """Every source's and worker's tier is a tier name or index."""
    ntiers = len(scenario.tiers)
    tiers: dict[str, list[str | int]] = {
        "sources": [s.tier for s in scenario.sources],
        "workers": [w.tier for w in scenario.workers],
    }
    for kind, items in tiers.items():
        for i, t in enumerate(items):
            if isinstance(t, int) and not (0 <= t < ntiers):
                errors.append(f"{kind}[{i}].tier: {t!r} is not a tier index (0..{ntiers - 1})")
            elif isinstance(t, str) and t not in scenario.tiers:
                errors.append(f"{kind}[{i}].tier: unknown tier {t!r}")


def check_edges(scenario: Scenario, errors: list[str]) -> None:
    """Edges join known nodes into operators, once each; per-variant message sizes name
    variants of the sending operator."""
    ops = {o.name: o for o in scenario.operators}
    nodes = set(ops) | {s.name for s in scenario.sources}
    seen_edges: set[tuple[str, str]] = set()
    for i, e in enumerate(scenario.edges):
        if e.source not in nodes:
            errors.append(f"edges[{i}].from: unknown source or operator {e.source!r}")
        if e.target not in ops:
            errors.append(f"edges[{i}].to: unknown operator {e.target!r}")
        if (e.source, e.target) in seen_edges:
            errors.append(f"edges[{i}]: duplicate edge {e.source!r} -> {e.target!r}")
        seen_edges.add((e.source, e.target))
        if isinstance(e.message_kb, dict) and e.source in ops:
            for var in e.message_kb:
                if var != "default" and var not in ops[e.source].variants:
                    errors.append(
                        f"edges[{i}].message_kb: {var!r} is not a variant of {e.source!r}"
                    )


def check_workflow_shape(scenario: Scenario, errors: list[str]) -> None:
    """Every operator has an input edge and the workflow has no cycle."""
    targets = {e.target for e in scenario.edges}
    for o in scenario.operators:
        if o.name not in targets:
            errors.append(f"operators: {o.name!r} has no input edge (every operator needs one)")
    nodes = [s.name for s in scenario.sources] + [o.name for o in scenario.operators]
    cycle = find_cycle(nodes, scenario.edges)
    if cycle:
        errors.append("edges: the workflow has a cycle " + " -> ".join(cycle))


def check_accuracy(scenario: Scenario, errors: list[str]) -> None:
    """The accuracy model names known operators and variants; every operator with several
    variants is in the table, which has one row per combination."""
    acc = scenario.accuracy
    ops = {o.name: o for o in scenario.operators}
    for i, name in enumerate(acc.operators):
        if name not in ops:
            errors.append(f"accuracy.operators[{i}]: unknown operator {name!r}")
    for o in scenario.operators:
        if len(o.variants) > 1 and o.name not in acc.operators:
            errors.append(
                f"accuracy.operators: operator {o.name!r} has {len(o.variants)} variants but "
                "is not listed, so the accuracy of its variants is unknown"
            )
    seen_combo: set[tuple[str, ...]] = set()
    for i, row in enumerate(acc.table):
        if set(row.variants) != set(acc.operators):
            errors.append(
                f"accuracy.table[{i}].variants: must name exactly the operators "
                f"{acc.operators}, got {sorted(row.variants)}"
            )
            continue
        for op, var in row.variants.items():
            if op in ops and var not in ops[op].variants:
                errors.append(f"accuracy.table[{i}].variants.{op}: unknown variant {var!r}")
        key = tuple(row.variants[o] for o in acc.operators)
        if key in seen_combo:
            errors.append(f"accuracy.table[{i}]: duplicate combination {dict(row.variants)}")
        seen_combo.add(key)
    if acc.operators and not acc.table:
        errors.append("accuracy.table: empty, but accuracy.operators is set")
    for i, p in enumerate(acc.per_operator):
        if p.op not in ops:
            errors.append(f"accuracy.per_operator[{i}].op: unknown operator {p.op!r}")
            continue
        for var in p.variants:
            if var not in ops[p.op].variants:
                errors.append(f"accuracy.per_operator[{i}].variants: unknown variant {var!r}")


def check_links(scenario: Scenario, errors: list[str]) -> None:
    """Link ends are tiers, workers or sources; no link leads to a source."""
    ends = set(endpoint_names(scenario))
    srcs = {s.name for s in scenario.sources}
    for i, link in enumerate(scenario.links):
        for end, label in ((link.source, "from"), (link.target, "to")):
            if end not in ends:
                errors.append(f"links[{i}].{label}: {end!r} is not a tier, worker or source")
        if link.target in srcs:
            errors.append(
                f"links[{i}].to: {link.target!r} is a source; traffic never flows to a source"
            )


def check_profiles(scenario: Scenario, errors: list[str]) -> None:
    """Profiles name known operators, variants, worker types and workers."""
    ops = {o.name: o for o in scenario.operators}
    wtypes = {w.type for w in scenario.workers}
    wnames = {w.name for w in scenario.workers}
    first: dict[tuple[str, str, str | None, str | None], int] = {}
    for i, p in enumerate(scenario.profiles):
        key = (p.operator, p.variant, p.worker_type, p.worker)
        j = first.setdefault(key, i)
        if j != i and _figures(scenario.profiles[j]) != _figures(p):
            errors.append(
                f"profiles[{i}]: conflicts with profiles[{j}] (same operator, variant and "
                "worker or worker type, other figures)"
            )
        if p.operator not in ops:
            errors.append(f"profiles[{i}].operator: unknown operator {p.operator!r}")
            continue
        if p.variant not in ops[p.operator].variants:
            errors.append(
                f"profiles[{i}].variant: {p.variant!r} is not a variant of {p.operator!r}"
            )
        if p.worker_type is not None and p.worker_type not in wtypes:
            errors.append(f"profiles[{i}].worker_type: no worker has type {p.worker_type!r}")
        if p.worker is not None and p.worker not in wnames:
            errors.append(f"profiles[{i}].worker: unknown worker {p.worker!r}")


def _figures(p: Any) -> dict[str, Any]:
    """A profile's figures (everything but its provenance)."""
    out: dict[str, Any] = p.model_dump(exclude={"provenance"})
    return out


def check_profile_coverage(scenario: Scenario, errors: list[str]) -> None:
    """Every variant of every operator has a profile on some worker."""
    profiled = {(p.operator, p.variant) for p in scenario.profiles}
    for o in scenario.operators:
        for var in o.variants:
            if (o.name, var) not in profiled:
                errors.append(
                    f"profiles: variant {var!r} of operator {o.name!r} has no profile on any worker"
                )


def find_cycle(nodes: list[str], edges: list[Edge]) -> list[str] | None:
    """A cycle of the graph as a node path (first node repeated at the end), or None."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        out.setdefault(e.source, []).append(e.target)
    color: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in nodes:
        if root in color:
            continue
        path: list[str] = [root]
        todo: list[int] = [0]  # per node on the path: the next out-edge to follow
        color[root] = 1
        while path:  # depth-first without recursion (a workflow may be a long chain)
            n, k = path[-1], todo[-1]
            succ = out.get(n, [])
            if k == len(succ):
                color[n] = 2
                path.pop()
                todo.pop()
                continue
            todo[-1] += 1
            m = succ[k]
            if color.get(m) == 1:
                return path[path.index(m) :] + [m]
            if m not in color:
                color[m] = 1
                path.append(m)
                todo.append(0)
    return None
