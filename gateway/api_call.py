"""One JSON call to one of the gateway's own HTTP APIs (the admin API, the rollout controller),
as the command line and the demos make it: a bearer token when there is one, the error body's
message when the answer is an error, and one exception for a server that cannot be reached."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

ERROR_BODY_LIMIT = 1 << 20


class ApiRefused(Exception):
    """The API answered with an error status; ``message`` is its body's ``error`` (or text)."""

    def __init__(self, status: int, message: str, doc: Any) -> None:
        super().__init__(f"{status} {message}".rstrip())
        self.status = status
        self.message = message
        self.doc = doc
        """The error body as JSON, or None when it was not JSON."""


class ApiUnreachable(Exception):
    """No answer: refused, reset, timed out, or not HTTP/JSON."""

    def __init__(self, reason: object) -> None:
        super().__init__(str(reason))
        self.reason = reason


def json_call(
    url: str, method: str, body: Any = None, token: str | None = None, timeout_s: float = 30.0
) -> Any:
    """``method url`` with ``body`` as JSON; the answer's JSON."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read(ERROR_BODY_LIMIT)
        try:
            doc = json.loads(text)
        except ValueError:
            raise ApiRefused(error.code, text.decode(errors="replace")[:300], None) from None
        message = str(doc.get("error", "")) if isinstance(doc, dict) else ""
        raise ApiRefused(error.code, message, doc) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise ApiUnreachable(getattr(error, "reason", error)) from None
