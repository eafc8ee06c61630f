"""The controller's HTTP API on FastAPI and uvicorn: ``/healthz``, ``/plan``, ``/metrics``.

* :mod:`.server` — :class:`ApiServer` (uvicorn in a thread, request deadlines, limits);
* :mod:`.guards` — host, origin and bearer-token checks in front of every endpoint;
* :mod:`.app` — the endpoints (FastAPI), body limits, the OpenAPI schema;
* :mod:`.metrics` — the controller's metrics through ``prometheus_client``.
"""

from jbrl.control.api.app import health, override_response
from jbrl.control.api.guards import is_loopback, token_problem
from jbrl.control.api.metrics import render_metrics
from jbrl.control.api.server import ApiConfig, ApiServer

__all__ = [
    "ApiConfig",
    "ApiServer",
    "health",
    "is_loopback",
    "override_response",
    "render_metrics",
    "token_problem",
]
