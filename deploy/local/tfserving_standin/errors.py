"""The stand-in's errors: a request's status as TF Serving gives it, and failures to start."""

from __future__ import annotations

import grpc

Code = grpc.StatusCode
# tensorflow.error.Code numbers (what StatusProto.error_code and TF's errors carry) to codes.
CODE_BY_NUMBER = {code.value[0]: code for code in Code}

# TF Serving's http_server.cc mapping of error codes to HTTP statuses.
HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A request failed with this status; the message is the one TF Serving gives."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def status_text(self) -> str:
        return f"{self.code.name}: {self.message}"


class StartupError(Exception):
    """The configuration or the models cannot be served."""


def invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status the REST API answers a failure of this code with."""
    return HTTP_STATUS.get(code, 500)
