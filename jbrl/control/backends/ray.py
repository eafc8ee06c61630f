"""The Ray Serve backend: the workflow really runs, with the real PyTorch models.

Layout (see :mod:`jbrl.control.backends.ray_app`):

* every scenario worker is a Ray **custom resource** ``jbrl-worker/<name>`` (or the resource a
  placement file maps it to: :mod:`jbrl.control.backends.placement`). Started locally (the
  default), one Ray node provides every worker's resource, so one machine emulates the
  scenario's workers; on a real cluster (``address=``) each node provides the resources of the
  workers it is, and Ray places every replica on its worker's node;
* every (operator, variant, worker) of the plan is a Serve application with one replica of
  :class:`OperatorReplica` that asks for one unit of its worker's resource and serves batches
  of at most the plan's ``batch`` for that worker (``@serve.batch``; a batch-only change
  redeploys and reloads nothing);
* :class:`WorkflowIngress` runs each request through the DAG and routes each operator's calls to
  its workers by the plan's rates;
* a load generator (a thread in this process) replays the trace: Poisson arrivals at
  ``rate_scale x`` the trace's request rate, in requests per wall-clock second, at trace time
  ``clock.now()``. Reported rates are divided by ``rate_scale`` again, so the controller sees
  scenario units.

Applying a plan is make-before-break: new replicas are deployed and become healthy, the ingress
switches its routes, the calls still running on replicas that leave are drained, then those
replicas are deleted. Each worker resource has two units so a worker can load its new model
beside the old one during the switch (in steady state a worker hosts one replica). Requests
are never dropped by a reconfiguration; a call that fails (a crashed replica) is retried on
another worker of the operator, and the generator retries a request whose ingress call failed.

Ray and Serve are started (loopback only) or joined by :class:`.ray_session.RaySession`.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from jbrl.control.backends.base import (
    ApplyResult,
    Backend,
    BackendReport,
    Clock,
    PlanDiff,
    calls_per_request,
    worker_slots,
)
from jbrl.control.backends.placement import Placement, replica_nodes
from jbrl.control.backends.ray_models import resolve_models
from jbrl.control.backends.ray_session import RaySession
from jbrl.errors import InputError, Param
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace, constant_trace
from jbrl.sim.base import IntervalMetrics, empty_drops, latency_summary

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle, DeploymentResponse

INGRESS_APP = "jbrl-ingress"
REQUEST_TRIES = 3  # the generator's attempts per request


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        return False
    return True


def require_ray() -> None:
    if not ray_available():
        raise InputError(
            "the ray backend needs Ray Serve, which is not installed: install jbrl with its "
            "'ray' extra (it pulls in Ray Serve 2.9 or newer)",
            field=Param.BACKEND,
            value="ray",
        )


def app_name(operator: str, variant: str, worker: str) -> str:
    raw = f"jbrl-{operator}-{variant}-{worker}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


class RayBackend(Backend):
    """The workflow on Ray Serve. See the module docstring.

    Args:
        scenario, clock, trace: as for :class:`~jbrl.control.backends.sim.SimBackend`.
        rate_scale: real requests per wall second per trace req/s.
        models: model overrides (see :func:`resolve_models`).
        run_dir: where the ``ray-session`` link goes (and the session files stay).
        address: an existing Ray cluster to join (default: start a local one).
        num_cpus: CPUs the local Ray node reports (default: the machine's).
        threads: torch threads per replica.
        keep_session: keep Ray's session directory after :meth:`close`.
        seed: root seed of the load generator and the ingress's routing.
        placement: the Ray resource of each worker (default: ``jbrl-worker/<name>``).
    """

    kind = "ray"

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        trace: Trace | None = None,
        *,
        rate_scale: float = 1.0,
        models: Mapping[str, str] | None = None,
        run_dir: Path | None = None,
        address: str | None = None,
        num_cpus: int | None = None,
        threads: int = 1,
        keep_session: bool = True,
        seed: int | None = 0,
        drain_timeout_s: float = 60.0,
        placement: Placement | None = None,
    ) -> None:
        require_ray()
        super().__init__(scenario, clock)
        if not (rate_scale > 0 and math.isfinite(rate_scale)):
            raise InputError(
                "must be a positive number", field=Param.RAY_RATE_SCALE, value=rate_scale
            )
        tr = trace if trace is not None else constant_trace(scenario, math.inf)
        tr = tr.for_scenario(scenario)
        self.trace = tr
        self.rate_scale = float(rate_scale)
        self.models = resolve_models(scenario, models)
        self.run_dir = run_dir
        self.address = address
        self.threads = threads
        self.placement = placement or Placement.convention(w.name for w in scenario.workers)
        self.session = RaySession(
            self.placement,
            address=address,
            num_cpus=num_cpus,
            run_dir=run_dir,
            keep_session=keep_session,
        )
        self.drain_timeout_s = drain_timeout_s
        ss = np.random.SeedSequence(seed)
        s_gen, s_ingress = ss.spawn(2)
        self._rng = np.random.default_rng(s_gen)
        self._ingress_seed = int(s_ingress.generate_state(1)[0])
        self.apps: dict[str, tuple[str, str, str]] = {}  # app -> (operator, variant, worker)
        self.plan: Plan | None = None
        self._routes_version = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._gen_thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ingress: DeploymentHandle[Any] | None = None
        self._down: dict[str, float] = {}  # worker -> trace time it comes back (emulated crash)
        # counters (generator side)
        self._arrived = 0
        self._completed = 0
        self._failed = 0
        self._in_flight = 0
        self._request_retries = 0
        self._iv: dict[str, Any] = self._new_interval(clock.now())
        self._last_stats: dict[str, Any] = {}
        self.apply_log: list[dict[str, Any]] = []
        self._status_at = 0.0
        self._unhealthy: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    @property
    def session_dir(self) -> str | None:
        """Ray's session directory (None until a local cluster has started)."""
        return self.session.session_dir

    def start(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> None:
        from ray import serve

        from jbrl.control.backends.ray_app import INGRESS_DEPLOYMENT

        self.session.start()
        self._ingress = serve.run(
            INGRESS_DEPLOYMENT.options(ray_actor_options={"num_cpus": 0}).bind(
                self._dag(), self._ingress_seed
            ),
            name=INGRESS_APP,
            route_prefix=None,
            blocking=False,
        )
        self._deploy(plan, design_rates)
        self._iv = self._new_interval(self.clock.now())
        self._gen_thread = threading.Thread(
            target=self._run_generator, name="jbrl-loadgen", daemon=True
        )
        self._gen_thread.start()

    def _dag(self) -> dict[str, Any]:
        """The workflow as the ingress runs it (see :class:`~.ray_app.WorkflowIngress`)."""
        sc = self.scenario
        return {
            "order": list(sc.topo_order),
            "inputs": {
                op: [e.source for e in sc.in_edges[op] if e.source in sc.operator_map]
                for op in sc.topo_order
            },
            "sinks": list(sc.sinks),
            "calls": calls_per_request(sc),
        }

    def replica_nodes(self) -> dict[str, str]:
        """The Ray node id of every running replica (Serve application name -> node id)."""
        with self._lock:
            apps = list(self.apps)
        return replica_nodes(apps)

    def close(self) -> None:
        self._stop.set()
        if self._gen_thread is not None:
            self._gen_thread.join(timeout=120)  # in-flight requests finish first
        self.session.close()

    def _ingress_call(self, method: str, *args: Any, timeout_s: float) -> Any:
        """Call ``method`` of the ingress and wait for its result."""
        assert self._ingress is not None, "the backend has not started"
        # a plain (not streaming) call: the response is a DeploymentResponse
        response = cast("DeploymentResponse[Any]", getattr(self._ingress, method).remote(*args))
        return response.result(timeout_s=timeout_s)

    # ------------------------------------------------------------------ deployments

    def _weights(
        self, plan: Plan, rates: Mapping[str, float] | None
    ) -> dict[str, dict[str, float]]:
        """operator -> worker -> share of its traffic (the plan's rates, or fill order)."""
        rep = evaluate_plan(self.scenario, plan, rates)
        out: dict[str, dict[str, float]] = {}
        for op, load in rep.operators.items():
            ws = {w.worker: w.rate for w in load.workers}
            if sum(ws.values()) <= 0:
                ws = {w.worker: max(w.capacity, 1e-9) for w in load.workers}
            out[op] = ws
        return out

    def _deploy(self, plan: Plan, rates: Mapping[str, float] | None) -> dict[str, Any]:
        """Make-before-break switch to ``plan``; returns timings (wall seconds)."""
        from ray import serve

        from jbrl.control.backends.ray_app import REPLICA_DEPLOYMENT

        t0 = time.perf_counter()
        want: dict[str, tuple[str, str, str]] = {}
        for w, (op, var) in worker_slots(self.scenario, plan).items():
            want[app_name(op, var, w)] = (op, var, w)
        add = {a: s for a, s in want.items() if a not in self.apps}
        remove = [a for a in self.apps if a not in want]
        tau = self.scenario.batch_wait_timeout_s  # each replica's batch fill timeout
        # 1. make: deploy the new replicas and wait until they are healthy
        if add:
            serve.run_many(
                [
                    serve.RunTarget(
                        REPLICA_DEPLOYMENT.options(
                            ray_actor_options={
                                "num_cpus": 0,
                                "resources": {self.placement.resource(w): 1.0},
                            },
                            max_ongoing_requests=self._max_ongoing(op, var, w, plan),
                        ).bind(op, var, w, self.models[(op, var)], self.threads, 0, tau),
                        name=a,
                        route_prefix=None,
                    )
                    for a, (op, var, w) in add.items()
                ],
                wait_for_applications_running=True,
            )
        t1 = time.perf_counter()
        # 2. switch the routes
        routes: dict[str, list[tuple[str, float]]] = {}
        for op, ws in self._weights(plan, rates).items():
            var = plan.model_assignment.get(op) or self.scenario.operator_map[op].variants[0]
            routes[op] = [(app_name(op, var, w), share) for w, share in ws.items()]
        batches = {a: plan.batch_of(w) for a, (_, _, w) in want.items() if plan.batch_of(w) != 1}
        self._routes_version += 1
        self._ingress_call("set_routes", routes, self._routes_version, batches, timeout_s=60)
        with self._lock:
            self.apps = want
            self.plan = plan
        t2 = time.perf_counter()
        # 3. drain the calls still running on leaving replicas, 4. break: delete them
        left: dict[str, int] = {}
        if remove:
            left = self._ingress_call(
                "drain", remove, self.drain_timeout_s, timeout_s=self.drain_timeout_s + 30
            )
            with ThreadPoolExecutor(max_workers=min(8, len(remove))) as ex:
                list(ex.map(lambda a: serve.delete(a, _blocking=True), remove))
        t3 = time.perf_counter()
        info = {
            "deployed": sorted(add),
            "removed": sorted(remove),
            "deploy_s": t1 - t0,
            "switch_s": t2 - t1,
            "drain_delete_s": t3 - t2,
            "total_s": t3 - t0,
            "not_drained": left,
        }
        self.apply_log.append(info)
        return info

    def _max_ongoing(self, op: str, var: str, worker: str, plan: Plan) -> int:
        """Calls a replica accepts at once: room for two of its largest batches (the plan's or
        any its profile lists: a later batch change needs no redeployment)."""
        prof = self.scenario.profile(op, var, worker)
        return max(8, 2 * max(*(prof.batch_sizes if prof else (1,)), plan.batch_of(worker)))

    def apply(
        self, plan: Plan, diff: PlanDiff, design_rates: Mapping[str, float] | None = None
    ) -> ApplyResult:
        t = time.perf_counter()
        info = self._deploy(plan, design_rates)
        return ApplyResult(
            reconfigured=[c.worker for c in diff.changes],
            wall_s=time.perf_counter() - t,
            details=info,
        )

    # ------------------------------------------------------------------ faults

    def crash_worker(self, worker: str, down_for_s: float = math.inf) -> list[str]:
        """Emulate a node failure: kill the replicas on ``worker`` (Serve would restart them on
        the same machine, so the worker is also reported down for ``down_for_s`` trace
        seconds). Returns the killed replica actors' names."""
        import ray

        with self._lock:
            self._down[worker] = self.clock.now() + down_for_s
            apps = [a for a, (_, _, w) in self.apps.items() if w == worker]
        killed = []
        for actor in ray.util.list_named_actors(all_namespaces=True):
            name = actor["name"] if isinstance(actor, dict) else actor
            ns = actor.get("namespace") if isinstance(actor, dict) else None
            if any(f"{a}#" in name for a in apps) and "REPLICA" in name.upper():
                try:
                    ray.kill(ray.get_actor(name, namespace=ns), no_restart=True)
                    killed.append(name)
                except ValueError:
                    pass
        return killed

    def down_workers(self) -> frozenset[str]:
        """Emulated crashes, plus workers whose replica Serve reports unhealthy."""
        now = self.clock.now()
        with self._lock:
            down = {w for w, until in self._down.items() if now < until}
            apps = dict(self.apps)
        if apps and time.monotonic() - self._status_at > 1.0:
            self._status_at = time.monotonic()
            try:
                import ray
                from ray import serve

                if not ray.is_initialized():  # never let serve.status() start a cluster
                    return frozenset(down | self._unhealthy)
                status = serve.status().applications
                self._unhealthy = {
                    apps[a][2]
                    for a, st in status.items()
                    if a in apps
                    and str(getattr(st.status, "value", st.status))
                    in ("UNHEALTHY", "DEPLOY_FAILED")
                }
            except Exception:  # Serve busy or shutting down: keep the last answer
                pass
        return frozenset(down | self._unhealthy)

    # ------------------------------------------------------------------ load generator

    def _run_generator(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._generate())
        finally:
            loop.close()

    async def _generate(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        rid = 0
        next_wall = time.monotonic()
        while not self._stop.is_set():
            rate = float(self.trace.array_at(self.clock.now()).max()) * self.rate_scale
            if rate <= 0:
                await asyncio.sleep(0.05)
                next_wall = time.monotonic()
                continue
            next_wall += float(self._rng.exponential(1.0 / rate))
            delay = next_wall - time.monotonic()
            if delay > 0:
                await asyncio.sleep(min(delay, 0.5))
                if time.monotonic() < next_wall:  # re-read the rate after long waits
                    next_wall = time.monotonic()
                    continue
            rid += 1
            with self._lock:
                self._arrived += 1
                self._in_flight += 1
                self._iv["arrivals"] += 1
            task = asyncio.ensure_future(self._one(rid))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:  # let every accepted request finish
            await asyncio.wait(pending, timeout=120)

    async def _one(self, rid: int) -> None:
        t0 = time.perf_counter()
        ok = False
        for attempt in range(REQUEST_TRIES):
            try:
                if self._ingress is None:
                    raise RuntimeError("the backend has not started")
                await cast("DeploymentResponse[Any]", self._ingress.remote(rid))
                ok = True
                break
            except Exception:
                with self._lock:
                    self._request_retries += 1
                await asyncio.sleep(0.2 * (attempt + 1))
        ms = (time.perf_counter() - t0) * 1000.0
        with self._lock:
            self._in_flight -= 1
            iv = self._iv
            if ok:
                self._completed += 1
                iv["completed"] += 1
                iv["latencies"].append(ms)
                iv["within"] += ms <= (self.scenario.slo.latency_ms or math.inf)
            else:
                self._failed += 1
                iv["failed"] += 1

    def _new_interval(self, t: float) -> dict[str, Any]:
        return {
            "t": t,
            "wall": time.monotonic(),
            "arrivals": 0,
            "completed": 0,
            "within": 0,
            "failed": 0,
            "latencies": [],
            "in_flight_start": self._in_flight,
        }

    # ------------------------------------------------------------------ metrics

    def recent_rates(self) -> dict[str, float] | None:
        with self._lock:
            iv = self._iv
            wall = time.monotonic() - iv["wall"]
            if wall < 1.0 or iv["arrivals"] < 5:
                return None
            r = iv["arrivals"] / wall / self.rate_scale
        return {s.name: r for s in self.scenario.sources}

    def ingress_stats(self) -> dict[str, Any]:
        """The ingress's counters (per app: calls in flight, served, busy ms, failed calls;
        retries, requests, completed, failed); the last answer when it does not reply."""
        try:
            stats: dict[str, Any] = self._ingress_call("stats", timeout_s=30)
            return stats
        except Exception:
            return self._last_stats

    def metrics(self) -> BackendReport:
        stats = self.ingress_stats()
        now = self.clock.now()
        with self._lock:
            iv, self._iv = self._iv, self._new_interval(now)
            prev, self._last_stats = self._last_stats, stats
            plan = self.plan
            apps = dict(self.apps)
            in_flight = self._in_flight
            counts = self.counts()  # the same moment as the interval: they agree
        wall = max(1e-9, time.monotonic() - iv["wall"])
        duration = max(1e-9, now - iv["t"])
        req_rate = iv["arrivals"] / wall / self.rate_scale
        rates = {s.name: req_rate for s in self.scenario.sources}
        util: dict[str, float] = {}
        queue: dict[str, float] = {}
        for a, (_, _, w) in apps.items():
            busy = stats.get("busy_ms", {}).get(a, 0.0) - prev.get("busy_ms", {}).get(a, 0.0)
            util[w] = busy / 1000.0 / wall
            queue[w] = float(stats.get("in_flight", {}).get(a, 0))
        op_util: dict[str, float] = {}
        backlog: dict[str, float] = {}
        for op, _, w in apps.values():
            op_util[op] = op_util.get(op, 0.0) + util[w]
            backlog[op] = backlog.get(op, 0.0) + queue[w]
        counts_per_op = {op: sum(1 for (o, _, _) in apps.values() if o == op) for op in op_util}
        op_util = {op: u / counts_per_op[op] for op, u in op_util.items()}
        compute = comm = 0.0
        if plan is not None:
            rep = evaluate_plan(self.scenario, plan, rates)
            compute = rep.compute_cost * duration / 3600.0
            comm = rep.communication_cost * duration / 3600.0
        m = IntervalMetrics(
            t_start=iv["t"],
            duration=duration,
            arrivals=float(iv["arrivals"]),
            completed=float(iv["completed"]),
            within_slo=math.nan if self.scenario.slo.latency_ms is None else float(iv["within"]),
            dropped={**empty_drops(), "failed": float(iv["failed"])},
            in_flight_start=float(iv["in_flight_start"]),
            in_flight=float(in_flight),
            latency_ms=latency_summary(iv["latencies"]),
            utilization=util,
            wait_ms={},
            operator_backlog=backlog,
            operator_utilization=op_util,
            compute_dollars=compute,
            communication_dollars=comm,
            rates=rates,
        )
        return BackendReport(m, queue, self.down_workers(), counts)

    def counts(self) -> dict[str, Any]:
        with self._lock:
            dropped = {**{k: 0 for k in empty_drops()}, "failed": self._failed}
            return {
                "arrived": self._arrived,
                "completed": self._completed,
                "dropped": dropped,
                "in_flight": self._in_flight,
                "lost": self._arrived - self._completed - self._failed - self._in_flight,
                "request_retries": self._request_retries,
                "call_retries": self._last_stats.get("retries", 0),
            }

    def run_info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "address": self.address or "local (127.0.0.1)",
            "placement": self.placement.to_dict(),
            "session_dir": self.session_dir,
            "rate_scale": self.rate_scale,
            "models": {f"{o}:{v}": m for (o, v), m in self.models.items()},
            "threads": self.threads,
            "speedup": self.clock.speedup,
        }
