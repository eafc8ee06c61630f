"""Strict JSON from jbrl's figures: standard JSON has no NaN or infinity.

The one home of the conversion used by plan files, simulation and evaluation results, the
controller's logs and state: :func:`finite_or_none` for one number, :func:`jsonable` for a
nested structure.
"""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(x: float | None) -> float | None:
    """``float(x)``, or None when ``x`` is None, NaN or infinite."""
    return None if x is None or not math.isfinite(x) else float(x)


def jsonable(obj: Any) -> Any:
    """``obj`` with inf/nan replaced by None, tuples and sets by lists, numpy values by Python
    ones and mapping keys by strings (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    return obj
