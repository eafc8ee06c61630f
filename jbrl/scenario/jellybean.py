"""Import JellyBean's published optimizer-input directory format into a :class:`Scenario`.

Format (all CSVs headerless), as published in the JellyBean repository
(``VQA/examples/optimizer_inputs/``):

=================================  ==========================================================
file                               content
=================================  ==========================================================
logical_graph.csv                  ``u, v`` dataflow edges (sources are the rows of
                                   input_injection_rates.csv)
input_injection_rates.csv          ``source, rate`` (req/s)
throughput_normalization_ratios    ``u, v, ratio``
message_sizes.csv                  ``u, v, u_variant, v_variant, size_KB``
workers_specs.csv                  ``worker, price`` ($/hour)
workers_partition.json             list of tiers, each a list of worker names
workers_workers_link.csv           ``sender, receiver, cost_per_GB``
sources_workers_link.csv           ``source, worker, cost_per_GB``
execution_profile.csv              ``operator, worker, variant, latency_ms`` (the planner's
                                   latency; ``_p50`` / ``_p90`` variants are read if present)
accuracy_requirement.json          ``{"sink": ..., "threshold": ...}``
accuracy_profiles.json             end-to-end table and per-operator samples (JSON form of
                                   JellyBean's nodes_accuracy_profiles.pkl)
config.yaml                        ``INPUT.COMM_COST_SCALING_FACTOR``,
                                   ``INPUT.LATENCY_OVERESTIMATE_RATIO``
=================================  ==========================================================

JellyBean does not specify everything jbrl models. Defaults used here (documented in README):

* end-to-end latency bound: none (JellyBean plans on capacity alone, and so does jbrl on these
  inputs) unless ``latency_ms`` is given to :func:`import_jellybean` (``jbrl scenario
  import-jellybean --latency-ms``); attainment target 0.99 (or ``attainment``);
* bandwidth/latency: the :class:`~jbrl.scenario.model.NetworkDefaults` (1250 MB/s and 0.2 ms
  inside a tier, 125 MB/s and 10 ms across tiers);
* model load time: :data:`DEFAULT_LOAD_S` for every variant;
* each worker is its own worker type (profiles are per worker);
* backward traffic (to a lower tier) is forbidden, as in JellyBean's ``main.py``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jbrl import limits
from jbrl.documents import load_json, load_yaml, read_text
from jbrl.errors import InputError
from jbrl.scenario.loader import scenario_from_dict
from jbrl.scenario.model import Scenario

DEFAULT_LOAD_S = 10.0
DEFAULT_ATTAINMENT = 0.99


def _read_csv(path: Path, width: int, required: bool = True) -> list[list[str]]:
    """Read a headerless CSV of ``width`` columns (within the limits of :mod:`jbrl.documents`);
    tolerate trailing empty fields."""
    if not path.exists():
        if required:
            raise InputError("missing file (JellyBean inputs need it)", file=str(path))
        return []
    text = read_text(path)
    limits.check("trace_rows", text.count("\n"), file=str(path), what="the number of lines")
    rows: list[list[str]] = []
    try:
        for lineno, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            while row and row[-1].strip() == "" and len(row) > width:
                row = row[:-1]  # JellyBean's execution_profile.csv has a stray comma
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != width:
                raise InputError(
                    f"expected {width} columns, found {len(row)}",
                    file=str(path),
                    field=f"line {lineno}",
                    value=",".join(row),
                )
            rows.append([c.strip() for c in row])
    except csv.Error as exc:
        raise InputError(f"not a valid CSV file: {exc}", file=str(path)) from None
    return rows


def _num(path: Path, lineno_field: str, text: str, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError("not a number", file=str(path), field=lineno_field, value=text) from None
    if math.isnan(value) or math.isinf(value):
        raise InputError("not a finite number", file=str(path), field=lineno_field, value=text)
    if positive and value <= 0:
        raise InputError("must be > 0", file=str(path), field=lineno_field, value=value)
    if value < 0:
        raise InputError("must be >= 0", file=str(path), field=lineno_field, value=value)
    return value


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise InputError("missing file (JellyBean inputs need it)", file=str(path))
    return load_json(path)


def _profile_table(path: Path, required: bool) -> dict[tuple[str, str, str], float]:
    """(operator, variant, worker) -> latency (ms); a row repeated with another latency is
    refused (which one JellyBean meant is unknowable)."""
    out: dict[tuple[str, str, str], float] = {}
    for i, (op, worker, variant, ms) in enumerate(_read_csv(path, 4, required), start=1):
        value = _num(path, f"line {i} latency_ms", ms, positive=True)
        key = (op, variant, worker)
        if key in out and out[key] != value:
            raise InputError(
                f"conflicts with an earlier row for operator {op!r}, worker {worker!r}, "
                f"variant {variant!r} (latency {out[key]:g} ms)",
                file=str(path),
                field=f"line {i} latency_ms",
                value=value,
            )
        out[key] = value
    return out


def import_jellybean(
    directory: str | Path,
    latency_ms: float | None = None,
    attainment: float = DEFAULT_ATTAINMENT,
) -> Scenario:
    """Build a scenario from a JellyBean optimizer-inputs directory.

    JellyBean's inputs carry no latency bound: the scenario has none (capacity-only planning)
    unless ``latency_ms`` gives one, met by a fraction ``attainment`` of the requests.
    Every file is read first (a missing or malformed file is reported before its content is
    checked), then each part of the scenario is built from its files in document order.
    """
    d = Path(directory)
    files = _read_files(d)
    sources = {
        name: _num(d / "input_injection_rates.csv", f"line {i} rate", rate, positive=True)
        for i, (name, rate) in enumerate(files.rates, start=1)
    }
    ratios = {
        (u, v): _num(d / "throughput_normalization_ratios.csv", f"line {i} ratio", r, True)
        for i, (u, v, r) in enumerate(files.ratios, start=1)
    }
    sizes = _message_sizes(d, files.sizes)
    op_names = _operator_names(files.graph, sources)
    variants = _variants(d, op_names, files.plan_lat)
    workers = _workers(d, files.partition, files.specs)
    links = _links(d, files.worker_links, files.source_links)
    profiles = _profiles(files)
    accuracy = _read_accuracy(d, variants)
    threshold = _threshold(d, files.requirement, files.graph)
    data = {
        "name": d.resolve().name,
        "description": f"Imported from JellyBean optimizer inputs in {d}",
        "provenance": {
            "all": f"JellyBean optimizer inputs ({d}); defaults for what JellyBean does not "
            f"specify: latency bound {_bound_text(latency_ms)}, model load time "
            f"{DEFAULT_LOAD_S:g} s, network bandwidth/latency from jbrl's NetworkDefaults",
        },
        "tiers": [f"tier{i}" for i in range(len(files.partition))],
        "sources": [{"name": s, "rate": r, "tier": 0} for s, r in sources.items()],
        "operators": [{"name": op, "variants": variants[op] or ["default"]} for op in op_names],
        "edges": [
            {
                "from": u,
                "to": v,
                "ratio": ratios.get((u, v), 1.0),
                "message_kb": _sizes_value(sizes.get((u, v), {})),
            }
            for u, v in files.graph
        ],
        "accuracy": accuracy,
        "workers": workers,
        "links": links,
        "backward_traffic": "forbidden",
        "comm_cost_scale": files.config.get("COMM_COST_SCALING_FACTOR", 1.0),
        "latency_overestimate": files.config.get("LATENCY_OVERESTIMATE_RATIO", 1.0),
        "default_load_s": DEFAULT_LOAD_S,
        "profiles": profiles,
        "slo": {"min_accuracy": threshold, "latency_ms": latency_ms, "attainment": attainment},
    }
    return scenario_from_dict(data, str(d))


def _bound_text(latency_ms: float | None) -> str:
    return "none (capacity-only)" if latency_ms is None else f"{latency_ms:g} ms (given)"


# --------------------------------------------------------------------------- parts


@dataclass
class _Files:
    """The raw content of an optimizer-inputs directory (CSV rows, parsed JSON and config)."""

    graph: list[list[str]]
    rates: list[list[str]]
    ratios: list[list[str]]
    sizes: list[list[str]]
    specs: list[list[str]]
    worker_links: list[list[str]]
    source_links: list[list[str]]
    plan_lat: dict[tuple[str, str, str], float]
    p50: dict[tuple[str, str, str], float]
    p90: dict[tuple[str, str, str], float]
    partition: Any
    requirement: Any
    config: dict[str, float]


def _read_files(d: Path) -> _Files:
    """Read every input file of ``d`` (in this order, so the first problem is reported)."""
    return _Files(
        graph=_read_csv(d / "logical_graph.csv", 2),
        rates=_read_csv(d / "input_injection_rates.csv", 2),
        ratios=_read_csv(d / "throughput_normalization_ratios.csv", 3, required=False),
        sizes=_read_csv(d / "message_sizes.csv", 5, required=False),
        specs=_read_csv(d / "workers_specs.csv", 2),
        worker_links=_read_csv(d / "workers_workers_link.csv", 3, required=False),
        source_links=_read_csv(d / "sources_workers_link.csv", 3, required=False),
        plan_lat=_profile_table(d / "execution_profile.csv", True),
        p50=_profile_table(d / "execution_profile_p50.csv", False),
        p90=_profile_table(d / "execution_profile_p90.csv", False),
        partition=_read_json(d / "workers_partition.json"),
        requirement=_read_json(d / "accuracy_requirement.json"),
        config=_read_config(d / "config.yaml"),
    )


def _message_sizes(d: Path, rows: list[list[str]]) -> dict[tuple[str, str], dict[str, float]]:
    """(u, v) -> {u's variant: KB}; sizes that depend on v's variant are not supported."""
    sizes: dict[tuple[str, str], dict[str, float]] = {}
    for i, (u, v, uvar, vvar, kb) in enumerate(rows, start=1):
        if vvar != "default":
            raise InputError(
                "message sizes that depend on the receiving variant are not supported",
                file=str(d / "message_sizes.csv"),
                field=f"line {i} v_variant",
                value=vvar,
            )
        sizes.setdefault((u, v), {})[uvar] = _num(d / "message_sizes.csv", f"line {i} size", kb)
    return sizes


def _operator_names(graph: list[list[str]], sources: dict[str, float]) -> list[str]:
    """The graph's nodes that are not sources, in order of first appearance."""
    op_names: list[str] = []
    for u, v in graph:
        for n in (u, v):
            if n not in sources and n not in op_names:
                op_names.append(n)
    return op_names


def _variants(
    d: Path, op_names: list[str], plan_lat: dict[tuple[str, str, str], float]
) -> dict[str, list[str]]:
    """Each operator's variants, in order of first appearance in the execution profile."""
    variants: dict[str, list[str]] = {op: [] for op in op_names}
    for op, var, _w in plan_lat:
        if op in variants and var not in variants[op]:
            variants[op].append(var)
        elif op not in variants:
            raise InputError(
                "operator is not in logical_graph.csv",
                file=str(d / "execution_profile.csv"),
                field="operator",
                value=op,
            )
    return variants


def _workers(d: Path, partition: Any, specs: list[list[str]]) -> list[dict[str, Any]]:
    """One worker (its own type) per row of workers_specs.csv, on its partition tier."""
    if not isinstance(partition, list) or not all(
        isinstance(t, list) and all(isinstance(w, str) for w in t) for t in partition
    ):
        raise InputError(
            "must be a list of tiers, each a list of worker names",
            file=str(d / "workers_partition.json"),
            value=partition,
        )
    tier_of = {w: i for i, tier in enumerate(partition) for w in tier}
    workers = []
    for i, (name, price) in enumerate(specs, start=1):
        if name not in tier_of:
            raise InputError(
                "worker is in no tier of workers_partition.json",
                file=str(d / "workers_specs.csv"),
                field=f"line {i} worker",
                value=name,
            )
        workers.append(
            {
                "name": name,
                "type": name,
                "tier": f"tier{tier_of[name]}",
                "price": _num(d / "workers_specs.csv", f"line {i} price", price, positive=True),
            }
        )
    return workers


def _links(
    d: Path, worker_links: list[list[str]], source_links: list[list[str]]
) -> list[dict[str, Any]]:
    """Worker-to-worker links, then source-to-worker links ($/GB)."""
    return [
        {"from": s, "to": r, "cost_per_gb": _num(d / "workers_workers_link.csv", f"line {i}", c)}
        for i, (s, r, c) in enumerate(worker_links, start=1)
    ] + [
        {"from": s, "to": w, "cost_per_gb": _num(d / "sources_workers_link.csv", f"line {i}", c)}
        for i, (s, w, c) in enumerate(source_links, start=1)
    ]


def _profiles(files: _Files) -> list[dict[str, Any]]:
    """One profile per (operator, variant, worker): the planner's latency, and p50/p90 where
    the optional files give them (p90 never below p50)."""
    profiles = []
    for (op, var, w), ms in files.plan_lat.items():
        lo = files.p50.get((op, var, w), ms)
        hi = max(files.p90.get((op, var, w), ms), lo)
        profiles.append(
            {
                "operator": op,
                "variant": var,
                "worker": w,
                "p50_ms": lo,
                "p90_ms": hi,
                "plan_ms": ms,
            }
        )
    return profiles


def _threshold(d: Path, requirement: Any, graph: list[list[str]]) -> float:
    """The accuracy target of accuracy_requirement.json; its ``sink``, when given, must be an
    operator of logical_graph.csv without outgoing edges."""
    file = str(d / "accuracy_requirement.json")
    threshold = requirement.get("threshold") if isinstance(requirement, dict) else None
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise InputError(
            "must be an object with a numeric 'threshold'",
            file=file,
            field="threshold",
            value=threshold,
        )
    if isinstance(requirement, dict) and "sink" in requirement:
        sink = requirement["sink"]
        senders = {u for u, _ in graph}
        sinks = sorted({v for _, v in graph if v not in senders})
        if sink not in sinks:
            raise InputError(
                f"must name the workflow's sink (logical_graph.csv: {', '.join(sinks)})",
                file=file,
                field="sink",
                value=sink,
            )
    return float(threshold)


def _sizes_value(by_variant: dict[str, float]) -> float | dict[str, float]:
    if not by_variant:
        return 0.0
    if set(by_variant) == {"default"}:
        return by_variant["default"]
    return by_variant


def _read_config(path: Path) -> dict[str, float]:
    """``INPUT.COMM_COST_SCALING_FACTOR`` and ``INPUT.LATENCY_OVERESTIMATE_RATIO`` (numbers
    > 0) of config.yaml; the other sections are JellyBean's own and not read."""
    if not path.exists():
        return {}
    cfg = load_yaml(path)
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise InputError("must be a YAML mapping", file=str(path), value=cfg)
    section = cfg.get("INPUT") or {}
    if not isinstance(section, dict):
        raise InputError("must be a mapping", file=str(path), field="INPUT", value=section)
    out: dict[str, float] = {}
    for key in ("COMM_COST_SCALING_FACTOR", "LATENCY_OVERESTIMATE_RATIO"):
        if key in section:
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(
                    "must be a number", file=str(path), field=f"INPUT.{key}", value=value
                )
            out[key] = _num(path, f"INPUT.{key}", str(value), positive=True)
    return out


def _read_accuracy(d: Path, variants: dict[str, list[str]]) -> dict[str, Any]:
    path = d / "accuracy_profiles.json"
    if not path.is_file():
        if (d / "nodes_accuracy_profiles.pkl").is_file():
            raise InputError(
                "JellyBean's pickle is not read (it needs JellyBean's code to unpickle); "
                "convert it to accuracy_profiles.json as described in README",
                file=str(d / "nodes_accuracy_profiles.pkl"),
            )
        raise InputError("missing file (JellyBean inputs need it)", file=str(path))
    data = _read_json(path)
    shape = "{'end_to_end': {'operators': [...], 'profile': [{'variants': {...}, 'accuracy': x}]}}"
    e2e = data.get("end_to_end") if isinstance(data, dict) else None
    rows = e2e.get("profile") if isinstance(e2e, dict) else None
    ops = e2e.get("operators") if isinstance(e2e, dict) else None
    if not isinstance(rows, list) or not isinstance(ops, list):
        raise InputError(f"expected {shape}", file=str(path), field="end_to_end")
    table = []
    for i, row in enumerate(rows):
        acc = row.get("accuracy") if isinstance(row, dict) else None
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("variants"), dict)
            or (isinstance(acc, bool) or not isinstance(acc, (int, float)))
        ):
            raise InputError(
                f"expected {shape}", file=str(path), field=f"end_to_end.profile[{i}]", value=row
            )
        table.append({"variants": dict(row["variants"]), "accuracy": float(acc)})
    per_op = data.get("per_operator", [])
    if not isinstance(per_op, list) or not all(isinstance(p, dict) for p in per_op):
        raise InputError(
            "must be a list of per-operator profiles (objects)",
            file=str(path),
            field="per_operator",
            value=per_op,
        )
    per_op = [p for p in per_op if isinstance(p.get("op"), str) and p["op"] in variants]
    return {"operators": ops, "table": table, "per_operator": per_op}
