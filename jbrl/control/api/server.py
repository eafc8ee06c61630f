"""Serving the controller's API: FastAPI on uvicorn, in a thread beside the control loop.

Why this stack: FastAPI (on Starlette) gives the OpenAPI schema from the pydantic types jbrl
already uses and Starlette's kept host and CORS middleware; uvicorn is the reference ASGI server,
with a bounded number of concurrent connections (``limit_concurrency``: 503 beyond it), a deep
listen backlog, a keep-alive timeout, a cap on header size and h11's strict HTTP/1.1 parsing
(so a rejected body is drained by the protocol state machine, never read as the next request).
All three come with ``ray[serve]`` and are base dependencies of jbrl.

What uvicorn lacks is a deadline for a request to arrive: a client that opens connections and
sends headers (or a body) a byte at a time would hold them for ever (slowloris).
:class:`_DeadlineH11` adds it: from the first byte of a request (or the connection's start) to
its last byte, at most ``request_timeout_s``, else the connection is closed. It also closes
politely (:class:`_LingeringTransport`), so a client that sends a refused body in full still
reads the answer.

The socket is bound here (not by uvicorn), so a port in use is reported to the caller and
``port=0`` picks a free one (:attr:`ApiServer.port`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from jbrl.control.api.app import build_app
from jbrl.control.api.guards import guarded, is_loopback, token_problem

if TYPE_CHECKING:
    from jbrl.control.controller import Controller


@dataclass(frozen=True)
class ApiConfig:
    """Limits of the HTTP server (defaults fit an operator's API on a small machine)."""

    max_body_bytes: int = 1 << 20
    request_timeout_s: float = 10.0  # first byte of a request to its last (headers + body)
    body_timeout_s: float = 8.0  # reading the body, once the endpoint asks for it
    keepalive_s: int = 5
    max_connections: int = 64  # concurrent connections + requests; 503 beyond
    backlog: int = 1024
    max_header_bytes: int = 16 * 1024


class _LingeringTransport:
    """A transport whose ``close`` first half-closes: the answer goes out with a FIN, what the
    client is still sending is read and dropped for :data:`LINGER_S`, then the socket closes.
    Closing at once with unread data makes the kernel send a reset, and a client that sent its
    whole (refused, oversized) body before reading would lose the answer."""

    def __init__(self, transport: asyncio.Transport, protocol: _DeadlineH11) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def close(self) -> None:
        self._protocol.linger()


LINGER_S = 2.0


class _DeadlineH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on receiving each request and a lingering
    close (module docstring). ``request_timeout_s`` is set on the subclass :class:`ApiServer`
    makes."""

    request_timeout_s: float = 10.0
    _deadline: asyncio.TimerHandle | None = None
    lingering: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._arm()

    def linger(self) -> None:
        """Half-close now, close for good after :data:`LINGER_S` (or when the client does)."""
        if self.lingering or self._raw.is_closing():
            return
        self.lingering = True
        self._disarm()
        try:
            self._raw.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            self._raw.close()
            return
        self.loop.call_later(LINGER_S, self._raw.close)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a refused request: dropped
        super().data_received(data)
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._arm()  # a request is arriving (keeps the deadline of its first byte)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout applies

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self._raw.is_closing():
            self._raw.close()  # a client too slow to send its request: no lingering


class ApiServer:
    """Serves the API for ``controller`` on ``host:port`` (port 0: any free port).

    Binds 127.0.0.1 by default; a non-loopback address needs a ``token`` (ValueError
    otherwise, as for a token too short to protect anything). ``allow_origins``: browser
    origins that may call the API (CORS); every other cross-site request is refused.
    """

    def __init__(
        self,
        controller: Controller,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        allow_origins: tuple[str, ...] = (),
        config: ApiConfig | None = None,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError("a non-loopback address needs a bearer token")
        problem = token_problem(token)
        if problem:
            raise ValueError(f"the bearer token {problem}")
        self.config = config or ApiConfig()
        self.host = host
        self.sock = _listen(host, port, self.config.backlog)
        self.port = int(self.sock.getsockname()[1])
        app = guarded(
            build_app(controller, self.config),
            host=host,
            token=token,
            allow_origins=allow_origins,
            max_header_bytes=self.config.max_header_bytes,
        )
        protocol = type(
            "DeadlineH11", (_DeadlineH11,), {"request_timeout_s": self.config.request_timeout_s}
        )
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                http=protocol,
                ws="none",
                lifespan="off",
                interface="asgi3",
                log_config=None,
                log_level="error",
                access_log=False,
                limit_concurrency=self.config.max_connections,
                backlog=self.config.backlog,
                timeout_keep_alive=self.config.keepalive_s,
                timeout_graceful_shutdown=5,
                h11_max_incomplete_event_size=self.config.max_header_bytes,
                server_header=False,
            )
        )
        self._thread = threading.Thread(target=self._serve, name="jbrl-api", daemon=True)
        self._error: BaseException | None = None

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ApiServer:
        """Serve in a thread; returns once the server accepts connections."""
        self._thread.start()
        end = time.monotonic() + timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the HTTP API did not start: {self._error!r}")
            if time.monotonic() > end:
                raise RuntimeError("the HTTP API did not start in time")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        """Stop serving (requests in progress get a few seconds to finish)."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.sock.close()


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (OSError when it cannot bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock
