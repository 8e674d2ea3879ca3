"""TorchServe's management API: model description (metadata) and worker readiness.

Both go over a small pool of their own, never behind the inference traffic.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.backends.base import BackendModel
from gateway.backends.boundary import error_text, http_error, reply_boundary
from gateway.backends.http_pool import HttpReply, backend_pool
from gateway.backends.probe import CONTROL_CONNECTIONS, PROBE_TIMEOUT_S, probe
from gateway.backends.torchserve_keys import MANAGEMENT, TorchServeKeys, send_with_key
from gateway.codecs.oip_raw import tensor_spec
from gateway.config import TorchServeBackendConfig
from gateway.errors import BackendError
from gateway.inference import ModelMetadata

PLATFORM = "pytorch_torchscript"


class TorchServeManagement:
    def __init__(
        self,
        backend: str,
        config: TorchServeBackendConfig,
        max_reply_bytes: int,
        keys: TorchServeKeys,
    ):
        self._backend = backend
        self._base_url = config.management
        self._timeout_s = config.timeout_s
        self._pool = backend_pool(backend, config, max_reply_bytes, CONTROL_CONNECTIONS)
        self._keys = keys

    async def start(self) -> None:
        await self._pool.start()

    async def close(self) -> None:
        await self._pool.close()

    async def _get(self, url: str, timeout_s: float) -> HttpReply:
        async def send(auth: dict[str, str] | None) -> HttpReply:
            return await self._pool.request("GET", url, timeout_s, headers=auth)

        return await send_with_key(self._keys, MANAGEMENT, send)

    def _url(self, target: BackendModel) -> str:
        if self._base_url is None:
            raise BackendError(f"backend {self._backend!r} has no management address configured")
        return f"{self._base_url}/models/{target.name}/{target.version}"

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        """The handler's ``describe_handle`` output (``?customized=true``), in OIP shape."""
        reply = await self._get(self._url(target) + "?customized=true", self._timeout_s)
        if reply.status != 200:
            raise http_error(reply.status, error_text(reply.body, "message"), self._backend)
        with reply_boundary(self._backend, f"description of {target.name}/{target.version}"):
            custom = _description(reply.body).get("customizedMetadata") or {}
            if isinstance(custom, str):  # the handler returns a string; TorchServe embeds it
                custom = orjson.loads(custom)
            return ModelMetadata(
                platform=str(custom.get("platform", PLATFORM)),
                inputs=tuple(tensor_spec(item) for item in custom.get("inputs", [])),
                outputs=tuple(tensor_spec(item) for item in custom.get("outputs", [])),
            )

    async def ready(self, target: BackendModel) -> bool | None:
        """True when the model version has at least one worker in state READY."""
        return await probe(self._workers_ready(target))

    async def _workers_ready(self, target: BackendModel) -> bool:
        reply = await self._get(self._url(target), PROBE_TIMEOUT_S)
        if reply.status != 200:
            return False
        with reply_boundary(self._backend, "model status"):
            workers = _description(reply.body).get("workers", [])
            return any(worker.get("status") == "READY" for worker in workers)


def _description(body: bytes) -> dict[str, Any]:
    """The first (only) entry of a describe reply: ``[{...}]``."""
    description = orjson.loads(body)[0]
    if not isinstance(description, dict):
        raise TypeError("a model description must be a JSON object")
    return description
