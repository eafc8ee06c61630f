"""User-facing errors.

Two kinds, mapped to exit codes by the command line:

* :class:`InputError` (exit 2): a malformed file or argument. The message names the file, the
  field and the offending value in one paragraph.
* :class:`InfeasibleError` (exit 3): a well-formed request that cannot be met (an accuracy or
  rate beyond reach). It carries a ``reason`` with numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INFEASIBLE = 3


class Param(StrEnum):
    """Arguments of library calls that a user gives as command-line options.

    Library code names a bad argument with a member (``InputError(..., field=Param.SIMULATOR)``)
    instead of a flag: its message says ``field 'sim'`` to a Python caller, and the command line
    maps each member to its flag (``field '--sim'``, :data:`jbrl.cli.common.FLAGS`). The value is
    the library's argument name.
    """

    SCENARIO = "scenario"
    SIMULATOR = "sim"
    POLICY = "policy"
    POLICIES = "policies"
    TRACE = "trace"
    TRACE_KIND = "kind"
    TRACE_PARAM = "param"
    STEP = "step"
    LOAD_TIME = "load_time"
    INTERVAL = "interval"
    SEEDS = "seeds"
    DURATION = "duration"
    SHAPE = "shape"
    OPERATORS = "operators"
    VARIANTS = "variants"
    WORKERS = "workers"
    TIERS = "tiers"
    MAX_COMBINATIONS = "max_combinations"
    WORKER_TYPES = "worker_types"
    LATENCY_MS = "latency_ms"
    BACKEND = "backend"
    MODEL = "model"
    MODELS = "models"
    RAY_RATE_SCALE = "ray_rate_scale"
    DEVICE = "device"
    BATCH_SIZES = "batch_sizes"
    THREADS = "threads"
    REPEATS = "repeats"
    WARMUP = "warmup"
    OPERATOR_MAP = "operator_map"
    RATE = "rate"
    RAY = "ray"
    PROCESSES = "processes"
    RAY_ADDRESS = "ray_address"
    PLACEMENT = "placement"
    FUNCTION = "function"
    APP = "app"
    SOURCE = "source"
    SCALE = "scale"
    CLOCK = "clock"


class JbrlError(Exception):
    """Base class of the errors jbrl reports to users without a traceback."""

    exit_code = 1


class InputError(JbrlError):
    """Bad input: names the file, the field and the value."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | Param | None = None,
        value: Any = None,
        has_value: bool | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.value = value
        self.has_value = has_value if has_value is not None else value is not None
        self.reason = message
        super().__init__(self.render())

    def with_file(self, file: str) -> InputError:
        """The same error, naming ``file``."""
        return InputError(
            self.reason, file=file, field=self.field, value=self.value, has_value=self.has_value
        )

    def render(self, flags: Mapping[Param, str] | None = None) -> str:
        """The one-paragraph message; ``flags`` names :class:`Param` fields as options."""
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.field:
            name = self.field
            if isinstance(name, Param):
                name = (flags or {}).get(name, name.value)
            parts.append(f"field '{name}'")
        if self.has_value:
            shown = repr(self.value)
            if len(shown) > 120:
                shown = shown[:117] + "..."
            parts.append(f"value {shown}")
        where = ", ".join(parts)
        return f"{where}: {self.reason}" if where else self.reason


class InfeasibleError(JbrlError):
    """A well-formed request that cannot be met; ``details`` holds the numbers."""

    exit_code = EXIT_INFEASIBLE

    def __init__(self, reason: str, details: dict[str, Any] | None = None) -> None:
        self.reason = reason
        self.details = details or {}
        super().__init__(reason)
