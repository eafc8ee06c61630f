"""The controller's HTTP API (standard library ``http.server`` in a thread).

=================  ==========================================================================
``GET /``          the status page (:mod:`.status_page`: HTML, no data; it fetches the next)
``GET /status.json``  what the status page shows: plan per tier, load vs capacity, SLO, $/h
``GET /healthz``   ``{"status": "ok" | "degraded" | "stopping", ...}`` (degraded: a worker of
                   the running plan is down, or the last decision kept a failing plan or
                   could not be applied)
``GET /plan``      the running plan (plan JSON of ARCHITECTURE.md) plus ``seq``, ``source``
``GET /metrics``   Prometheus text format 0.0.4 (see :func:`render_metrics`)
``POST /plan``     an operator's override: a plan JSON, or ``{"plan": {...},
                   "hold_intervals": n}``; checked like a policy's plan, then applied (200) or
                   rejected (400, ``{"error": ..., "reasons": [...]}``)
=================  ==========================================================================

Binds 127.0.0.1 by default. With a token every request needs ``Authorization: Bearer TOKEN``
(401 otherwise); the CLI refuses a non-loopback address without one.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from jbrl.control.api.status_page import STATUS_CSP, STATUS_HTML, status_data
from jbrl.control.decision import OverrideOutcome, OverrideResult
from jbrl.control.views import ControllerSnapshot, interval_dollars_per_hour
from jbrl.jsonable import jsonable

if TYPE_CHECKING:
    from jbrl.control.controller import Controller

MAX_BODY = 1 << 20
PROM_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- Prometheus


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


class _Prom:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: list[tuple[dict[str, str], float | None]] | float | None,
        suffix: str = "",
    ) -> None:
        self.lines.append(f"# HELP {name}{suffix} {help_text}")
        self.lines.append(f"# TYPE {name}{suffix} {kind}")
        if not isinstance(samples, list):
            samples = [({}, samples)]
        for labels, value in samples:
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(
                f"{name}{suffix}{{{lab}}} {_num(value)}" if lab else f"{name}{suffix} {_num(value)}"
            )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(c: Controller) -> str:
    """The controller's metrics in the Prometheus text format.

    Gauges: ``jbrl_dollars_per_hour`` (spent in the last interval), ``jbrl_plan_dollars_per_hour``
    (cost model of the running plan), ``jbrl_slo_attainment`` (last interval),
    ``jbrl_run_slo_attainment`` (whole run) and beside them ``jbrl_predicted_slo_attainment``
    (the latency model's prediction for the running plan at the observed load; NaN without
    a latency bound), ``jbrl_request_latency_ms`` (p50/p95/p99 of the
    last interval, label ``quantile``), ``jbrl_arrival_rate`` (per source), ``jbrl_worker_*``
    (utilization, queue, up), ``jbrl_in_flight_requests``, ``jbrl_last_decision_ms``.
    Counters (this run, since the process started): ``jbrl_decisions_total``,
    ``jbrl_fallbacks_total`` (by reason; no sample before the first fallback),
    ``jbrl_overrides_total``, ``jbrl_plan_changes_total``, ``jbrl_requests_*_total`` (the
    backend's counts as of its last report, the same as the summary and the decision log).
    """
    p = _Prom()
    snap = c.snapshot()
    counts = snap.request_counts
    _run_gauges(p, snap)
    _worker_gauges(p, snap, c.backend.down_workers(), c.backend.workers)
    p.family(
        "jbrl_in_flight_requests",
        "gauge",
        "Requests accepted and not yet finished.",
        counts.get("in_flight"),
    )
    last = snap.last_decision
    p.family(
        "jbrl_last_decision_ms",
        "gauge",
        "Wall time of the last decision (ms).",
        last.decision_ms if last else None,
    )
    _decision_counters(p, snap)
    _request_counters(p, counts)
    return p.text()


def _run_gauges(p: _Prom, snap: ControllerSnapshot) -> None:
    """Dollars, SLO attainment, latency and arrival rates."""
    m = snap.last_metrics
    dph = interval_dollars_per_hour(m)
    p.family("jbrl_dollars_per_hour", "gauge", "Dollars per hour spent in the last interval.", dph)
    p.family(
        "jbrl_plan_dollars_per_hour",
        "gauge",
        "Cost model of the running plan at the observed load ($/hour).",
        snap.plan_cost.get("total"),
    )
    p.family(
        "jbrl_slo_attainment",
        "gauge",
        "Fraction of requests within the latency SLO in the last interval.",
        m.slo_attainment if m is not None else None,
    )
    p.family(
        "jbrl_run_slo_attainment",
        "gauge",
        "Fraction of requests within the latency SLO since the controller started.",
        snap.run_slo_attainment,
    )
    p.family(
        "jbrl_predicted_slo_attainment",
        "gauge",
        "Predicted fraction of requests within the latency SLO (latency model, running plan, "
        "observed load).",
        snap.plan_cost.get("predicted_attainment"),
    )
    lat = m.latency_ms if m is not None else {}
    p.family(
        "jbrl_request_latency_ms",
        "gauge",
        "End-to-end request latency percentiles of the last interval (ms).",
        [
            ({"quantile": q}, lat.get(k))
            for q, k in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
        ],
    )
    p.family(
        "jbrl_arrival_rate",
        "gauge",
        "Observed arrival rate per source (req/s).",
        [({"source": s}, r) for s, r in sorted(snap.load.items())],
    )


def _worker_gauges(
    p: _Prom, snap: ControllerSnapshot, down: frozenset[str], workers: list[str]
) -> None:
    """Per worker: utilization and queue (once the backend has reported), up or down."""
    rep = snap.last_report
    if rep is not None:
        p.family(
            "jbrl_worker_utilization",
            "gauge",
            "Busy fraction of each worker.",
            [({"worker": w}, u) for w, u in sorted(rep.metrics.utilization.items())],
        )
        p.family(
            "jbrl_worker_queue",
            "gauge",
            "Requests queued or in service per worker.",
            [({"worker": w}, q) for w, q in sorted(rep.worker_queue.items())],
        )
    p.family(
        "jbrl_worker_up",
        "gauge",
        "1 when the worker is up, 0 when it is crashed.",
        [({"worker": w}, 0.0 if w in down else 1.0) for w in workers],
    )


def _decision_counters(p: _Prom, snap: ControllerSnapshot) -> None:
    """Decisions, fallbacks (by reason), overrides and plan changes."""
    counters = snap.counters
    p.family(
        "jbrl_decisions",
        "counter",
        "Decisions made (intervals, crashes, overrides).",
        float(counters.get("decisions", 0)),
        "_total",
    )
    p.family(
        "jbrl_fallbacks",
        "counter",
        "Decisions where the policy's plan was replaced by the MILP fallback.",
        [({"reason": r}, float(n)) for r, n in sorted(snap.fallback_reasons.items())],
        "_total",
    )
    p.family(
        "jbrl_overrides",
        "counter",
        "Operator overrides applied.",
        float(counters.get("overrides", 0)),
        "_total",
    )
    p.family(
        "jbrl_overrides_rejected",
        "counter",
        "Operator overrides rejected (HTTP 400).",
        float(counters.get("overrides_rejected", 0)),
        "_total",
    )
    p.family(
        "jbrl_plan_changes",
        "counter",
        "Applied plans that changed a variant or placement.",
        float(counters.get("plan_changes", 0)),
        "_total",
    )


def _request_counters(p: _Prom, counts: dict[str, Any]) -> None:
    """The backend's cumulative request counts."""
    p.family(
        "jbrl_requests_arrived",
        "counter",
        "Requests accepted by the backend.",
        float(counts.get("arrived", 0)),
        "_total",
    )
    p.family(
        "jbrl_requests_completed",
        "counter",
        "Requests completed by the backend.",
        float(counts.get("completed", 0)),
        "_total",
    )
    dropped = counts.get("dropped", {}) or {}
    p.family(
        "jbrl_requests_dropped",
        "counter",
        "Requests dropped, by reason.",
        [({"reason": r}, float(n)) for r, n in sorted(dropped.items())],
        "_total",
    )
    p.family(
        "jbrl_requests_lost",
        "counter",
        "Accepted requests the backend cannot account for (must stay 0).",
        float(counts.get("lost", 0)),
        "_total",
    )


# --------------------------------------------------------------------------- overrides

#: the HTTP status of each override outcome
OVERRIDE_STATUS: dict[OverrideOutcome, int] = {
    OverrideOutcome.APPLIED: 200,
    OverrideOutcome.BAD_HOLD: 400,
    OverrideOutcome.MALFORMED: 400,
    OverrideOutcome.REJECTED: 400,
}


def override_response(result: OverrideResult) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of an override's result."""
    return OVERRIDE_STATUS[result.outcome], result.to_dict()


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    server: _ApiHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return  # the decision log is the record; no per-request noise on stderr

    def _send(self, code: int, body: bytes, ctype: str, status_sent: bool = False) -> None:
        if not status_sent:
            self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, data: Any) -> None:
        self._send(code, (json.dumps(jsonable(data), indent=2) + "\n").encode(), "application/json")

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        got = self.headers.get("Authorization", "")
        ok = got.startswith("Bearer ") and hmac.compare_digest(
            got[len("Bearer ") :].strip().encode(), token.encode()
        )
        if not ok:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="jbrl"')
            body = b'{"error": "missing or wrong bearer token"}\n'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        return ok

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path == "/":  # static HTML without data: the token travels with its requests
            self.send_response(200)
            self.send_header("Content-Security-Policy", STATUS_CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self._send(200, STATUS_HTML, "text/html; charset=utf-8", status_sent=True)
            return
        if not self._authorized():
            return
        c = self.server.controller
        if path == "/status.json":
            self._json(200, status_data(c))
        elif path == "/healthz":
            self._json(200, health(c))
        elif path == "/plan":
            snap = c.snapshot()
            plan, last = snap.plan, snap.last_decision
            if plan is None:
                self._json(503, {"error": "no plan yet"})
                return
            body = plan.to_dict()
            body["seq"] = last.seq if last else None
            body["source"] = last.source if last else None
            body["time_s"] = last.time_s if last else None
            self._json(200, body)
        elif path == "/metrics":
            self._send(200, render_metrics(c).encode(), PROM_CONTENT_TYPE)
        else:
            self._json(
                404,
                {
                    "error": f"no such endpoint {path!r} "
                    "(GET /, /status.json, /healthz, /plan, /metrics; POST /plan)"
                },
            )

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0]
        if path != "/plan":
            self._json(404, {"error": f"no such endpoint {path!r} (POST /plan)"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(400, {"error": f"send a JSON body of 1 to {MAX_BODY} bytes"})
            return
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._json(400, {"error": "not valid JSON", "reasons": [str(exc)]})
            return
        c = self.server.controller
        if c.stopping:
            self._json(503, {"error": "the controller is stopping"})
            return
        try:
            code, body = override_response(c.override(data))
        except Exception as exc:  # the backend failed to apply: say so, keep serving
            code, body = 500, {"error": f"applying the plan failed: {type(exc).__name__}: {exc}"}
        self._json(code, body)


def health(c: Controller) -> dict[str, Any]:
    """The body of ``GET /healthz``."""
    down = c.backend.down_workers()
    snap = c.snapshot()
    last = snap.last_decision
    degraded = bool(down & snap.plan_workers) or (
        last is not None and last.source in ("keep", "apply_failed")
    )
    status = "stopping" if c.stopping else ("degraded" if degraded else "ok")
    now = c.clock.now()
    return {
        "status": status,
        "backend": c.backend.kind,
        "policy": c.policy_name,
        "time_s": now,
        "last_decision": None
        if last is None
        else {
            "seq": last.seq,
            "time_s": last.time_s,
            "source": last.source,
            "age_s": now - last.time_s,
        },
        "down_workers": sorted(down),
    }


class _ApiHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], controller: Controller, token: str | None) -> None:
        self.controller = controller
        self.token = token
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, _Handler)


class ApiServer:
    """Serves the API for ``controller`` on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        controller: Controller,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError("a non-loopback address needs a bearer token")
        self.httpd = _ApiHttpServer((host, port), controller, token)
        self.host = host
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="jbrl-api", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ApiServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
