"""The controller's status page (``GET /``) and the JSON it shows (``GET /status.json``).

Operators look rather than read: the page shows the running plan per tier (which worker runs
which operator and variant, at what rate of its capacity), the load against what the plan
carries, SLO attainment (last interval and run, against the target), $/hour (spent in the last
interval and the plan's cost model) and the latest decisions. It is one self-contained HTML
document: inline style and script, no external assets, so it works offline; a
Content-Security-Policy (:data:`STATUS_CSP`) forbids anything else. The script fetches
``/status.json`` every :data:`REFRESH_S` seconds and writes every value with ``textContent``
(never as HTML). With a bearer token the page reads it from the address's fragment
(``/#token=...``, never sent to the server) and sends it with its requests; the HTML itself holds
no data.

Capacity is throughput capacity today (``capacity_kind: "throughput"``: the req/s each operator's
workers serve at full utilization); when an SLO-safe capacity model exists the same field names
it and the page's label follows.
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import TYPE_CHECKING, Any

from jbrl.control.views import interval_dollars_per_hour
from jbrl.jsonable import jsonable
from jbrl.planning.cost import evaluate_plan

if TYPE_CHECKING:
    from jbrl.control.controller import Controller
    from jbrl.control.views import ControllerSnapshot

#: seconds between the page's refreshes
REFRESH_S = 2.0
#: what "capacity" means in the status JSON (see the module docstring)
CAPACITY_KIND = "throughput"
#: decisions the page lists
PAGE_DECISIONS = 10


def status_data(c: Controller) -> dict[str, Any]:
    """Everything the status page shows, as JSON."""
    snap = c.snapshot()
    m = snap.last_metrics
    return jsonable(
        {
            "scenario": snap.scenario,
            "policy": snap.policy,
            "backend": snap.backend,
            "time_s": c.clock.now(),
            "stopping": snap.stopping,
            "down_workers": sorted(c.backend.down_workers()),
            "tiers": _plan_by_tier(c, snap),
            "load": _load_vs_capacity(c, snap),
            "slo": {
                "target": c.scenario.slo.attainment,
                "latency_ms": c.scenario.slo.latency_ms,
                "last_interval": m.slo_attainment if m is not None else None,
                "run": snap.run_slo_attainment,
            },
            "dollars_per_hour": {
                "last_interval": interval_dollars_per_hour(m),
                "plan": snap.plan_cost.get("total"),
            },
            "accuracy": snap.plan_cost.get("accuracy"),
            "counters": snap.counters,
            "decisions": [
                {
                    "seq": d.seq,
                    "time_s": d.time_s,
                    "trigger": d.trigger,
                    "source": d.source,
                    "changed": d.changed,
                    "fallback_reason": d.fallback_reason,
                    "decision_ms": d.decision_ms,
                }
                for d in reversed(snap.recent_decisions[-PAGE_DECISIONS:])
            ],
        }
    )


def _plan_by_tier(c: Controller, snap: ControllerSnapshot) -> list[dict[str, Any]]:
    """Per tier (nearest the data first): the workers of the running plan and what they run."""
    s = c.scenario
    plan = snap.plan
    util = snap.last_report.metrics.utilization if snap.last_report else {}
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in s.tiers}
    if plan is not None:
        for op in s.topo_order:
            var = plan.model_assignment.get(op, s.operator_map[op].variants[0])
            for share in plan.worker_assignment.get(op, []):
                w = share.worker
                rows[s.tiers[s.worker_tier[w]]].append(
                    {
                        "worker": w,
                        "operator": op,
                        "variant": var,
                        "rate": share.rate,
                        "capacity": s.capacity(op, var, w),
                        "utilization": util.get(w),
                    }
                )
    return [{"tier": t, "workers": ws} for t, ws in rows.items()]


def _load_vs_capacity(c: Controller, snap: ControllerSnapshot) -> dict[str, Any]:
    """Source rates, and per operator its demand at that load against the plan's capacity;
    ``scale``: the largest multiple of the load the plan carries."""
    out: dict[str, Any] = {
        "capacity_kind": CAPACITY_KIND,
        "sources": dict(snap.load),
        "operators": [],
        "scale": None,
    }
    if snap.plan is None:
        return out
    report = evaluate_plan(c.scenario, snap.plan, snap.load)
    scales = []
    for o in report.operators.values():
        out["operators"].append(
            {"operator": o.operator, "demand": o.demand, "capacity": o.capacity}
        )
        if o.demand > 0:
            scales.append(o.capacity / o.demand)
    out["scale"] = min(scales) if scales else math.inf
    return out


_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.2em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{padding:.2em .7em;border-bottom:1px solid #ddd;
text-align:left}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;
border-radius:6px;padding:.6em 1em;min-width:11em}.big{font-size:1.6em;font-weight:600}
.bad{color:#b00020}.ok{color:#146c2e}.muted{color:#777}
"""

_SCRIPT = """
"use strict";
const REFRESH_MS = %(refresh_ms)d;
let refreshes = 0;
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const $ = (id) => document.getElementById(id);
const fmt = (x, d) => (x === null || x === undefined) ? "-" : Number(x).toFixed(d);
const pct = (x) => (x === null || x === undefined) ? "-" : (100 * x).toFixed(2) + "%%";
function cell(tr, text, num) {
  const td = document.createElement("td");
  td.textContent = text;
  if (num) td.className = "n";
  tr.appendChild(td);
}
function fill(id, rows) {
  const body = $(id);
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const [text, num] of r) cell(tr, text, num);
    body.appendChild(tr);
  }
}
function show(s) {
  $("head").textContent = s.scenario + ": policy " + s.policy + ", " + s.backend +
    " backend, trace time " + fmt(s.time_s, 0) + " s" + (s.stopping ? " (stopping)" : "");
  const att = s.slo.last_interval;
  $("slo").textContent = pct(att);
  $("slo").className = "big " + (att === null ? "" : (att >= s.slo.target ? "ok" : "bad"));
  $("slo-run").textContent = "run " + pct(s.slo.run) + ", target " + pct(s.slo.target) +
    " within " + s.slo.latency_ms + " ms";
  $("dph").textContent = fmt(s.dollars_per_hour.last_interval, 4);
  $("dph-plan").textContent = "plan's cost model " + fmt(s.dollars_per_hour.plan, 4);
  $("scale").textContent = s.load.scale === null ? "-" : fmt(s.load.scale, 2) + "x";
  $("cap-kind").textContent = s.load.capacity_kind;
  $("cap-kind2").textContent = s.load.capacity_kind;
  fill("sources", Object.entries(s.load.sources).map(([k, v]) => [[k], [fmt(v, 2), 1]]));
  fill("operators", s.load.operators.map((o) => [[o.operator], [fmt(o.demand, 2), 1],
    [fmt(o.capacity, 2), 1], [o.capacity > 0 ? pct(o.demand / o.capacity) : "-", 1]]));
  const rows = [];
  for (const t of s.tiers) for (const w of t.workers) rows.push([[t.tier], [w.worker],
    [w.operator], [w.variant], [fmt(w.rate, 2), 1], [fmt(w.capacity, 2), 1],
    [w.utilization === null ? "-" : pct(w.utilization), 1]]);
  fill("plan", rows);
  $("down").textContent = s.down_workers.length ? "down: " + s.down_workers.join(", ") : "";
  fill("decisions", s.decisions.map((d) => [[String(d.seq), 1], [fmt(d.time_s, 0), 1],
    [d.trigger], [d.source], [d.changed ? "yes" : ""], [d.fallback_reason || ""],
    [fmt(d.decision_ms, 1), 1]]));
  refreshes += 1;
  $("updated").textContent = "updated " + new Date().toLocaleTimeString() +
    " (refresh " + refreshes + ")";
  document.body.dataset.refreshes = String(refreshes);
  document.body.dataset.seq = s.decisions.length ? String(s.decisions[0].seq) : "";
}
async function refresh() {
  try {
    const r = await fetch("/status.json", {cache: "no-store",
      headers: token ? {"Authorization": "Bearer " + token} : {}});
    if (!r.ok) throw new Error("HTTP " + r.status);
    show(await r.json());
    $("error").textContent = "";
  } catch (e) {
    $("error").textContent = "cannot reach the controller: " + e.message;
  }
  setTimeout(refresh, REFRESH_MS);
}
refresh();
"""

_BODY = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jbrl controller</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>%(style)s</style></head>
<body><h1>jbrl controller</h1><div id="head" class="muted">loading ...</div>
<div id="error" class="bad"></div>
<div class="cards">
<div class="card">SLO attainment (last interval)<div id="slo" class="big">-</div>
<div id="slo-run" class="muted"></div></div>
<div class="card">$/hour (last interval)<div id="dph" class="big">-</div>
<div id="dph-plan" class="muted"></div></div>
<div class="card">load the plan carries (<span id="cap-kind"></span> capacity)
<div id="scale" class="big">-</div><div class="muted">multiple of the current load</div></div>
</div>
<h2>Load (req/s per source)</h2>
<table><thead><tr><th>source</th><th class="n">req/s</th></tr></thead>
<tbody id="sources"></tbody></table>
<h2>Demand vs <span id="cap-kind2"></span> capacity per operator</h2>
<table><thead><tr><th>operator</th><th class="n">demand req/s</th><th class="n">capacity req/s</th>
<th class="n">utilization</th></tr></thead><tbody id="operators"></tbody></table>
<h2>Running plan per tier</h2><div id="down" class="bad"></div>
<table><thead><tr><th>tier</th><th>worker</th><th>operator</th><th>variant</th>
<th class="n">req/s</th><th class="n">capacity</th><th class="n">busy</th></tr></thead>
<tbody id="plan"></tbody></table>
<h2>Recent decisions (newest first)</h2>
<table><thead><tr><th class="n">seq</th><th class="n">t (s)</th><th>trigger</th><th>source</th>
<th>changed</th><th>fallback reason</th><th class="n">ms</th></tr></thead>
<tbody id="decisions"></tbody></table>
<p id="updated" class="muted"></p>
<script>%(script)s</script></body></html>
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_SCRIPT_TEXT = _SCRIPT % {"refresh_ms": int(REFRESH_S * 1000)}

#: the page (UTF-8 HTML)
STATUS_HTML: bytes = (_BODY % {"style": _STYLE, "script": _SCRIPT_TEXT}).encode()

#: the page's Content-Security-Policy: its own inline style and script (by hash), requests to
#: this server only, nothing from elsewhere
STATUS_CSP = (
    f"default-src 'none'; script-src {_sha256(_SCRIPT_TEXT)}; style-src {_sha256(_STYLE)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
