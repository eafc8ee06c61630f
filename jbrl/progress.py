"""The one progress bar of jbrl's long phases: evaluation runs, the imitation warm start and its
DAgger rounds, long simulations.

It lives at the bottom layer (beside :mod:`jbrl.errors`) so that every layer may use it: the
agents may not import :mod:`jbrl.evaluation`, and the evaluation may not import the agents'
training code. PPO's own phase uses stable-baselines3's progress bar (``learn(progress_bar=
True)``), which shows the same columns.

A bar is a rich progress display on stderr (description, bar, done/total, elapsed time, ETA)
when ``enabled``, else a no-op with the same methods, so callers never branch::

    with ProgressBar(show, total=len(episodes), label="teacher episodes") as bar:
        for ep in episodes:
            ...
            bar.advance()
"""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A rich progress bar on stderr when ``enabled``, else a no-op with the same methods.

    Use as a context manager. :meth:`advance` counts units done (``done`` of ``total``: runs'
    control intervals, teacher episodes, fitting epochs, simulated seconds ...);
    :meth:`update` sets the count; :meth:`describe` names the work in progress, shown as
    ``"<label> <text>"``. ``unit`` is printed after the counts (``"12/40 episodes"``).
    """

    def __init__(
        self, enabled: bool, total: float, label: str = "evaluating", unit: str = ""
    ) -> None:
        self.enabled = enabled
        self.total = total
        self.label = label
        self.unit = unit
        self.done: float = 0
        self.description = label
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self._start()
        return self

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        unit = f" {self.unit}" if self.unit else ""
        # the figures first, the bar last and as wide as what is left: on an 80-column
        # terminal the ETA is never the part that is cut off
        keep = Column(no_wrap=True, min_width=7)  # never squeezed to "0:00:…"
        self._p = Progress(
            TextColumn(
                "[bold]{task.description}",
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=32),
            ),
            TextColumn("{task.completed:.0f}/{task.total:.0f}" + unit, table_column=keep),
            TimeElapsedColumn(table_column=keep),
            TextColumn("eta"),
            TimeRemainingColumn(table_column=keep),
            BarColumn(bar_width=None),
            console=Console(stderr=True),
            transient=True,
        )
        self._p.__enter__()
        self._task = self._p.add_task(self.description, total=self.total)

    def describe(self, text: str) -> None:
        """Show ``<label> <text>``."""
        self.description = f"{self.label} {text}" if self.label else text
        if self._p is not None:
            self._p.update(self._task, description=self.description)

    def advance(self, n: float = 1) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self._p is not None:
            self._p.advance(self._task, n)

    def update(self, done: float) -> None:
        """Set the units done to ``done``."""
        self.done = done
        if self._p is not None:
            self._p.update(self._task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(None, None, None)
            self._p = None
