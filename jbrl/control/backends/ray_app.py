"""Ray Serve deployments of the workflow (imported by Ray's worker processes).

* :class:`OperatorReplica` — one operator variant on one scenario worker: it builds the real
  PyTorch model of :mod:`jbrl.profiling.models` (random weights, nothing downloaded) and runs one
  forward pass per request on the profiler's synthetic input. Its replica asks for one unit of
  the worker's custom resource, so Ray places it on the node that provides that worker.
* :class:`WorkflowIngress` — receives a request, calls the operators in DAG order (an operator
  with several inputs starts when all of them are done: VQA joins the image and the speech
  branch; an operator with fan-out is called that many times per request), picks each
  operator's worker by the plan's weights, and retries a call on another worker when one fails
  (a crashed or removed replica), so no accepted request is lost. It keeps per-deployment
  counters (in flight, served, busy time) that the backend turns into metrics, and swaps its
  routing table atomically when the controller applies a plan.

Their Serve deployments (same names as the classes) are :data:`REPLICA_DEPLOYMENT` and
:data:`INGRESS_DEPLOYMENT`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import numpy as np
from ray import serve
from ray.serve.deployment import Deployment

from jbrl.control.backends.base import fanout_count

CALL_DEADLINE_S = 300.0  # an operator call is retried (other workers, backoff) this long


class OperatorReplica:
    """Serves one (operator, variant) on one scenario worker with the real model."""

    def __init__(
        self,
        operator: str,
        variant: str,
        worker: str,
        model: str,
        threads: int = 1,
        seed: int = 0,
    ) -> None:
        import torch

        from jbrl.profiling.models import resolve_model

        torch.set_num_threads(threads)
        spec = resolve_model(model)
        if spec is None:
            raise ValueError(f"unknown model {model!r}")
        spec.preload()
        self.model = spec.build("cpu")
        self.call = spec.make_call(self.model, 1, "cpu", seed)
        self.call()  # warm-up, so the first request does not pay for lazy initialisation
        self.operator, self.variant, self.worker = operator, variant, worker
        self._lock = asyncio.Lock()

    def node_id(self) -> str:
        """The Ray node this replica runs on (where its worker's resource is)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    async def __call__(self, request_id: int, inputs: list[Any]) -> dict[str, Any]:
        async with self._lock:  # one request at a time: a worker is one server
            t = time.perf_counter()
            out = await asyncio.to_thread(self.call)
            service_ms = (time.perf_counter() - t) * 1000.0
        first = out[0]
        arr = first.numpy() if hasattr(first, "numpy") else np.asarray(first)
        return {
            "worker": self.worker,
            "variant": self.variant,
            "service_ms": service_ms,
            "output": arr,  # the real output travels to the next operator
        }


class WorkflowIngress:
    """Runs one workflow request through the DAG. ``dag`` is ``{"order": [op, ...],
    "inputs": {op: [operator inputs]}, "sinks": [op, ...], "calls": {op: calls per request}}``.

    An operator with fan-out (``calls`` other than 1, e.g. a re-identification model run once
    per detected object) is called that many times per request on average, concurrently
    (:func:`~jbrl.control.backends.base.fanout_count`); its successors wait for all the calls."""

    def __init__(self, dag: dict[str, Any], seed: int = 0) -> None:
        self.order: list[str] = list(dag["order"])
        self.inputs: dict[str, list[str]] = {k: list(v) for k, v in dag["inputs"].items()}
        self.sinks: list[str] = list(dag["sinks"])
        self.calls: dict[str, float] = {op: float(c) for op, c in dag.get("calls", {}).items()}
        self.routes: dict[str, list[tuple[str, float]]] = {}
        self.handles: dict[str, Any] = {}
        self.version = -1
        self.rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.in_flight: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.busy_ms: Counter[str] = Counter()
        self.failed_calls: Counter[str] = Counter()
        self.retries = 0
        self.requests = 0
        self.completed = 0
        self.failed = 0

    # ------------------------------------------------------------------ control

    async def set_routes(self, routes: dict[str, list[tuple[str, float]]], version: int) -> int:
        """Swap the routing table: ``{operator: [(app name, weight), ...]}``."""
        for apps in routes.values():
            for app, _ in apps:
                if app not in self.handles:
                    self.handles[app] = serve.get_app_handle(app)
        self.routes = {op: [(a, float(w)) for a, w in apps] for op, apps in routes.items()}
        self.version = version
        return version

    async def drain(self, apps: list[str], timeout_s: float) -> dict[str, int]:
        """Wait until no call to ``apps`` is in flight (they are already out of the routes)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and any(self.in_flight[a] > 0 for a in apps):
            await asyncio.sleep(0.02)
        left = {a: self.in_flight[a] for a in apps if self.in_flight[a] > 0}
        for a in apps:
            if a not in left:
                self.handles.pop(a, None)
        return left

    async def stats(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "in_flight": dict(self.in_flight),
            "served": dict(self.served),
            "busy_ms": dict(self.busy_ms),
            "failed_calls": dict(self.failed_calls),
            "retries": self.retries,
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
        }

    # ------------------------------------------------------------------ requests

    async def __call__(self, request_id: int) -> dict[str, Any]:
        self.requests += 1
        t0 = time.perf_counter()
        tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}

        async def run(op: str) -> dict[str, Any]:
            ups = [await tasks[u] for u in self.inputs.get(op, []) if u in tasks]  # the join
            args = [u["output"] for u in ups if u["output"] is not None]
            k = fanout_count(self.calls.get(op, 1.0), float(self.rng.random()))
            if k == 1:
                return await self._call(op, request_id, args)
            if k == 0:  # a fractional ratio: no call of this operator for this request
                return {"worker": None, "variant": None, "service_ms": 0.0, "output": None}
            outs = await asyncio.gather(*(self._call(op, request_id, args) for _ in range(k)))
            return {**outs[0], "calls": k}

        for op in self.order:
            tasks[op] = asyncio.ensure_future(run(op))
        try:
            done = {op: await tasks[op] for op in self.order}
        except Exception:
            for t in tasks.values():
                t.cancel()
            self.failed += 1
            raise
        self.completed += 1
        return {
            "request_id": request_id,
            "latency_ms": (time.perf_counter() - t0) * 1000.0,
            "path": {op: [r["worker"], r["variant"]] for op, r in done.items()},
        }

    def _pick(self, op: str, avoid: set[str]) -> str | None:
        apps = [(a, w) for a, w in self.routes.get(op, []) if a not in avoid]
        if not apps:
            apps = list(self.routes.get(op, []))
        if not apps:
            return None
        weights = np.array([max(w, 0.0) for _, w in apps], dtype=float)
        if weights.sum() <= 0:
            weights = np.ones(len(apps))
        i = int(self.rng.choice(len(apps), p=weights / weights.sum()))
        return apps[i][0]

    async def _call(self, op: str, request_id: int, inputs: list[Any]) -> dict[str, Any]:
        """Call ``op`` on one of its workers; on failure try another (or the same once it is
        back), until :data:`CALL_DEADLINE_S` passes."""
        avoid: set[str] = set()
        end = time.monotonic() + CALL_DEADLINE_S
        last: Exception | None = None
        tries = 0
        while time.monotonic() < end:
            app = self._pick(op, avoid)
            if app is None:  # the operator has no worker right now: wait for the controller
                await asyncio.sleep(0.05)
                continue
            tries += 1
            handle = self.handles[app]
            self.in_flight[app] += 1
            try:
                res = await handle.remote(request_id, inputs)
            except Exception as exc:  # replica died or was removed: try another worker
                last = exc
                self.failed_calls[app] += 1
                self.retries += 1
                avoid.add(app)
                await asyncio.sleep(min(1.0, 0.05 * 2 ** min(tries, 5)))
                continue
            finally:
                self.in_flight[app] -= 1
            self.served[app] += 1
            self.busy_ms[app] += res["service_ms"]
            return res
        raise RuntimeError(f"{op}: no worker served the call in {CALL_DEADLINE_S} s: {last!r}")


# --------------------------------------------------------------------------- deployments
# The Serve deployments of the two classes (named after them). Built by calling
# ``serve.deployment`` rather than as class decorators, so the names keep their types: a
# decorated class would still look like a class to a type checker.

REPLICA_DEPLOYMENT: Deployment = serve.deployment(
    num_replicas=1,
    max_ongoing_requests=8,
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=60,
    health_check_period_s=2,
)(OperatorReplica)

INGRESS_DEPLOYMENT: Deployment = serve.deployment(
    num_replicas=1, max_ongoing_requests=100_000, health_check_period_s=2
)(WorkflowIngress)
