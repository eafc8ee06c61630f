"""Probe the controller's HTTP API as an attacker and a careless client would (issue 14).

Starts ``jbrl control`` (sim backend, loopback, a free port) and measures:

* **start-up**: ``POST /plan`` and ``GET /plan`` every 20 ms from the moment the port answers
  until the controller runs: the answers by status (a 500 is a failure);
* **handler escapes**: malformed bodies (1,000-deep JSON, a 5,000-digit number, NaN, bytes,
  unknown keys, a typo) and requests: answers by status, and connections dropped without one;
* **slow clients**: 60 connections that send a header byte per second, and a POST whose body
  stops short: how many the server closes within the observation window, and when;
* **load**: 800 requests at 20 in parallel: answers by status, resets, other errors;
* **cross-site**: ``POST /plan`` as ``text/plain``, form, multipart, without a type, and with a
  foreign ``Origin`` (the running plan as the override): status, and how many were applied;
* **DNS rebinding**: a foreign ``Host`` header; **smuggling**: a refused POST whose body is a
  request: how many answers come back.

``--jbrl`` picks the command to start (e.g. another checkout's), so the same probe measures the
code before and after a change. Figures: ``experiments/results/http_probe.json`` (one entry
per label), summarised in ``hardening.md`` by ``experiments/hardening_report.py``::

    python experiments/http_probe.py [--jbrl PATH] [--label after]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
WINDOW_S = 30.0  # how long slow connections are watched


def _request(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int | None, str]:
    """Send ``raw``; (status, "") or (None, what went wrong)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(raw)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except ConnectionResetError:
        return None, "reset"
    except TimeoutError:
        return None, "timeout"
    except OSError as exc:
        return None, type(exc).__name__
    if not data:
        return None, "closed without an answer"
    try:
        return int(data.split(b" ", 2)[1]), ""
    except (IndexError, ValueError):
        return None, "not HTTP"


def http(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "close", **headers}
    if body or method == "POST":
        hdrs["Content-Length"] = str(len(body))
    head = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in hdrs.items())
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def _get_body(port: int, path: str) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(http(port, "GET", path))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    body = data.partition(b"\r\n\r\n")[2]
    try:
        return json.loads(body)
    except ValueError:
        return None


def start_controller(jbrl: list[str], run: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """Start the controller; (process, port, seconds until the port answered)."""
    args = [*jbrl, "control", "--port", "0", "--log-dir", str(run), "--speedup", "60",
            "--duration", "36000", "--no-tensorboard"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (run / "api.json").is_file():
        if proc.poll() is not None or time.monotonic() - t0 > 120:
            raise RuntimeError(f"the controller did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        time.sleep(0.005)
    while True:
        try:
            port = int(json.loads((run / "api.json").read_text())["url"].rsplit(":", 1)[1])
            break
        except (ValueError, KeyError):
            time.sleep(0.005)
    return proc, port, time.monotonic() - t0


def probe_startup(port: int, plan: bytes) -> dict[str, Any]:
    """Statuses of POST and GET /plan polled until GET /plan answers 200."""
    posts: Counter[str] = Counter()
    gets: Counter[str] = Counter()
    end = time.monotonic() + 120
    while time.monotonic() < end:
        st, why = _request(port, http(port, "POST", "/plan", plan,
                                      Content_Type="application/json"))  # fmt: skip
        posts[str(st or why)] += 1
        st, why = _request(port, http(port, "GET", "/plan"))
        gets[str(st or why)] += 1
        if st == 200:
            break
        time.sleep(0.02)
    return {"post_plan": dict(posts), "get_plan": dict(gets)}


MALFORMED: dict[str, bytes] = {
    "deep-json": b"[" * 1000 + b"]" * 1000,
    "5000-digits": b'{"plan": ' + b"9" * 5000 + b"}",
    "nan": b'{"plan": NaN}',
    "bytes": bytes(range(256)),
    "unknown-key": b'{"plan": {"worker_assignment": {}}, "hold": 3}',
    "typo": b'{"worker_asignment": {}}',
    "empty": b"",
    "huge-declared": b"",
}


def probe_escapes(port: int) -> dict[str, Any]:
    """Answers to malformed bodies and requests (a dropped connection is an escape)."""
    out: dict[str, Any] = {}
    for name, body in MALFORMED.items():
        raw = http(port, "POST", "/plan", body, Content_Type="application/json")
        if name == "huge-declared":
            raw = raw.replace(b"Content-Length: 0", b"Content-Length: 100000000")
        st, why = _request(port, raw)
        out[name] = st or why
    for name, raw in {
        "bad-request-line": b"GARBAGE\r\n\r\n",
        "http-0.9": b"GET /plan\r\n\r\n",
        "bad-header": b"GET /plan HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
        "huge-header": b"GET /plan HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
    }.items():  # fmt: skip
        st, why = _request(port, raw)
        out[name] = st or why
    return out


def _watch(port: int, payload: bytes, trickle: bool, closed: list[float], t0: float) -> None:
    """Hold a connection open, sending ``payload`` at once or a byte a second; note when the
    server closes it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WINDOW_S + 5) as s:
            s.settimeout(1.0)
            for i, b in enumerate(payload):
                if not trickle and i:
                    break
                s.sendall(payload if not trickle else bytes([b]))
                try:
                    if s.recv(1024) == b"":
                        closed.append(time.monotonic() - t0)
                        return
                except TimeoutError:
                    pass
                except OSError:
                    closed.append(time.monotonic() - t0)
                    return
                if time.monotonic() - t0 > WINDOW_S:
                    return
            s.settimeout(max(0.1, WINDOW_S - (time.monotonic() - t0)))
            while True:
                if s.recv(1024) == b"":
                    closed.append(time.monotonic() - t0)
                    return
    except (TimeoutError, OSError):
        return


def probe_slow(port: int) -> dict[str, Any]:
    """60 slowloris connections and one short-bodied POST, watched for ``WINDOW_S``."""
    head = f"GET /plan HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "X-a: b\r\n" * 60
    short = (f"POST /plan HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
             "\r\nContent-Length: 100\r\n\r\n{\"plan\"").encode()  # fmt: skip
    closed: list[float] = []
    short_closed: list[float] = []
    t0 = time.monotonic()
    threads = [threading.Thread(target=_watch, args=(port, head.encode(), True, closed, t0))
               for _ in range(60)]  # fmt: skip
    threads.append(threading.Thread(target=_watch, args=(port, short, False, short_closed, t0)))
    for t in threads:
        t.start()
    time.sleep(2.0)
    during, _ = _request(port, http(port, "GET", "/healthz"), timeout=10)
    for t in threads:
        t.join()
    return {
        "slowloris_connections": 60,
        "slowloris_closed": len(closed),
        "slowloris_closed_by_s": max(closed) if closed else None,
        "short_body_closed": bool(short_closed),
        "short_body_closed_after_s": short_closed[0] if short_closed else None,
        "healthz_during": during,
        "window_s": WINDOW_S,
    }


def probe_load(port: int, n: int = 800, parallel: int = 20) -> dict[str, Any]:
    paths = ("/healthz", "/plan", "/metrics")

    def one(i: int) -> str:
        st, why = _request(port, http(port, "GET", paths[i % 3]))
        return str(st or why)

    t0 = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        results = Counter(pool.map(one, range(n)))
    return {"requests": n, "parallel": parallel, "answers": dict(results),
            "seconds": time.monotonic() - t0}  # fmt: skip


def probe_cross_site(port: int, plan: bytes) -> dict[str, Any]:
    """Simple (no-preflight) cross-site POSTs; none may be applied (the controller's own
    decisions change the plan's rates every interval, so the override counter is the judge)."""
    before = _overrides(port)
    out: dict[str, Any] = {}
    for name, headers in {
        "text/plain": {"Content_Type": "text/plain"},
        "form": {"Content_Type": "application/x-www-form-urlencoded"},
        "multipart": {"Content_Type": "multipart/form-data; boundary=x"},
        "no-type": {},
        "json-foreign-origin": {"Content_Type": "application/json",
                                "Origin": "http://evil.example"},
    }.items():  # fmt: skip
        st, why = _request(port, http(port, "POST", "/plan", plan, **headers))
        out[name] = st or why
    out["overrides_applied"] = _overrides(port) - before
    st, why = _request(port, http(port, "GET", "/plan", Host=f"rebind.example:{port}"))
    out["foreign_host"] = st or why
    # a body over the limit, refused unread: its first bytes are a request of their own
    smuggled = f"GET /plan HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    raw = http(port, "POST", "/plan", smuggled, Content_Type="application/json",
               Connection="keep-alive")  # fmt: skip
    raw = raw.replace(f"Content-Length: {len(smuggled)}".encode(), b"Content-Length: 2000000")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(raw)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except OSError:
            pass
    out["smuggled_answers"] = data.count(b"HTTP/1.1 ")
    return out


def _overrides(port: int) -> float:
    """``jbrl_overrides_total`` of ``GET /metrics``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(http(port, "GET", "/metrics"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("jbrl_overrides_total"):
            return float(line.split()[-1])
    return float("nan")


def _plan_body(port: int) -> bytes:
    body = _get_body(port, "/plan") or {}
    plan = {k: body[k] for k in ("model_assignment", "worker_assignment") if k in body}
    return json.dumps({"plan": plan, "hold_intervals": 2}).encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jbrl", default=None, help="the jbrl command (default: this checkout's)")
    ap.add_argument("--label", default="after", help="name of this measurement in the results")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    jbrl = [args.jbrl] if args.jbrl else [sys.executable, "-c", "from jbrl.cli import run; run()"]
    with tempfile.TemporaryDirectory(prefix="jbrl-probe-") as tmp:
        proc, port, up_s = start_controller(jbrl, Path(tmp) / "run")
        try:
            guess = json.dumps({"worker_assignment": {}}).encode()
            res: dict[str, Any] = {"port_answered_after_s": up_s}
            res["startup"] = probe_startup(port, guess)
            plan = _plan_body(port)
            res["escapes"] = probe_escapes(port)
            res["cross_site"] = probe_cross_site(port, plan)
            res["load"] = probe_load(port)
            res["slow"] = probe_slow(port)
            res["alive_after"], _ = _request(port, http(port, "GET", "/healthz"))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    res["machine"] = {"cores": os.cpu_count(), "load_average": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "http_probe.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[args.label] = res
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
