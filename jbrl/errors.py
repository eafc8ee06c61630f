"""User-facing errors.

Two kinds, mapped to exit codes by the command line:

* :class:`InputError` (exit 2): a malformed file or argument. The message names the file, the
  field and the offending value in one paragraph.
* :class:`InfeasibleError` (exit 3): a well-formed request that cannot be met (an accuracy or
  rate beyond reach). It carries a ``reason`` with numbers.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INFEASIBLE = 3


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
        field: str | None = None,
        value: Any = None,
        has_value: bool | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.value = value
        self.has_value = has_value if has_value is not None else value is not None
        self.reason = message
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.field:
            parts.append(f"field '{self.field}'")
        if self.has_value:
            shown = repr(self.value)
            if len(shown) > 120:
                shown = shown[:117] + "..."
            parts.append(f"value {shown}")
        where = ", ".join(parts)
        return f"{where}: {self.reason}" if where else self.reason

    def with_file(self, file: str) -> InputError:
        """Return a copy that names ``file`` (used when a loader knows the path, a parser not)."""
        if self.file:
            return self
        return InputError(
            self.reason, file=file, field=self.field, value=self.value, has_value=self.has_value
        )


class InfeasibleError(JbrlError):
    """A well-formed request that cannot be met; ``details`` holds the numbers."""

    exit_code = EXIT_INFEASIBLE

    def __init__(self, reason: str, details: dict[str, Any] | None = None) -> None:
        self.reason = reason
        self.details = details or {}
        super().__init__(reason)
