"""TorchServe's gRPC inference API: ``org.pytorch.serve.grpc.inference.InferenceAPIsService``.

A PredictionsRequest goes to a TorchServe variant as it came. A TF Serving variant needs tensors,
which the ``input`` map's one body provides as Open Inference Protocol JSON (what TorchServe's
kservev2 handlers read) or as a TF Serving REST ``:predict`` body.
"""

from __future__ import annotations

import json

from gateway.codecs import oip_json
from gateway.codecs.torchserve import (
    NEEDS_TENSORS,
    body_tensors,
    parse_predictions_request,
    tensor_body,
)
from gateway.errors import InvalidInput
from gateway.grpc.call import Call, Method
from gateway.inference import Formats, InferRequest, Payload, Tensor
from gateway.service import InferenceService
from gateway.wire import torchserve_pb2 as ts

SERVICE = "org.pytorch.serve.grpc.inference.InferenceAPIsService"
PROTOCOL = "torchserve_grpc"


def health_text(healthy: bool) -> str:
    """What TorchServe's Ping answers, byte for byte (its pretty-printed status JSON)."""
    return json.dumps({"status": "Healthy" if healthy else "Unhealthy"}, indent=2)


class TorchServeService:
    def __init__(self, service: InferenceService, limit: int) -> None:
        self._service = service
        self._limit = limit

    def methods(self) -> dict[str, dict[str, Method]]:
        return {
            SERVICE: {
                "Ping": Method(self.ping),
                "Predictions": Method(self.predictions, PROTOCOL),
            }
        }

    async def ping(self, body: bytes, call: Call) -> bytes:
        healthy = self._service.readiness.server_ready()
        return ts.TorchServeHealthResponse(health=health_text(healthy)).SerializeToString()

    async def predictions(self, body: bytes, call: Call) -> bytes:
        message = parse_predictions_request(body)
        model, version = message.model_name, message.model_version or None
        decision = self._service.route(model, version, None, call.hints())
        request = InferRequest(model, version=version, payload=Payload(Formats.TORCHSERVE_PB, body))

        async def decode() -> list[Tensor]:
            if len(message.input) != 1:
                raise InvalidInput(NEEDS_TENSORS)
            parsed = tensor_body(next(iter(message.input.values())))
            metadata = await self._service.metadata(decision) if parsed.needs_metadata else None
            inputs, parameters = body_tensors(parsed, metadata, self._limit)
            request.parameters.update(parameters)
            return inputs

        request.decode_inputs = decode
        response = await self._service.infer(request, decision, call.record)
        payload = response.payload
        if payload is not None and payload.format == Formats.TORCHSERVE_BODY:
            prediction = payload.body
        else:
            outputs = await response.output_tensors()
            prediction, _ = oip_json.encode_response(outputs, response, request)
        return ts.PredictionResponse(prediction=prediction).SerializeToString()
