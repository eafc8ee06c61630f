"""The shapes of the API's requests and responses, for its OpenAPI schema (``/openapi.json``).

These document the JSON the endpoints exchange; the plan itself is parsed and checked by
:func:`jbrl.planning.plan.plan_from_dict` (which refuses unknown keys), not by these models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class WorkerShareDoc(BaseModel):
    worker: str
    rate: float | None = Field(None, description="req/s (optional: filled in list order)")
    batch: int | None = Field(None, ge=1, description="batch size (optional)")


class FlowDoc(BaseModel):
    edge: list[str] = Field(min_length=2, max_length=2)
    from_: str = Field(alias="from")
    to: str
    rate: float


class PlanDoc(BaseModel):
    """Plan JSON (ARCHITECTURE.md, "Plan and cost semantics")."""

    model_assignment: dict[str, str] = Field(default_factory=dict)
    worker_assignment: dict[str, list[WorkerShareDoc | str]]
    routing: list[FlowDoc] | None = None


class OverrideRequest(BaseModel):
    """An operator's plan, held for ``hold_intervals`` decisions (a bare plan JSON is accepted
    too, held for one)."""

    plan: PlanDoc
    hold_intervals: int = Field(1, ge=1)


class PlanResponse(PlanDoc):
    seq: int | None = None
    source: str | None = None
    time_s: float | None = None


class LastDecision(BaseModel):
    seq: int
    time_s: float
    source: str
    age_s: float


class Health(BaseModel):
    status: str = Field(description="ok | degraded | stopping | starting")
    backend: str | None = None
    policy: str | None = None
    time_s: float | None = None
    last_decision: LastDecision | None = None
    down_workers: list[str] = Field(default_factory=list)


class OverrideResponse(_Doc):
    """An applied override: its decision ``seq``, how long it is held, what it changed."""

    applied: bool
    seq: int
    hold_intervals: int
    diff: dict[str, Any]
    apply_s: float


class Error(BaseModel):
    error: str
    reasons: list[str] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "bad host header, malformed or rejected input"},
    401: {"model": Error, "description": "missing or wrong bearer token"},
    403: {"model": Error, "description": "cross-site request from an origin not allowed"},
    431: {"model": Error, "description": "the headers are larger than the limit"},
    503: {"model": Error, "description": "the controller is starting or stopping"},
}
POST_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    408: {"model": Error, "description": "the body did not arrive in time"},
    413: {"model": Error, "description": "the body is larger than the limit"},
    415: {"model": Error, "description": "the body is not application/json"},
}
