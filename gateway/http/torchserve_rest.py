"""TorchServe's inference API: ``POST /predictions/{m}[/{v}]``.

Bodies for TorchServe variants are forwarded untouched, whatever their content type, and the
backend's answer comes back untouched. A TF Serving variant needs tensors: the body must be Open
Inference Protocol JSON (TorchServe's kservev2 format) or TF Serving JSON, else a 415/400 says so.
Errors take TorchServe's shape: ``{"code": 404, "type": "...", "message": "..."}``.
"""

from __future__ import annotations

from gateway import media_types
from gateway.codecs import oip_json
from gateway.codecs.torchserve import body_tensors, tensor_body
from gateway.errors import GatewayError
from gateway.http.asgi import Headers
from gateway.http.endpoint import JSON_TYPE, Incoming, RawEndpoint
from gateway.http.errors import torchserve_error
from gateway.inference import Formats, InferRequest, Payload, Tensor
from gateway.metrics import RequestRecord


class TorchServeRestEndpoint(RawEndpoint):
    protocol = "torchserve_rest"
    route = "/predictions/{model}"

    def render_error(self, error: GatewayError) -> tuple[int, Headers, bytes]:
        status, body = torchserve_error(error)
        return status, list(JSON_TYPE), body

    async def handle(self, incoming: Incoming, record: RequestRecord) -> tuple[int, Headers, bytes]:
        model, version = incoming.params["model"], incoming.params["version"]
        assert model is not None
        decision = self.service.route(model, version, None, incoming.hints)

        async def decode() -> list[Tensor]:
            body = tensor_body(incoming.body)
            metadata = await self.service.metadata(decision) if body.needs_metadata else None
            inputs, parameters = body_tensors(body, metadata, self._limit)
            request.parameters.update(parameters)
            return inputs

        request = InferRequest(
            model,
            version,
            decode_inputs=decode,
            payload=Payload(Formats.TORCHSERVE_BODY, incoming.body, incoming.content_type),
        )
        response = await self.service.infer(request, decision, record)
        payload = response.payload
        if payload is not None and payload.format == Formats.TORCHSERVE_BODY:
            content_type = (payload.content_type or media_types.JSON).encode()
            return 200, [(b"content-type", content_type)], payload.body
        outputs = await response.output_tensors()
        body, _ = oip_json.encode_response(outputs, response, request)
        return 200, list(JSON_TYPE), body
