"""The discrete-event simulator (simpy): every request, every task, every transfer.

Structure (lean on purpose: about 5 simpy events per VQA request, see ``experiments/bench_sim.py``):

* **Arrivals.** A request arrives at rate ``max_s rate(s)`` (Poisson); source ``s`` emits for it
  when a shared uniform is below ``rate(s) / max_s rate(s)``. Arrival times of an interval are
  drawn with numpy; an arrival pump (one simpy event per ``chunk_s`` of simulated time) routes
  the requests of the next chunk to the workers of the operators their sources feed.
* **Requests** carry a task graph, sampled at arrival from the edge ratios (ratio > 1: fan-out,
  ``floor(r)`` or ``ceil(r)`` children per task; ratio < 1: sampling) and cached per shape. A task
  of a join operator waits until every input has been produced (a VQA task needs the image
  feature and the transcript of the same request). A request completes when all its tasks are
  done; its latency is from arrival to its last task's end.
* **Workers** are FIFO servers keyed by the time a task reaches them (after its transfer,
  ``size / bandwidth + latency`` per link, times any link slow-down). A worker is a small state
  machine driven by two kinds of simpy timeouts: service completion and wake-up when an idle
  worker's next task arrives. When a task starts, its service time is drawn and its successors
  are created and routed at once (their arrival time is known), so transfers cost no event.
* **Timeouts.** A task that waited longer than ``timeout_s`` in a queue is dropped when the worker
  reaches it (reason ``timeout``); the rest of its request is skipped wherever it is queued.
* **Reconfiguration** (``apply``): a worker whose (operator, variant) changes finishes the task
  in service, then loads the model for its load time and serves nothing meanwhile. Its queued
  tasks, and those of workers leaving the plan, move to the operator's workers in the new plan
  (available ones first); none is lost. An operator without workers drops them (``no_worker``).
* **Faults** (a simpy process over the fault schedule): a crash drops the request in service
  (``crash``), moves the queue to available siblings, and the worker is skipped by routing until
  it recovers; link slow-downs stretch transfer times.

Seeded with :class:`numpy.random.SeedSequence` (arrivals, routing and one stream per worker):
the same seed gives the same result. Service times follow the latency model's fits
(:mod:`jbrl.planning.latency`), as in the fluid simulator.

Modules: :mod:`~jbrl.sim.des.simulator` (:class:`DesSimulator`: the event loop),
:mod:`~jbrl.sim.des.model` (requests, task graphs, workers), :mod:`~jbrl.sim.des.arrivals`
(an interval's arrivals).
"""

from jbrl.sim.des.simulator import DesSimulator

__all__ = ["DesSimulator"]
