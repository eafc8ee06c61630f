"""Issue 14: the controller's HTTP API under hostile and careless clients (loopback only).

Cross-site requests, a foreign Host header, malformed and huge bodies, slow and partial
requests, a rejected body read as the next request, start-up, parallel clients and tokens.
"""

from __future__ import annotations

import contextlib
import json
import math
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_control import control_scenario, make_controller

from jbrl.control import ApiConfig, ApiServer, Controller
from jbrl.scenario.traces import constant_trace
from tests.conftest import assert_bad_input, run_jbrl

TOKEN = "t0k3n-for-the-tests-0123456789"
PLAN = {"worker_assignment": {"detect": ["c1"], "track": ["c2"]}}


def request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on a fresh connection: (status, headers, body)."""
    hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    if body or method == "POST":
        hdrs.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return parse_response(data)


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return status, hdrs, rest


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Controller, ApiServer]]:
    scen = control_scenario()
    ctl = make_controller(scen, constant_trace(scen, math.inf, scale=0.5), tmp_path, duration=None)
    api = ApiServer(ctl, "127.0.0.1", 0, config=ApiConfig(request_timeout_s=1.5)).start()
    try:
        ctl.start()
        yield ctl, api
    finally:
        api.close()
        ctl.close()


def _plan_of(api: ApiServer) -> dict[str, Any]:
    status, _, body = request(api.port, "GET", "/plan")
    assert status == 200
    return {k: v for k, v in json.loads(body).items() if k not in ("seq", "time_s", "source")}


@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_cross_site_simple_requests_cannot_change_the_plan(
    live: tuple[Controller, ApiServer], ctype: str | None
) -> None:
    ctl, api = live
    before = _plan_of(api)
    body = json.dumps({"plan": PLAN, "hold_intervals": 5}).encode()
    headers = {} if ctype is None else {"Content-Type": ctype}
    status, _, _ = request(api.port, "POST", "/plan", body, headers)
    assert status == 415
    status, _, _ = request(
        api.port, "POST", "/plan", body,
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
    )  # fmt: skip
    assert status == 403
    assert _plan_of(api) == before
    assert ctl.counters["overrides"] == 0


def test_foreign_host_header_is_refused_on_loopback(live: tuple[Controller, ApiServer]) -> None:
    _, api = live
    for host in (f"rebind.example:{api.port}", "evil.example"):
        assert request(api.port, "GET", "/plan", headers={"Host": host})[0] == 400
        assert request(api.port, "GET", "/metrics", headers={"Host": host})[0] == 400
    for host in (f"localhost:{api.port}", f"127.0.0.1:{api.port}"):
        assert request(api.port, "GET", "/healthz", headers={"Host": host})[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"plan": ' + b"9" * 5000 + b"}",
        b'{"plan": NaN}',
        b"\xff\xfe not json",
        b'{"plan": {"worker_assignment": {}}, "hold_intervals": 1, "extra": 1}',
        json.dumps({"worker_asignment": PLAN["worker_assignment"]}).encode(),
        json.dumps({"worker_assignment": {"detect": [{"worker": "c1", "rat": 3}]}}).encode(),
    ],
    ids=["deep", "5000-digits", "nan", "bytes", "extra-key", "typo-key", "typo-share-key"],
)
def test_malformed_bodies_get_400_with_a_reason(
    live: tuple[Controller, ApiServer], body: bytes
) -> None:
    _, api = live
    status, hdrs, raw = request(
        api.port, "POST", "/plan", body, {"Content-Type": "application/json"}
    )
    assert status == 400, raw
    answer = json.loads(raw)
    assert answer["error"]
    assert hdrs["content-type"].startswith("application/json")


def test_body_limit(live: tuple[Controller, ApiServer]) -> None:
    """A declared body over the limit is answered at once, before the client sends it."""
    _, api = live
    head = (
        f"POST /plan HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {2 << 20}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", api.port), timeout=8) as s:
        s.sendall(head)
        status, _, body = parse_response(s.recv(65536))
    assert status == 413 and b"at most" in body


def _held_open(port: int, payload: bytes, wait: float) -> float:
    """Send ``payload`` and nothing more; seconds until the server closes the connection."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(payload)
        try:
            while s.recv(65536):
                pass
        except TimeoutError:
            return math.inf
    return time.monotonic() - t0


def test_slow_and_partial_requests_are_closed(live: tuple[Controller, ApiServer]) -> None:
    _, api = live
    partial_head = b"GET /plan HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: "
    short_body = (
        b"POST /plan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"plan"'
    )
    for payload in (b"", partial_head, short_body):
        assert _held_open(api.port, payload, wait=8.0) < 5.0, payload


def test_rejected_body_is_not_read_as_the_next_request(
    live: tuple[Controller, ApiServer],
) -> None:
    _, api = live
    smuggled = f"GET /plan HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n\r\n".encode()
    head = (
        f"POST /plan HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {2 << 20}\r\n\r\n"
    ).encode()  # a body over the limit, refused unread; its first bytes are a request
    with socket.create_connection(("127.0.0.1", api.port), timeout=8) as s:
        s.sendall(head + smuggled)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    assert data.count(b"HTTP/1.1 ") == 1, data
    assert data.startswith(b"HTTP/1.1 413")


def test_800_requests_at_20_in_parallel(live: tuple[Controller, ApiServer]) -> None:
    _, api = live

    def one(i: int) -> int:
        path = ("/healthz", "/plan", "/metrics")[i % 3]
        return request(api.port, "GET", path)[0]

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(one, range(800)))
    assert codes.count(200) == 800, {c: codes.count(c) for c in set(codes)}


def test_a_burst_of_connections_is_queued_not_dropped(live: tuple[Controller, ApiServer]) -> None:
    """256 clients connecting at once all complete their handshake at once: the listen backlog
    holds them until the server accepts (a backlog of 5 drops the others' SYNs, and those
    clients wait for a retransmission or give up)."""
    _, api = live
    socks = []
    sel = selectors.DefaultSelector()
    try:
        for _ in range(256):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", api.port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE)
        connected = 0
        end = time.monotonic() + 0.5  # under the first SYN retransmission (1 s)
        while connected < len(socks) and (left := end - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                sel.unregister(key.fileobj)
                connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0  # type: ignore[union-attr]
        assert connected == len(socks)
    finally:
        sel.close()
        for s in socks:
            s.close()
    assert request(api.port, "GET", "/healthz")[0] == 200


def test_api_answers_503_until_the_controller_has_started(tmp_path: Path) -> None:
    scen = control_scenario()
    ctl = make_controller(scen, constant_trace(scen, math.inf, scale=0.5), tmp_path, duration=None)
    api = ApiServer(ctl, "127.0.0.1", 0).start()
    try:
        body = json.dumps(PLAN).encode()
        post = request(api.port, "POST", "/plan", body, {"Content-Type": "application/json"})
        assert post[0] == 503 and post[1].get("retry-after")
        for path in ("/plan", "/metrics", "/healthz"):
            assert request(api.port, "GET", path)[0] == 503
        ctl.start()
        for path in ("/plan", "/metrics", "/healthz"):
            assert request(api.port, "GET", path)[0] == 200
    finally:
        api.close()
        ctl.close()


def test_token_scheme_is_case_insensitive_and_every_path_needs_it(tmp_path: Path) -> None:
    scen = control_scenario()
    ctl = make_controller(scen, constant_trace(scen, math.inf, scale=0.5), tmp_path, duration=None)
    api = ApiServer(ctl, "127.0.0.1", 0, token=TOKEN).start()
    try:
        ctl.start()
        for path in ("/healthz", "/plan", "/metrics", "/status.json", "/openapi.json", "/nope"):
            status, hdrs, _ = request(api.port, "GET", path)
            assert status == 401 and "bearer" in hdrs["www-authenticate"].lower(), path
        # the status page's HTML holds no data: it is served, its data needs the token
        status, hdrs, page = request(api.port, "GET", "/")
        assert status == 200 and hdrs["content-type"].startswith("text/html")
        assert TOKEN.encode() not in page and b'"worker_assignment"' not in page
        assert request(api.port, "POST", "/")[0] == 401
        for scheme in ("Bearer", "bearer", "BEARER"):
            auth = {"Authorization": f"{scheme} {TOKEN}"}
            assert request(api.port, "GET", "/plan", headers=auth)[0] == 200
        wrong = {"Authorization": f"Bearer {TOKEN}x"}
        assert request(api.port, "GET", "/plan", headers=wrong)[0] == 401
        assert request(api.port, "POST", "/plan", b"{}", wrong)[0] == 401
    finally:
        api.close()
        ctl.close()
    for bad in (" ", "short", "x" * 15, "has space in it 0123456789"):
        with pytest.raises(ValueError, match="token"):
            ApiServer(ctl, "127.0.0.1", 0, token=bad)


def test_cli_refuses_a_weak_token(tmp_path: Path) -> None:
    args = [
        "control",
        "--duration",
        "600",
        "--speedup",
        "60",
        "--port",
        "0",
        "--log-dir",
        str(tmp_path),
    ]
    assert_bad_input(run_jbrl([*args, "--token", " "], timeout=60), "--token")
    assert_bad_input(run_jbrl([*args, "--allow-origin", "evil"], timeout=60), "--allow-origin")


def test_allowed_origin_gets_cors_and_schema_and_metrics(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    scen = control_scenario()
    ctl = make_controller(scen, constant_trace(scen, math.inf, scale=0.5), tmp_path, duration=None)
    origin = "http://dashboard.local:3000"
    api = ApiServer(ctl, "127.0.0.1", 0, allow_origins=(origin,)).start()
    try:
        ctl.start()
        status, hdrs, _ = request(api.port, "GET", "/plan", headers={"Origin": origin})
        assert status == 200 and hdrs["access-control-allow-origin"] == origin
        pre = request(
            api.port, "OPTIONS", "/plan",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type"},
        )  # fmt: skip
        assert pre[0] == 200
        status, _, raw = request(api.port, "GET", "/openapi.json")
        schema = json.loads(raw)
        assert {"/healthz", "/plan", "/metrics"} <= set(schema["paths"])
        assert "OverrideRequest" in schema["components"]["schemas"]
        status, hdrs, raw = request(api.port, "GET", "/metrics")
        names = {f.name for f in text_string_to_metric_families(raw.decode())}
        assert {"jbrl_decisions", "jbrl_dollars_per_hour", "jbrl_requests_lost"} <= names
        assert hdrs["content-type"].startswith("text/plain")
    finally:
        api.close()
        ctl.close()


def test_handlers_survive_a_storm_of_garbage(live: tuple[Controller, ApiServer]) -> None:
    """Random bytes and broken requests on many connections: the server keeps answering."""
    _, api = live
    import numpy as np

    def garbage(i: int) -> None:
        rng = np.random.default_rng(i)
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
            s.sendall(rng.bytes(int(rng.integers(1, 2000))) if i % 2 else b"GET / HTTP/9.9\r\n\r\n")
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                s.recv(1024)

    threads = [threading.Thread(target=garbage, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert request(api.port, "GET", "/healthz")[0] == 200
