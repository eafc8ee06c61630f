"""Ray Serve deployments of the workflow (imported by Ray's worker processes).

* :class:`OperatorReplica` — one operator variant on one scenario worker: it builds the real
  PyTorch model of :mod:`jbrl.profiling.models` (random weights, nothing downloaded) and runs one
  forward pass per batch of requests on the profiler's synthetic input of that batch size.
  Requests go through Ray Serve's dynamic batching (``@serve.batch``): at most the plan's batch
  size ``b`` per forward pass, waiting at most the scenario's ``batch_wait_timeout_s`` for a
  batch to fill (``b = 1``: one request at a time). The batch size travels with each call (the
  ingress's routing table carries it), and the replica applies a new one with the batch
  handler's ``set_max_batch_size``: a change of the batch size alone reloads nothing, and a
  replica that Serve restarts picks it up on its first call. (Serve's own in-place route,
  ``user_config`` + ``reconfigure()``, keeps a replica only while its deployment's code version
  stays; ``serve.run`` gives every imperative deployment a new random version (Ray 2.60,
  ``serve/_private/client.py``; ``version`` is no longer an option), so there it restarts the
  replica and reloads the model; only declarative config deploys keep it.) Its replica asks
  for one unit of the worker's custom resource, so Ray places it on the node that provides that
  worker.

  Ray's batching differs from the semantics the simulators and the latency model implement
  (ARCHITECTURE.md, "Latency and batching": a free worker takes up to ``b`` queued requests):
  Ray's loop forms the *next* batch while the current one runs (its first member starts the
  timeout at once), and with ``max_concurrent_batches=1`` that batch waits, its members
  already chosen, for the running one to finish; requests arriving meanwhile join the batch
  after it, even if it had room. At low load the two agree; near saturation Ray's batches
  can be smaller.
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
from collections.abc import Callable
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
        batch_wait_timeout_s: float = 0.0,
    ) -> None:
        import torch

        from jbrl.profiling.models import resolve_model

        torch.set_num_threads(threads)
        spec = resolve_model(model)
        if spec is None:
            raise ValueError(f"unknown model {model!r}")
        spec.preload()
        self.spec = spec
        self.seed = seed
        self.model = spec.build("cpu")
        self.calls: dict[int, Callable[[], list[Any]]] = {}
        self._call_of(1)()  # warm-up, so the first request does not pay for lazy initialisation
        self.operator, self.variant, self.worker = operator, variant, worker
        self.batch = 1
        self._configure(1, batch_wait_timeout_s)
        self._lock = asyncio.Lock()
        self.loaded_at = time.time()  # the model load: a batch change must not repeat it
        self.batch_sizes: Counter[int] = Counter()  # forward passes per batch size

    def _call_of(self, n: int) -> Callable[[], list[Any]]:
        """The forward pass on a batch of ``n`` synthetic inputs (built once per size)."""
        call = self.calls.get(n)
        if call is None:
            call = self.calls[n] = self.spec.make_call(self.model, n, "cpu", self.seed)
        return call

    async def __call__(self, request_id: int, inputs: list[Any], batch: int = 1) -> dict[str, Any]:
        """Serve one request in a batch of at most ``batch`` (the plan's batch size)."""
        if batch != self.batch:
            self.batch = int(batch)
            self._configure(self.batch)
        result: dict[str, Any] = await self._batched(request_id)
        return result

    def _configure(self, batch: int, timeout_s: float | None = None) -> None:
        """The batch handler's size (and fill timeout), with Ray's setters."""
        handler: Any = self._batched  # (typed by Ray as a plain coroutine function)
        handler.set_max_batch_size(batch)
        if timeout_s is not None:
            handler.set_batch_wait_timeout_s(timeout_s)

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def _batched(self, request_ids: list[int]) -> list[dict[str, Any]]:
        """One forward pass for a batch of requests (Ray Serve forms the batch)."""
        n = len(request_ids)
        call = self._call_of(n)
        async with self._lock:  # one batch at a time: a worker is one server
            t = time.perf_counter()
            out = await asyncio.to_thread(call)
            service_ms = (time.perf_counter() - t) * 1000.0
        self.batch_sizes[n] += 1
        first = out[0]
        arr = first.numpy() if hasattr(first, "numpy") else np.asarray(first)
        rows = [arr[i : i + 1] if arr.ndim and arr.shape[0] == n else arr for i in range(n)]
        return [
            {
                "worker": self.worker,
                "variant": self.variant,
                "service_ms": service_ms,  # the whole batch's
                "batch_size": n,
                "output": row,  # the real output travels to the next operator
            }
            for row in rows
        ]

    async def stats(self) -> dict[str, Any]:
        """Forward passes per batch size, the batch size in force and when the model loaded."""
        return {
            "batch_sizes": dict(self.batch_sizes),
            "batch": self.batch,
            "loaded_at": self.loaded_at,
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
        self.batches: dict[str, int] = {}  # app -> the plan's batch size (1 where absent)
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

    async def set_routes(
        self,
        routes: dict[str, list[tuple[str, float]]],
        version: int,
        batches: dict[str, int] | None = None,
    ) -> int:
        """Swap the routing table: ``{operator: [(app name, weight), ...]}``, and the batch
        size of each app (``{app: b}``, 1 where absent), which travels with every call."""
        for apps in routes.values():
            for app, _ in apps:
                if app not in self.handles:
                    self.handles[app] = serve.get_app_handle(app)
        self.routes = {op: [(a, float(w)) for a, w in apps] for op, apps in routes.items()}
        self.batches = dict(batches or {})
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
                res = await handle.remote(request_id, inputs, self.batches.get(app, 1))
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
            self.busy_ms[app] += res["service_ms"] / res.get("batch_size", 1)  # its share
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
