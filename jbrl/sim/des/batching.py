"""Dynamic batching in the DES: a worker with a batch size ``b`` above 1.

The semantics (ARCHITECTURE.md, "Latency and batching"; Ray Serve's ``max_batch_size`` and
``batch_wait_timeout_s``): a free worker takes up to ``b`` queued tasks (those that have
reached it), oldest first. With fewer than ``b`` it waits for more, at most the scenario's
``batch_wait_timeout_s`` from the moment it started waiting (it was free and had a first task),
then starts with what has come; with a timeout of 0 it starts at once. A batch of ``n`` tasks
takes one draw of the service-time fit at ``n``; all its tasks end together. A crash drops
every task of the batch in service; tasks that waited longer than the per-queue deadline
``timeout_s`` are dropped when the worker reaches them, as with batch 1.

Ray Serve's implementation differs in one respect: its batching loop forms the *next* batch
while the current one runs (``max_concurrent_batches=1`` then holds it until the current one
ends), so requests that arrive after the next batch was formed wait for the one after, even if
that batch is not full. Here a batch is formed when the worker is free, so it takes every task
queued by then (up to ``b``): batches are at least as full, and waits at most as long.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

from jbrl.sim.compiled import CompiledPlan
from jbrl.sim.des.model import DRAWS, QueueItem, Request, Worker

if TYPE_CHECKING:
    import simpy


class BatchServing:
    """The DES's serving of workers with a batch size above 1 (a mixin of
    :class:`~jbrl.sim.des.simulator.DesSimulator`, which provides the names declared here)."""

    env: simpy.Environment
    timeout_s: float
    batch_timeout_s: float
    workers: list[Worker]
    compiled: CompiledPlan | None

    def batches_started(self) -> dict[str, int]:
        """Batches started so far per worker that serves in batches (batch size above 1)."""
        assert self.compiled is not None, "call reset() first"
        return {self.compiled.workers[w.idx]: w.batches for w in self.workers if w.batch > 1}

    @staticmethod
    def _set_service(w: Worker, new: CompiledPlan, loads: bool) -> None:
        """Worker ``w``'s service-time fits and batch size in the plan ``new`` (``loads``: it
        loads a model). A change of batch size alone needs no model load: the next batch
        obeys it."""
        wi = w.idx
        if loads or w.fit is not new.service[wi]:
            if w.fit != new.service[wi]:
                w.draws = []
                w.bdraws = {}
            w.fit = new.service[wi]
            w.bsvc = new.batch_service[wi]
        if w.batch != new.batch[wi]:
            w.batch = new.batch[wi]
            w.fill_deadline = math.inf

    def _drop(self, req: Request, reason: str) -> None:
        raise NotImplementedError

    def _started(self, req: Request, tid: int, widx: int, tc: float) -> None:
        raise NotImplementedError

    def _schedule_wake(self, w: Worker, at: float) -> None:
        raise NotImplementedError

    def _serve_batch(self, w: Worker) -> None:
        """Start a batch on the free, available worker ``w``, or arrange to be woken when its
        next task arrives or its batch wait ends (module docstring)."""
        now = self.env.now
        heap = w.heap
        timeout = self.timeout_s
        items: list[QueueItem] = []
        while heap and len(items) < w.batch:
            item = heap[0]
            if item[0] > now:
                break
            heapq.heappop(heap)
            req = item[2]
            if req.state:
                continue
            if now - item[0] > timeout:
                self._drop(req, "timeout")
                continue
            items.append(item)
        if not items:
            w.fill_deadline = math.inf
            if heap and (heap[0][0] < w.wake_at or w.wake_at <= now):
                self._schedule_wake(w, heap[0][0])
            return
        if len(items) < w.batch and self.batch_timeout_s > 0:
            if w.fill_deadline == math.inf:
                w.fill_deadline = now + self.batch_timeout_s
            if now < w.fill_deadline:
                nxt = heap[0][0] if heap else math.inf  # (the first task not yet here)
                for item in items:
                    heapq.heappush(heap, item)
                self._schedule_wake(w, min(w.fill_deadline, nxt))
                return
        self._start_batch(w, items)

    def _start_batch(self, w: Worker, items: list[QueueItem]) -> None:
        now = self.env.now
        s = self._batch_time(w, len(items))
        tc = now + s
        w.busy = True
        w.busy_until = tc
        w.current = items
        w.busy_acc += s
        for item in items:
            w.wait_sum += now - item[0]
        w.wait_n += len(items)
        w.wake_at = math.inf
        w.fill_deadline = math.inf
        w.batches += 1
        ev = w.pending = self.env.timeout(s)
        ev.callbacks.append(w.on_done)
        for item in items:
            self._started(item[2], item[3], w.idx, tc)

    def _batch_time(self, w: Worker, n: int) -> float:
        """A service time of a batch of ``n`` on ``w`` (draws per size, from the worker's own
        random stream)."""
        d = w.bdraws.get(n)
        if d is None:
            d = w.bdraws[n] = []
        if not d:
            assert w.bsvc is not None  # (a worker of the plan)
            d.extend(w.bsvc.fit(n).sample(w.rng, DRAWS).tolist())
        return d.pop()
