"""TF Serving over REST: ``POST /v1/models/{m}/versions/{v}:predict``.

A client's own ``:predict`` body is forwarded as it is (row or columnar); other requests are sent
columnar. JSON carries no dtypes and a single output carries no name, so the model's metadata
(from the gateway's one metadata cache) types and names what comes back.
"""

from __future__ import annotations

import orjson

from gateway.backends.base import BackendModel
from gateway.backends.boundary import error_text, http_error, reply_boundary
from gateway.backends.http_pool import backend_pool
from gateway.backends.probe import CONTROL_CONNECTIONS, PROBE_TIMEOUT_S, probe
from gateway.backends.tfserving_apis import TFServingApis
from gateway.backends.tfserving_grpc import channel_options
from gateway.codecs.tfserving_json import decode_predict_response, encode_predict_request
from gateway.codecs.tfserving_metadata import DEFAULT_SIGNATURE, metadata_from_json
from gateway.config import TFServingBackendConfig
from gateway.inference import Formats, InferRequest, InferResponse, ModelMetadata, Payload, Tensor
from gateway.media_types import JSON_HEADERS
from gateway.metadata import MetadataCache


class TFServingRestBackend:
    kind = "tfserving"
    protocol = "rest"

    def __init__(
        self,
        name: str,
        config: TFServingBackendConfig,
        max_message_bytes: int,
        metadata: MetadataCache,
    ) -> None:
        assert config.rest is not None
        self.name = name
        self.runtime = config.runtime
        self.base_url = config.rest
        self.timeout_s = config.timeout_s
        self._pool = backend_pool(name, config, max_message_bytes)
        self._control = backend_pool(name, config, max_message_bytes, CONTROL_CONNECTIONS)
        """Metadata and readiness, never queued behind inference."""
        self._apis = TFServingApis(
            name,
            config,
            channel_options(max_message_bytes, config.grpc_load_balancing),
            max_message_bytes,
        )
        self._limit = max_message_bytes
        self._metadata = metadata

    async def start(self) -> None:
        await self._pool.start()
        await self._control.start()
        await self._apis.start(None, self._pool)

    async def close(self) -> None:
        await self._apis.close()
        await self._control.close()
        await self._pool.close()

    async def tf_api(
        self, api: str, target: BackendModel, payload: Payload, timeout_s: float
    ) -> Payload:
        return await self._apis.call(api, target, payload, timeout_s)

    def _url(self, target: BackendModel) -> str:
        return f"{self.base_url}/v1/models/{target.name}/versions/{target.version}"

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        payload = request.payload
        if payload is not None and payload.format == Formats.TFS_PREDICT_JSON:
            body = payload.body
        else:
            inputs = await request.input_tensors()  # may set the signature_name parameter
            signature = request.parameters.get("signature_name")
            body = encode_predict_request(
                inputs,
                signature if isinstance(signature, str) else DEFAULT_SIGNATURE,
                self._limit,
            )
        reply = await self._pool.request(
            "POST", self._url(target) + ":predict", timeout_s, body, JSON_HEADERS
        )
        if reply.status != 200:
            raise http_error(reply.status, error_text(reply.body, "error"), self.name)
        wanted = [output.name for output in request.outputs]

        async def decode() -> list[Tensor]:
            metadata = await self._metadata.get(self, target)
            # An output the model does not have is the client's mistake, for the front end to
            # refuse; the reply is read by the names it can have.
            known = [name for name in wanted if any(s.name == name for s in metadata.outputs)]
            with reply_boundary(self.name, ":predict reply"):
                outputs = decode_predict_response(reply.body, metadata, known, self.name)
            return [t for t in outputs if t.name in known] if known else outputs

        return InferResponse(
            target.name,
            target.version,
            decode_outputs=decode,
            id=request.id,
            payload=Payload(Formats.TFS_PREDICT_JSON, reply.body, reply.content_type),
        )

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        url = self._url(target) + "/metadata"
        reply = await self._control.request("GET", url, self.timeout_s)
        if reply.status != 200:
            raise http_error(reply.status, error_text(reply.body, "error"), self.name)
        with reply_boundary(self.name, "model metadata"):
            return metadata_from_json(orjson.loads(reply.body), DEFAULT_SIGNATURE, self.name)

    async def ready(self, target: BackendModel) -> bool | None:
        return await probe(self._available(target))

    async def _available(self, target: BackendModel) -> bool:
        reply = await self._control.request("GET", self._url(target), PROBE_TIMEOUT_S)
        if reply.status != 200:
            return False
        with reply_boundary(self.name, "model status"):
            states = orjson.loads(reply.body).get("model_version_status", [])
            return any(
                item.get("state") == "AVAILABLE" for item in states if isinstance(item, dict)
            )
