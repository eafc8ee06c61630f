"""The controller's HTTP endpoints (FastAPI), behind the guards of :mod:`.guards`.

=================  ==========================================================================
``GET /``          the status page (:mod:`.status_page`: HTML without data, so no token is
                   needed for it; its script fetches the next with the token)
``GET /status.json``  what the status page shows: plan per tier, load vs capacity, SLO, $/h
``GET /healthz``   ``{"status": "ok" | "degraded" | "stopping" | "starting", ...}`` (degraded:
                   a worker of the running plan is down, or the last decision kept a failing
                   plan or could not be applied)
``GET /plan``      the running plan (plan JSON of ARCHITECTURE.md) plus ``seq``, ``source``
``GET /metrics``   Prometheus text format (:mod:`.metrics`; OpenMetrics on request)
``POST /plan``     an operator's override: a plan JSON, or ``{"plan": {...},
                   "hold_intervals": n}``; checked like a policy's plan, then applied (200) or
                   rejected (400, ``{"error": ..., "reasons": [...]}``)
``GET /openapi.json``  this API's OpenAPI schema
=================  ==========================================================================

Until the controller has deployed its first plan every endpoint but the schema and the page
answers 503 with
``Retry-After``. ``POST`` takes only ``application/json`` (415 otherwise, so no HTML form or
``text/plain`` request of a browser can change the plan), at most ``max_body_bytes`` (413),
arriving within ``body_timeout_s`` (408); a body that does not parse (bad JSON, nested deeper
than the limit, a 5,000-digit number, NaN) is 400 with the reason. Blocking work (checking and
applying a plan, rendering metrics) runs in a bounded thread pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool

import jbrl
from jbrl.control.api.metrics import controller_registry
from jbrl.control.api.schema import (
    ERRORS,
    POST_ERRORS,
    Health,
    OverrideRequest,
    OverrideResponse,
    PlanResponse,
)
from jbrl.control.api.status_page import STATUS_CSP, STATUS_HTML, status_data
from jbrl.control.decision import OverrideOutcome, OverrideResult
from jbrl.documents import parse_json
from jbrl.errors import InputError
from jbrl.jsonable import jsonable

if TYPE_CHECKING:
    from jbrl.control.api.server import ApiConfig
    from jbrl.control.controller import Controller

#: the HTTP status of each override outcome
OVERRIDE_STATUS: dict[OverrideOutcome, int] = {
    OverrideOutcome.APPLIED: 200,
    OverrideOutcome.BAD_HOLD: 400,
    OverrideOutcome.MALFORMED: 400,
    OverrideOutcome.REJECTED: 400,
}


def override_response(result: OverrideResult) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of an override's result."""
    return OVERRIDE_STATUS[result.outcome], result.to_dict()


class _Refused(Exception):
    """A request refused before it reached the controller: status, message, close or not."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _json(status: int, data: Any, **headers: str) -> JSONResponse:
    return JSONResponse(jsonable(data), status_code=status, headers=headers or None)


def health(c: Controller) -> dict[str, Any]:
    """The body of ``GET /healthz``."""
    down = c.backend.down_workers()
    snap = c.snapshot()
    last = snap.last_decision
    degraded = bool(down & snap.plan_workers) or (
        last is not None and last.source in ("keep", "apply_failed")
    )
    status = "stopping" if c.stopping else ("degraded" if degraded else "ok")
    now = c.clock.now()
    return {
        "status": status,
        "backend": c.backend.kind,
        "policy": c.policy_name,
        "time_s": now,
        "last_decision": None
        if last is None
        else {
            "seq": last.seq,
            "time_s": last.time_s,
            "source": last.source,
            "age_s": now - last.time_s,
        },
        "down_workers": sorted(down),
    }


def plan_body(c: Controller) -> dict[str, Any]:
    """The body of ``GET /plan`` (the controller has started)."""
    snap = c.snapshot()
    plan, last = snap.plan, snap.last_decision
    assert plan is not None
    body = plan.to_dict()
    body["seq"] = last.seq if last else None
    body["source"] = last.source if last else None
    body["time_s"] = last.time_s if last else None
    return body


def _starting() -> JSONResponse:
    return _json(503, {"error": "the controller is starting"}, **{"Retry-After": "1"})


async def read_json_body(request: Request, config: ApiConfig) -> Any:
    """The request's JSON body: ``application/json`` only, within the size and time limits,
    parsed within the document limits; :class:`_Refused` otherwise."""
    ctype = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise _Refused(415, f"send the body as application/json (got {ctype or 'no type'!r})")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > config.max_body_bytes):
        raise _Refused(413, f"the body must be at most {config.max_body_bytes} bytes")
    body = bytearray()
    deadline = time.monotonic() + config.body_timeout_s
    stream = request.stream().__aiter__()
    while True:
        left = deadline - time.monotonic()
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=max(left, 0.001))
        except StopAsyncIteration:
            break
        except TimeoutError:
            err = f"the body did not arrive within {config.body_timeout_s:g} s"
            raise _Refused(408, err) from None
        body += chunk
        if len(body) > config.max_body_bytes:
            raise _Refused(413, f"the body must be at most {config.max_body_bytes} bytes")
    if not body:
        raise _Refused(400, "send a JSON body")
    try:
        return await run_in_threadpool(parse_json, bytes(body), "<POST /plan>")
    except InputError as exc:
        raise _Refused(400, exc.render()) from None


def build_app(controller: Controller, config: ApiConfig) -> FastAPI:
    """The FastAPI application of ``controller`` (unguarded: :func:`.guards.guarded` wraps it)."""
    app = FastAPI(
        title="jbrl controller",
        version=jbrl.__version__,
        description="The online controller's API: health, the running plan, Prometheus "
        "metrics and operator overrides.",
        docs_url=None,  # no HTML pages that fetch scripts from elsewhere
        redoc_url=None,
    )
    registry = controller_registry(controller)

    def started() -> bool:
        return controller.snapshot().plan is not None

    @app.get("/", response_class=Response)
    async def get_page() -> Response:
        headers = {"Content-Security-Policy": STATUS_CSP, "X-Content-Type-Options": "nosniff"}
        return Response(STATUS_HTML, media_type="text/html; charset=utf-8", headers=headers)

    @app.get("/status.json", responses=ERRORS)
    async def get_status() -> Response:
        if not started():
            return _starting()
        return _json(200, await run_in_threadpool(status_data, controller))

    @app.get("/healthz", response_model=Health, responses=ERRORS)
    async def get_health() -> Response:
        if not started():
            return _json(503, {"status": "starting"}, **{"Retry-After": "1"})
        return _json(200, await run_in_threadpool(health, controller))

    @app.get("/plan", response_model=PlanResponse, responses=ERRORS)
    async def get_plan() -> Response:
        if not started():
            return _starting()
        return _json(200, await run_in_threadpool(plan_body, controller))

    @app.get("/metrics", response_class=Response, responses=ERRORS)
    async def get_metrics(request: Request) -> Response:
        if not started():
            return _starting()
        encoder, ctype = choose_encoder(request.headers.get("accept", ""))
        body = await run_in_threadpool(encoder, registry)
        return Response(body, media_type=None, headers={"Content-Type": ctype})

    @app.post(
        "/plan",
        response_model=OverrideResponse,
        responses=POST_ERRORS,
        openapi_extra={"requestBody": _request_body()},
    )
    async def post_plan(request: Request) -> Response:
        try:
            data = await read_json_body(request, config)
        except _Refused as exc:  # a slow body: close; else h11 drains what is left
            extra = {"Connection": "close"} if exc.status == 408 else {}
            return _json(exc.status, {"error": exc.error}, **extra)
        if not started():
            return _starting()
        if controller.stopping:
            return _json(503, {"error": "the controller is stopping"})
        try:
            result = await run_in_threadpool(controller.override, data)
        except Exception as exc:  # the backend failed to apply: say so, keep serving
            err = f"applying the plan failed: {type(exc).__name__}: {exc}"
            return _json(500, {"error": err})
        code, body = override_response(result)
        return _json(code, body)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        where = "GET /, /status.json, /healthz, /plan, /metrics, /openapi.json; POST /plan"
        return _json(404, {"error": f"no such endpoint {request.url.path!r} ({where})"})

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json(405, {"error": f"{request.method} is not allowed on {request.url.path!r}"})

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _request_body() -> dict[str, Any]:
    schema = {
        "oneOf": [
            {"$ref": "#/components/schemas/OverrideRequest"},
            {"$ref": "#/components/schemas/PlanDoc"},
        ]
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the request body's models (the endpoint reads the body itself,
    within the limits, so FastAPI does not see a body parameter to describe)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        doc = OverrideRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        comps.update(doc.pop("$defs", {}))
        comps["OverrideRequest"] = doc
        app.openapi_schema = json.loads(json.dumps(schema))
    return app.openapi_schema
