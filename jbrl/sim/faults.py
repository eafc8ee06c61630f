"""Fault schedules: worker crashes and link slow-downs, from a YAML or JSON file.

```yaml
faults:
  - {kind: crash, worker: cloud-gpu-1, at: 600, until: 900}   # until: recovery (optional)
  - {kind: slow_link, from: edge, to: cloud, at: 300, until: 1200, factor: 4.0}
```

A crashed worker serves nothing: the request it was serving is dropped (reason ``crash``), its
queue moves to the operator's other available workers (or waits for the recovery if there are
none), and new traffic avoids it. A slow link multiplies the transfer time (size / bandwidth +
latency) of every message sent on it while the slow-down lasts. Link ends are worker, source or
tier names (or tier indices), matched like the scenario's links.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jbrl.documents import load_document
from jbrl.errors import InputError
from jbrl.scenario.model import Scenario


@dataclass(frozen=True)
class WorkerCrash:
    worker: str
    at: float
    until: float = math.inf


@dataclass(frozen=True)
class LinkSlowdown:
    source: str
    target: str
    at: float
    until: float = math.inf
    factor: float = 1.0


@dataclass(frozen=True)
class FaultSchedule:
    crashes: tuple[WorkerCrash, ...] = ()
    slowdowns: tuple[LinkSlowdown, ...] = ()
    file: str | None = None

    def __bool__(self) -> bool:
        return bool(self.crashes or self.slowdowns)

    def validate(self, scenario: Scenario) -> FaultSchedule:
        """Raise an InputError naming the fault whose worker or link end is unknown."""
        for i, c in enumerate(self.crashes):
            if c.worker not in scenario.worker_map:
                raise InputError(
                    "unknown worker", file=self.file, field=f"crash[{i}].worker", value=c.worker
                )
        ends = set(scenario.tiers) | set(scenario.worker_map) | set(scenario.source_map)
        ends |= {str(i) for i in range(len(scenario.tiers))}
        for i, s in enumerate(self.slowdowns):
            for label, end in (("from", s.source), ("to", s.target)):
                if end not in ends:
                    raise InputError(
                        "not a worker, source or tier of the scenario",
                        file=self.file,
                        field=f"slow_link[{i}].{label}",
                        value=end,
                    )
        return self

    def change_times(self) -> list[float]:
        """Every time at which a fault starts or ends (sorted, finite)."""
        ts: set[float] = set()
        for c in self.crashes:
            ts.add(c.at)
            if math.isfinite(c.until):
                ts.add(c.until)
        for s in self.slowdowns:
            ts.add(s.at)
            if math.isfinite(s.until):
                ts.add(s.until)
        return sorted(ts)

    def down_at(self, t: float) -> frozenset[str]:
        """Workers crashed at time ``t``."""
        return frozenset(c.worker for c in self.crashes if c.at <= t < c.until)

    def link_factor(self, scenario: Scenario, sender: str, receiver: str, t: float) -> float:
        """Slow-down factor on the path sender -> receiver at time ``t`` (product of matches)."""
        f = 1.0
        for s in self.slowdowns:
            if (
                s.at <= t < s.until
                and _matches(scenario, s.source, sender)
                and _matches(scenario, s.target, receiver)
            ):
                f *= s.factor
        return f


def _matches(scenario: Scenario, spec: str, end: str) -> bool:
    if spec == end:
        return True
    tier = scenario.endpoint_tier(end)
    return spec in (scenario.tiers[tier], str(tier))


NO_FAULTS = FaultSchedule()


def faults_from_data(data: Any, file: str = "<faults>") -> FaultSchedule:
    """Parse ``{faults: [...]}`` or a bare list of faults."""
    if isinstance(data, Mapping):
        extra = set(data) - {"faults"}
        if extra:
            raise InputError(
                "unknown key (a fault file has one key, 'faults')",
                file=file,
                field=sorted(map(str, extra))[0],
            )
        data = data.get("faults", [])
    if data is None:
        data = []
    if not isinstance(data, list):
        raise InputError("must be a list of faults", file=file, field="faults", value=data)
    crashes: list[WorkerCrash] = []
    slows: list[LinkSlowdown] = []
    for i, item in enumerate(data):
        where = f"faults[{i}]"
        if not isinstance(item, Mapping):
            raise InputError("must be a mapping", file=file, field=where, value=item)
        kind = item.get("kind")
        at = _time(item.get("at"), file, f"{where}.at", required=True)
        until = _time(item.get("until"), file, f"{where}.until", required=False)
        if until <= at:
            raise InputError("must be after 'at'", file=file, field=f"{where}.until", value=until)
        if kind == "crash":
            _only(item, {"kind", "worker", "at", "until"}, file, where)
            worker = item.get("worker")
            if not isinstance(worker, str) or not worker:
                raise InputError(
                    "must be a worker name", file=file, field=f"{where}.worker", value=worker
                )
            crashes.append(WorkerCrash(worker, at, until))
        elif kind == "slow_link":
            _only(item, {"kind", "from", "to", "at", "until", "factor"}, file, where)
            ends = []
            for key in ("from", "to"):
                v = item.get(key)
                if isinstance(v, int) and not isinstance(v, bool):
                    v = str(v)
                if not isinstance(v, str) or not v:
                    raise InputError(
                        "must be a worker, source or tier name",
                        file=file,
                        field=f"{where}.{key}",
                        value=v,
                        has_value=True,
                    )
                ends.append(v)
            factor = item.get("factor", 1.0)
            if (
                isinstance(factor, bool)
                or not isinstance(factor, (int, float))
                or not math.isfinite(factor)
                or factor < 1.0
            ):
                raise InputError(
                    "must be a number >= 1 (transfer time multiplier)",
                    file=file,
                    field=f"{where}.factor",
                    value=factor,
                )
            slows.append(LinkSlowdown(ends[0], ends[1], at, until, float(factor)))
        else:
            raise InputError(
                "unknown fault kind (kinds: crash, slow_link)",
                file=file,
                field=f"{where}.kind",
                value=kind,
                has_value=True,
            )
    return FaultSchedule(tuple(crashes), tuple(slows), file)


def _only(item: Mapping[str, Any], keys: set[str], file: str, where: str) -> None:
    extra = set(item) - keys
    if extra:
        raise InputError(
            f"unknown key (allowed: {', '.join(sorted(keys))})",
            file=file,
            field=f"{where}.{sorted(map(str, extra))[0]}",
        )


def _time(value: Any, file: str, field: str, *, required: bool) -> float:
    if value is None:
        if required:
            raise InputError("missing (seconds from the start)", file=file, field=field)
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(
            "must be a number of seconds", file=file, field=field, value=value, has_value=True
        )
    if value < 0:
        raise InputError("must not be negative", file=file, field=field, value=value)
    return float(value)


def load_faults(path: str | Path, scenario: Scenario | None = None) -> FaultSchedule:
    p = Path(path)
    sched = faults_from_data(load_document(p), str(p))
    return sched.validate(scenario) if scenario is not None else sched
