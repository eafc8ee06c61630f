"""Named factories resolved lazily: the planner registry (:mod:`jbrl.planning.base`) and the
policy registry (:mod:`jbrl.agents.policy`) both keep ``name -> factory``, where a factory is a
callable or a ``"module:attribute"`` path imported only when the name is first used (so that
listing the names does not import HiGHS or torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Factory = Callable[..., Any] | str


def resolve_factory(factory: Factory) -> Callable[..., Any]:
    """The callable of ``factory``, importing ``"module:attribute"`` on first use."""
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        resolved: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        return resolved
    return factory
