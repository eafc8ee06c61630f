"""The evaluation's progress bar: control intervals done out of all, on stderr (or nothing)."""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A rich progress bar on stderr when ``enabled``, else a no-op with the same methods.

    Use as a context manager; :meth:`advance` counts finished control intervals (``done`` of
    ``total``) and :meth:`describe` names the work in progress (``description``).
    """

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.done = 0
        self.description = "evaluating"
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._p.__enter__()
            self._task = self._p.add_task(self.description, total=self.total)
        return self

    def describe(self, text: str) -> None:
        """Show ``evaluating <text>``."""
        self.description = f"evaluating {text}"
        if self._p is not None:
            self._p.update(self._task, description=self.description)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more control intervals done."""
        self.done += n
        if self._p is not None:
            self._p.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(None, None, None)
