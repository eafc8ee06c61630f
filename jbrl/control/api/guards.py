"""What every request must pass before it reaches an endpoint (ASGI middleware).

In order, outermost first (after a cap on the size of the headers, 431):

1. **Host** (loopback binds only): Starlette's ``TrustedHostMiddleware`` with the loopback names
   (``127.0.0.1``, ``localhost``, ``[::1]`` and the bound address), so a DNS-rebinding page
   whose name now resolves to 127.0.0.1 cannot read ``/plan`` or ``/metrics`` (400).
2. **Origin** (:class:`OriginGuard`): a request that carries an ``Origin`` (every cross-site
   ``fetch`` and form POST of a browser does) is refused with 403 unless the origin was allowed
   with ``--allow-origin``; ``Sec-Fetch-Site: cross-site`` without an allowed origin likewise.
   Allowed origins get CORS headers from Starlette's ``CORSMiddleware``.
3. **Token** (:class:`BearerAuth`): with a token, every path but the status page's HTML (``/``:
   no data; its script sends the token with the requests for data) answers 401 without
   ``Authorization: Bearer TOKEN`` (the scheme is case-insensitive, RFC 7235; the comparison is
   constant-time over SHA-256 digests, so neither content nor length leaks).

A body sent with a refused request is read and discarded by h11's state machine (never parsed
as the next request), within the request deadline of :mod:`.server`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_MIN_LENGTH = 16
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_problem(token: str | None) -> str | None:
    """Why ``token`` cannot protect the API (None when it can, or when there is none)."""
    if token is None:
        return None
    if len(token) < TOKEN_MIN_LENGTH:
        return f"must be at least {TOKEN_MIN_LENGTH} characters (it has {len(token)})"
    if not _TOKEN_RE.fullmatch(token):
        return "may hold only letters, digits and - . _ ~ + / (then = padding): a bearer token"
    return None


def loopback_hosts(bound: str) -> list[str]:
    """Host header values (without port) a loopback-bound server answers to."""
    hosts = {"127.0.0.1", "localhost", "[::1]"}
    hosts.add(f"[{bound}]" if ":" in bound else bound)
    return sorted(hosts)


async def refuse(
    send: Send, status: int, error: str, headers: dict[str, str] | None = None
) -> None:
    """Answer ``status`` with ``{"error": ...}`` (a body the client still sends is drained by
    the protocol, within the request deadline, so the client can read the answer)."""
    body = (json.dumps({"error": error}) + "\n").encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), decoded as Latin-1."""
    for k, v in scope.get("headers", []):
        if k == name:
            return str(v.decode("latin-1"))
    return None


class HeaderLimit:
    """431 for a request whose header lines add up to more than ``max_bytes`` (h11 bounds only
    a header that arrives in pieces)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
            if size > self.max_bytes:
                await refuse(send, 431, f"the headers must be at most {self.max_bytes} bytes")
                return
        await self.app(scope, receive, send)


class OriginGuard:
    """403 for a browser request from an origin that is not allowed (module docstring, 2)."""

    def __init__(self, app: ASGIApp, allow_origins: Collection[str] = ()) -> None:
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in allow_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = header(scope, b"origin")
            site = (header(scope, b"sec-fetch-site") or "").lower()
            ok = origin.rstrip("/").lower() in self.allowed if origin is not None else True
            if not ok or (site == "cross-site" and origin is None):
                why = f"origin {origin!r} is not allowed" if origin else "a cross-site request"
                await refuse(send, 403, f"{why} (allow an origin with --allow-origin)")
                return
        await self.app(scope, receive, send)


class BearerAuth:
    """401 on every path but ``/`` without the right bearer token (module docstring, 3)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._digest = hashlib.sha256(token.encode()).digest()

    def authorized(self, value: str | None) -> bool:
        scheme, _, credentials = (value or "").strip().partition(" ")
        got = hashlib.sha256(credentials.strip().encode("latin-1")).digest()
        same = hmac.compare_digest(got, self._digest)
        return scheme.lower() == "bearer" and same

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not (scope["path"] == "/" and scope["method"] in ("GET", "HEAD"))
            and not self.authorized(header(scope, b"authorization"))
        ):
            await refuse(
                send,
                401,
                "missing or wrong bearer token",
                {"WWW-Authenticate": 'Bearer realm="jbrl"'},
            )
            return
        await self.app(scope, receive, send)


def guarded(
    app: ASGIApp,
    *,
    host: str,
    token: str | None,
    allow_origins: Collection[str],
    max_header_bytes: int = 16 * 1024,
) -> Any:
    """``app`` behind the guards of the module docstring, outermost first."""
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    inner: ASGIApp = BearerAuth(app, token) if token else app
    if allow_origins:
        inner = CORSMiddleware(
            inner,
            allow_origins=list(allow_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    inner = OriginGuard(inner, allow_origins)
    if is_loopback(host):
        inner = TrustedHostMiddleware(inner, allowed_hosts=loopback_hosts(host))
    return HeaderLimit(inner, max_header_bytes)
