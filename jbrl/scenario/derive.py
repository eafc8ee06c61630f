"""Scenarios derived from another: the same workflow and infrastructure with one thing changed."""

from __future__ import annotations

import math

from jbrl.errors import InputError, Param
from jbrl.scenario.model import Scenario


def with_load_time(
    scenario: Scenario, seconds: float | None, *, field: str | Param = Param.LOAD_TIME
) -> Scenario:
    """``scenario`` with every model load time forced to ``seconds`` (None: ``scenario``
    itself), validated again. ``field`` names the argument in the error for a bad value."""
    if seconds is None:
        return scenario
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InputError("must be a finite number of seconds >= 0", field=field, value=seconds)
    data = scenario.model_dump(by_alias=True)
    data["default_load_s"] = float(seconds)
    data["profiles"] = [{**p, "load_s": float(seconds)} for p in data["profiles"]]
    return Scenario.model_validate(data)
