"""Deployment layer: the online controller, its backends and its HTTP API.

* :class:`~jbrl.control.controller.Controller` — the control loop with the safety fallback
  (options: :mod:`~jbrl.control.config`; the parts of a decision as types:
  :mod:`~jbrl.control.decision`; its snapshot, summary and log records:
  :mod:`~jbrl.control.views`);
* :class:`~jbrl.control.backends.sim.SimBackend` — the discrete-event simulator in wall-clock
  (or accelerated) time; :class:`~jbrl.control.backends.ray.RayBackend` — the workflow on Ray
  Serve with real PyTorch models (needs the ``ray`` extra; imported lazily);
* :class:`~jbrl.control.api.server.ApiServer` — ``/healthz``, ``/plan``, ``/metrics`` (FastAPI
  on uvicorn, behind host, origin and token checks).
"""

from jbrl.control.api import ApiConfig, ApiServer, is_loopback, render_metrics, token_problem
from jbrl.control.backends.base import (
    ApplyResult,
    Backend,
    BackendReport,
    Clock,
    PlanDiff,
    WorkerChange,
    diff_plans,
)
from jbrl.control.backends.sim import SimBackend
from jbrl.control.config import ControllerConfig
from jbrl.control.controller import Controller
from jbrl.control.decision import Decision, OverrideOutcome, OverrideResult, PolicyFailure
from jbrl.control.policies import FallbackPolicy, resolve_policy
from jbrl.control.safety import FallbackPlanner, Problem, check_plan
from jbrl.control.state import ControllerState, read_state, write_state
from jbrl.control.views import ControllerSnapshot

__all__ = [
    "ApiConfig",
    "ApiServer",
    "ApplyResult",
    "Backend",
    "BackendReport",
    "Clock",
    "Controller",
    "ControllerConfig",
    "ControllerSnapshot",
    "ControllerState",
    "Decision",
    "FallbackPlanner",
    "FallbackPolicy",
    "OverrideOutcome",
    "OverrideResult",
    "PlanDiff",
    "PolicyFailure",
    "Problem",
    "SimBackend",
    "WorkerChange",
    "check_plan",
    "diff_plans",
    "is_loopback",
    "read_state",
    "render_metrics",
    "resolve_policy",
    "token_problem",
    "write_state",
]
