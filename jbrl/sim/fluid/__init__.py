"""The fluid simulator: per interval, flows and queues in expectation (fast, for training).

Model, per worker ``w`` with arrival rate ``a`` (its share of its operator's input), service mean
``m`` and squared coefficient of variation ``c2`` (from the same service fit as the DES). The
queueing and latency formulas are those of the latency model, :mod:`jbrl.planning.latency`:

* **Queue state** ``x`` (mean number in system) follows the pointwise stationary fluid flow
  approximation (PSFFA; Wang, Tipper et al. 1996): ``dx/dt = a - mu * G(x)`` where ``G`` inverts
  the G/G/1 relation ``x = L(r) = r + k r^2 / (1 - r)`` (Pollaczek-Khinchine / Kingman,
  ``k = (ca2 + c2) / 2``). One backward-Euler step per interval has a closed form (a quadratic in
  ``r``), is exact at equilibrium (``x = L(a/mu)``), and grows the backlog by ``(a - mu) t`` in
  overload. Departures are ``mu * t * r``; the backlog carries over to the next interval.
* **Arrival variability** ``ca2`` (Whitt's QNA): 1 (Poisson) at the sources; a worker's
  departures have ``r^2 c2 + (1 - r^2) ca2``; routing a stream with probability ``p`` gives
  ``p ca2 + 1 - p``; merged streams average by flow. A busy upstream stage smooths the arrivals of
  the next one (the VQA stage after a loaded feature extractor waits far less than M/G/1 says).
* **Timeouts**: the queue holds at most ``max(a, mu) * timeout`` tasks (older ones are dropped, as
  the DES drops a task that waited longer than the timeout); in steady state a fraction
  ``P(W > timeout)`` is dropped too.
* **Waiting time** at the interval's mean state: no wait with probability ``1 - r``, else
  ``D + (1 - c) E + Exp(c E)``: the M/G/1 mean wait ``E`` of a task that waits, spread as
  Takacs' second moment gives (``c <= 1``, :func:`~jbrl.planning.latency.queueing.wait_shape`;
  ``c = 1`` is the exponential approximation), with the part of the mean wait beyond the
  utilisation cap ``r = 0.98`` treated as a deterministic backlog ``D``. Sojourn = wait + service
  (lognormal/exponential/deterministic CDF) + inbound transfer (size / bandwidth + latency).
* **End-to-end latency** on a grid of ``grid_points`` times (the SLO bound is a grid point):
  an operator's sojourn is the mixture over its workers (routing shares); a join takes the max of
  its inputs (product of CDFs), a stage adds (convolution). Percentiles beyond the grid follow the
  slowest stage's exponential tail.
* **Requests** (the accounting unit, as in the DES): arrivals ``max_s rate(s) * t``; completions are
  the terminal operators' departures in request units; a dropped task drops its request; a join
  keeps inputs that wait for their partner in a buffer.
* **Reconfiguration**: a worker whose (operator, variant) changes serves nothing for its load time
  (its queue moves to the operator's new workers); crashes (fault schedule) take a worker out for
  the crash, drop the task in service and move its queue. Intervals are split where availability
  changes.
* **Dollars**: compute = hourly price of the plan's workers; communication = messages on each
  (sender, receiver) pair times the link's $/KB, as in the DES.

Latency percentiles and per-worker figures of an interval are computed when first read
(:class:`FluidIntervalMetrics`); the SLO attainment is always computed.

Modules: :mod:`~jbrl.sim.fluid.simulator` (:class:`FluidSimulator`: plans, availability,
intervals), :mod:`~jbrl.sim.fluid.step` (one step: flows, queues, requests, latency),
:mod:`~jbrl.sim.fluid.state` (what is precomputed per plan and availability),
:mod:`~jbrl.sim.fluid.topology` (per scenario: latency grid, joins, source mixes),
:mod:`~jbrl.sim.fluid.metrics` (interval sums and metrics).

Known limits: stages are independent in the latency model (a loaded stage and the one after it
are positively correlated in reality, so near saturation the fluid's tail is a little light after
a join), and percentiles beyond the grid are rough.
"""

from jbrl.sim.fluid.metrics import FluidIntervalMetrics
from jbrl.sim.fluid.simulator import FluidSimulator

__all__ = ["FluidIntervalMetrics", "FluidSimulator"]
