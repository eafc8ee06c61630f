"""The status page (``GET /``) in real headless Chromium, ``/status.json``, and the shipped
Grafana dashboard against the metrics a live controller exports.

The page test needs Chromium (Debian's ``chromium``; ``.ci/run`` installs it). Without it the
test is skipped, unless ``JBRL_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``) makes that a failure.
All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from jbrl.control import ApiServer, Controller
from jbrl.control.api.status_page import STATUS_CSP
from jbrl.scenario import Scenario
from jbrl.scenario.traces import constant_trace
from tests.control.test_control import control_scenario, get, make_controller, post

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
OTHER_PLAN = {
    "model_assignment": {"detect": "large"},
    "worker_assignment": {"detect": ["c1"], "track": ["c2"]},
}


@pytest.fixture
def scen() -> Scenario:
    return control_scenario()


@pytest.fixture
def started(scen: Scenario, tmp_path: Path) -> Any:
    """A started controller (one interval reported) and its API on a free loopback port."""
    ctl = make_controller(scen, constant_trace(scen, math.inf, scale=0.5), tmp_path, speedup=50.0)
    api = ApiServer(ctl, "127.0.0.1", 0).start()
    try:
        ctl.start()
        ctl.step("interval")
        yield ctl, api
    finally:
        api.close()
        ctl.close()


def _workers(plan: dict[str, Any]) -> set[str]:
    return {s["worker"] for ss in plan["worker_assignment"].values() for s in ss}


class _Cells(HTMLParser):
    """The text of every table cell under the element with id ``plan`` and the body's data."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, list[str]] = {}
        self.body: dict[str, str] = {}
        self._in: str | None = None
        self._cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tbody" and a.get("id"):
            self._in = a["id"]
            self.cells[self._in] = []
        elif tag == "body":
            self.body = {k: v or "" for k, v in a.items()}
        self._cell = tag == "td" and self._in is not None

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in = None
        if tag == "td":
            self._cell = False

    def handle_data(self, data: str) -> None:
        if self._cell and self._in is not None:
            self.cells[self._in].append(data)


def _render(url: str, profile: Path) -> _Cells:
    """The page's DOM after its scripts ran for 7 s of virtual time (several refreshes)."""
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=7000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    parsed = _Cells()
    parsed.feed(proc.stdout)
    return parsed


def test_status_page_in_headless_chromium(started: Any, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("JBRL_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    ctl, api = started
    code, raw = get(api.url + "/plan")
    before = json.loads(raw)
    page = _render(api.url + "/", tmp_path / "profile1")
    # it renders, shows the live plan (every worker of the running plan), and refreshes itself
    assert int(page.body.get("data-refreshes", "0")) >= 2, page.body
    assert _workers(before) <= set(page.cells["plan"]), page.cells
    assert "cam" in page.cells["sources"]
    assert page.body.get("data-seq") == str(before["seq"])
    # after a plan change the page shows the new plan
    code, body = post(api.url + "/plan", {"plan": OTHER_PLAN, "hold_intervals": 1})
    assert code == 200, body
    page = _render(api.url + "/", tmp_path / "profile2")
    assert page.body.get("data-seq") == str(body["seq"]) != str(before["seq"])
    cells = page.cells["plan"]
    assert "c1" in cells and "large" in cells and "c2" in cells
    assert "override" in page.cells["decisions"]


def test_status_page_is_static_and_locked_down(started: Any) -> None:
    _, api = started
    import urllib.request

    with urllib.request.urlopen(api.url + "/", timeout=10) as r:
        html = r.read().decode()
        csp = r.headers["Content-Security-Policy"]
        assert r.headers["Content-Type"].startswith("text/html")
    assert csp == STATUS_CSP and "default-src 'none'" in csp and "connect-src 'self'" in csp
    # no external assets: nothing is loaded from another address
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "http://" not in html and "https://" not in html


def test_status_json(started: Any, scen: Scenario) -> None:
    ctl, api = started
    code, raw = get(api.url + "/status.json")
    assert code == 200
    s = json.loads(raw)
    assert [t["tier"] for t in s["tiers"]] == list(scen.tiers)
    plan = ctl.snapshot().plan
    shown = {w["worker"] for t in s["tiers"] for w in t["workers"]}
    assert shown == {sh.worker for ss in plan.worker_assignment.values() for sh in ss}
    for t in s["tiers"]:
        for w in t["workers"]:
            assert scen.tiers[scen.worker_tier[w["worker"]]] == t["tier"]
            assert 0 <= w["rate"] <= w["capacity"] + 1e-9
    load = s["load"]
    assert load["capacity_kind"] == "throughput" and load["sources"]["cam"] > 0
    assert load["scale"] == pytest.approx(
        min(o["capacity"] / o["demand"] for o in load["operators"] if o["demand"] > 0)
    )
    assert 0 <= s["slo"]["last_interval"] <= 1 and s["slo"]["target"] == scen.slo.attainment
    assert s["dollars_per_hour"]["plan"] > 0
    assert [d["seq"] for d in s["decisions"]] == [2, 1]  # newest first


# --------------------------------------------------------------------------- Grafana

#: the parts of Grafana's dashboard model an import needs (Grafana's dashboard JSON model,
#: schemaVersion 39): a title, a uid, panels with a type, a grid position inside 24 columns and
#: Prometheus targets, and the datasource every panel names declared as an import input
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "__inputs", "time", "templating"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "__inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "type", "pluginId"],
                "properties": {
                    "type": {"const": "datasource"},
                    "pluginId": {"const": "prometheus"},
                },
            },
        },
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {"list": {"type": "array"}},
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "type": {"enum": ["timeseries", "stat", "gauge", "table", "bargauge"]},
                    "title": {"type": "string", "minLength": 1},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                            "h": {"type": "integer", "minimum": 1},
                            "y": {"type": "integer", "minimum": 0},
                        },
                    },
                    "datasource": {
                        "type": "object",
                        "required": ["type", "uid"],
                        "properties": {"type": {"const": "prometheus"}},
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {"expr": {"type": "string", "minLength": 1}},
                        },
                    },
                },
            },
        },
    },
}


def _dashboard() -> dict[str, Any]:
    text = (resources.files("jbrl.configs") / "grafana" / "jbrl-controller.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def test_grafana_dashboard_is_valid() -> None:
    dash = _dashboard()
    jsonschema.validate(dash, DASHBOARD_SCHEMA)
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    inputs = {"${" + i["name"] + "}" for i in dash["__inputs"]}
    for p in panels:
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        assert p["datasource"]["uid"] in inputs, p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])


def _exported_names(text: str) -> set[str]:
    """Every metric name of a Prometheus text page: declared families and sample names."""
    names = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    names |= {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    return names - {""}


def test_grafana_queries_name_exported_metrics(started: tuple[Controller, ApiServer]) -> None:
    _, api = started
    code, raw = get(api.url + "/metrics")
    assert code == 200
    exported = _exported_names(raw.decode())
    assert "jbrl_decisions_total" in exported
    used: set[str] = set()
    for p in _dashboard()["panels"]:
        for t in p["targets"]:
            names = set(re.findall(r"\bjbrl_[a-z0-9_]+\b", t["expr"]))
            assert names, (p["title"], t["expr"])
            assert names <= exported, (p["title"], sorted(names - exported))
            used |= names
    assert len(used) >= 10  # the dashboard covers the controller, not one metric
