"""TorchServe over REST: ``POST /predictions/{m}/{v}`` with an Open Inference Protocol JSON body.

The model's handler reads and writes OIP JSON through TorchServe's kservev2 envelope, so a client's
OIP JSON body is forwarded byte for byte.
"""

from __future__ import annotations

from gateway.backends.base import BackendModel
from gateway.backends.boundary import http_error
from gateway.backends.http_pool import HttpPool
from gateway.backends.torchserve_management import TorchServeManagement, error_message
from gateway.codecs import oip_json
from gateway.config import TorchServeBackendConfig
from gateway.inference import InferRequest, InferResponse, ModelMetadata

JSON = {"content-type": "application/json"}


class TorchServeRestBackend:
    kind = "torchserve"
    protocol = "rest"

    def __init__(self, name: str, config: TorchServeBackendConfig, max_message_bytes: int) -> None:
        assert config.inference is not None
        self.name = name
        self.base_url = config.inference
        self.timeout_s = config.timeout_s
        self._pool = HttpPool(name, config.max_connections, config.connect_timeout_s)
        self._management = TorchServeManagement(name, config.management, self._pool, self.timeout_s)

    async def start(self) -> None:
        await self._pool.start()

    async def close(self) -> None:
        await self._pool.close()

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        url = f"{self.base_url}/predictions/{target.name}/{target.version}"
        body = oip_json.encode_request(request)
        status, payload = await self._pool.request("POST", url, timeout_s, body, JSON)
        if status != 200:
            raise http_error(status, error_message(payload), self.name)
        return oip_json.decode_response(payload, self.name)

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        return await self._management.metadata(target)

    async def ready(self, target: BackendModel) -> bool:
        return await self._management.ready(target)
