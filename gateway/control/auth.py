"""The admin API's bearer token: from ``GATEWAY_ADMIN_TOKEN`` or ``server.admin.token_file``
(re-read when the file changes), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from gateway.control.store import Stamp, stamp

TOKEN_ENV = "GATEWAY_ADMIN_TOKEN"
HOW_TO_SET = (
    "the admin API has no token configured: set the environment variable GATEWAY_ADMIN_TOKEN "
    "or server.admin.token_file (a file holding the token), then restart the gateway"
)


class Refused(Exception):
    """The request may not use the admin API: ``status`` 401 (token) or 503 (none configured)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def token_id(token: str) -> str:
    """What the audit log names a token by (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


class AdminToken:
    def __init__(self, token_file: str | None, environ: dict[str, str] | None = None) -> None:
        source = os.environ if environ is None else environ
        self._env = source.get(TOKEN_ENV) or None
        self._file = Path(token_file) if token_file else None
        self._cached: tuple[Stamp | None, str | None] = (None, None)

    def expected(self) -> str | None:
        if self._env is not None:
            return self._env.strip() or None
        if self._file is None:
            return None
        current = stamp(self._file)
        if current is None:
            return None
        if current != self._cached[0]:
            try:
                text = self._file.read_text().strip()
            except OSError:
                return None
            self._cached = (current, text or None)
        return self._cached[1]

    def check(self, authorization: str | None) -> str:
        """The token id of a request's ``Authorization`` header; :class:`Refused` if wrong."""
        expected = self.expected()
        if expected is None:
            raise Refused(503, HOW_TO_SET)
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Refused(401, "missing bearer token: send Authorization: Bearer <token>")
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise Refused(401, "wrong bearer token")
        return token_id(expected)
