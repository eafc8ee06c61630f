"""The latency model: one home for the service-time fits, queueing formulas and latency
distributions that the planners and both simulators use (it never imports a simulator).

Units are seconds; rates are per second.

* :mod:`~jbrl.planning.latency.service` — service-time fits to a profile's p50/p90
  (:class:`ServiceFit`), per batch size (:class:`BatchService`, :func:`batch_service`), CDFs;
* :mod:`~jbrl.planning.latency.queueing` — the G/G/1 queue length and the fluid model's queue
  step (:func:`fluid_queue_step`), and the exact bulk-service chain M/M^(1,b)/1 as a reference
  (:func:`bulk_ctmc_sojourn`);
* :mod:`~jbrl.planning.latency.sojourn` — a worker's steady-state sojourn time
  (:func:`worker_sojourn` -> :class:`Sojourn`: mean, CDF, survival, quantile) and its SLO-safe
  rate (:func:`slo_safe_rate`);
* :mod:`~jbrl.planning.latency.batching` — the same with dynamic batching (batch size above 1:
  the bulk queue's Markov chain, :class:`GridSojourn`), and (:mod:`~jbrl.planning.latency.
  table`) over a ladder of rates (:func:`batch_table`, for the fluid simulator);
* :mod:`~jbrl.planning.latency.groups` and :mod:`~jbrl.planning.latency.feeders` — arrivals
  in groups at a worker fed by batching workers (a batch's outputs leave together): their
  counts and fill waits, and the group sizes and regularity from the senders;
* :mod:`~jbrl.planning.latency.paths` — a plan's predicted latency per source -> sink path and
  per request (:func:`predict_plan` -> :class:`PlanLatency`);
* :mod:`~jbrl.planning.latency.grid` — distributions on a grid: sums (convolution), percentiles
  with an exponential tail.
"""

from jbrl.planning.latency.batching import GridSojourn
from jbrl.planning.latency.feeders import Feeder, feeder_groups
from jbrl.planning.latency.grid import QUANTILES, cdf_of_sum, percentiles_with_tail
from jbrl.planning.latency.paths import (
    PathLatency,
    PlanLatency,
    WorkerStage,
    predict_plan,
)
from jbrl.planning.latency.queueing import (
    WAIT_UTILIZATION_CAP,
    bulk_ctmc_sojourn,
    fluid_queue_step,
    queue_length,
)
from jbrl.planning.latency.service import (
    SERVICE_FAMILIES,
    Z90,
    BatchService,
    ServiceFamily,
    ServiceFit,
    batch_service,
    exp_plus_service_cdf,
    fit_percentiles,
    fit_service,
    norm_cdf,
    service_cdf,
)
from jbrl.planning.latency.sojourn import MixtureSojourn, Sojourn, slo_safe_rate, worker_sojourn
from jbrl.planning.latency.table import BatchTable, batch_table

__all__ = [
    "QUANTILES",
    "SERVICE_FAMILIES",
    "WAIT_UTILIZATION_CAP",
    "Z90",
    "BatchService",
    "BatchTable",
    "Feeder",
    "GridSojourn",
    "PathLatency",
    "PlanLatency",
    "ServiceFamily",
    "ServiceFit",
    "MixtureSojourn",
    "Sojourn",
    "WorkerStage",
    "batch_service",
    "bulk_ctmc_sojourn",
    "batch_table",
    "cdf_of_sum",
    "exp_plus_service_cdf",
    "feeder_groups",
    "fit_percentiles",
    "fit_service",
    "fluid_queue_step",
    "norm_cdf",
    "percentiles_with_tail",
    "predict_plan",
    "queue_length",
    "service_cdf",
    "slo_safe_rate",
    "worker_sojourn",
]
