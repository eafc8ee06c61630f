"""A small declarative model builder over highspy (HiGHS).

Variables and named rows are collected in Python lists and passed to HiGHS in one
``passModel`` call (column-wise sparse matrix), which is much faster than adding rows one by
one for models with thousands of columns. Names are kept LP-file safe so ``write(path)`` gives a
readable ``.lp`` / ``.mps`` for debugging.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import highspy
import numpy as np

INF = highspy.kHighsInf
OptionValue = bool | int | float | str
"""The value of a HiGHS option (``Highs.setOptionValue``)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")
_banner_done = False


def new_highs() -> highspy.Highs:
    """A silent :class:`highspy.Highs`.

    HiGHS prints a copyright banner on C-level stdout when the first instance is built, which
    would corrupt ``--json`` output; that first construction runs with stdout sent to devnull.
    """
    global _banner_done
    if _banner_done:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:  # no usable stdout: nothing to protect
            saved = None
        if saved is None:
            h = highspy.Highs()
        else:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                h = highspy.Highs()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
        _banner_done = True
    h.setOptionValue("output_flag", False)
    return h


_scheduler_threads: int | None = None
"""The ``threads`` option of the last run in this process (0: HiGHS's choice)."""


def run_highs(h: highspy.Highs, threads: int | None = None) -> None:
    """``h.run()``, raising on a HiGHS error instead of returning a status that reads as
    "infeasible".

    HiGHS starts one global task scheduler per process with the first run's thread count and
    refuses a later run asking for another count (an error status, no solve). A change of
    ``threads`` between runs therefore resets the scheduler first.
    """
    global _scheduler_threads
    want = int(threads or 0)
    if _scheduler_threads is not None and want != _scheduler_threads:
        highspy.Highs.resetGlobalScheduler(True)
    _scheduler_threads = want
    if h.run() == highspy.HighsStatus.kError:
        raise RuntimeError(f"HiGHS failed to solve (threads={want}); see HiGHS's log")


@functools.lru_cache(maxsize=65536)
def _safe_part(part: str) -> str:
    return _UNSAFE.sub("_", part)


def safe_name(*parts: object) -> str:
    """An LP-format-safe identifier built from ``parts`` (joined by '_')."""
    text = "_".join([_safe_part(str(p)) for p in parts])
    if not text or text[0].isdigit() or text[0] == ".":
        text = "n_" + text
    return text[:250]


@dataclass
class LinearModel:
    """Columns (variables) and rows (constraints) of a MILP, minimised."""

    col_cost: list[float] = field(default_factory=list)
    col_lower: list[float] = field(default_factory=list)
    col_upper: list[float] = field(default_factory=list)
    col_integer: list[bool] = field(default_factory=list)
    col_names: list[str] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    row_names: list[str] = field(default_factory=list)
    _rows: list[int] = field(default_factory=list)
    _cols: list[int] = field(default_factory=list)
    _vals: list[float] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    @property
    def num_cols(self) -> int:
        return len(self.col_cost)

    @property
    def num_rows(self) -> int:
        return len(self.row_lower)

    @property
    def num_integer(self) -> int:
        return sum(self.col_integer)

    def _unique(self, name: str) -> str:
        base, i = name, 1
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def add_var(
        self,
        name: str,
        lb: float = 0.0,
        ub: float = INF,
        cost: float = 0.0,
        integer: bool = False,
    ) -> int:
        self.col_cost.append(float(cost))
        self.col_lower.append(float(lb))
        self.col_upper.append(float(ub))
        self.col_integer.append(bool(integer))
        self.col_names.append(self._unique(name))
        return len(self.col_cost) - 1

    def add_cost(self, col: int, cost: float) -> None:
        self.col_cost[col] += float(cost)

    def add_row(
        self,
        name: str,
        terms: Iterable[tuple[int, float]],
        lb: float = -INF,
        ub: float = INF,
    ) -> int:
        r = len(self.row_lower)
        for c, v in terms:
            if v != 0.0:
                self._rows.append(r)
                self._cols.append(c)
                self._vals.append(float(v))
        self.row_lower.append(float(lb))
        self.row_upper.append(float(ub))
        self.row_names.append(self._unique(name))
        return r

    def to_highs(self, options: Mapping[str, OptionValue] | None = None) -> highspy.Highs:
        """A silent :class:`highspy.Highs` holding the model, with ``options`` set."""
        lp = highspy.HighsLp()
        n, m = self.num_cols, self.num_rows
        lp.num_col_ = n
        lp.num_row_ = m
        lp.col_cost_ = np.asarray(self.col_cost, dtype=np.float64)
        lp.col_lower_ = np.asarray(self.col_lower, dtype=np.float64)
        lp.col_upper_ = np.asarray(self.col_upper, dtype=np.float64)
        lp.row_lower_ = np.asarray(self.row_lower, dtype=np.float64)
        lp.row_upper_ = np.asarray(self.row_upper, dtype=np.float64)
        rows = np.asarray(self._rows, dtype=np.int64)
        cols = np.asarray(self._cols, dtype=np.int64)
        vals = np.asarray(self._vals, dtype=np.float64)
        order = np.lexsort((rows, cols))
        rows, cols, vals = rows[order], cols[order], vals[order]
        start = np.zeros(n + 1, dtype=np.int64)
        np.add.at(start, cols + 1, 1)
        start = np.cumsum(start)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = n
        lp.a_matrix_.num_row_ = m
        lp.a_matrix_.start_ = start.astype(np.int32)
        lp.a_matrix_.index_ = rows.astype(np.int32)
        lp.a_matrix_.value_ = vals
        if any(self.col_integer):
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                for i in self.col_integer
            ]
        lp.col_names_ = list(self.col_names)
        lp.row_names_ = list(self.row_names)
        h = new_highs()
        for key, value in (options or {}).items():
            h.setOptionValue(key, value)
        h.passModel(lp)
        return h
