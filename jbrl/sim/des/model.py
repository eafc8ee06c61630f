"""What the discrete-event simulator moves around: requests with their task graphs, and workers.

A request's task graph follows the edge ratios of the workflow (ratio > 1: fan-out, ``floor(r)``
or ``ceil(r)`` children per task; ratio < 1: sampling). A task of a join operator waits until
every input has been produced. A worker is a FIFO server keyed by the time a task reaches it; with a batch size ``b`` above 1 it
serves up to ``b`` tasks at once (:mod:`jbrl.sim.des.batching`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from jbrl.planning.latency import BatchService, ServiceFit
from jbrl.sim.compiled import CompiledPlan

DRAWS = 1024
"""Service times drawn per batch, per worker."""

ACTIVE, DONE, DROPPED = 0, 1, 2
"""States of a request (:attr:`Request.state`); a request that is not active is skipped."""


class TaskGraph:
    """Task graph of one request shape: per task its operator, how many inputs it waits for,
    its children (child task, edge index), and the tasks fed by a source."""

    __slots__ = ("task_op", "need", "children", "src_inputs", "n_tasks", "multi")

    def __init__(self) -> None:
        self.task_op: list[int] = []
        self.need: list[int] = []
        self.children: list[list[tuple[int, int]]] = []  # (child task, edge index)
        self.src_inputs: list[tuple[int, int, int]] = []  # (task, edge index, source sender id)
        self.n_tasks = 0
        self.multi = False  # any task with more than one input


def build_task_graph(
    cp: CompiledPlan, mask: tuple[bool, ...], count: Callable[[float], int]
) -> TaskGraph:
    """Task graph of a request whose sources emit per ``mask``; ``count(ratio)`` is how many
    children a task gets on an edge of that ratio."""
    tpl = TaskGraph()
    tasks_of: dict[int, list[int]] = {}
    for v in range(len(cp.ops)):
        per_edge: list[tuple[int, list[int | None]]] = []
        for ed in cp.in_edges[v]:
            owners: list[int | None] = []
            if ed.u < 0:
                if mask[-1 - ed.u]:
                    owners = [None] * count(ed.ratio)
            else:
                for j in tasks_of.get(ed.u, []):
                    owners.extend([j] * count(ed.ratio))
            per_edge.append((ed.index, owners))
        n_v = min(len(o) for _, o in per_edge) if per_edge else 0
        ids = []
        for i in range(n_v):
            tid = tpl.n_tasks
            tpl.n_tasks += 1
            tpl.task_op.append(v)
            tpl.children.append([])
            for e_idx, owners in per_edge:
                own = owners[i]
                if own is None:
                    tpl.src_inputs.append((tid, e_idx, cp.edges[e_idx].u))
                else:
                    tpl.children[own].append((tid, e_idx))
            tpl.need.append(len(per_edge))
            if len(per_edge) > 1:
                tpl.multi = True
            ids.append(tid)
        tasks_of[v] = ids
    return tpl


class Request:
    """One request: arrival time, task graph, inputs still awaited per join task, tasks not yet
    started, the end of its last task, and its state."""

    __slots__ = ("t0", "tpl", "need", "inputs", "unstarted", "finish", "state")

    def __init__(self, t0: float, tpl: TaskGraph) -> None:
        self.t0 = t0
        self.tpl = tpl
        self.need = tpl.need[:] if tpl.multi else tpl.need
        self.inputs: dict[int, list[tuple[int, float, int]]] | None = {} if tpl.multi else None
        self.unstarted = tpl.n_tasks
        self.finish = t0
        self.state = ACTIVE


QueueItem = tuple[float, int, Request, int]
"""A queued task: (time it reaches the worker, sequence number, request, task)."""


def _ignore(_ev: simpy.Event) -> None:
    """Placeholder callback until the simulator sets a worker's own."""


class Worker:
    """A FIFO server: its queue (a heap by arrival time), what it serves and until when, its
    availability (model load, crash), its service-time draws and per-interval figures.

    ``pending`` is the simpy event (service completion or wake-up) the worker waits for; an
    event that is no longer pending when it fires is ignored (the worker was reconfigured,
    crashed, or rescheduled).
    """

    __slots__ = (
        "idx",
        "heap",
        "busy",
        "busy_until",
        "current",
        "wake_at",
        "pending",
        "avail_at",
        "down",
        "op",
        "fit",
        "rng",
        "draws",
        "busy_acc",
        "wait_sum",
        "wait_n",
        "on_done",
        "on_wake",
        "load_token",
        "batch",
        "bsvc",
        "bdraws",
        "fill_deadline",
        "batches",
    )

    def __init__(self, idx: int, rng: np.random.Generator) -> None:
        self.idx = idx
        self.heap: list[QueueItem] = []
        self.busy = False
        self.busy_until = 0.0
        self.current: list[QueueItem] | None = None  # the task(s) in service
        self.wake_at = math.inf
        self.pending: simpy.Event | None = None
        self.avail_at = 0.0
        self.down = False
        self.op = -1
        self.fit: ServiceFit | None = None
        self.rng = rng
        self.draws: list[float] = []
        self.busy_acc = 0.0
        self.wait_sum = 0.0
        self.wait_n = 0
        self.on_done: Callable[[Any], None] = _ignore
        self.on_wake: Callable[[Any], None] = _ignore
        self.load_token = 0
        self.batch = 1
        """largest batch (1: one task at a time)"""
        self.bsvc: BatchService | None = None
        self.bdraws: dict[int, list[float]] = {}
        """service-time draws per batch size above 1"""
        self.fill_deadline = math.inf
        """while waiting for a batch to fill: when it starts whatever has come"""
        self.batches = 0
        """batches started (batch size above 1)"""


def worker_figures(
    workers: list[Worker], cp: CompiledPlan, t1: float, seconds: float
) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, float]]:
    """Per-worker utilisation and mean wait (ms), per-operator backlog and mean utilisation of
    the interval of ``seconds`` that ends at ``t1``; a service that runs past ``t1`` counts its
    rest in the next interval (each worker's busy time restarts from there)."""
    util: dict[str, float] = {}
    wait: dict[str, float] = {}
    for w in workers:
        carry = max(0.0, w.busy_until - t1) if w.busy else 0.0
        busy = w.busy_acc - carry
        w.busy_acc = carry
        if w.op >= 0 or busy > 0:
            name = cp.workers[w.idx]
            util[name] = busy / seconds
            wait[name] = w.wait_sum / w.wait_n * 1000.0 if w.wait_n else math.nan
    backlog = dict.fromkeys(cp.ops, 0.0)
    op_util = dict.fromkeys(cp.ops, 0.0)
    counts = dict.fromkeys(cp.ops, 0)
    for w in workers:
        if w.op >= 0:
            op = cp.ops[w.op]
            backlog[op] += len(w.heap) + (len(w.current or ()) if w.busy else 0)
            op_util[op] += util.get(cp.workers[w.idx], 0.0)
            counts[op] += 1
    for op in cp.ops:
        if counts[op]:
            op_util[op] /= counts[op]
    return util, wait, backlog, op_util
