"""Synthetic scenarios for tests and planner benchmarks (``jbrl scenario synth``).

Everything random comes from one seeded :class:`numpy.random.Generator`; the same arguments give
the same scenario. What is generated:

* **tiers** ``edge`` < ``fog`` < ``cloud`` (or ``tier0`` .. for more than three); one source at
  tier 0.
* **workers**: two types per tier (``<tier>-cpu``, ``<tier>-gpu``), repeated: ``N`` workers are
  split over the types, lower tiers getting more (weights 2^(T-1-i); 60 % CPUs). Higher tiers are
  faster and dearer. Workers of a type are identical, so planners may aggregate them. With
  ``worker_types`` there are that many distinct types (``<tier>-cpu-<j>``, ``<tier>-gpu-<j>``,
  spread over the tiers like the workers, each with its own speed and price), so that a large
  infrastructure does not collapse into a handful of groups.
* **operators** ``op1`` .. ``opK`` in one of three **shapes**: ``chain`` (src -> op1 -> ... ->
  opK), ``diamond`` (op1 fans out to op2 .. op(K-1) in parallel, which all join into opK) and
  ``fanout`` (a binary tree below op1; tree edges multiply the rate by 1-2.5, e.g. detections
  per frame).
* **variants** ``v1`` (smallest) .. ``vV`` on as many operators (spread over the DAG) as keep
  the end-to-end table at most ``max_combinations`` rows; other operators have one variant.
  Latency grows by a factor 1.4-1.8 per variant step; accuracy gains are concave.
* **accuracy table**: complete (every combination), additive over operators, so it is monotone
  in every operator's variant size; the SLO's minimum accuracy is the table's median.
* **profiles** per worker type for every (operator, variant), except that the largest variant
  of a model does not fit on ``<tier0>-cpu`` devices when V >= 3 (if other types exist).
* **links** ``$0.02-0.08/GB`` per tier step upward, 1000 MB/s; backward traffic forbidden.
* **rate**: the nominal source rate loads the whole infrastructure to about ``load`` (35 %)
  at the middle variants.
* **SLO**: latency bound ``latency_ms`` (1000 ms; None: no bound), 99 % attainment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from jbrl.errors import InputError, Param
from jbrl.scenario.loader import scenario_from_dict
from jbrl.scenario.model import Scenario

Shape = Literal["chain", "diamond", "fanout"]
SHAPES: tuple[str, ...] = ("chain", "diamond", "fanout")
DEFAULT_MAX_COMBINATIONS = 1024
DEFAULT_LATENCY_MS: float | None = 1000.0


def synth_scenario_dict(
    operators: int = 4,
    variants: int = 3,
    workers: int = 20,
    tiers: int = 2,
    shape: str = "chain",
    seed: int = 0,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    load: float = 0.35,
    worker_types: int | None = None,
    latency_ms: float | None = DEFAULT_LATENCY_MS,
) -> dict[str, Any]:
    """The scenario document (YAML-ready dict) for these parameters.

    The steps draw from one generator in a fixed order (workflow, operator speeds and gains,
    worker types, profiles, message sizes, links), so a seed always gives the same scenario.
    """
    _check(operators, variants, workers, tiers, shape, max_combinations, load)
    _check_extra(worker_types, tiers, latency_ms)
    rng = np.random.default_rng(seed)
    tier_names = _tier_names(tiers)
    ops = [f"op{k}" for k in range(1, operators + 1)]
    edges = _workflow_edges(ops, shape, rng)
    varied = _varied_operators(ops, variants, max_combinations)
    var_names = {
        o: ([f"v{j}" for j in range(1, variants + 1)] if o in varied else ["default"]) for o in ops
    }
    params = _OperatorParams.draw(ops, rng)
    types = _worker_types(tier_names, rng, worker_types)
    counts = _split(workers, [t.weight for t in types])
    present = [t for t, c in zip(types, counts, strict=True) if c > 0]
    for t, c in zip(types, counts, strict=True):
        t.count = c
    profiles = _profiles(present, ops, var_names, varied, params, rng)
    edge_docs = _edge_docs(edges, varied, var_names, rng)
    table = _accuracy_table(varied, var_names, params)
    accs = [row["accuracy"] for row in table]
    min_acc = float(np.round(np.median(accs), 2)) if accs else 0.0
    rate = _source_rate(ops, edges, var_names, params, present, load)
    links = _tier_links(tier_names, rng)

    doc: dict[str, Any] = {
        "name": f"synth-{shape}-k{operators}-v{variants}-n{workers}-t{tiers}-s{seed}",
        "description": (
            f"Synthetic {shape} workflow: {operators} operators ({len(varied)} with {variants} "
            f"variants), {workers} workers of {len(present)} types on {tiers} tier(s)."
        ),
        "provenance": {
            "all": (
                f"synthetic: jbrl scenario synth --operators {operators} --variants {variants} "
                f"--workers {workers} --tiers {tiers} --shape {shape} --seed {seed} "
                f"--max-combinations {max_combinations}"
                + (f" --worker-types {worker_types}" if worker_types is not None else "")
                + (f" --latency-ms {latency_ms:g}" if latency_ms != DEFAULT_LATENCY_MS else "")
            )
        },
        "tiers": tier_names,
        "sources": [{"name": "src", "rate": rate, "tier": tier_names[0]}],
        "operators": [{"name": o, "variants": var_names[o]} for o in ops],
        "edges": edge_docs,
        "accuracy": {
            "operators": varied,
            "table": table,
            "metric": "synthetic accuracy %",
        },
        "workers": [
            {"name": t.type, "type": t.type, "tier": t.tier, "price": t.price, "count": t.count}
            for t in present
        ],
        "links": links,
        "network": {"cross_tier_bandwidth_mb_s": 1000.0, "same_tier_bandwidth_mb_s": 1250.0},
        "backward_traffic": "forbidden",
        "comm_cost_scale": 1.0,
        "profiles": profiles,
        "slo": {"min_accuracy": min_acc, "latency_ms": latency_ms, "attainment": 0.99},
    }
    if not varied:
        del doc["accuracy"]
    return doc


def synth_scenario(**kwargs: Any) -> Scenario:
    """A validated :class:`Scenario`; arguments as :func:`synth_scenario_dict`."""
    return scenario_from_dict(synth_scenario_dict(**kwargs), "<synth>")


# --------------------------------------------------------------------------- steps


@dataclass
class _OperatorParams:
    """Per operator: base latency (ms), latency growth per variant step, accuracy gain shape."""

    base_ms: dict[str, float]
    growth: dict[str, float]
    gain_amp: dict[str, float]
    gain_rate: dict[str, float]

    @classmethod
    def draw(cls, ops: list[str], rng: np.random.Generator) -> _OperatorParams:
        base_ms = {o: float(rng.uniform(5.0, 40.0)) for o in ops}
        growth = {o: float(rng.uniform(1.4, 1.8)) for o in ops}
        gain_amp = {o: float(rng.uniform(2.0, 8.0)) for o in ops}
        gain_rate = {o: float(rng.uniform(0.4, 0.7)) for o in ops}
        return cls(base_ms, growth, gain_amp, gain_rate)

    def var_mult(self, o: str, j: int) -> float:
        """Latency multiplier of variant index ``j`` of ``o``."""
        return self.growth[o] ** j


@dataclass
class _WorkerType:
    """A worker type of the synthetic infrastructure (``count`` set after the split)."""

    type: str
    tier: str
    tier_index: int
    speed: float
    price: float
    weight: float
    count: int = 0


def _workflow_edges(
    ops: list[str], shape: str, rng: np.random.Generator
) -> list[tuple[str, str, float]]:
    """Parent edges (u, v, ratio) of the workflow shape."""
    operators = len(ops)
    edges: list[tuple[str, str, float]] = [("src", ops[0], 1.0)]
    if shape == "chain" or (shape == "diamond" and operators < 3):
        edges += [(ops[k - 1], ops[k], 1.0) for k in range(1, operators)]
    elif shape == "diamond":
        middle = ops[1:-1]
        edges += [(ops[0], m, 1.0) for m in middle]
        edges += [(m, ops[-1], 1.0) for m in middle]
    else:  # fanout: binary tree below op1
        for k in range(1, operators):
            parent = ops[(k - 1) // 2]
            edges.append((parent, ops[k], float(np.round(rng.uniform(1.0, 2.5) * 2) / 2)))
    return edges


def _varied_operators(ops: list[str], variants: int, max_combinations: int) -> list[str]:
    """The operators with variants: as many as keep the table at most ``max_combinations``
    rows, spread over the DAG."""
    operators = len(ops)
    n_varied = 0
    if variants > 1:
        n_varied = min(operators, int(math.floor(math.log(max_combinations) / math.log(variants))))
    varied_idx = (
        sorted({int(round(x)) for x in np.linspace(0, operators - 1, n_varied)}) if n_varied else []
    )
    while len(varied_idx) < n_varied:  # rounding collisions: fill from the front
        varied_idx = sorted(set(varied_idx) | {min(set(range(operators)) - set(varied_idx))})
    return [ops[i] for i in varied_idx]


def _worker_types(
    tier_names: list[str], rng: np.random.Generator, count: int | None = None
) -> list[_WorkerType]:
    """A CPU and a GPU type per tier (or ``count`` types spread over the tiers like the
    workers, alternating CPU and GPU); higher tiers faster and dearer, lower ones more
    numerous."""
    tiers = len(tier_names)
    per_tier = (
        [2] * tiers
        if count is None
        else _split(count, [2.0 ** (tiers - 1 - i) for i in range(tiers)])
    )
    types: list[_WorkerType] = []
    for i, tier in enumerate(tier_names):
        kinds = (
            [("cpu", 0.6), ("gpu", 0.4)]
            if count is None
            else [("cpu", 0.6) if j % 2 == 0 else ("gpu", 0.4) for j in range(max(per_tier[i], 1))]
        )
        n_kind = {k: sum(1 for kk, _ in kinds if kk == k) for k, _ in kinds}
        for j, (kind, share) in enumerate(kinds):
            if kind == "cpu":
                speed = 4.0 / (1.6**i) * rng.uniform(0.8, 1.2)
                price = 0.1 * (2.2**i) * rng.uniform(0.8, 1.2)
            else:
                speed = 0.8 / (1.4**i) * rng.uniform(0.8, 1.2)
                price = 0.9 * (1.8**i) * rng.uniform(0.8, 1.2)
            name = f"{tier}-{kind}" if count is None else f"{tier}-{kind}-{j // 2 + 1}"
            types.append(
                _WorkerType(
                    type=name,
                    tier=tier,
                    tier_index=i,
                    speed=float(speed),
                    price=float(np.round(price, 4)),
                    weight=(2.0 ** (tiers - 1 - i)) * share / n_kind[kind],
                )
            )
    return types


def _profiles(
    present: list[_WorkerType],
    ops: list[str],
    var_names: dict[str, list[str]],
    varied: list[str],
    params: _OperatorParams,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """A profile per worker type and (operator, variant), except that the largest variant of a
    varied operator does not fit on tier-0 CPUs when there are 3+ variants and other types."""
    profiles: list[dict[str, Any]] = []
    for t in present:
        for o in ops:
            for j, v in enumerate(var_names[o]):
                too_big = (
                    len(var_names[o]) >= 3
                    and j == len(var_names[o]) - 1
                    and o in varied
                    and t.tier_index == 0
                    and t.type.endswith("-cpu")
                    and len(present) > 1
                )
                if too_big:
                    continue
                p90 = params.base_ms[o] * params.var_mult(o, j) * t.speed * rng.uniform(0.9, 1.1)
                profiles.append(
                    {
                        "operator": o,
                        "variant": v,
                        "worker_type": t.type,
                        "p50_ms": float(np.round(0.8 * p90, 4)),
                        "p90_ms": float(np.round(p90, 4)),
                        "load_s": float(np.round(2.0 + 3.0 * j * rng.uniform(0.5, 1.5), 2)),
                    }
                )
    return profiles


def _edge_docs(
    edges: list[tuple[str, str, float]],
    varied: list[str],
    var_names: dict[str, list[str]],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Edges with message sizes: large from the source, growing with the sender's variant."""
    edge_docs: list[dict[str, Any]] = []
    for u, v, ratio in edges:
        if u == "src":
            kb: float | dict[str, float] = float(np.round(rng.uniform(50.0, 500.0), 3))
        else:
            base = float(rng.uniform(1.0, 50.0))
            if u in varied:
                kb = {
                    name: float(np.round(base * (1 + 0.5 * j), 3))
                    for j, name in enumerate(var_names[u])
                }
            else:
                kb = float(np.round(base, 3))
        edge_docs.append({"from": u, "to": v, "ratio": ratio, "message_kb": kb})
    return edge_docs


def _accuracy_table(
    varied: list[str], var_names: dict[str, list[str]], params: _OperatorParams
) -> list[dict[str, Any]]:
    """The complete table, additive over operators (so monotone in each operator's variant)."""
    gains = {
        o: [params.gain_amp[o] * (1 - params.gain_rate[o] ** j) for j in range(len(var_names[o]))]
        for o in varied
    }
    table: list[dict[str, Any]] = []
    for combo in _product([var_names[o] for o in varied]):
        acc = 60.0 + sum(
            gains[o][var_names[o].index(v)] for o, v in zip(varied, combo, strict=True)
        )
        table.append(
            {"variants": dict(zip(varied, combo, strict=True)), "accuracy": float(np.round(acc, 2))}
        )
    return table


def _source_rate(
    ops: list[str],
    edges: list[tuple[str, str, float]],
    var_names: dict[str, list[str]],
    params: _OperatorParams,
    present: list[_WorkerType],
    load: float,
) -> float:
    """The source rate that keeps the infrastructure about ``load`` busy at middle variants."""
    mid = {o: len(var_names[o]) // 2 for o in ops}
    coef = {"src": 1.0}
    for o in _topo(ops, edges):
        coef[o] = min(coef[u] * r for u, v, r in edges if v == o)
    total = sum(t.count for t in present)
    mean_speed = sum(t.speed * t.count for t in present) / total
    work_s = sum(
        coef[o] * params.base_ms[o] * params.var_mult(o, mid[o]) * mean_speed / 1000.0 for o in ops
    )
    return float(np.round(max(load * total / work_s, 0.01), 2))


def _tier_links(tier_names: list[str], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Upward links between every pair of tiers, dearer across more tier steps."""
    tiers = len(tier_names)
    links: list[dict[str, Any]] = []
    for i in range(tiers - 1):
        for j in range(i + 1, tiers):
            links.append(
                {
                    "from": tier_names[i],
                    "to": tier_names[j],
                    "cost_per_gb": float(np.round((j - i) * rng.uniform(0.02, 0.08), 4)),
                    "bandwidth_mb_s": 1000.0,
                    "latency_ms": float(5.0 * (j - i)),
                }
            )
    return links


# --------------------------------------------------------------------------- helpers


def _check(
    operators: int,
    variants: int,
    workers: int,
    tiers: int,
    shape: str,
    max_combinations: int,
    load: float,
) -> None:
    for label, value, lo in (
        (Param.OPERATORS, operators, 1),
        (Param.VARIANTS, variants, 1),
        (Param.WORKERS, workers, 1),
        (Param.TIERS, tiers, 1),
        (Param.MAX_COMBINATIONS, max_combinations, 1),
    ):
        if not isinstance(value, int) or value < lo:
            raise InputError(f"must be an integer >= {lo}", field=label, value=value)
    if shape not in SHAPES:
        raise InputError(f"must be one of {', '.join(SHAPES)}", field=Param.SHAPE, value=shape)
    if not (0 < load <= 1):
        raise InputError("must be in (0, 1]", field="load", value=load)


def _check_extra(worker_types: int | None, tiers: int, latency_ms: float | None) -> None:
    if worker_types is not None and (
        not isinstance(worker_types, int) or isinstance(worker_types, bool) or worker_types < tiers
    ):
        raise InputError(
            f"must be an integer >= the number of tiers ({tiers})",
            field=Param.WORKER_TYPES,
            value=worker_types,
        )
    if latency_ms is not None and not (math.isfinite(latency_ms) and latency_ms > 0):
        raise InputError(
            "must be a positive number of ms", field=Param.LATENCY_MS, value=latency_ms
        )


def _tier_names(tiers: int) -> list[str]:
    if tiers == 1:
        return ["cloud"]
    if tiers == 2:
        return ["edge", "cloud"]
    if tiers == 3:
        return ["edge", "fog", "cloud"]
    return [f"tier{i}" for i in range(tiers)]


def _split(n: int, weights: list[float]) -> list[int]:
    """Largest-remainder split of n into len(weights) parts."""
    w = np.asarray(weights, dtype=float)
    raw = n * w / w.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: n - int(out.sum())]:
        out[i] += 1
    return [int(x) for x in out]


def _product(lists: list[list[str]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for options in lists:
        out = [prefix + (o,) for prefix in out for o in options]
    return out


def _topo(ops: list[str], edges: list[tuple[str, str, float]]) -> list[str]:
    done = {"src"}
    order: list[str] = []
    while len(order) < len(ops):
        for o in ops:
            if o not in done and all(u in done for u, v, _ in edges if v == o):
                done.add(o)
                order.append(o)
    return order
