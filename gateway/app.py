"""The composition root: config -> backends -> router -> service -> front ends, in one event loop.

``Gateway.start()`` / ``Gateway.stop()`` are the only way anything (the CLI, a worker process, a
test) runs the gateway. A start that fails half-way stops what it had started before it raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from prometheus_client import CollectorRegistry

from gateway.access_log import AccessLog
from gateway.backends import Backend, create_backend
from gateway.config import AnyBackendConfig, GatewayConfig
from gateway.grpc import GrpcFrontEnd
from gateway.health.board import HealthBoard
from gateway.health.metrics import EjectionMetrics
from gateway.http.app import HttpFrontEnd
from gateway.http.protocol import FrontEndState, guarded_protocol
from gateway.limits import Breakers
from gateway.metadata import MetadataCache
from gateway.metrics import GatewayMetrics, VariantCollector
from gateway.observer import RequestObserver
from gateway.readiness import Readiness
from gateway.routing.table import ConfigVersion, RoutingTable, first_table, next_table
from gateway.service import InferenceService
from gateway.shadow.offload import Shadowing
from gateway.shadow.plan import plans_from
from gateway.tracing.settings import TracingSettingsError
from gateway.tracing.setup import request_tracer

log = logging.getLogger(__name__)

DRAIN_SLACK_S = 1.0
ACCEPT_QUEUE_S = 0.05
"""At shutdown, how long the loop accepts what is queued before the HTTP listener closes."""
# uvicorn's messages for a client's mistake it answers itself (400 for bytes its parser refuses)
# or leaves to the endpoint (an `Upgrade:` request it does not take).
_CLIENT_MISTAKES = (
    "Invalid HTTP request received.",
    "Unsupported upgrade request.",
    "No supported WebSocket library detected.",
)


class StartupError(Exception):
    """The gateway could not start; the message says why in one line (a port in use, ...)."""


class _NoClientMistakes(logging.Filter):
    """A line per malformed or upgrade request would let any client flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_CLIENT_MISTAKES)


_NO_CLIENT_MISTAKES = _NoClientMistakes()


class EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the process owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listen_socket(host: str, port: int, reuse_port: bool, what: str = "HTTP") -> socket.socket:
    """A listening TCP socket; with ``reuse_port`` every worker gets its own accept queue."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise StartupError(
            f"cannot listen for {what} on {host}:{port}: {error.strerror or error}"
        ) from None
    sock.setblocking(False)
    return sock


def _observer(config: GatewayConfig, metrics: GatewayMetrics) -> RequestObserver:
    try:
        tracer = request_tracer(config.tracing)
    except TracingSettingsError as error:
        raise StartupError(f"tracing: {error}") from None
    access = AccessLog(config.access_log) if config.access_log.enabled else None
    return RequestObserver(metrics, tracer, access)


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        registry: CollectorRegistry | None = None,
        config_number: int = 1,
    ) -> None:
        self.config = config
        server = config.server
        self.metrics = GatewayMetrics(registry if registry is not None else CollectorRegistry())
        self._metadata = metadata = MetadataCache()

        self.breakers = Breakers(self.metrics.shed_one, self.metrics.adaptive)

        def create(name: str, backend: AnyBackendConfig) -> Backend:
            client = create_backend(name, backend, server.max_request_bytes, metadata)
            self.breakers.add(client, backend)
            return client

        self._create = create
        table = first_table(config, create, config_number)
        self.health = HealthBoard(listener=EjectionMetrics(self.metrics))
        self.readiness = Readiness(table.router, server.readiness_interval_s, self.health)
        self.mirror = Shadowing(self.metrics, plans_from(config, table.router), config)
        self.observer = _observer(config, self.metrics)
        self.service = InferenceService(
            table,
            self.readiness,
            self.metrics,
            metadata,
            self.health,
            self.mirror,
            observer=self.observer,
            breakers=self.breakers,
        )
        self.metrics.watch_variants(
            VariantCollector(
                lambda: (v for r in self.service.table.router.models for v in r.variants.values()),
                self.readiness.variant_ready,
            )
        )
        self.metrics.config_version.set(table.version.number, table.version.digest)
        self._apply_lock = asyncio.Lock()
        self._draining: set[asyncio.Task[None]] = set()
        self.http_app = HttpFrontEnd(self.service, server)
        self.http_state = FrontEndState(server.limits, self.metrics.shed_one)
        self.grpc_app = GrpcFrontEnd(self.service, server) if server.grpc is not None else None
        self._uvicorn: EmbeddedUvicorn | None = None
        self._uvicorn_task: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None
        self._started: list[Backend] = []
        self.http_port: int | None = None
        self.grpc_port: int | None = None

    @property
    def table(self) -> RoutingTable:
        return self.service.table

    @property
    def version(self) -> ConfigVersion:
        return self.service.table.version

    async def apply(self, config: GatewayConfig, number: int | None = None) -> ConfigVersion:
        """Route by ``config`` from now on (models and backends; ``server``, ``tracing``,
        ``access_log`` and ``logging`` keep what the gateway started with). One reference is
        swapped: requests in flight finish on the table they started with. Unchanged backends
        keep their pools, readiness and metadata; removed ones are closed once no request routed
        before the swap can still be using them.
        ``number`` is the new table's (default: the current one's plus 1)."""
        async with self._apply_lock:
            old = self.service.table
            if config.server != old.config.server:
                log.warning("server settings changed in the new config: they apply at restart")
                config = config.model_copy(update={"server": old.config.server})
            for section in ("tracing", "access_log", "logging"):
                if getattr(config, section) != getattr(old.config, section):
                    log.warning(
                        "%s settings changed in the new config: they apply at restart", section
                    )
                    config = config.model_copy(update={section: getattr(old.config, section)})
            change = next_table(old, config, self._create, number)
            started: list[Backend] = []
            try:
                for backend in change.added:
                    await backend.start()
                    started.append(backend)
            except BaseException:
                for backend in started:
                    await backend.close()
                raise
            self._started.extend(change.added)
            self.service.table = change.table
            self.mirror.apply(
                plans_from(change.table.config, change.table.router), change.table.config
            )
            self.readiness.retarget(change.table.router)
            version = change.table.version
            self.metrics.config_version.set(version.number, version.digest)
            self._forget(old, change.table)
            for backend in change.removed:
                if backend in self._started:
                    self._started.remove(backend)
                task = asyncio.create_task(self._drain(backend), name=f"drain-{backend.name}")
                self._draining.add(task)
                task.add_done_callback(self._draining.discard)
            return version

    def _forget(self, old: RoutingTable, new: RoutingTable) -> None:
        def keys(table: RoutingTable) -> set[tuple[str, str, str, str, str]]:
            return {
                (v.model, v.version, v.name, v.backend.name, v.backend.runtime)
                for route in table.router.models
                for v in route.variants.values()
            }

        gone_backends = set(old.backends) - set(new.backends)
        self.metrics.forget(keys(old) - keys(new), gone_backends)
        for name, backend in old.backends.items():
            if new.backends.get(name) is not backend:
                self._metadata.forget(name)

    async def _drain(self, backend: Backend) -> None:
        # A request routed on the old table calls its backend within that backend's timeout.
        try:
            await asyncio.sleep(backend.timeout_s + DRAIN_SLACK_S)
        finally:
            self.breakers.remove(backend)
            await backend.close()

    async def start(self, reuse_port: bool = False) -> None:
        """Open backend pools, start probing, and listen. Returns once accepting requests.

        Raises :class:`StartupError` when a port cannot be bound, after stopping what had started.
        """
        try:
            await self._start(reuse_port)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, reuse_port: bool) -> None:
        for backend in self.service.table.backends.values():
            await backend.start()
            self._started.append(backend)
        await self.readiness.start()
        self.mirror.start()
        listen = self.config.server.http
        tls = self.config.server.tls
        sock = listen_socket(listen.host, listen.port, reuse_port)
        self._http_socket = sock
        self.http_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.http_app,
            http=guarded_protocol(self.http_state),
            ws="none",  # no WebSocket endpoints: an `Upgrade` request is an ordinary request
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            proxy_headers=False,  # nothing to trust here; and it costs every request
            timeout_keep_alive=self.config.server.limits.idle_timeout_s,  # type: ignore[arg-type]
            timeout_graceful_shutdown=round(self.config.server.graceful_shutdown_s),
            ssl_certfile=tls.cert_file if tls is not None else None,
            ssl_keyfile=tls.key_file if tls is not None else None,
        )
        self._uvicorn = EmbeddedUvicorn(config)
        logging.getLogger("uvicorn.error").addFilter(_NO_CLIENT_MISTAKES)
        self._uvicorn_task = asyncio.create_task(self._uvicorn.serve(sockets=[sock]))
        while not self._uvicorn.started:
            if self._uvicorn_task.done():  # a certificate it cannot load, ...
                sock.close()
                error = self._uvicorn_task.exception()
                raise StartupError(
                    f"HTTP server on {listen.host}:{self.http_port} did not start: {error!r}"
                )
            await asyncio.sleep(0.01)
        log.info("HTTP%s on %s:%d", "S" if tls is not None else "", listen.host, self.http_port)
        grpc_listen = self.config.server.grpc
        if self.grpc_app is not None and grpc_listen is not None:
            try:
                self.grpc_port = await self.grpc_app.start(reuse_port)
            except OSError as error:
                raise StartupError(str(error)) from None
            log.info("gRPC on %s:%d", grpc_listen.host, self.grpc_port)

    async def drain(self) -> None:
        """The first step of a graceful stop: readiness (HTTP and gRPC health) turns 503 /
        NOT_SERVING and every response closes its connection, for ``server.limits.drain_s``
        while requests are still served, so load balancers move traffic away first."""
        self.readiness.drain()
        self.http_state.draining = True
        self.http_state.sweep()
        if self.grpc_app is not None:
            await self.grpc_app.drain()
        if self.config.server.limits.drain_s > 0:
            log.info("draining for %gs", self.config.server.limits.drain_s)
            await asyncio.sleep(self.config.server.limits.drain_s)

    async def stop(self) -> None:
        """Drain (if it was serving), stop accepting, let in-flight requests finish within
        ``graceful_shutdown_s``, then close backends.

        Safe on a gateway that started only in part, or not at all."""
        if self._uvicorn is not None and self._uvicorn.started:
            await self.drain()
        await asyncio.gather(self._stop_http(), self._stop_grpc())
        await self.mirror.close()
        self.http_state.stop()
        await self.readiness.stop()
        for task in list(self._draining):
            task.cancel()  # closes its backend
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._started:
            await self._started.pop().close()
        await asyncio.to_thread(self.observer.close)

    async def _stop_http(self) -> None:
        if self._uvicorn is not None and self._uvicorn_task is not None:
            await self._empty_accept_queue()
            self._uvicorn.should_exit = True
            # A server that failed to start has already said why (the start raised it).
            with contextlib.suppress(Exception):
                await self._uvicorn_task
            self._uvicorn = None
            self._uvicorn_task = None

    async def _empty_accept_queue(self) -> None:
        """Closing a listening socket resets the connections still in its accept queue: their
        clients have sent requests that are then lost. A backlog of 0 first makes the kernel
        drop new SYNs (clients retry them later, and then find the port closed, or another
        worker's socket) while the loop accepts what is queued."""
        if self._http_socket is not None and self._http_socket.fileno() != -1:
            with contextlib.suppress(OSError):
                self._http_socket.listen(0)
                await asyncio.sleep(ACCEPT_QUEUE_S)

    async def _stop_grpc(self) -> None:
        if self.grpc_app is not None:
            await self.grpc_app.stop(self.config.server.graceful_shutdown_s)
