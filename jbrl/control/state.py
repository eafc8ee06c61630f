"""The controller's state file: the last applied plan, written atomically after every change.

```json
{"version": 1, "scenario": "vqa", "time_s": 1260.0, "seq": 21, "final": false,
 "plan": {"model_assignment": {...}, "worker_assignment": {...}},
 "counters": {"decisions": 21, "fallbacks": 2, ...}, "backend_counts": {...}, "updated": "..."}
```

Restarting the controller with the same ``--state`` file resumes from ``plan`` (checked again
against the scenario and the current load) at trace time ``time_s``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jbrl.errors import InputError
from jbrl.planning.plan import Plan, plan_from_dict

STATE_VERSION = 1


@dataclass
class ControllerState:
    plan: Plan
    time_s: float = 0.0
    seq: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    scenario: str | None = None
    final: bool = False


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"version": STATE_VERSION, **data, "updated": datetime.now(UTC).isoformat()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh, indent=2, default=_default)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def read_state(path: Path) -> ControllerState | None:
    """The saved state, None when the file does not exist; InputError when it is unreadable."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the state file: {exc}", file=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(path)) from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise InputError(
            f"not a jbrl controller state file (expected version {STATE_VERSION})",
            file=str(path),
            field="version",
            value=data.get("version") if isinstance(data, dict) else data,
        )
    plan = plan_from_dict(data.get("plan"), f"{path} (plan)")
    t = data.get("time_s", 0.0)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
        raise InputError("must be a non-negative number", file=str(path), field="time_s", value=t)
    counters = data.get("counters") or {}
    return ControllerState(
        plan=plan,
        time_s=float(t),
        seq=int(data.get("seq", 0)),
        counters={k: int(v) for k, v in counters.items() if isinstance(v, (int, float))},
        scenario=data.get("scenario"),
        final=bool(data.get("final", False)),
    )
