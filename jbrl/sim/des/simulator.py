"""The discrete-event simulator (simpy): the event loop over requests, tasks and workers
(the model is described in :mod:`jbrl.sim.des`)."""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import simpy

from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.sim.base import (
    IntervalMetrics,
    RateSchedule,
    SimConfig,
    Simulator,
    empty_drops,
    latency_summary,
    rate_pieces,
)
from jbrl.sim.compiled import CompiledPlan, Routing, load_changes
from jbrl.sim.des.arrivals import arrival_chunks
from jbrl.sim.des.batching import BatchServing
from jbrl.sim.des.model import (
    ACTIVE,
    DONE,
    DRAWS,
    DROPPED,
    QueueItem,
    Request,
    TaskGraph,
    Worker,
    build_task_graph,
    worker_figures,
)
from jbrl.sim.faults import FaultSchedule


class DesSimulator(BatchServing, Simulator):
    """Request-level simulator over simpy. ``chunk_s``: how far ahead the arrival pump routes."""

    kind = "des"

    def __init__(self, config: SimConfig | None = None, chunk_s: float = 0.5) -> None:
        super().__init__(config)
        self.chunk_s = chunk_s

    # ------------------------------------------------------------------ lifecycle

    def reset(
        self,
        scenario: Scenario,
        plan: Plan,
        seed: int | None = 0,
        *,
        design_rates: Mapping[str, float] | None = None,
        faults: FaultSchedule | None = None,
    ) -> None:
        self.scenario = scenario
        self.faults = (faults or FaultSchedule()).validate(scenario)
        self.env = simpy.Environment()
        self.time = 0.0
        ss = np.random.SeedSequence(seed)
        streams = ss.spawn(2 + len(scenario.workers))
        self.rng_arrivals = np.random.default_rng(streams[0])
        self.rng_route = np.random.default_rng(streams[1])
        self._uniforms: list[float] = []
        self.workers = [
            Worker(i, np.random.default_rng(streams[2 + i])) for i in range(len(scenario.workers))
        ]
        for w in self.workers:
            w.on_done = self._make_on_done(w)
            w.on_wake = self._make_on_wake(w)
        self.timeout_s = self.config.timeout_for(scenario)
        self.batch_timeout_s = scenario.batch_wait_timeout_s
        bound = scenario.slo.bound_s
        self.bound_s = math.inf if bound is None else bound
        self.has_bound = bound is not None
        self._seq = 0
        self._templates: dict[tuple[Any, ...], TaskGraph] = {}
        self._completions: list[tuple[float, int, Request]] = []
        self.arrived = 0
        self.completed = 0
        self.dropped = empty_drops()
        self._mark: tuple[int, int, dict[str, float]] = (0, 0, empty_drops())
        self._iv_latencies: list[float] = []
        self._iv_within = 0
        self._iv_comm = 0.0
        self._iv_reconf: list[str] = []
        self._link_slow: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
        self._slow = bool(self.faults.slowdowns)
        self._fractional = any(e.ratio != math.floor(e.ratio) for e in scenario.edges)
        self._full_mask = (True,) * len(scenario.sources)
        self.compiled: CompiledPlan | None = None
        self.plan = plan
        self._install(plan, design_rates, initial=True)
        if self.faults:
            self.env.process(self._fault_process())

    # ------------------------------------------------------------------ plan

    def _install(
        self, plan: Plan, design_rates: Mapping[str, float] | None, initial: bool = False
    ) -> list[str]:
        assert self.scenario is not None
        new = CompiledPlan(self.scenario, plan, design_rates, self.config.service)
        old = self.compiled
        now = self.env.now
        if initial and self.config.warm_start:
            changes: dict[int, float] = {}
        else:
            changes = load_changes(old, new)
        moved: list[QueueItem] = []
        for w in self.workers:
            wi = w.idx
            leaving = old is not None and wi in old.deployed and wi not in new.deployed
            if wi in changes or leaving:
                if w.heap:
                    moved.extend(w.heap)
                    w.heap = []
                if not w.busy:  # cancel a pending wake-up (a busy worker finishes its task)
                    w.pending = None
                    w.wake_at = math.inf
                    w.fill_deadline = math.inf
            new_op = int(new.w_op[wi])
            if wi in changes:
                w.avail_at = max(now, w.busy_until if w.busy else now) + changes[wi]
                w.load_token += 1
                self.env.timeout(w.avail_at - now).callbacks.append(
                    self._make_loaded(w, w.load_token)
                )
            elif new_op < 0:
                w.avail_at = math.inf
            if new_op >= 0:
                self._set_service(w, new, wi in changes)
            w.op = new_op
        self.compiled = new
        self.plan = plan
        self._pairs: dict[tuple[int, int, int], tuple[float, float]] = {}
        self._refresh_routing()
        for item in moved:
            self._redispatch(item)
        names = [new.workers[i] for i in sorted(changes)]
        self._iv_reconf.extend(names)
        for w in self.workers:
            if w.op >= 0 and not w.busy:
                self._serve(w)
        return names

    def apply(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> list[str]:
        if self.scenario is None:
            raise RuntimeError("call reset() first")
        return self._install(plan, design_rates)

    def _unavailable(self) -> frozenset[int]:
        now = self.env.now
        return frozenset(w.idx for w in self.workers if w.down or w.avail_at > now)

    def _refresh_routing(self) -> None:
        assert self.compiled is not None
        self.routing: Routing = self.compiled.routing(self._unavailable())

    def _make_loaded(self, w: Worker, token: int):  # noqa: ANN202
        def loaded(_ev: Any) -> None:
            if w.load_token != token:
                return
            self._refresh_routing()
            if not w.busy:
                self._serve(w)

        return loaded

    # ------------------------------------------------------------------ faults

    def _fault_process(self):  # noqa: ANN202
        events: list[tuple[float, int, str, Any]] = []
        for c in self.faults.crashes:
            events.append((c.at, 1, "crash", c.worker))
            if math.isfinite(c.until):
                events.append((c.until, 0, "recover", c.worker))
        events.sort(key=lambda e: (e[0], e[1]))
        for t, _, what, name in events:
            if t > self.env.now:
                yield self.env.timeout(t - self.env.now)
            w = self.workers[self._widx(name)]
            if what == "crash":
                self._crash(w)
            else:
                self._recover(w)

    def _widx(self, name: str) -> int:
        assert self.compiled is not None
        return self.compiled.worker_index[name]

    def _crash(self, w: Worker) -> None:
        now = self.env.now
        w.down = True
        if w.busy and w.current is not None:
            for item in w.current:
                self._drop(item[2], "crash")
            w.busy_acc -= max(0.0, w.busy_until - now)
            w.busy_until = now
        w.busy = False
        w.current = None
        w.pending = None  # the pending completion / wake-up is now stale
        w.wake_at = math.inf
        w.fill_deadline = math.inf
        self._refresh_routing()
        if w.heap:
            items, w.heap = w.heap, []
            for item in items:
                self._redispatch(item, avoid=w.idx)

    def _recover(self, w: Worker) -> None:
        w.down = False
        self._refresh_routing()
        if w.op >= 0 and not w.busy:
            self._serve(w)

    def _link_factor(self, sender: int, receiver: int, t: float) -> float:
        if not self.faults.slowdowns:
            return 1.0
        key = (sender, receiver)
        spans = self._link_slow.get(key)
        if spans is None:
            assert self.compiled is not None and self.scenario is not None
            sname = self.compiled.sender_name(sender)
            rname = self.compiled.workers[receiver]
            spans = []
            for s in self.faults.slowdowns:
                f = self.faults.link_factor(self.scenario, sname, rname, s.at)
                if f != 1.0:
                    spans.append((s.at, s.until, s.factor))
            self._link_slow[key] = spans
        f = 1.0
        for a, b, fac in spans:
            if a <= t < b:
                f *= fac
        return f

    # ------------------------------------------------------------------ random numbers

    def _uniform(self) -> float:
        u = self._uniforms
        if not u:
            u.extend(self.rng_route.random(4096).tolist())
        return u.pop()

    def _service(self, w: Worker) -> float:
        d = w.draws
        if not d:
            assert w.fit is not None  # (a worker of the plan)
            d.extend(w.fit.sample(w.rng, DRAWS).tolist())
        return d.pop()

    # ------------------------------------------------------------------ requests

    def _template(self, mask: tuple[bool, ...]) -> TaskGraph:
        """Task graph of a request whose sources emit per ``mask``.

        With integer edge ratios the graph depends on the mask only and is cached; fractional
        ratios are sampled per upstream task (``floor(r)`` plus a Bernoulli of the fraction).
        """
        if not self._fractional:
            tpl = self._templates.get(mask)
            if tpl is not None:
                return tpl
        assert self.compiled is not None
        tpl = build_task_graph(self.compiled, mask, self._count)
        if not self._fractional:
            self._templates[mask] = tpl
        return tpl

    def _count(self, ratio: float) -> int:
        fl = math.floor(ratio)
        if ratio == fl:
            return int(fl)
        return int(fl) + (1 if self._uniform() < ratio - fl else 0)

    def _arrive(self, t0: float, mask: tuple[bool, ...]) -> None:
        tpl = self._templates.get(mask)
        if tpl is None:
            tpl = self._template(mask)
        self.arrived += 1
        req = Request(t0, tpl)
        if tpl.n_tasks == 0:
            # no source emitted for it: nothing to do, complete on arrival
            self._seq += 1
            heapq.heappush(self._completions, (t0, self._seq, req))
            return
        for tid, e_idx, sid in tpl.src_inputs:
            self._deliver(req, tid, sid, t0, e_idx)

    def _deliver(self, req: Request, tid: int, sid: int, t_done: float, e_idx: int) -> None:
        """Input ``e_idx`` of task ``tid`` has been produced by ``sid`` at ``t_done``."""
        if req.inputs is None:  # single-input task
            self._dispatch(req, tid, ((sid, t_done, e_idx),))
            return
        n = req.need[tid] - 1
        req.need[tid] = n
        lst = req.inputs.get(tid)
        if lst is None:
            lst = req.inputs[tid] = []
        lst.append((sid, t_done, e_idx))
        if n == 0:
            del req.inputs[tid]
            self._dispatch(req, tid, lst)

    def _dispatch(self, req: Request, tid: int, inputs: Any) -> None:
        """Route a ready-to-be-created task to a worker of its operator and enqueue it."""
        if req.state:
            return
        cp = self.compiled
        assert cp is not None
        v = req.tpl.task_op[tid]
        edges = cp.edges
        prim = inputs[0]
        if len(inputs) > 1:
            for inp in inputs:
                if edges[inp[2]].primary:
                    prim = inp
                    break
        entry = self.routing.table.get((prim[2], prim[0]))
        if entry is None:
            ws = self.routing.op_workers[v]
            if len(ws) == 0:
                self._drop(req, "no_worker")
                return
            sh = self.routing.op_share[v]
            b = int(ws[min(len(ws) - 1, int(np.searchsorted(np.cumsum(sh), self._uniform())))])
        else:
            recv, cum = entry
            b = recv[0] if len(recv) == 1 else recv[bisect.bisect_left(cum, self._uniform())]
        ready = 0.0
        comm = 0.0
        pairs = self._pairs
        for sid, t_done, e_idx in inputs:
            key = (e_idx, sid, b)
            pc = pairs.get(key)
            if pc is None:
                kb = edges[e_idx].kb
                lk = cp.link(sid, b)
                pc = pairs[key] = (kb * lk.s_per_kb + lk.latency_s, kb * lk.dollars_per_kb)
            arr = t_done + (pc[0] * self._link_factor(sid, b, t_done) if self._slow else pc[0])
            if arr > ready:
                ready = arr
            comm += pc[1]
        self._iv_comm += comm
        self._enqueue(self.workers[b], (ready, self._next_seq(), req, tid))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _enqueue(self, w: Worker, item: QueueItem) -> None:
        heapq.heappush(w.heap, item)
        if not w.busy and item[0] < w.wake_at:
            at = item[0] if item[0] > w.avail_at else w.avail_at
            if w.down or at >= w.wake_at:  # (inf while not in the plan)
                return
            if at <= self.env.now:
                self._serve(w)
            else:
                self._schedule_wake(w, at)

    def _schedule_wake(self, w: Worker, at: float) -> None:
        w.wake_at = at
        ev = w.pending = self.env.timeout(at - self.env.now)
        ev.callbacks.append(w.on_wake)

    def _redispatch(self, item: QueueItem, avoid: int = -1) -> None:
        """Move a queued task to a (new) worker of its operator, keeping its arrival time."""
        ready, _, req, tid = item
        if req.state:
            return
        v = req.tpl.task_op[tid]
        ws = self.routing.op_workers[v]
        sh = self.routing.op_share[v]
        if avoid >= 0 and len(ws) > 0:
            keep = ws != avoid
            if keep.any():
                ws, sh = ws[keep], sh[keep] / sh[keep].sum()
        if len(ws) == 0:
            self._drop(req, "no_worker")
            return
        i = 0 if len(ws) == 1 else int(np.searchsorted(np.cumsum(sh), self._uniform()))
        self._enqueue(
            self.workers[int(ws[min(i, len(ws) - 1)])], (ready, self._next_seq(), req, tid)
        )

    def _drop(self, req: Request, reason: str) -> None:
        if req.state == ACTIVE:
            req.state = DROPPED
            self.dropped[reason] += 1

    # ------------------------------------------------------------------ workers

    def _make_on_done(self, w: Worker):  # noqa: ANN202
        def on_done(ev: Any) -> None:
            if ev is not w.pending:  # stale: the worker crashed or was reconfigured
                return
            w.busy = False
            w.current = None
            self._serve(w)

        return on_done

    def _make_on_wake(self, w: Worker):  # noqa: ANN202
        def on_wake(ev: Any) -> None:
            if ev is not w.pending or w.busy:  # stale: rescheduled, or serving already
                return
            w.wake_at = math.inf
            self._serve(w)

        return on_wake

    def _serve(self, w: Worker) -> None:
        """Start the next task on an idle worker, or arrange to be woken for it."""
        env = self.env
        now = env.now
        if w.down:
            return
        if w.avail_at > now:
            if w.avail_at != math.inf and w.heap:
                self._schedule_wake(w, w.avail_at)
            return
        if w.batch > 1:
            self._serve_batch(w)
            return
        heap = w.heap
        timeout = self.timeout_s
        while heap:
            item = heap[0]
            ready = item[0]
            if ready > now:
                if ready < w.wake_at or w.wake_at <= now:
                    self._schedule_wake(w, ready)
                return
            heapq.heappop(heap)
            req = item[2]
            if req.state:
                continue
            waited = now - ready
            if waited > timeout:
                self._drop(req, "timeout")
                continue
            s = self._service(w)
            tc = now + s
            w.busy = True
            w.busy_until = tc
            w.current = [item]
            w.busy_acc += s
            w.wait_sum += waited
            w.wait_n += 1
            w.wake_at = math.inf
            ev = w.pending = env.timeout(s)
            ev.callbacks.append(w.on_done)
            self._started(req, item[3], w.idx, tc)
            return

    def _started(self, req: Request, tid: int, widx: int, tc: float) -> None:
        """Task ``tid`` started on ``widx`` and ends at ``tc``: create its successors now."""
        if tc > req.finish:
            req.finish = tc
        for child, e_idx in req.tpl.children[tid]:
            self._deliver(req, child, widx, tc, e_idx)
        n = req.unstarted - 1
        req.unstarted = n
        if n == 0:
            self._seq += 1
            heapq.heappush(self._completions, (req.finish, self._seq, req))

    # ------------------------------------------------------------------ arrivals

    def _schedule_arrivals(self, t0: float, pieces: list[tuple[float, np.ndarray]]) -> None:
        for at, times, masks in arrival_chunks(
            self.rng_arrivals, t0, pieces, self.chunk_s, self._full_mask
        ):
            self._pump_at(at, times, masks)

    def _pump_at(self, at: float, times: list[float], masks: list[tuple[bool, ...]]) -> None:
        def pump(_ev: Any) -> None:
            arrive = self._arrive
            for t, m in zip(times, masks, strict=True):
                arrive(t, m)

        self.env.timeout(max(0.0, at - self.env.now)).callbacks.append(pump)

    # ------------------------------------------------------------------ advance

    def advance(self, seconds: float, rates: RateSchedule) -> IntervalMetrics:
        if self.scenario is None or self.compiled is None:
            raise RuntimeError("call reset() first")
        pieces = rate_pieces(self.scenario, seconds, rates)
        t0 = self.env.now
        t1 = t0 + seconds
        # counters as the last interval ended: drops caused by apply() count in this interval
        arrived0, completed0, dropped0 = self._mark
        in_flight0 = float(arrived0 - completed0 - sum(dropped0.values()))
        self._iv_latencies = []
        self._iv_within = 0
        self._iv_comm = 0.0
        for w in self.workers:
            w.wait_sum = 0.0
            w.wait_n = 0
        self._schedule_arrivals(t0, pieces)
        self.env.run(until=t1)
        self._collect_completions(t1)
        self.time = t1
        self._mark = (self.arrived, self.completed, dict(self.dropped))
        return self._metrics(t0, seconds, pieces, in_flight0, arrived0, completed0, dropped0)

    def _collect_completions(self, t1: float) -> None:
        comp = self._completions
        bound = self.bound_s
        lat = self._iv_latencies
        while comp and comp[0][0] <= t1:
            finish, _, req = heapq.heappop(comp)
            if req.state != ACTIVE:
                continue
            req.state = DONE
            self.completed += 1
            d = finish - req.t0
            lat.append(d * 1000.0)
            if d <= bound:
                self._iv_within += 1

    def _metrics(
        self,
        t0: float,
        seconds: float,
        pieces: list[tuple[float, np.ndarray]],
        in_flight0: float,
        arrived0: int,
        completed0: int,
        dropped0: dict[str, float],
    ) -> IntervalMetrics:
        cp = self.compiled
        assert cp is not None and self.scenario is not None
        util, wait, backlog, op_util = worker_figures(self.workers, cp, t0 + seconds, seconds)
        mean_rates = sum((d * r for d, r in pieces), np.zeros(len(cp.sources))) / seconds
        reconf, self._iv_reconf = self._iv_reconf, []
        return IntervalMetrics(
            t_start=t0,
            duration=seconds,
            arrivals=float(self.arrived - arrived0),
            completed=float(self.completed - completed0),
            within_slo=float(self._iv_within) if self.has_bound else math.nan,
            dropped={k: float(v - dropped0.get(k, 0)) for k, v in self.dropped.items()},
            in_flight_start=in_flight0,
            in_flight=self.in_flight,
            latency_ms=latency_summary(self._iv_latencies),
            utilization=util,
            wait_ms=wait,
            operator_backlog=backlog,
            operator_utilization=op_util,
            compute_dollars=cp.price_charged_per_s * seconds,
            communication_dollars=self._iv_comm,
            rates=dict(zip(cp.sources, mean_rates.tolist(), strict=True)),
            reconfigured=reconf,
        )

    @property
    def in_flight(self) -> float:
        return float(self.arrived - self.completed - sum(self.dropped.values()))

    # ------------------------------------------------------------------ observation

    def interval_latencies(self) -> list[float]:
        """End-to-end latency (ms) of every request completed in the last :meth:`advance`:
        what a live system's request log shows (the online controller's sim backend reads it)."""
        return list(self._iv_latencies)

    def worker_queues(self) -> dict[str, float]:
        """Requests queued or in service per worker that runs an operator or still holds work."""
        assert self.compiled is not None, "call reset() first"
        cp = self.compiled
        return {
            cp.workers[w.idx]: float(len(w.heap) + len(w.current or ()) * w.busy)
            for w in self.workers
            if w.op >= 0 or w.heap
        }

    def down_workers(self) -> frozenset[str]:
        """Workers crashed now (a fault schedule's crash; workers loading a model are not listed)."""
        assert self.compiled is not None, "call reset() first"
        return frozenset(self.compiled.workers[w.idx] for w in self.workers if w.down)
