"""TorchServe's token authorization: the keys in its ``key_file.json``, kept fresh.

TorchServe (0.11 and later, unless started with token authorization off) refuses every call that
lacks ``Authorization: Bearer <key>``: the inference key on the inference API (REST, and gRPC
metadata), the management key on the management API. It writes both keys with their expiry, and
the API key, to ``key_file.json`` in its working directory, and rewrites the file when a key is
regenerated through ``GET /token?type=inference|management`` (authorized by the API key). Keys
expire (``token_expiration_min``, 60 by default) and TorchServe never renews them by itself.

Each backend client keeps one :class:`TorchServeKeys`: it re-reads the file at most once a second
when the file changed, at once after a refusal, and regenerates a key through the token API
shortly before it expires unless another process (a gateway worker, a replica, the healthcheck)
already did. A refused call is retried once with what the file holds then (a file that still holds
the refused key is read again for a moment, then the key is renewed once more); a second refusal
is a 502 naming the key file. A refused call never ran, so sending it again is safe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
import orjson

from gateway.backends.http_pool import DEFAULT_TLS, HttpPool, HttpReply, TlsOptions
from gateway.errors import BackendError, GatewayError

log = logging.getLogger(__name__)

INFERENCE = "inference"
MANAGEMENT = "management"
REFUSED_TYPE = b"InvalidKeyException"  # the type of TorchServe's REST refusal (status 400)
REFUSED_DETAILS = "Token Authorization failed"  # its gRPC refusal (PERMISSION_DENIED)
RECHECK_S = 1.0
HALF_WRITTEN_RETRIES = 20
HALF_WRITTEN_WAIT_S = 0.01
KEY_CHANGE_WAIT_S = 0.5  # how long a file that holds a refused key is watched for a new one
KEY_CHANGE_POLL_S = 0.02
TOKEN_TIMEOUT_S = 5.0
TOKEN_REPLY_BYTES = 64 * 1024  # a token API reply is a few hundred bytes
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class Key:
    value: str
    expires_at: float | None  # seconds since the epoch
    seen_at: float

    def remaining(self, now: float) -> float | None:
        return None if self.expires_at is None else self.expires_at - now

    def refresh_margin(self) -> float:
        """Renew this long before expiry: a quarter of the lifetime seen, within 5 s and 2 min."""
        if self.expires_at is None:
            return 0.0
        return min(max((self.expires_at - self.seen_at) / 4, 5.0), 120.0)


@dataclass(frozen=True)
class KeyFile:
    keys: dict[str, Key]
    api_key: str | None


def _expiry(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:  # Java's Instant: nanoseconds, and a Z
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_key_file(body: bytes, now: float) -> KeyFile:
    """``{"management": {"key", "expiration time"}, "inference": {...}, "API": {"key"}}``."""
    document = orjson.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    keys: dict[str, Key] = {}
    for role in (INFERENCE, MANAGEMENT):
        entry = document.get(role)
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            keys[role] = Key(entry["key"], _expiry(entry.get("expiration time")), now)
    api = document.get("API")
    api_key = api.get("key") if isinstance(api, dict) else None
    return KeyFile(keys, api_key if isinstance(api_key, str) else None)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def refused(reply: HttpReply) -> bool:
    """Whether TorchServe refused the call's key (it answers 400 InvalidKeyException)."""
    return reply.status in (400, 401, 403) and REFUSED_TYPE in reply.body[:512]


def grpc_refused(error: grpc.RpcError) -> bool:
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else None) or ""
    return code == grpc.StatusCode.PERMISSION_DENIED and REFUSED_DETAILS in details


class TorchServeKeys:
    def __init__(
        self,
        backend: str,
        key_file: str | None,
        management_url: str | None,
        connect_timeout_s: float = 1.0,
        tls: TlsOptions = DEFAULT_TLS,
    ) -> None:
        self._backend = backend
        self._path = key_file
        self._management_url = management_url
        self._connect_timeout_s = connect_timeout_s
        self._tls = tls
        self._file: KeyFile | None = None
        self._problem: str | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._headers: dict[str, dict[str, str]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._jitter = random.uniform(0.8, 1.0)  # workers sharing a file renew at different times
        self._pool: HttpPool | None = None

    async def close(self) -> None:
        for task in self._refreshing.values():
            task.cancel()
        self._refreshing.clear()
        if self._pool is not None:
            await self._pool.close()

    def headers(self, role: str) -> dict[str, str] | None:
        """``{"authorization": "Bearer <key>"}`` for this API, or None without a key."""
        if self._path is None:
            return None
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RECHECK_S
            self._read(force=False)
        key = self._file.keys.get(role) if self._file is not None else None
        if key is None:
            return None
        remaining = key.remaining(time.time())
        if remaining is not None and remaining < key.refresh_margin() * self._jitter:
            self._schedule_refresh(role)
        return self._headers.get(role)

    def metadata(self, role: str) -> tuple[tuple[str, str], ...] | None:
        headers = self.headers(role)
        return None if headers is None else tuple(headers.items())

    async def after_refusal(self, role: str, sent: dict[str, str] | None) -> bool:
        """Re-read the file now; True when it holds another key for ``role`` (worth a retry).

        TorchServe rewrites the file in place (truncate, then write): a read that finds it half
        written waits a moment and reads again. A renewal takes effect before the file is
        written, so a file that still holds the refused key is read again for up to
        ``KEY_CHANGE_WAIT_S`` before the refusal stands.
        """
        if self._path is None:
            return False
        if await self._key_changed(role, sent):
            return True
        # The file keeps a key TorchServe refuses: two renewals at once (two backends or
        # workers on one TorchServe) can leave it holding the older one while the newer is in
        # force. Renewing once more puts one key in force and in the file alike.
        return await self._renew_now(role) and await self._key_changed(role, sent)

    async def _key_changed(self, role: str, sent: dict[str, str] | None) -> bool:
        deadline = time.monotonic() + KEY_CHANGE_WAIT_S
        while True:
            for _ in range(HALF_WRITTEN_RETRIES):
                if self._read(force=True):
                    break
                await asyncio.sleep(HALF_WRITTEN_WAIT_S)
            if self.headers(role) not in (None, sent):
                return True
            if self._problem is not None or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(KEY_CHANGE_POLL_S)

    async def _renew_now(self, role: str) -> bool:
        """One renewal of ``role``'s key, shared by every request refused meanwhile; False
        when there is no way to renew (no management URL or no API key)."""
        api_key = self._file.api_key if self._file is not None else None
        if self._management_url is None or api_key is None:
            return False
        task = self._refreshing.get(role)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(role, expiring_only=False))
            self._refreshing[role] = task
            task.add_done_callback(lambda _: self._refreshing.pop(role, None))
        await asyncio.shield(task)
        return True

    def refusal(self, role: str) -> BackendError:
        """The 502 a refused key is: it names the key file, or the knob to set."""
        prefix = f"backend {self._backend!r} refused the gateway's {role} key"
        if self._path is None:
            return BackendError(
                f"{prefix}: TorchServe's token authorization is on; set "
                f"backends.{self._backend}.key_file to the key_file.json it writes"
            )
        if self._problem is not None:
            return BackendError(f"{prefix}: cannot use key file {self._path}: {self._problem}")
        return BackendError(
            f"{prefix} from {self._path} (TorchServe: token incorrect or expired); is it the key "
            "file of this TorchServe?"
        )

    def _read(self, force: bool) -> bool:
        """Read the file if it changed (or ``force``); False when it could not be parsed."""
        assert self._path is not None
        try:
            stat = os.stat(self._path)
            stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if stamp == self._stamp and not force:
                return True
            with open(self._path, "rb") as handle:
                parsed = parse_key_file(handle.read(), time.time())
        except OSError as error:
            self._problem = error.strerror or str(error)
            return True
        except ValueError as error:  # half-written: read it again soon
            self._problem = f"not TorchServe's key file JSON ({error})"
            self._next_check = time.monotonic() + HALF_WRITTEN_WAIT_S
            return False
        self._stamp, self._problem = stamp, None
        previous = self._file.keys if self._file is not None else {}
        keys = {
            role: previous[role] if role in previous and previous[role].value == key.value else key
            for role, key in parsed.keys.items()
        }
        self._file = KeyFile(keys, parsed.api_key)
        self._headers = {role: bearer(key.value) for role, key in keys.items()}
        return True

    def _schedule_refresh(self, role: str) -> None:
        if role in self._refreshing or self._management_url is None:
            return
        task = asyncio.get_running_loop().create_task(self._refresh(role))
        self._refreshing[role] = task
        task.add_done_callback(lambda _: self._refreshing.pop(role, None))

    async def _refresh(self, role: str, expiring_only: bool = True) -> None:
        """Regenerate the key through the token API, unless someone else already did (with
        ``expiring_only``: the key in the file is not about to expire)."""
        self._read(force=True)
        key = self._file.keys.get(role) if self._file is not None else None
        remaining = key.remaining(time.time()) if key is not None else None
        if expiring_only and (
            key is None or remaining is None or remaining >= key.refresh_margin()
        ):
            return
        api_key = self._file.api_key if self._file is not None else None
        if api_key is None:
            log.warning(
                "%s: the %s key expires soon and %s has no API key", self._backend, role, self._path
            )
            return
        if self._pool is None:
            self._pool = HttpPool(
                f"{self._backend} token API",
                1,
                self._connect_timeout_s,
                TOKEN_REPLY_BYTES,
                self._tls,
            )
        url = f"{self._management_url}/token?type={role}"
        try:
            reply = await self._pool.request("GET", url, TOKEN_TIMEOUT_S, headers=bearer(api_key))
        except GatewayError as error:
            log.warning("%s: renewing the %s key failed: %s", self._backend, role, error.message)
            return
        if reply.status != 200:
            log.warning(
                "%s: renewing the %s key: TorchServe answered %d", self._backend, role, reply.status
            )
            return
        self._read(force=True)
        log.info("%s: renewed TorchServe's %s key", self._backend, role)


Send = Callable[[dict[str, str] | None], Awaitable[HttpReply]]
Call = Callable[[tuple[tuple[str, str], ...] | None], Awaitable[bytes]]


async def send_with_key(keys: TorchServeKeys, role: str, send: Send) -> HttpReply:
    """``send(auth_headers)``; once more after a refusal if the key file changed, else a 502."""
    headers = keys.headers(role)
    reply = await send(headers)
    if not refused(reply):
        return reply
    if await keys.after_refusal(role, headers):
        reply = await send(keys.headers(role))
        if not refused(reply):
            return reply
    raise keys.refusal(role)


async def call_with_key(keys: TorchServeKeys, role: str, call: Call) -> bytes:
    """The gRPC twin of :func:`send_with_key`: ``call(metadata)``."""
    headers = keys.headers(role)
    try:
        return await call(None if headers is None else tuple(headers.items()))
    except grpc.RpcError as error:
        if not grpc_refused(error):
            raise
    if await keys.after_refusal(role, headers):
        try:
            return await call(keys.metadata(role))
        except grpc.RpcError as error:
            if not grpc_refused(error):
                raise
    raise keys.refusal(role)
