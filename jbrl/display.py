"""How figures are written for people: one function per kind of quantity.

Every table and summary line of the command line (and the evaluation report) writes its
numbers through these, so the same figure reads the same everywhere. Dollar figures round half
up in decimal after dropping float noise (12 significant digits): a plan's 1.15075 $/hour, which
one summation order gives as 1.1507499999999998 and another as 1.1507500000000002, is ``1.1508``
in ``jbrl plan``, ``jbrl cost`` and ``jbrl demo`` alike (plain ``format`` printed 1.1507 for the
first). Missing or non-finite values print as ``-``.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

#: decimals of a $/hour or $ figure
DOLLAR_DECIMALS = 4


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def dollars(x: float | None, decimals: int = DOLLAR_DECIMALS) -> str:
    """A dollar amount or a $/hour rate: ``1.1508`` (see the module docstring)."""
    if x is None or not math.isfinite(x):
        return "-"
    exact = Decimal(f"{x:.12g}").quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{exact:f}"


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage: ``0.99512`` -> ``99.51%``."""
    return f"{100 * x:.{digits}f}%" if _ok(x) else "-"  # type: ignore[operator]


def ms(x: float | None, digits: int = 0) -> str:
    """Milliseconds: ``123``."""
    return format(x, f".{digits}f") if _ok(x) else "-"


def num(x: float | None, spec: str) -> str:
    """Any other figure with a format spec (``.3f``, ``g``, ...)."""
    return format(x, spec) if _ok(x) else "-"
