"""The gateway's one exception tree.

Every layer raises these; transport errors (sockets, HTTP parsing, gRPC) are translated at the
backend boundary. Each class carries a protocol-neutral ``code``; ``HTTP_STATUS`` and
``GRPC_STATUS`` map that code once, for the HTTP front end and the gRPC front end respectively.
"""

from __future__ import annotations

from enum import StrEnum

import grpc


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_READY = "not_ready"
    BAD_UPSTREAM = "bad_upstream"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(GatewayError):
    """The request is malformed: bad JSON, a tensor whose data does not match its shape, ..."""

    code = ErrorCode.INVALID_ARGUMENT


class UnsupportedMediaType(GatewayError):
    """The request body is in an encoding the endpoint does not accept."""

    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class PayloadTooLarge(GatewayError):
    """The request body is larger than the configured limit."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class ModelNotFound(GatewayError):
    """No model of that name is configured."""

    code = ErrorCode.NOT_FOUND


class VersionNotFound(GatewayError):
    """The model exists, but no variant serves the requested version."""

    code = ErrorCode.NOT_FOUND


class UnknownVariant(GatewayError):
    """A variant pin names a variant the model does not have (or not of the pinned version)."""

    code = ErrorCode.INVALID_ARGUMENT


class VariantDisabled(GatewayError):
    """A pin (or a version, or a label) reaches only variants that are disabled (``enabled:
    false``): out of all traffic, as after a rollback."""

    code = ErrorCode.NOT_FOUND


class Conflict(GatewayError):
    """The change clashes with one in progress (another deploy of the same version, say)."""

    code = ErrorCode.CONFLICT


class ModelNotReady(GatewayError):
    """The model is configured, but no variant can serve it right now (all drained or unready)."""

    code = ErrorCode.NOT_READY


class BackendError(GatewayError):
    """The backend answered, but with a server error or a response the gateway cannot read."""

    code = ErrorCode.BAD_UPSTREAM


class BackendUnavailable(GatewayError):
    """The backend could not be reached: connection refused, reset or pool exhausted."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE


class BackendDroppedReply(BackendUnavailable):
    """The backend's connection broke after part of its reply had arrived: never retried."""


class BackendTimeout(GatewayError):
    """The backend did not answer within the request deadline."""

    code = ErrorCode.UPSTREAM_TIMEOUT


class DeadlineExceeded(GatewayError):
    """Too little of the request's deadline was left to call the backend: it was never sent."""

    code = ErrorCode.UPSTREAM_TIMEOUT


class Overloaded(GatewayError):
    """The gateway is at a limit (a backend's circuit breaker, the worker's concurrent requests,
    the request bodies it may buffer); the request was not sent anywhere: retry shortly."""

    code = ErrorCode.OVERLOADED
    retry_after_s = 1
    """What ``retry-after`` (HTTP, whole seconds) and ``grpc-retry-pushback-ms`` say."""


class InternalError(GatewayError):
    """A bug in the gateway; the message is safe to show, the traceback is logged."""

    code = ErrorCode.INTERNAL


CLIENT_CLOSED = 499
"""The status recorded for a request whose client went away before the answer (nginx's)."""

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.NOT_READY: 503,
    ErrorCode.BAD_UPSTREAM: 502,
    ErrorCode.UPSTREAM_UNAVAILABLE: 503,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.INTERNAL: 500,
}

GRPC_STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.CONFLICT: grpc.StatusCode.ABORTED,
    ErrorCode.PAYLOAD_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_READY: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.BAD_UPSTREAM: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.UPSTREAM_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.UPSTREAM_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.OVERLOADED: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}


def http_status(error: GatewayError) -> int:
    return HTTP_STATUS[error.code]


def grpc_status(error: GatewayError) -> grpc.StatusCode:
    return GRPC_STATUS[error.code]
