"""Any Open Inference Protocol REST server (Triton, KServe, MLServer) as a backend.

A client's OIP body, JSON or binary, is forwarded byte for byte; tensors from other protocols are
sent in the binary extension. The reply is kept as it came and decoded only if the client needs
tensors. A server without the binary extension (MLServer: ``binary_tensors`` off) gets JSON: a
binary body is re-encoded, and its reply handed back as tensors for the client's own encoding.
"""

from __future__ import annotations

import orjson

from gateway import media_types
from gateway.backends.base import BackendModel
from gateway.backends.boundary import error_text, http_error, reply_boundary
from gateway.backends.http_pool import backend_pool
from gateway.backends.oip_faults import not_serving
from gateway.backends.probe import CONTROL_CONNECTIONS, PROBE_TIMEOUT_S, probe
from gateway.codecs import oip_json
from gateway.codecs.oip_raw import tensor_spec
from gateway.config import OipBackendConfig
from gateway.inference import (
    Formats,
    InferRequest,
    InferResponse,
    ModelMetadata,
    Payload,
    Tensor,
)
from gateway.media_types import BINARY, INFERENCE_HEADER_LENGTH
from gateway.metadata import MetadataCache


class OipRestBackend:
    kind = "oip"
    protocol = "rest"

    def __init__(
        self,
        name: str,
        config: OipBackendConfig,
        max_message_bytes: int,
        metadata: MetadataCache,
    ) -> None:
        self.name = name
        self.runtime = config.runtime
        assert config.url is not None
        self.base_url = config.url
        self.timeout_s = config.timeout_s
        self._limit = max_message_bytes
        self._versioned = config.versioned_urls
        self._binary = config.rest_binary
        self._pool = backend_pool(name, config, max_message_bytes)
        self._control = backend_pool(name, config, max_message_bytes, CONTROL_CONNECTIONS)
        """Metadata and readiness, never queued behind inference."""

    async def start(self) -> None:
        await self._pool.start()
        await self._control.start()

    async def close(self) -> None:
        await self._control.close()
        await self._pool.close()

    def _url(self, target: BackendModel) -> str:
        if self._versioned:
            return f"{self.base_url}/v2/models/{target.name}/versions/{target.version}"
        return f"{self.base_url}/v2/models/{target.name}"

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        payload = request.payload
        forwarded = (
            payload is not None
            and payload.format == Formats.OIP_JSON
            and (self._binary or payload.json_length is None)
        )
        if forwarded:
            assert payload is not None
            body, json_length = payload.body, payload.json_length
        elif self._binary:
            body, json_length = oip_json.encode_binary_request(
                request, await request.input_tensors(), self._limit
            )
        else:
            body = oip_json.encode_request(request, await request.input_tensors(), self._limit)
            json_length = None
        headers = {"content-type": media_types.JSON}
        if json_length is not None:
            headers = {"content-type": BINARY, INFERENCE_HEADER_LENGTH: str(json_length)}
        reply = await self._pool.request(
            "POST", self._url(target) + "/infer", timeout_s, body, headers
        )
        if reply.status != 200:
            message = error_text(reply.body, "error")
            if reply.status == 404:
                raise not_serving(self.name, target, message)
            raise http_error(reply.status, message, self.name)
        reply_length = reply.header_length

        async def decode() -> list[Tensor]:
            with reply_boundary(self.name):
                response = oip_json.decode_response(reply.body, reply_length, self.name)
            return response.outputs or []

        # The reply is in the encoding the client asked for only if the server read its body and
        # can answer binary outputs when asked; otherwise the client's front end encodes it.
        in_kind = forwarded and (self._binary or not _wants_binary(request))
        return InferResponse(
            target.name,
            target.version,
            decode_outputs=decode,
            id=request.id,
            payload=(
                Payload(Formats.OIP_JSON, reply.body, reply.content_type, reply_length)
                if in_kind
                else None
            ),
        )

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        reply = await self._control.request("GET", self._url(target), self.timeout_s)
        if reply.status != 200:
            raise http_error(reply.status, error_text(reply.body, "error"), self.name)
        with reply_boundary(self.name, "model metadata"):
            doc = orjson.loads(reply.body)
            return ModelMetadata(
                platform=str(doc.get("platform", "")),
                inputs=tuple(tensor_spec(item) for item in doc.get("inputs", [])),
                outputs=tuple(tensor_spec(item) for item in doc.get("outputs", [])),
            )

    async def ready(self, target: BackendModel) -> bool | None:
        return await probe(self._ready(target))

    async def _ready(self, target: BackendModel) -> bool:
        reply = await self._control.request("GET", self._url(target) + "/ready", PROBE_TIMEOUT_S)
        return reply.status == 200


def _wants_binary(request: InferRequest) -> bool:
    return request.binary_output or any(wanted.binary for wanted in request.outputs)
