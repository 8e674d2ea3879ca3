"""A model version into (and out of) TorchServe, through its management API.

Register ``POST /models?url=...&model_name=...&initial_workers=N&synchronous=true``, wait for a
READY worker, ``PUT /models/{m}/{v}/set-default`` only when asked; unregister with ``DELETE
/models/{m}/{v}``. Every call carries the management key (token authorization).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from gateway.backends.boundary import error_text
from gateway.backends.http_pool import HttpPool, HttpReply
from gateway.backends.torchserve_keys import MANAGEMENT, TorchServeKeys, send_with_key
from gateway.errors import GatewayError
from gateway.runtimes.results import StepFailed, TorchServeTarget

REPLY_BYTES = 16 * 1024 * 1024  # the largest management reply read (a describe of many models)


class TorchServeRuntime:
    kind = "torchserve"

    def __init__(
        self,
        backend: str,
        management_url: str,
        key_file: str | None = None,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 120.0,
        poll_s: float = 0.25,
    ) -> None:
        self.backend = backend
        self._url = management_url.rstrip("/")
        self._keys = TorchServeKeys(backend, key_file, self._url, connect_timeout_s)
        self._pool = HttpPool(f"{backend} management", 2, connect_timeout_s, REPLY_BYTES)
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    async def close(self) -> None:
        await self._keys.close()
        await self._pool.close()

    async def _call(self, method: str, path: str, timeout_s: float = 10.0) -> HttpReply:
        async def send(auth: dict[str, str] | None) -> HttpReply:
            return await self._pool.request(method, self._url + path, timeout_s, headers=auth)

        try:
            return await send_with_key(self._keys, MANAGEMENT, send)
        except GatewayError as error:
            raise StepFailed(error.message) from None

    def _failed(self, what: str, reply: HttpReply) -> StepFailed:
        message = error_text(reply.body, "message")
        return StepFailed(f"TorchServe {self.backend!r} refused {what} ({reply.status}): {message}")

    async def versions(self, model: str) -> dict[str, bool]:
        """Registered versions of ``model``: whether each has a READY worker."""
        reply = await self._call("GET", f"/models/{quote(model, safe='')}/all")
        if reply.status == 404:
            return {}
        if reply.status != 200:
            raise self._failed(f"describing {model}", reply)
        try:
            entries: Any = orjson.loads(reply.body)
            return {
                str(entry["modelVersion"]): any(
                    worker.get("status") == "READY" for worker in entry.get("workers") or []
                )
                for entry in entries
            }
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
            raise StepFailed(f"TorchServe {self.backend!r} described {model} unreadably") from None

    async def default_version(self, model: str) -> str | None:
        reply = await self._call("GET", f"/models/{quote(model, safe='')}")
        if reply.status != 200:
            return None
        try:
            return str(orjson.loads(reply.body)[0]["modelVersion"])
        except (orjson.JSONDecodeError, TypeError, KeyError, IndexError):
            return None

    async def observe(self, model: str, version: str) -> dict[str, Any]:
        versions = await self.versions(model)
        return {
            "registered": version in versions,
            "ready": versions.get(version, False),
            "default": await self.default_version(model) if versions else None,
        }

    async def deploy(self, target: TorchServeTarget, model: str, version: str) -> str:
        """Make ``model``/``version`` servable; the detail says what was done ("" if nothing)."""
        before = await self.versions(model)
        done = []
        if version not in before:
            await self._register(target, model, version, set(before))
            done.append(f"registered {target.archive}")
        if not before.get(version, False):
            await self._wait_ready(model, version)
        if target.set_default and await self.default_version(model) != version:
            await self.set_default(model, version)
            done.append("set as default version")
        return ", ".join(done)

    async def _register(
        self, target: TorchServeTarget, model: str, version: str, before: set[str]
    ) -> None:
        query = urlencode(
            {
                "url": target.archive,
                "model_name": model,
                "initial_workers": target.initial_workers,
                "synchronous": "true",
            }
        )
        reply = await self._call("POST", f"/models?{query}", self._timeout_s)
        if reply.status not in (200, 201, 202):
            raise self._failed(f"registering {target.archive}", reply)
        added = set(await self.versions(model)) - before
        if version not in added:
            for other in sorted(added):  # the archive held another version: take it out again
                await self._call("DELETE", f"/models/{quote(model, safe='')}/{quote(other)}")
            raise StepFailed(
                f"archive {target.archive} holds version(s) {', '.join(sorted(added)) or 'none'} "
                f"of {model}, not {version}: registered and unregistered again"
            )

    async def _wait_ready(self, model: str, version: str) -> None:
        deadline = time.monotonic() + self._timeout_s
        while not (await self.versions(model)).get(version, False):
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"TorchServe {self.backend!r}: no READY worker for {model}/{version} after "
                    f"{self._timeout_s:g}s"
                )
            await asyncio.sleep(self._poll_s)

    async def set_default(self, model: str, version: str) -> None:
        reply = await self._call(
            "PUT", f"/models/{quote(model, safe='')}/{quote(version)}/set-default"
        )
        if reply.status != 200:
            raise self._failed(f"making {model}/{version} the default", reply)

    async def undo(self, model: str, version: str, before: dict[str, Any]) -> str:
        """Put back what ``observe`` saw before the deploy; the detail says what was undone."""
        undone = []
        previous = before.get("default")
        if previous and previous != version and await self.default_version(model) == version:
            await self.set_default(model, previous)
            undone.append(f"default version back to {previous}")
        if not before.get("registered") and version in await self.versions(model):
            await self.unregister(model, version)
            undone.append("unregistered")
        return ", ".join(undone)

    async def unregister(self, model: str, version: str) -> bool:
        """Take the version out; False if it was not registered."""
        reply = await self._call(
            "DELETE", f"/models/{quote(model, safe='')}/{quote(version)}", self._timeout_s
        )
        if reply.status == 404:
            return False
        if reply.status != 200:
            raise self._failed(f"unregistering {model}/{version}", reply)
        return True
