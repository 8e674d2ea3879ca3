"""TorchServe's management API: model description (metadata) and worker readiness."""

from __future__ import annotations

import orjson

from gateway.backends.base import BackendModel
from gateway.backends.boundary import error_text, http_error
from gateway.backends.http_pool import HttpPool, HttpReply
from gateway.backends.torchserve_keys import MANAGEMENT, TorchServeKeys, send_with_key
from gateway.codecs.oip_raw import tensor_spec
from gateway.errors import BackendError, GatewayError
from gateway.inference import ModelMetadata

READY_TIMEOUT_S = 2.0
PLATFORM = "pytorch_torchscript"


class TorchServeManagement:
    def __init__(
        self,
        backend: str,
        base_url: str | None,
        pool: HttpPool,
        timeout_s: float,
        keys: TorchServeKeys,
    ):
        self._backend = backend
        self._base_url = base_url
        self._pool = pool
        self._timeout_s = timeout_s
        self._keys = keys

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
        try:
            description = orjson.loads(reply.body)[0]
            custom = description.get("customizedMetadata") or {}
            if isinstance(custom, str):  # the handler returns a string; TorchServe embeds it
                custom = orjson.loads(custom)
            return ModelMetadata(
                platform=str(custom.get("platform", PLATFORM)),
                inputs=tuple(tensor_spec(item) for item in custom.get("inputs", [])),
                outputs=tuple(tensor_spec(item) for item in custom.get("outputs", [])),
            )
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, AttributeError):
            raise BackendError(
                f"backend {self._backend!r} described {target.name}/{target.version} in a form "
                "the gateway cannot read"
            ) from None

    async def ready(self, target: BackendModel) -> bool:
        """True when the model version has at least one worker in state READY."""
        try:
            reply = await self._get(self._url(target), READY_TIMEOUT_S)
            if reply.status != 200:
                return False
            workers = orjson.loads(reply.body)[0].get("workers", [])
        except (GatewayError, orjson.JSONDecodeError, IndexError, KeyError, AttributeError):
            return False
        return any(worker.get("status") == "READY" for worker in workers)
