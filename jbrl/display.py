"""How figures are written for people: one function per kind of quantity.

Every table and summary line of the command line (and the evaluation report) writes its
numbers through these, so the same figure reads the same everywhere: a plan's 1.15075 $/hour is
``1.1508`` in ``jbrl plan``, ``jbrl cost`` and ``jbrl demo`` alike (Python's ``format``, round
half to even on the binary value). Missing or non-finite values print as ``-``.
"""

from __future__ import annotations

import math

#: decimals of a $/hour or $ figure
DOLLAR_DECIMALS = 4


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def dollars(x: float | None, decimals: int = DOLLAR_DECIMALS) -> str:
    """A dollar amount or a $/hour rate: ``1.1508``."""
    return format(x, f".{decimals}f") if _ok(x) else "-"


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage: ``0.99512`` -> ``99.51%``."""
    return f"{100 * x:.{digits}f}%" if _ok(x) else "-"  # type: ignore[operator]


def ms(x: float | None, digits: int = 0) -> str:
    """Milliseconds: ``123``."""
    return format(x, f".{digits}f") if _ok(x) else "-"


def num(x: float | None, spec: str) -> str:
    """Any other figure with a format spec (``.3f``, ``g``, ...)."""
    return format(x, spec) if _ok(x) else "-"
