"""The :class:`Plan` type and its JSON form (ARCHITECTURE.md, "Plan and cost semantics").

```json
{"model_assignment": {"ExtractImageFeature": "resnet18"},
 "worker_assignment": {"ExtractImageFeature": [{"worker": "edge-1", "rate": 7.4}, {"worker": "edge-2"}]},
 "routing": [{"edge": ["ExtractImageFeature", "VQA"], "from": "edge-1", "to": "cloud-1", "rate": 7.4}]}
```

A worker without ``rate`` is filled in list order. ``"batch": b`` (default 1) lets a worker serve
up to ``b`` queued requests at once (dynamic batching); it is written only when it is not 1. ``routing`` is optional; edges without flows mix
traffic in proportion to the workers' shares. Planner output adds ``solver``, ``status``, costs,
``accuracy``, ``solve_time_s`` and ``gap``: those extra keys are kept in :attr:`Plan.meta`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jbrl.errors import InputError


@dataclass(frozen=True)
class WorkerShare:
    """One worker serving an operator, optionally at a fixed rate (req/s), in batches of at
    most ``batch`` requests (dynamic batching; 1: one request at a time)."""

    worker: str
    rate: float | None = None
    batch: int = 1

    def to_dict(self) -> dict[str, Any]:
        """``{"worker", "rate"?, "batch"?}``: ``batch`` only when it is not 1, so plans
        without batching read and write as before."""
        d: dict[str, Any] = {"worker": self.worker}
        if self.rate is not None:
            d["rate"] = self.rate
        if self.batch != 1:
            d["batch"] = self.batch
        return d


@dataclass(frozen=True)
class Flow:
    """Requests/s of ``edge[1]`` sent from ``sender`` (worker or source) to ``receiver``."""

    edge: tuple[str, str]
    sender: str
    receiver: str
    rate: float


@dataclass(frozen=True)
class Plan:
    """Variants per operator, workers per operator, optional explicit routing."""

    model_assignment: dict[str, str]
    worker_assignment: dict[str, list[WorkerShare]]
    routing: list[Flow] | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def workers_of(self, operator: str) -> list[str]:
        return [s.worker for s in self.worker_assignment.get(operator, [])]

    def batch_of(self, worker: str) -> int:
        """The batch size the plan gives ``worker`` (1 where it names none)."""
        for shares in self.worker_assignment.values():
            for s in shares:
                if s.worker == worker:
                    return s.batch
        return 1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.meta)
        d["model_assignment"] = dict(self.model_assignment)
        d["worker_assignment"] = {
            op: [s.to_dict() for s in shares] for op, shares in self.worker_assignment.items()
        }
        if self.routing is not None:
            d["routing"] = [
                {"edge": list(f.edge), "from": f.sender, "to": f.receiver, "rate": f.rate}
                for f in self.routing
            ]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def without_routing(self) -> Plan:
        return Plan(
            dict(self.model_assignment), dict(self.worker_assignment), None, dict(self.meta)
        )


PLAN_KEYS = {"model_assignment", "worker_assignment", "routing"}


def plan_from_dict(data: Any, file: str = "<plan>") -> Plan:
    """Parse the plan JSON form, raising :class:`InputError` naming the field and value.

    Parts are checked in document order: ``model_assignment``, ``worker_assignment``,
    ``routing``; other keys are kept as the plan's metadata.
    """
    if not isinstance(data, Mapping):
        raise InputError("a plan must be a JSON object", file=file, value=data)
    ma = _model_assignment(data, file)
    assignment = _worker_assignment(data, file)
    routing = _routing(data["routing"], file) if data.get("routing") is not None else None
    meta = {k: v for k, v in data.items() if k not in PLAN_KEYS}
    return Plan(dict(ma), assignment, routing, meta)


def _model_assignment(data: Mapping[str, Any], file: str) -> Mapping[str, str]:
    ma = data.get("model_assignment", {})
    if not isinstance(ma, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in ma.items()
    ):
        raise InputError(
            "must map operator names to variant names",
            file=file,
            field="model_assignment",
            value=ma,
        )
    return ma


def _worker_assignment(data: Mapping[str, Any], file: str) -> dict[str, list[WorkerShare]]:
    wa = data.get("worker_assignment")
    if not isinstance(wa, Mapping):
        raise InputError(
            "must map operator names to lists of workers",
            file=file,
            field="worker_assignment",
            value=wa,
            has_value=True,
        )
    assignment: dict[str, list[WorkerShare]] = {}
    for op, items in wa.items():
        if not isinstance(items, list):
            raise InputError(
                "must be a list of {worker, rate?}",
                file=file,
                field=f"worker_assignment.{op}",
                value=items,
                has_value=True,
            )
        assignment[str(op)] = [
            _share(it, f"worker_assignment.{op}[{i}]", file) for i, it in enumerate(items)
        ]
    return assignment


MAX_BATCH = 4096
"""Largest batch size a plan may name (profiles list sizes up to this too)."""


def _share(item: Any, where: str, file: str) -> WorkerShare:
    """A worker name, or ``{"worker": name, "rate": req/s, "batch": size}`` (rate and batch
    optional; batch defaults to 1)."""
    if isinstance(item, str):
        item = {"worker": item}
    if not isinstance(item, Mapping) or not isinstance(item.get("worker"), str):
        raise InputError(
            'must be {"worker": name, "rate": req/s (optional), "batch": size (optional)}',
            file=file,
            field=where,
            value=item,
            has_value=True,
        )
    rate = item.get("rate")
    if rate is not None:
        rate = _rate(rate, file, f"{where}.rate", allow_zero=True)
    batch = item.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InputError(
            f"must be a whole number of requests from 1 to {MAX_BATCH}",
            file=file,
            field=f"{where}.batch",
            value=batch,
            has_value=True,
        )
    return WorkerShare(item["worker"], rate, batch)


def _routing(raw: Any, file: str) -> list[Flow]:
    if not isinstance(raw, list):
        raise InputError("must be a list of flows", file=file, field="routing", value=raw)
    return [_flow(fl, f"routing[{i}]", file) for i, fl in enumerate(raw)]


def _flow(fl: Any, where: str, file: str) -> Flow:
    """``{"edge": [u, v], "from": sender, "to": receiver, "rate": req/s}``."""
    if not isinstance(fl, Mapping):
        raise InputError("must be an object", file=file, field=where, value=fl)
    edge = fl.get("edge")
    if not isinstance(edge, list) or len(edge) != 2 or not all(isinstance(x, str) for x in edge):
        raise InputError(
            "must be [from_operator, to_operator]",
            file=file,
            field=f"{where}.edge",
            value=edge,
            has_value=True,
        )
    for key in ("from", "to"):
        if not isinstance(fl.get(key), str):
            raise InputError(
                "must be a worker or source name",
                file=file,
                field=f"{where}.{key}",
                value=fl.get(key),
                has_value=True,
            )
    return Flow(
        (edge[0], edge[1]),
        fl["from"],
        fl["to"],
        _rate(fl.get("rate"), file, f"{where}.rate", allow_zero=True),
    )


def _rate(value: Any, file: str, field_name: str, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(
            "must be a number (req/s)", file=file, field=field_name, value=value, has_value=True
        )
    v = float(value)
    if math.isnan(v) or math.isinf(v) or v < 0 or (v == 0 and not allow_zero):
        raise InputError(
            "must be a finite, non-negative rate (req/s)", file=file, field=field_name, value=value
        )
    return v


def load_plan(path: str | Path) -> Plan:
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise InputError("no such file", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc}", file=str(p)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(p)) from None
    return plan_from_dict(data, str(p))
