"""Fuzz the controller's HTTP API (loopback only): random methods, paths, headers, content
types and bodies (malformed JSON, deep and huge documents, bytes), whole or cut short. Every
complete request gets an answer with a status the API documents (never 500: no handler escape),
and the server keeps answering."""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jbrl.control import ApiConfig, ApiServer
from jbrl.scenario.traces import constant_trace
from tests.control.test_control import control_scenario, make_controller
from tests.fuzz.strategies import VALUES

TOKEN = "fuzz-token-0123456789abcdef"
DOCUMENTED = {200, 400, 401, 403, 404, 405, 408, 413, 415, 431, 503}
EXPLORE = int(os.environ.get("JBRL_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXPLORE or 60,
    deadline=None,
    derandomize=not EXPLORE,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp: Path = tmp_path_factory.mktemp("api")
    scen = control_scenario()
    ctl = make_controller(scen, constant_trace(scen, math.inf, scale=0.5), tmp, duration=None)
    cfg = ApiConfig(request_timeout_s=1.0, body_timeout_s=0.8, max_body_bytes=64 * 1024)
    api = ApiServer(ctl, "127.0.0.1", 0, token=TOKEN, config=cfg).start()
    ctl.start()
    yield api
    api.close()
    ctl.close()


def _body(value: Any, kind: str) -> bytes:
    if kind == "json":
        return json.dumps(value, default=str).encode()
    if kind == "deep":
        return b"[" * 5000 + b"]" * 5000
    if kind == "huge":
        return b'{"plan": "' + b"x" * 100_000 + b'"}'
    if kind == "plan":
        return json.dumps({"plan": {"worker_assignment": value}, "hold_intervals": 1}).encode()
    return bytes(str(value), "utf-8", "replace")


REQUESTS = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "BREW"]),
        "path": st.sampled_from(["/healthz", "/plan", "/metrics", "/openapi.json", "/", "/x/../plan",
                                 "/plan?x=1", "/%00", "/" + "a" * 3000]),
        "ctype": st.sampled_from([None, "application/json", "application/json; charset=utf-8",
                                  "text/plain", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=z", "APPLICATION/JSON", "*/*"]),
        "auth": st.sampled_from([None, f"Bearer {TOKEN}", f"bearer {TOKEN}", "Bearer x",
                                 "Basic Zm9vOmJhcg==", f"Bearer  {TOKEN} ", "Bearer"]),
        "host": st.sampled_from(["127.0.0.1", "localhost", "evil.example", "", "[::1]"]),
        "origin": st.sampled_from([None, None, "http://evil.example", "null"]),
        "value": VALUES,
        "kind": st.sampled_from(["json", "json", "plan", "deep", "huge", "text"]),
        "cut": st.integers(0, 3),
    }
)  # fmt: skip


def _send(port: int, r: dict[str, Any]) -> int | None:
    """Send the request (cut short when ``cut == 0``); the status, or None without one."""
    body = _body(r["value"], r["kind"]) if r["method"] in ("POST", "PUT") else b""
    lines = [f"{r['method']} {r['path']} HTTP/1.1", f"Host: {r['host']}:{port}",
             f"Content-Length: {len(body)}", "Connection: close"]  # fmt: skip
    for name, key in (("Content-Type", "ctype"), ("Authorization", "auth"), ("Origin", "origin")):
        if r[key] is not None:
            lines.append(f"{name}: {r[key]}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    if r["cut"] == 0:
        raw = raw[: max(1, len(raw) // 2)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(raw)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            return None
    if not data:
        return None
    return int(data.split(b" ", 2)[1])


@FUZZ
@given(r=REQUESTS)
def test_every_request_gets_a_documented_answer(server: ApiServer, r: dict[str, Any]) -> None:
    status = _send(server.port, r)
    if r["cut"] == 0:  # cut short: no answer, or a refusal that needs no body
        assert status is None or (status in DOCUMENTED and status >= 400), (status, r)
    else:
        assert status in DOCUMENTED, (status, r)


def test_server_still_answers_after_the_fuzzing(server: ApiServer) -> None:
    ok = {"method": "GET", "path": "/healthz", "ctype": None, "auth": f"Bearer {TOKEN}",
          "host": "127.0.0.1", "origin": None, "value": None, "kind": "json", "cut": 1}  # fmt: skip
    assert _send(server.port, ok) == 200
