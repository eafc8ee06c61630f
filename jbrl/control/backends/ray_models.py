"""Which PyTorch model (a :mod:`jbrl.profiling.models` name) serves each (operator, variant)
of a scenario on the Ray backend: user overrides first, then a name match."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from jbrl.errors import InputError, Param
from jbrl.scenario.model import Scenario

if TYPE_CHECKING:
    from jbrl.profiling.models import ModelSpec


def resolve_models(
    scenario: Scenario, overrides: Mapping[str, str] | None = None
) -> dict[tuple[str, str], str]:
    """Model (a :mod:`jbrl.profiling.models` name) for every (operator, variant).

    ``overrides`` keys are ``operator:variant``, ``variant`` or ``operator``. Without one: the
    variant's own name (or alias), ``<operator>-<variant>``, the operator's name, or the first
    model registered for the operator, preferring a model registered for this operator.
    """
    from jbrl.profiling.models import MODELS, resolve_model

    ov = dict(overrides or {})
    out: dict[tuple[str, str], str] = {}
    for o in scenario.operators:
        for v in o.variants:
            name = ov.get(f"{o.name}:{v}") or ov.get(v) or ov.get(o.name)
            if name is not None:
                spec = resolve_model(name)
                if spec is None:
                    raise InputError(
                        f"unknown model (models: {', '.join(MODELS)})",
                        field=Param.MODEL,
                        value=f"{o.name}:{v}={name}",
                    )
            else:
                spec = _default_model(o.name, v)
            if spec is None:
                raise InputError(
                    f"no model for operator {o.name!r} variant {v!r}; map one as "
                    f"{o.name}:{v}=MODEL (models: {', '.join(MODELS)})",
                    field=Param.MODEL,
                )
            out[(o.name, v)] = spec.name
    return out


def _default_model(operator: str, variant: str) -> ModelSpec | None:
    """The model of (operator, variant) without an override (see :func:`resolve_models`)."""
    from jbrl.profiling.models import MODELS, resolve_model

    named = [
        resolve_model(variant),
        resolve_model(f"{operator.lower()}-{variant}"),
        resolve_model(operator.lower()),
    ]
    found = [m for m in named if m is not None]
    found += [m for m in MODELS.values() if m.operator == operator]
    # a model registered for this operator wins (ReId's resnet50 is reid-resnet50)
    return next((m for m in found if m.operator == operator), found[0] if found else None)
