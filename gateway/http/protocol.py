"""uvicorn's httptools protocol with the bounds it lacks: slow clients, connection count, and
a client that leaves while its request is served.

- A connection is closed if its headers take longer than ``request_headers_timeout_s`` (from
  accept, or from when a keep-alive request was first seen) or its body longer than
  ``request_body_timeout_s`` (from the end of the headers): slowloris and slow-body clients hold
  a socket for seconds, not forever. One sweep over the connections every ``SWEEP_S`` checks
  them (nothing per request: the hot path pays nothing), so a timeout fires up to ``SWEEP_S``
  late.
- An idle keep-alive connection is closed after ``idle_timeout_s`` by the same sweep (uvicorn
  arms and cancels a timer per request for it; that churn was a measurable part of a request).
- One beyond ``max_connections`` is closed as soon as it is accepted.
- Headers larger than ``max_request_headers_kb`` are answered 431 and the connection closed:
  httptools holds a header line whole until it ends, so without a bound one line could take
  any amount of memory.
- While the gateway drains, responses in progress say ``Connection: close``.
- An inference endpoint marks its request's cycle with its task while it waits on the backend
  (:func:`cancel_on_disconnect`); the connection cancels that task when the client goes away,
  so the backend call is abandoned (its connection closed, its slot freed) instead of run for
  nobody.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import FrontEndLimits

SWEEP_S = 0.5
DRAIN_IDLE_S = 0.5
"""At shutdown, how long a connection without a request in progress may still bring one (its
bytes may be on the way) before it is closed."""
TASK = "gateway_task"
"""The attribute of uvicorn's request cycle that holds the task to cancel on disconnect."""

_HEADERS, _BODY = 1, 2


class FrontEndState:
    """What every connection of one worker's HTTP server shares, and the sweep over them."""

    def __init__(self, limits: FrontEndLimits, on_shed: Callable[[str, str], None]) -> None:
        self.limits = limits
        self.header_bytes = limits.max_request_headers_kb * 1024
        self.on_shed = on_shed
        self.draining = False
        self.connections: set[Any] = set()  # uvicorn's own set, seen at the first connection
        self._sweep: asyncio.TimerHandle | None = None

    def watch(self, connections: set[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.connections = connections
        if self._sweep is None:
            self._sweep = loop.call_later(SWEEP_S, self.sweep, loop)

    def sweep(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Close what is too slow; while draining, end keep-alive on requests in progress."""
        now = asyncio.get_running_loop().time() if loop is None else loop.time()
        for connection in list(self.connections):
            if isinstance(connection, GuardedHttpProtocol):
                connection.check(now)
        if loop is not None:
            self._sweep = loop.call_later(SWEEP_S, self.sweep, loop)

    def stop(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None


class GuardedHttpProtocol(HttpToolsProtocol):
    state: FrontEndState  # set on the subclass made per server (guarded_protocol)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted = 0.0
        self._idle_since: float | None = None  # when its last response completed
        self._watched: tuple[object, int, float] | None = None  # (request, phase, since)
        self._closing_idle = False
        self._header_bytes = 0
        self._in_headers = True

    # The overrides call the base class by name: super() costs an object per call, and these
    # run for every request.
    def data_received(self, data: bytes) -> None:
        if not self._in_headers:
            _data_received(self, data)
            return
        self._header_bytes += len(data)
        _data_received(self, data)
        # Counted only while the headers are unfinished after the feed, so a body that came in
        # the same read as its headers never counts against them.
        limit = self.state.header_bytes
        if self._in_headers and self._header_bytes > limit and not self.transport.is_closing():
            self.state.on_shed("", "max_request_headers")
            self._refuse_headers(limit)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        _on_headers_complete(self)

    def on_message_complete(self) -> None:
        _on_message_complete(self)
        self._in_headers = True

    def on_response_complete(self) -> None:
        # uvicorn's, less its keep-alive timer: the sweep closes an idle connection instead.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_since = self.loop.time()

    def _refuse_headers(self, limit: int) -> None:
        body = json.dumps(
            {"error": f"request headers over {limit} bytes (server.limits.max_request_headers_kb)"}
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        state = self.state
        if len(self.connections) > state.limits.max_connections:
            state.on_shed("", "max_connections")
            transport.close()
            return
        self._accepted = self.loop.time()
        state.watch(self.connections, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        task = getattr(cycle, TASK, None) if cycle is not None else None
        super().connection_lost(exc)
        if task is not None and not cycle.response_complete:
            setattr(cycle, TASK, None)
            task.cancel()

    def check(self, now: float) -> None:
        """Called by the sweep: close the connection if its request is too slow."""
        if self.transport.is_closing():
            return
        scope: Any = self.scope  # None until the first request begins
        cycle = self.cycle
        if self.state.draining and cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
        if scope is None:
            request, phase = None, _HEADERS  # nothing received since accept
        elif cycle is None or cycle.scope is not scope:
            request, phase = scope, _HEADERS
        elif cycle.more_body and not cycle.response_complete:
            request, phase = scope, _BODY
        else:
            self._watched = None
            if self._closing_idle:
                self.transport.close()
            elif (
                cycle is not None
                and cycle.response_complete
                and self._idle_since is not None
                and now - self._idle_since > self.state.limits.idle_timeout_s
            ):
                self.transport.close()  # idle keep-alive (not counted as shed: nothing waited)
            return
        watched = self._watched
        if watched is None or watched[0] is not request or watched[1] != phase:
            since = self._accepted if request is None else now
            self._watched = watched = (request, phase, since)
        limits = self.state.limits
        if phase == _HEADERS:
            limit, name = limits.request_headers_timeout_s, "request_headers_timeout"
        else:
            limit, name = limits.request_body_timeout_s, "request_body_timeout"
        if now - watched[2] > limit:
            self.state.on_shed("", name)
            self.transport.close()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: a request in progress finishes (and closes the
        connection); an idle connection gets a moment for a request already sent."""
        if self.cycle is not None and not self.cycle.response_complete:
            super().shutdown()
        else:
            self.loop.call_later(DRAIN_IDLE_S, self._close_if_idle)

    def _close_if_idle(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # a request came in the meantime: it closes after it
        elif self.scope is not None and (cycle is None or cycle.scope is not self.scope):
            self._closing_idle = True  # one is arriving: closed by the sweep once it is served
        elif not self.transport.is_closing():
            self.transport.close()


_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete


def cancel_on_disconnect(receive: Any) -> Any:
    """Mark the request whose ``receive`` this is, from its own task: its connection cancels
    that task if the client disconnects before it is answered (``cycle.gateway_task = None``
    unmarks). Returns the request's uvicorn cycle, or ``None`` when not served by uvicorn's
    httptools protocol."""
    cycle = getattr(receive, "__self__", None)
    if cycle is None or not hasattr(cycle, "response_complete"):
        return None
    # The connection's loop, rather than asyncio.current_task() finding the running one: that
    # lookup is a getpid() system call each time.
    loop = getattr(cycle.transport.get_protocol(), "loop", None)
    setattr(cycle, TASK, asyncio.current_task(loop))
    return cycle


def guarded_protocol(state: FrontEndState) -> type[GuardedHttpProtocol]:
    """The protocol class of one HTTP server (uvicorn instantiates it per connection)."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"state": state})
