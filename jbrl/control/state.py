"""The controller's state file: the last applied plan, written atomically after every decision.

```json
{"version": 1, "scenario": "vqa", "time_s": 1260.0, "seq": 21, "final": false,
 "plan": {"model_assignment": {...}, "worker_assignment": {...}},
 "counters": {"decisions": 21, "fallbacks": 2, ...}, "backend_counts": {...}, "updated": "..."}
```

Restarting the controller with the same ``--state`` file resumes from ``plan`` (checked again
against the scenario and the current load) at trace time ``time_s``: the trace time of the last
applied decision (a final state: how far the backend has served), so a restart after a crash
replays no decision and skips no trace time.

Writes are serialised (one lock per :class:`StateStore`), each goes to a temp file with a name
of its own in the same folder (fsync, rename, fsync of the folder), so a kill at any moment
leaves either the previous or the new state, never a torn one; temp files a killed process left
behind are removed at start. A store also holds an exclusive lock on ``.NAME.lock`` beside the
file while it is open, so two controllers cannot share one state file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jbrl import limits
from jbrl.documents import load_json
from jbrl.errors import InputError
from jbrl.planning.plan import Plan, plan_from_dict

STATE_VERSION = 1
STATE_KEYS = {
    "version",
    "scenario",
    "time_s",
    "seq",
    "final",
    "policy",
    "backend",
    "plan",
    "counters",
    "backend_counts",
    "updated",
}


@dataclass
class ControllerState:
    plan: Plan
    time_s: float = 0.0
    seq: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    scenario: str | None = None
    final: bool = False


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically: a temp file with a unique name in the
    same folder, fsync, rename over ``path``, fsync of the folder. Callers that may write from
    several threads serialise through a :class:`StateStore`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"version": STATE_VERSION, **data, "updated": datetime.now(UTC).isoformat()}
    text = json.dumps(body, indent=2, default=_default, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def stale_temp_files(path: Path) -> list[Path]:
    """Temp files of ``path``'s writers (``.NAME.*.tmp``) in its folder."""
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{path.name}.*.tmp") if p.is_file())


class StateStore:
    """The state file of one controller: serialised atomic writes, its lock, its clean-up.

    Opening the store checks that the file can be written (a folder that cannot be created, a
    path that is not a regular file, a read-only folder: :class:`InputError`), takes the lock
    (another live controller on the same file: :class:`InputError`) and removes the temp files
    of earlier writers that were killed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None
        file = str(self.path)
        if self.path.exists() and not self.path.is_file():
            raise InputError("not a regular file", file=file)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(
                self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644
            )
        except OSError as exc:
            raise InputError(f"cannot write the state file here: {exc}", file=file) from None
        self._take_lock()
        self.removed = [p for p in stale_temp_files(self.path) if _unlink(p)]

    def _take_lock(self) -> None:
        import fcntl

        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise InputError(
                "another controller is using this state file (its lock file is held)",
                file=str(self.path),
            ) from None

    def write(self, data: dict[str, Any]) -> None:
        """Write ``data`` atomically; concurrent callers are serialised."""
        with self._lock:
            write_state(self.path, data)

    def close(self) -> None:
        """Release the lock (the state file stays)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _unlink(p: Path) -> bool:
    try:
        p.unlink()
    except OSError:
        return False
    return True


def read_state(path: Path) -> ControllerState | None:
    """The saved state, None when the file does not exist; InputError when it is unreadable or
    any field is malformed (a NaN or huge ``time_s``, a ``seq`` that is not a count, ...)."""
    if not path.exists():
        return None
    data = load_json(path)
    file = str(path)
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise InputError(
            f"not a jbrl controller state file (expected version {STATE_VERSION})",
            file=file,
            field="version",
            value=data.get("version") if isinstance(data, dict) else data,
        )
    for key in data:
        if key not in STATE_KEYS:
            raise InputError(
                f"unknown key (known: {', '.join(sorted(STATE_KEYS))})", file=file, field=key
            )
    plan = plan_from_dict(data.get("plan"), f"{path} (plan)")
    return ControllerState(
        plan=plan,
        time_s=_time(data.get("time_s", 0.0), file),
        seq=_count(data.get("seq", 0), file, "seq"),
        counters=_counters(data.get("counters") or {}, file),
        scenario=_optional_str(data.get("scenario"), file, "scenario"),
        final=_bool(data.get("final", False), file, "final"),
    )


def _time(t: Any, file: str) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t >= 0):
        raise InputError(
            "must be a finite number of seconds >= 0",
            file=file,
            field="time_s",
            value=t,
            has_value=True,
        )
    limits.check("trace_s", t, file=file, field="time_s", what="the trace time")
    return float(t)


def _count(v: Any, file: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(
            "must be a whole number >= 0", file=file, field=where, value=v, has_value=True
        )
    return v


def _counters(v: Any, file: str) -> dict[str, int]:
    if not isinstance(v, dict):
        raise InputError("must map names to counts", file=file, field="counters", value=v)
    return {str(k): _count(n, file, f"counters.{k}") for k, n in v.items()}


def _optional_str(v: Any, file: str, where: str) -> str | None:
    if v is not None and not isinstance(v, str):
        raise InputError("must be a name", file=file, field=where, value=v)
    return v


def _bool(v: Any, file: str, where: str) -> bool:
    if not isinstance(v, bool):
        raise InputError("must be true or false", file=file, field=where, value=v, has_value=True)
    return v
