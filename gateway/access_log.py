"""The access log: one JSON line per inference request, on the ``gateway.access`` logger.

Errors are always written (``access_log.errors``), successes at random (``success_ratio``) or
when slow (``slow_ms``). What the line needs beyond the request's record (the client's address,
its ``x-request-id``) is read from the request's origin only when a line is written.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import grpc
import orjson

from gateway.config_observability import AccessLogConfig
from gateway.metrics import RequestRecord

LOGGER = "gateway.access"
REQUEST_ID = "x-request-id"
_REQUEST_ID_BYTES = REQUEST_ID.encode()
NEVER = 1 << 62


class GrpcOrigin(NamedTuple):
    """Where a gRPC call came from: its context and the method called."""

    context: grpc.aio.ServicerContext
    rpc: str


def _stream_handler(path: str | None) -> logging.Handler:
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.set_name("gateway-access-log")
    return handler


def install_handler(path: str | None) -> logging.Logger:
    """The access logger writes bare JSON lines of its own (not the process log's format)."""
    logger = logging.getLogger(LOGGER)
    logger.propagate = False
    for old in [h for h in logger.handlers if h.get_name() == "gateway-access-log"]:
        logger.removeHandler(old)
        old.close()
    logger.addHandler(_stream_handler(path))
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger


class AccessLog:
    def __init__(
        self,
        config: AccessLogConfig,
        logger: logging.Logger | None = None,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self._errors = config.errors
        self._ratio = config.success_ratio
        self._slow_s = None if config.slow_ms is None else config.slow_ms / 1000.0
        self._logger = logger if logger is not None else install_handler(config.path)
        self._chance = chance
        self._until_chosen = self._gap()
        """Successes until the next one chosen at random (1: the next): a geometric draw per
        line written rather than a random number per request, the same odds."""

    def _gap(self) -> int:
        if self._ratio <= 0.0:
            return NEVER
        if self._ratio >= 1.0:
            return 1
        miss = max(1.0 - self._chance(), 1e-300)  # chance() is in [0, 1)
        return int(math.log(miss) / math.log(1.0 - self._ratio)) + 1

    def finish(self, record: RequestRecord, status: int, now: float) -> None:
        """Write ``record``'s line if it is chosen; ``now`` is ``time.perf_counter()``."""
        if status >= 400:
            if not self._errors:
                return
        else:
            self._until_chosen -= 1
            if self._until_chosen <= 0:
                self._until_chosen = self._gap()
            elif self._slow_s is None or now - record.started <= self._slow_s:
                return
        if self._logger.isEnabledFor(logging.INFO):
            self._logger.info("%s", line(record, status, now))


def line(record: RequestRecord, status: int, now: float) -> str:
    """The JSON line of one request (``now`` = ``time.perf_counter()`` when it ended)."""
    elapsed = now - record.started
    started = time.time() - elapsed
    variant = record.variant
    doc: dict[str, Any] = {
        "time": datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds"),
        "request_id": None,
        "trace_id": record.trace.trace_id_hex if record.trace is not None else None,
        "protocol": record.protocol,
        "path": None,
        "model": record.model or None,
        "version": variant.version if variant is not None else None,
        "variant": variant.name if variant is not None else None,
        "backend": variant.backend.name if variant is not None else None,
        "runtime": variant.backend.runtime if variant is not None else None,
        "status": status,
        "duration_ms": round(elapsed * 1000.0, 3),
        "upstream_ms": (
            round(record.upstream_s * 1000.0, 3) if record.upstream_s is not None else None
        ),
        "bytes_in": record.bytes_in,
        "bytes_out": record.bytes_out,
        "attempts": record.attempts,
        "retried": record.attempts > 1,
        "shadow": record.shadowed,
        "client": None,
        "error": record.error,
    }
    origin = record.origin
    if isinstance(origin, GrpcOrigin):
        doc["path"] = origin.rpc
        doc["client"] = origin.context.peer()
        for key, value in origin.context.invocation_metadata() or ():
            if key == REQUEST_ID:
                doc["request_id"] = value
    elif isinstance(origin, dict):
        doc["path"] = origin.get("path")
        client = origin.get("client")
        if client:
            doc["client"] = f"{client[0]}:{client[1]}"
        for name, value in origin.get("headers", ()):
            if name == _REQUEST_ID_BYTES:
                doc["request_id"] = value.decode("latin-1")
    if doc["request_id"] is None:
        doc["request_id"] = record.request_id
    return orjson.dumps(doc).decode()
