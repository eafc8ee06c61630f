"""Decision log: one JSON line per decision, and the same numbers as TensorBoard scalars.

Files in the log directory: ``decisions.jsonl`` (every decision, with the metrics it was based
on, the plan, the difference applied and timings), ``run.json`` (the resolved configuration),
and TensorBoard event files (namespaced keys ``control/…``, ``load/…``, ``backend/…``; open with
``tensorboard --logdir DIR``). TensorBoard needs torch (the ``rl`` extra); without it only the
JSON files are written.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from jbrl.jsonable import jsonable


class DecisionLog:
    """Appends decisions to ``decisions.jsonl`` and scalars to TensorBoard (both optional)."""

    def __init__(self, log_dir: Path | None, tensorboard: bool = True) -> None:
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._fh = None
        self._tb: Any = None
        self.tensorboard_error: str | None = None
        if log_dir is None:
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        self._fh = open(log_dir / "decisions.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(log_dir))
            except Exception as exc:  # torch/tensorboard missing: JSON lines only
                self.tensorboard_error = f"{type(exc).__name__}: {exc}"

    def write_run(self, info: dict[str, Any]) -> None:
        if self.log_dir is not None:
            (self.log_dir / "run.json").write_text(
                json.dumps(jsonable(info), indent=2) + "\n", "utf-8"
            )
        if self._tb is not None:
            self._tb.add_text(
                "run/config", "```\n" + json.dumps(jsonable(info), indent=2) + "\n```"
            )

    def decision(self, record: dict[str, Any], scalars: dict[str, float], step: int) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.write(json.dumps(jsonable(record), separators=(",", ":")) + "\n")
                self._fh.flush()
            if self._tb is not None:
                for key, value in scalars.items():
                    if value is not None and math.isfinite(value):
                        self._tb.add_scalar(key, value, step)
                self._tb.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if self._tb is not None:
                self._tb.close()
                self._tb = None
