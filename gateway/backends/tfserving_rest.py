"""TF Serving over REST: ``POST /v1/models/{m}/versions/{v}:predict`` in the columnar format."""

from __future__ import annotations

import orjson

from gateway.backends.base import BackendModel
from gateway.backends.boundary import http_error
from gateway.backends.http_pool import HttpPool
from gateway.codecs.tfserving_json import decode_predict, encode_predict
from gateway.codecs.tfserving_metadata import metadata_from_json
from gateway.config import TFServingBackendConfig
from gateway.errors import BackendError, GatewayError
from gateway.inference import InferRequest, InferResponse, ModelMetadata

DEFAULT_SIGNATURE = "serving_default"
READY_TIMEOUT_S = 2.0
JSON = {"content-type": "application/json"}


class TFServingRestBackend:
    kind = "tfserving"
    protocol = "rest"

    def __init__(self, name: str, config: TFServingBackendConfig, max_message_bytes: int) -> None:
        assert config.rest is not None
        self.name = name
        self.base_url = config.rest
        self.timeout_s = config.timeout_s
        self._pool = HttpPool(name, config.max_connections, config.connect_timeout_s)
        # The single-output response form carries no name: the metadata supplies it.
        self._metadata: dict[BackendModel, ModelMetadata] = {}

    async def start(self) -> None:
        await self._pool.start()

    async def close(self) -> None:
        await self._pool.close()

    def _url(self, target: BackendModel) -> str:
        return f"{self.base_url}/v1/models/{target.name}/versions/{target.version}"

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        metadata = self._metadata.get(target) or await self.metadata(target)
        signature = request.parameters.get("signature_name")
        body = encode_predict(
            request, signature if isinstance(signature, str) else DEFAULT_SIGNATURE
        )
        status, payload = await self._pool.request(
            "POST", self._url(target) + ":predict", timeout_s, body, JSON
        )
        if status != 200:
            raise http_error(status, _error_message(payload), self.name)
        wanted = [output.name for output in request.outputs]
        outputs = decode_predict(payload, metadata, wanted, self.name)
        if wanted:
            outputs = [tensor for tensor in outputs if tensor.name in wanted]
        return InferResponse(target.name, target.version, outputs, request.id)

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        status, payload = await self._pool.request(
            "GET", self._url(target) + "/metadata", self.timeout_s
        )
        if status != 200:
            raise http_error(status, _error_message(payload), self.name)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BackendError(f"backend {self.name!r} sent metadata that is not JSON") from None
        metadata = metadata_from_json(doc, DEFAULT_SIGNATURE, self.name)
        self._metadata[target] = metadata
        return metadata

    async def ready(self, target: BackendModel) -> bool:
        try:
            status, payload = await self._pool.request("GET", self._url(target), READY_TIMEOUT_S)
            if status != 200:
                return False
            states = orjson.loads(payload).get("model_version_status", [])
        except (GatewayError, orjson.JSONDecodeError, AttributeError):
            return False
        return any(item.get("state") == "AVAILABLE" for item in states if isinstance(item, dict))


def _error_message(payload: bytes) -> str:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode(errors="replace")
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return payload[:200].decode(errors="replace")
