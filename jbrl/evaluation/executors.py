"""Where an evaluation's runs execute when not in this process: a local process pool or Ray.

The runner (:mod:`jbrl.evaluation.runner`) cuts the evaluation into :class:`Unit` s (one policy
spec on some traces and seeds) and hands them to a :class:`RunExecutor`, which yields each unit's
:class:`~jbrl.evaluation.aggregate.RunRecord` s (or the exception it raised) as units finish; the
runner puts the runs back in (policy, trace, seed) order, so the figures do not depend on where
or in which order runs executed.

* :class:`ProcessPool` — the local path: ``concurrent.futures.ProcessPoolExecutor`` with the
  *spawn* start method (a forked child would inherit HiGHS's thread pool without its threads),
  one (policy, trace) unit per task (every run still starts from a freshly built policy). A
  standard-library pool, not a local Ray: nothing to install beyond jbrl, about a
  second to start instead of Ray's several, and no session files or ports.
* :class:`RayTasks` — one Ray task per (policy, trace, seed) run on the cluster of a
  :class:`~jbrl.raycluster.RayCluster` (a local Ray started for the evaluation, or an existing
  cluster); the shared settings go into Ray's object store once. It records which node ran each
  run and how long each task took inside its worker (``task_s``), from which Ray's overhead per
  task is measured (``experiments/bench_scale_out.py``).
"""

from __future__ import annotations

import multiprocessing
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jbrl.errors import InputError, Param
from jbrl.raycluster import RayCluster, require_ray

if TYPE_CHECKING:
    from jbrl.evaluation.aggregate import RunRecord


@dataclass(frozen=True)
class Unit:
    """One policy spec on some traces and seeds: the work of one task."""

    spec: str
    traces: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def runs(self) -> int:
        return len(self.traces) * len(self.seeds)


UnitFn = Callable[[Any, Unit], "list[RunRecord]"]
"""Runs a unit given the evaluation's shared settings (the runner's ``run_unit``)."""
Outcome = tuple[Unit, "list[RunRecord] | BaseException"]


class RunExecutor(ABC):
    """Runs units somewhere else than in this process (see the module docstring)."""

    one_run_per_unit = False
    """Whether units hold a single (trace, seed) run each, rather than every seed of a trace."""

    def __enter__(self) -> RunExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @abstractmethod
    def run(self, fn: UnitFn, settings: Any, units: Sequence[Unit]) -> Iterator[Outcome]:
        """``fn(settings, unit)`` for every unit; yields (unit, records or exception) in the
        order the units finish."""


class ProcessPool(RunExecutor):
    """``processes`` spawned worker processes (``concurrent.futures``)."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise InputError("must be >= 1", field=Param.PROCESSES, value=processes)
        self.processes = processes

    def run(self, fn: UnitFn, settings: Any, units: Sequence[Unit]) -> Iterator[Outcome]:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=ctx)
        try:
            futs = {pool.submit(fn, settings, u): u for u in units}
            for fut in as_completed(futs):
                try:
                    yield futs[fut], fut.result()
                except Exception as exc:
                    yield futs[fut], exc
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _timed_on_node(fn: UnitFn, settings: Any, unit: Unit) -> tuple[list[RunRecord], str, float]:
    """A Ray task's body: the unit's records, the node that ran it and the seconds it took."""
    import ray

    t0 = time.perf_counter()
    records = fn(settings, unit)
    return records, str(ray.get_runtime_context().get_node_id()), time.perf_counter() - t0


class RayTasks(RunExecutor):
    """One Ray task per run, on a local Ray (``address`` None) or an existing cluster.

    Args:
        address: see :func:`jbrl.raycluster.ray_address`.
        run_dir: where a local Ray keeps its session files (``ray-session``).
        num_cpus: CPUs a local Ray reports (default: the machine's).
        cpus_per_task: CPUs each task asks for.
    """

    one_run_per_unit = True

    def __init__(
        self,
        address: str | None = None,
        *,
        run_dir: Path | None = None,
        num_cpus: int | None = None,
        cpus_per_task: float = 1.0,
    ) -> None:
        require_ray("--ray")
        self.cluster = RayCluster(address, run_dir=run_dir, num_cpus=num_cpus, keep_session=False)
        self.cpus_per_task = cpus_per_task
        self.nodes: Counter[str] = Counter()  # node id -> runs it executed
        self.task_s: list[float] = []  # each task's time inside its worker
        self.start_s = 0.0  # time to start (or join) Ray

    def __enter__(self) -> RayTasks:
        t0 = time.perf_counter()
        self.cluster.start()
        self.start_s = time.perf_counter() - t0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cluster.close()

    def run(self, fn: UnitFn, settings: Any, units: Sequence[Unit]) -> Iterator[Outcome]:
        import ray
        from ray.exceptions import RayError, RayTaskError

        task = ray.remote(num_cpus=self.cpus_per_task)(_timed_on_node)
        shared = ray.put(settings)  # sent to each node once, not with every task
        pending = {task.remote(fn, shared, u): u for u in units}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(done[0])
                try:
                    records, node, took = ray.get(done[0])
                except RayTaskError as exc:  # the task raised: hand back its own exception
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    yield unit, cause
                    continue
                except RayError as exc:  # a worker or node died
                    yield unit, exc
                    continue
                self.nodes[node] += unit.runs
                self.task_s.append(took)
                yield unit, records
        finally:
            for ref in pending:
                ray.cancel(ref)
