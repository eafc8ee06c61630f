"""The controller's metrics through ``prometheus_client``: a collector over the controller's
snapshot, registered in a :class:`~prometheus_client.CollectorRegistry` of its own per controller
(nothing in the process-wide default registry), exposed by ``GET /metrics`` in the text format
(or OpenMetrics when the scraper asks for it).

Gauges: ``jbrl_dollars_per_hour`` (spent in the last interval), ``jbrl_plan_dollars_per_hour``
(cost model of the running plan), ``jbrl_slo_attainment`` (last interval),
``jbrl_run_slo_attainment`` (whole run) and beside them ``jbrl_predicted_slo_attainment`` (the
latency model's prediction for the running plan at the observed load; NaN without a latency
bound), ``jbrl_request_latency_ms`` (p50/p95/p99 of the last
interval, label ``quantile``), ``jbrl_arrival_rate`` (per source), ``jbrl_worker_*``
(utilization, queue, up), ``jbrl_in_flight_requests``, ``jbrl_last_decision_ms``.
Counters (this run, since the process started): ``jbrl_decisions_total``,
``jbrl_fallbacks_total`` (by reason; no sample before the first fallback),
``jbrl_overrides_total``, ``jbrl_overrides_rejected_total``, ``jbrl_plan_changes_total``,
``jbrl_shield_interventions_total`` (policy plans the SLO shield replaced),
``jbrl_requests_{arrived,completed,dropped,lost}_total`` (the backend's counts as of its last
report, the same as the summary and the decision log). A figure not known yet is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jbrl.control.views import ControllerSnapshot, interval_dollars_per_hour

if TYPE_CHECKING:
    from jbrl.control.controller import Controller


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=_num(value))


def _labelled(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    label: str,
    values: Mapping[str, float | None],
) -> Metric:
    fam = kind(name, doc, labels=[label])
    for key, v in values.items():
        fam.add_metric([key], _num(v))
    return fam


class ControllerCollector(Collector):
    """Yields the controller's metric families from one snapshot per scrape."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        c = self.controller
        snap = c.snapshot()
        counts = snap.request_counts  # as of the last report: the summary's and the log's
        yield from _run_gauges(snap)
        yield from _worker_gauges(snap, c.backend.down_workers(), c.backend.workers)
        yield _gauge(
            "jbrl_in_flight_requests",
            "Requests accepted and not yet finished.",
            counts.get("in_flight"),
        )
        last = snap.last_decision
        yield _gauge(
            "jbrl_last_decision_ms",
            "Wall time of the last decision (ms).",
            last.decision_ms if last else None,
        )
        yield from _decision_counters(snap)
        yield from _request_counters(counts)


def _run_gauges(snap: ControllerSnapshot) -> Iterator[Metric]:
    """Dollars, SLO attainment, latency and arrival rates."""
    m = snap.last_metrics
    yield _gauge(
        "jbrl_dollars_per_hour",
        "Dollars per hour spent in the last interval.",
        interval_dollars_per_hour(m),
    )
    yield _gauge(
        "jbrl_plan_dollars_per_hour",
        "Cost model of the running plan at the observed load ($/hour).",
        snap.plan_cost.get("total"),
    )
    yield _gauge(
        "jbrl_slo_attainment",
        "Fraction of requests within the latency SLO in the last interval.",
        m.slo_attainment if m is not None else None,
    )
    yield _gauge(
        "jbrl_run_slo_attainment",
        "Fraction of requests within the latency SLO since the controller started.",
        snap.run_slo_attainment,
    )
    yield _gauge(
        "jbrl_predicted_slo_attainment",
        "Predicted fraction of requests within the latency SLO (latency model, running plan, "
        "observed load).",
        snap.plan_cost.get("predicted_attainment"),
    )
    lat = m.latency_ms if m is not None else {}
    yield _labelled(
        GaugeMetricFamily,
        "jbrl_request_latency_ms",
        "End-to-end request latency percentiles of the last interval (ms).",
        "quantile",
        {q: lat.get(k) for q, k in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))},
    )
    yield _labelled(
        GaugeMetricFamily,
        "jbrl_arrival_rate",
        "Observed arrival rate per source (req/s).",
        "source",
        dict(sorted(snap.load.items())),
    )


def _worker_gauges(
    snap: ControllerSnapshot, down: frozenset[str], workers: list[str]
) -> Iterator[Metric]:
    """Per worker: utilization and queue (once the backend has reported), up or down."""
    rep = snap.last_report
    if rep is not None:
        yield _labelled(
            GaugeMetricFamily,
            "jbrl_worker_utilization",
            "Busy fraction of each worker.",
            "worker",
            dict(sorted(rep.metrics.utilization.items())),
        )
        yield _labelled(
            GaugeMetricFamily,
            "jbrl_worker_queue",
            "Requests queued or in service per worker.",
            "worker",
            {w: float(q) for w, q in sorted(rep.worker_queue.items())},
        )
    yield _labelled(
        GaugeMetricFamily,
        "jbrl_worker_up",
        "1 when the worker is up, 0 when it is crashed.",
        "worker",
        {w: 0.0 if w in down else 1.0 for w in workers},
    )


def _decision_counters(snap: ControllerSnapshot) -> Iterator[Metric]:
    """Decisions, fallbacks (by reason), overrides and plan changes."""
    counters = snap.counters
    for name, doc, key in (
        ("jbrl_decisions", "Decisions made (intervals, crashes, overrides).", "decisions"),
        ("jbrl_overrides", "Operator overrides applied.", "overrides"),
        (
            "jbrl_overrides_rejected",
            "Operator overrides rejected (HTTP 400).",
            "overrides_rejected",
        ),
        ("jbrl_plan_changes", "Applied plans that changed a variant or placement.", "plan_changes"),
        (
            "jbrl_shield_interventions",
            "Policy plans the SLO shield replaced by a scale-up predicted to meet the SLO.",
            "shield_interventions",
        ),
    ):
        yield CounterMetricFamily(name, doc, value=float(counters.get(key, 0)))
    reasons = {r: float(n) for r, n in sorted(snap.fallback_reasons.items())}
    yield _labelled(
        CounterMetricFamily,
        "jbrl_fallbacks",
        "Decisions where the policy's plan was replaced by the MILP fallback.",
        "reason",
        reasons,  # no sample before the first fallback (no placeholder label)
    )


def _request_counters(counts: dict[str, Any]) -> Iterator[Metric]:
    """The backend's cumulative request counts."""
    yield CounterMetricFamily(
        "jbrl_requests_arrived",
        "Requests accepted by the backend.",
        value=float(counts.get("arrived", 0)),
    )
    yield CounterMetricFamily(
        "jbrl_requests_completed",
        "Requests completed by the backend.",
        value=float(counts.get("completed", 0)),
    )
    dropped = {r: float(n) for r, n in sorted((counts.get("dropped") or {}).items())}
    yield _labelled(
        CounterMetricFamily,
        "jbrl_requests_dropped",
        "Requests dropped, by reason.",
        "reason",
        dropped,
    )
    yield CounterMetricFamily(
        "jbrl_requests_lost",
        "Accepted requests the backend cannot account for (must stay 0).",
        value=float(counts.get("lost", 0)),
    )


def controller_registry(controller: Controller) -> CollectorRegistry:
    """A registry of its own holding the controller's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControllerCollector(controller))
    return registry


def render_metrics(controller: Controller) -> str:
    """The controller's metrics in the Prometheus text format."""
    return generate_latest(controller_registry(controller)).decode()
