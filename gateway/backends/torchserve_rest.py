"""TorchServe over REST: ``POST /predictions/{m}/{v}``.

A TorchServe-shaped body (or an OIP JSON body, which the model's kservev2 handler reads) is
forwarded byte for byte with its content type; tensors from other protocols are sent as OIP JSON.
The reply is kept as TorchServe sent it and read as OIP JSON only if the client needs tensors.
"""

from __future__ import annotations

from gateway import media_types
from gateway.backends.base import BackendModel
from gateway.backends.boundary import error_text, http_error, reply_boundary
from gateway.backends.http_pool import HttpReply, backend_pool, tls_options
from gateway.backends.torchserve_keys import INFERENCE, TorchServeKeys, send_with_key
from gateway.backends.torchserve_management import TorchServeManagement
from gateway.codecs import oip_json
from gateway.codecs.torchserve import single_body
from gateway.config import TorchServeBackendConfig
from gateway.inference import Formats, InferRequest, InferResponse, ModelMetadata, Payload, Tensor
from gateway.metadata import MetadataCache


class TorchServeRestBackend:
    kind = "torchserve"
    protocol = "rest"

    def __init__(
        self,
        name: str,
        config: TorchServeBackendConfig,
        max_message_bytes: int,
        metadata: MetadataCache,
    ) -> None:
        assert config.inference is not None
        self.name = name
        self.runtime = config.runtime
        self.base_url = config.inference
        self.timeout_s = config.timeout_s
        self._limit = max_message_bytes
        self._pool = backend_pool(name, config, max_message_bytes)
        self._keys = TorchServeKeys(
            name, config.key_file, config.management, config.connect_timeout_s, tls_options(config)
        )
        self._management = TorchServeManagement(name, config, max_message_bytes, self._keys)

    async def start(self) -> None:
        await self._pool.start()
        await self._management.start()

    async def close(self) -> None:
        await self._management.close()
        await self._keys.close()
        await self._pool.close()

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        url = f"{self.base_url}/predictions/{target.name}/{target.version}"
        body, content_type = await _body(request, self._limit)
        headers = {"content-type": content_type} if content_type else {}

        async def send(auth: dict[str, str] | None) -> HttpReply:
            sent = {**headers, **auth} if auth else headers
            return await self._pool.request("POST", url, timeout_s, body, sent or None)

        reply = await send_with_key(self._keys, INFERENCE, send)
        if reply.status != 200:
            raise http_error(reply.status, error_text(reply.body, "message"), self.name)
        return torchserve_response(target, request, reply.body, reply.content_type, self.name)

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        return await self._management.metadata(target)

    async def ready(self, target: BackendModel) -> bool | None:
        return await self._management.ready(target)


async def _body(request: InferRequest, limit: int) -> tuple[bytes, str | None]:
    payload = request.payload
    if payload is not None:
        if payload.format == Formats.OIP_JSON and payload.json_length is None:
            return payload.body, media_types.JSON
        if payload.format == Formats.TORCHSERVE_BODY:
            return payload.body, payload.content_type
        if payload.format == Formats.TORCHSERVE_PB:
            return single_body(payload.body), None
    return oip_json.encode_request(request, await request.input_tensors(), limit), media_types.JSON


def torchserve_response(
    target: BackendModel,
    request: InferRequest,
    body: bytes,
    content_type: str | None,
    backend: str,
) -> InferResponse:
    async def decode() -> list[Tensor]:
        with reply_boundary(backend):
            return oip_json.decode_response(body, None, backend).outputs or []

    return InferResponse(
        target.name,
        target.version,
        decode_outputs=decode,
        id=request.id,
        payload=Payload(Formats.TORCHSERVE_BODY, body, content_type),
    )
