"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``."""

from __future__ import annotations

from gateway import __version__
from gateway.codecs import oip_grpc
from gateway.codecs.oip_grpc_client import rename_infer_response
from gateway.codecs.oip_raw import timeout_s
from gateway.errors import BackendError, InvalidInput
from gateway.grpc.call import Call, Method, parse
from gateway.inference import Formats, Payload, TensorSpec
from gateway.service import InferenceService
from gateway.wire import oip_pb2 as oip

SERVICE = "inference.GRPCInferenceService"
PROTOCOL = "oip_grpc"


class OipService:
    def __init__(self, service: InferenceService, limit: int) -> None:
        self._service = service
        self._limit = limit

    def methods(self) -> dict[str, dict[str, Method]]:
        return {
            SERVICE: {
                "ServerLive": Method(self.server_live),
                "ServerReady": Method(self.server_ready),
                "ModelReady": Method(self.model_ready),
                "ServerMetadata": Method(self.server_metadata),
                "ModelMetadata": Method(self.model_metadata),
                "ModelInfer": Method(self.model_infer, PROTOCOL),
            }
        }

    async def server_live(self, body: bytes, call: Call) -> bytes:
        return oip.ServerLiveResponse(live=True).SerializeToString()

    async def server_ready(self, body: bytes, call: Call) -> bytes:
        ready = self._service.readiness.server_ready()
        return oip.ServerReadyResponse(ready=ready).SerializeToString()

    async def model_ready(self, body: bytes, call: Call) -> bytes:
        request = parse(oip.ModelReadyRequest, body)
        ready = self._service.model_ready(request.name, request.version or None)
        return oip.ModelReadyResponse(ready=ready).SerializeToString()

    async def server_metadata(self, body: bytes, call: Call) -> bytes:
        # Raw tensors are part of the gRPC protocol itself, not an extension as over HTTP.
        reply = oip.ServerMetadataResponse(name="gateway", version=__version__)
        return reply.SerializeToString()

    async def model_metadata(self, body: bytes, call: Call) -> bytes:
        request = parse(oip.ModelMetadataRequest, body)
        view = await self._service.model_view(request.name, request.version or None)
        reply = oip.ModelMetadataResponse(
            name=view.name,
            versions=view.versions,
            platform=view.platform,
            inputs=[_tensor_metadata(spec) for spec in view.metadata.inputs],
            outputs=[_tensor_metadata(spec) for spec in view.metadata.outputs],
        )
        return reply.SerializeToString()

    async def model_infer(self, body: bytes, call: Call) -> bytes:
        message = parse(oip.ModelInferRequest, body)
        request = oip_grpc.decode_request(message, self._limit)
        request.payload = Payload(Formats.OIP_INFER_PB, body)
        hints = call.hints(timeout_s(request.parameters))
        decision = self._service.route(request.model, request.version, None, hints)
        response = await self._service.infer(request, decision, call.record)
        variant = decision.variant
        forwarded = response.payload
        if forwarded is not None and forwarded.format == Formats.OIP_INFER_PB:
            # An OIP gRPC backend answered the client's own request, in kind.
            if variant.target.name == variant.model:
                return forwarded.body
            try:
                return rename_infer_response(forwarded.body, variant.model, variant.version)
            except InvalidInput as error:
                raise BackendError(f"backend {variant.backend.name!r}: {error.message}") from None
        outputs = await response.output_tensors()
        # Answer in kind: tritonclient sends raw tensors and reads raw ones.
        raw = len(message.raw_input_contents) > 0
        return oip_grpc.encode_response(outputs, response, request, raw).SerializeToString()


def _tensor_metadata(spec: TensorSpec) -> oip.ModelMetadataResponse.TensorMetadata:
    return oip.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=spec.datatype, shape=spec.shape
    )
