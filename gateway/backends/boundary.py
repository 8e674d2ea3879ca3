"""Translate third-party errors into gateway errors where a backend is called or its reply read.

``http_boundary`` and ``grpc_boundary`` wrap the calls (sockets, HTTP parsing, TLS, gRPC status);
``reply_boundary`` wraps every decoding of what a backend sent, eager or lazy (protobuf, JSON,
text, numpy): a reply the gateway cannot read is the backend's fault, 502, never a 500 and never
the client's 400.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httptools
import orjson
from google.protobuf.message import DecodeError

from gateway.backends.http_connection import ReplyCut, ReplyTooLarge
from gateway.errors import (
    BackendDroppedReply,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    GatewayError,
    InvalidInput,
)


class ConnectTimeout(ConnectionError):
    """No connection within the connect timeout: the backend is unreachable, not slow."""


_REJECTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}
_UNAVAILABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
}


@contextmanager
def http_boundary(backend: str, timeout_s: float) -> Iterator[None]:
    """Socket and HTTP errors -> 503 (unreachable), 504 (too slow) or 502 (garbled)."""
    try:
        yield
    except GatewayError:
        raise
    except ConnectTimeout as error:
        raise BackendUnavailable(f"backend {backend!r} unreachable: {error}") from None
    except TimeoutError:
        raise BackendTimeout(
            f"backend {backend!r} did not answer within {timeout_s:.3g}s"
        ) from None
    except ReplyTooLarge as error:
        raise BackendError(
            f"backend {backend!r} sent a reply larger than the {error.limit}-byte limit "
            "(server.max_request_bytes)"
        ) from None
    except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
        raise BackendError(f"backend {backend!r} sent a bad HTTP response: {error!r}") from None
    except ReplyCut as error:
        raise BackendDroppedReply(f"backend {backend!r} dropped the connection: {error}") from None
    except ssl.SSLError as error:
        raise BackendUnavailable(f"backend {backend!r} TLS failed: {error}") from None
    except (ConnectionRefusedError, socket.gaierror) as error:
        raise BackendUnavailable(f"backend {backend!r} unreachable: {error}") from None
    except OSError as error:
        raise BackendUnavailable(f"backend {backend!r} dropped the connection: {error}") from None


@contextmanager
def grpc_boundary(backend: str, timeout_s: float) -> Iterator[None]:
    """gRPC status codes -> the gateway's errors; the backend's message is kept."""
    try:
        yield
    except GatewayError:
        raise
    except grpc.RpcError as error:
        raise grpc_error(error, backend, timeout_s) from None


# Where a reply broke the channel's max_receive_message_length (set to server.max_request_bytes).
_TOO_LARGE = "Received message larger than max"
_REPLY_ERRORS = (
    DecodeError,  # protobuf
    ValueError,  # orjson, UnicodeDecodeError, numpy shapes and dtypes
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,  # a reply whose shape claims more than the machine has
    RecursionError,
    struct.error,
)


@contextmanager
def reply_boundary(backend: str, what: str = "reply") -> Iterator[None]:
    """Decoding ``what`` a backend sent: anything it makes a codec or library raise -> 502."""
    try:
        yield
    except InvalidInput as error:  # a codec's words for a malformed message: here, the backend's
        message = error.message
        raise BackendError(f"backend {backend!r} sent an unreadable {what}: {message}") from None
    except GatewayError:
        raise
    except _REPLY_ERRORS as error:
        detail = str(error)[:200] or type(error).__name__
        raise BackendError(f"backend {backend!r} sent an unreadable {what}: {detail}") from None


def grpc_error(error: grpc.RpcError, backend: str, timeout_s: float) -> GatewayError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(code)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in details:
        return BackendError(f"backend {backend!r} sent a reply over the limit: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return BackendTimeout(f"backend {backend!r} did not answer within {timeout_s:.3g}s")
    if code in _UNAVAILABLE:
        return BackendUnavailable(f"backend {backend!r} unavailable: {details}")
    if code in _REJECTED:
        return InvalidInput(f"backend {backend!r} rejected the request: {details}")
    return BackendError(f"backend {backend!r} failed ({code.name}): {details}")


def http_error(status: int, message: str, backend: str) -> GatewayError:
    """A REST backend's non-2xx answer: its 4xx are the client's fault, the rest its own."""
    if status == 503:
        return BackendUnavailable(f"backend {backend!r} unavailable: {message}")
    if status == 504:
        return BackendTimeout(f"backend {backend!r} timed out: {message}")
    if status in (400, 413, 422):
        return InvalidInput(f"backend {backend!r} rejected the request: {message}")
    return BackendError(f"backend {backend!r} answered {status}: {message}")


def error_text(body: bytes, key: str) -> str:
    """The message in a backend's JSON error body (``{key: "..."}``), else the body's start."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get(key), str):
        return str(doc[key])
    return body[:200].decode(errors="replace")
