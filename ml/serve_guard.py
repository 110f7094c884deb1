"""The endpoint's transport limits: slow or idle clients cannot hold connections or descriptors.

uvicorn's HTTP protocols (h11 and httptools alike) have a keep-alive timeout (after a response)
but no read timeout while a request arrives, and accept every connection they can (their
`limit_concurrency` answers 503 only once a request's headers are in, so it bounds no descriptor).
A client that sends its headers a byte at a time, or sends nothing, holds a connection and a
descriptor forever; with descriptors exhausted, asyncio's accept loop logs a traceback per failed
accept (tens of MB a minute) and /ping goes unanswered. `GuardedHttpToolsProtocol` (uvicorn's
HttpToolsProtocol - the llhttp parser, about 0.15 ms a request faster than h11 in bench serve -
plus a few hooks on its parser callbacks) adds:

- a header deadline: the request line and headers must arrive within `header_timeout_s` of the
  connection (or of the first byte of a keep-alive request), else 408 and close; a head over
  `max_header_bytes` is a 431 (llhttp itself bounds no head), in one read or in pieces;
- a body backstop: the app answers 408 when the body is not in after `body_timeout_s`
  (ml.serve reads it under that deadline); a connection whose body is still incomplete a second
  later (a route that never reads it) is closed here;
- a connection cap, fitted to the descriptors left (RLIMIT_NOFILE minus those in use, the accept
  backlog and a reserve): at the cap a new connection evicts the oldest one that has no request
  in progress (idle, or still sending its headers or body), else it is refused with 503; so a
  fresh /ping always gets in;
- logs that stay small: the guard's closings are counted and summed up in one line per
  LOG_EVERY_S, a failed accept is one line (no traceback) and repeated warnings are rate-limited.

Limits are `ml.config.ServeLimits` (`ml serve` options override them), fitted to the descriptors
left by `fitted_limits`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ml.config import ServeLimits

log = logging.getLogger("ml.serve")

LOG_EVERY_S = 10.0  # one summary line of the guard's closings per this many seconds, at most
RESERVE_FDS = 32
ACCEPT_TURNS = 4  # descriptors kept free for the model's threads, logs and the event loop
ACCEPT_ERRORS = ("socket.accept() out of system resource",)


def fitted_limits(limits: ServeLimits) -> tuple[ServeLimits, str]:
    """The limits with max_connections lowered to the descriptors left; and why, in words.

    asyncio accepts up to `backlog` sockets per loop turn, and a protocol sees its connection
    (and can close it) only two turns later, its socket closed one turn after that: the cap
    leaves room for ACCEPT_TURNS full backlogs besides the descriptors in use and a reserve.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = _open_descriptors()
    in_flight = ACCEPT_TURNS * limits.backlog
    room = soft - in_use - in_flight - RESERVE_FDS
    if room < 1:
        raise ValueError(
            f"only {soft - in_use} file descriptors left (open-file limit {soft}, {in_use} in use); "
            f"the server needs more than {in_flight + RESERVE_FDS}: raise `ulimit -n`"
        )
    cap = min(limits.max_connections, room)
    why = (
        f"connection cap {cap} (open-file limit {soft}, {in_use} in use, {in_flight} for accepts "
        f"in flight, reserve {RESERVE_FDS})"
    )
    return replace(limits, max_connections=cap), why


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: count conservatively
        return 64


class GuardTally:
    """Counts the guard's closings; logs them as one line per LOG_EVERY_S at most."""

    def __init__(self, every_s: float = LOG_EVERY_S) -> None:
        self.every_s = every_s
        self.counts: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self._scheduled = False

    def add(self, what: str, loop: asyncio.AbstractEventLoop, open_now: int) -> None:
        self.counts[what] += 1
        self.total[what] += 1
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(self.every_s, self._flush, open_now)

    def _flush(self, open_now: int) -> None:
        self._scheduled = False
        if self.counts:
            shown = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
            log.warning("connections closed in the last %.0fs: %s", self.every_s, shown)
            self.counts.clear()


# What the guard knows of the request arriving on a connection (httptools' callbacks move it on).
IDLE = "idle"  # no request begun since the last one's bytes were all in (or none yet)
HEAD = "head"  # request line and headers arriving
BODY = "body"  # headers in, body arriving
DONE = "done"  # the request is all in: the app's turn


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol with a header deadline, a head-size bound, a body backstop and
    a connection cap. Use `guarded_protocol(limits)`, which binds the limits and a tally to a subclass.
    """

    limits: ServeLimits = ServeLimits()
    tally: GuardTally = GuardTally()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._phase = ""
        self._head_bytes = 0
        self._state = IDLE
        if len(self.connections) > self.limits.max_connections and not self._evict_one():
            self._refuse(503, "too many connections; retry later", "refused at the cap")
            return
        self._arm("headers", self.limits.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        in_head = self._state is not BODY  # DONE: the bytes of a next (keep-alive) request
        if in_head:
            if self._phase != "headers":
                self._head_bytes = 0  # a request's first bytes
            # A head over the limit in this read: refused before it is parsed (one read can hold 64 KiB).
            budget = self.limits.max_header_bytes - self._head_bytes
            if len(data) >= budget and data.find(b"\r\n\r\n", 0, max(budget, 0) + 4) < 0:
                self._refuse_large_head()
                return
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        state = self._state
        if state is DONE:
            if self._timer is not None:
                self._disarm()  # the request is in: the app's turn
        elif state is BODY:
            if self._phase != "body":
                self._arm("body", self.limits.body_timeout_s + 1.0)
        elif self._head_bytes > self.limits.max_header_bytes:
            self._refuse_large_head()  # a head arriving in pieces, over the limit and not complete
        elif self._phase != "headers":
            self._arm("headers", self.limits.header_timeout_s)  # a keep-alive request begins

    # httptools' callbacks (uvicorn's own, plus the state the guard follows)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._state = HEAD

    def on_headers_complete(self) -> None:
        self._state = BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._state = DONE
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # --- deadlines ---

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = ""

    def _expired(self) -> None:
        self._timer = None
        phase, self._phase = self._phase, ""
        if self.transport.is_closing():
            return
        state = self._state
        if phase == "headers" and (state is IDLE or state is HEAD):
            seconds = self.limits.header_timeout_s
            self._refuse(408, f"request headers not received within {seconds:g}s", "slow headers")
        elif phase == "body" and state is BODY:
            self.tally.add("slow bodies", self.loop, len(self.connections))
            self.transport.close()

    def _refuse_large_head(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"request line and headers are over {limit} bytes", "headers too large")

    # --- the cap ---

    def _evictable(self) -> bool:
        """Idle, still sending headers or still sending a body: no request the app is computing."""
        if self.transport is None or self.transport.is_closing():
            return False
        if self._state is BODY:
            return True
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _evict_one(self) -> bool:
        """Close the oldest evictable connection (oldest, not by phase: a fresh /ping whose bytes
        are not read yet must not go before a client that has trickled a body for seconds)."""
        victim: GuardedHttpToolsProtocol | None = None
        for conn in self.connections:
            if conn is self or not isinstance(conn, GuardedHttpToolsProtocol) or not conn._evictable():
                continue
            if victim is None or conn._opened_at < victim._opened_at:
                victim = conn
        if victim is None:
            return False
        victim.tally.add("evicted at the cap", self.loop, len(self.connections))
        victim._disarm()
        victim.transport.abort()  # frees the descriptor now
        return True

    def _refuse(self, status: int, message: str, what: str) -> None:
        """Answer `status` with a JSON error and close (bytes written directly: no request may exist)."""
        self._disarm()
        self.tally.add(what, self.loop, len(self.connections))
        body = ('{"error": "' + message + '"}').encode()
        reason = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}[
            status
        ]
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def guarded_protocol(limits: ServeLimits) -> type[GuardedHttpToolsProtocol]:
    """A GuardedHttpToolsProtocol subclass bound to these limits and its own tally (one per server)."""
    return type(
        "GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits, "tally": GuardTally()}
    )


# --- logging ------------------------------------------------------------------------------------


class RepeatFilter(logging.Filter):
    """Rate-limits warnings and errors: per (logger, message template), `burst` records per `per_s`
    seconds; the next one let through says how many were dropped. Info lines pass untouched."""

    def __init__(self, burst: int = 5, per_s: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.per_s = per_s
        self._windows: dict[tuple[str, str], list[Any]] = {}  # key -> [window start, sent, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        window = self._windows.setdefault(key, [now, 0, 0])
        if now - window[0] >= self.per_s:
            dropped = window[2]
            window[:] = [now, 0, 0]
            if dropped:
                record.msg = (
                    f"{record.msg} ({dropped} similar message(s) dropped in the last {self.per_s:.0f}s)"
                )
        if window[1] >= self.burst:
            window[2] += 1
            return False
        window[1] += 1
        return True


def install_log_limits(handler: logging.Handler) -> None:
    if not any(isinstance(f, RepeatFilter) for f in handler.filters):
        handler.addFilter(RepeatFilter())


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A failed accept (out of descriptors) is one warning line, rate-limited; the rest as usual."""
    if context.get("message") in ACCEPT_ERRORS:
        exc = context.get("exception")
        log.warning("accept failed: %s; new connections wait", exc)
        return
    loop.default_exception_handler(context)


async def serve_guarded(server: Any) -> None:  # noqa: ANN401 - a uvicorn.Server
    """Run a uvicorn.Server with the accept-error handler on its loop."""
    asyncio.get_running_loop().set_exception_handler(loop_exception_handler)
    await server.serve()


def build_server(app: Any, host: str, port: int, limits: ServeLimits) -> Any:  # noqa: ANN401 - ASGI app, uvicorn.Server
    """A uvicorn.Server over `app` with the guarded protocol and these limits (run it with serve_guarded)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        backlog=limits.backlog,
        timeout_keep_alive=limits.keep_alive_s,
        access_log=False,  # ml.serve.RequestLog writes one line per request instead
        # Nothing proxies ml serve (it binds 127.0.0.1): a local client's X-Forwarded-For must not
        # rename it in the request log (uvicorn trusts it from 127.0.0.1 by default); one step less.
        proxy_headers=False,
        log_level="info",
        log_config=None,  # keep the handlers (and their filters) of the process
        lifespan="off",
    )
    return uvicorn.Server(config)


class RequestLog:
    """ASGI middleware: one log line per request (method, path, status, instances, milliseconds)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 0}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            # The error handler outside this middleware answers 500: log that, not 0.
            status["code"] = status["code"] or 500
            raise
        finally:
            n = scope.get("state", {}).get("n_instances", "-")
            client = scope.get("client") or ("-", 0)
            log.info(
                "%s %s %s %s instances=%s %.1fms",
                client[0],
                scope["method"],
                scope["path"],
                status["code"],
                n,
                (time.perf_counter() - start) * 1000,
            )


def bind_problem(host: str, port: int) -> tuple[str, str] | None:
    """("host" | "port", why) when the server could not listen on host:port, else None: checked
    before the model loads, so a taken port or a wrong host fails in a second."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except socket.gaierror as err:
        return "host", f"{host}: {err.strerror}"
    except OSError as err:
        return "port", f"cannot listen on {host}:{port}: {err.strerror}"
    return None
