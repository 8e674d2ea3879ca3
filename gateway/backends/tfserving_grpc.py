"""TF Serving over gRPC: ``tensorflow.serving.PredictionService`` with binary ``tensor_content``."""

from __future__ import annotations

import grpc

from gateway.backends.base import BackendModel
from gateway.backends.boundary import grpc_boundary
from gateway.codecs.tfserving_metadata import metadata_from_signature_map
from gateway.codecs.tfserving_tensor import from_tensor_proto, to_tensor_proto
from gateway.config import TFServingBackendConfig
from gateway.errors import BackendError
from gateway.inference import InferRequest, InferResponse, ModelMetadata
from gateway.wire import tfserving_pb2 as tfs

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
DEFAULT_SIGNATURE = "serving_default"
READY_TIMEOUT_S = 2.0


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 0),
    ]


class TFServingGrpcBackend:
    kind = "tfserving"
    protocol = "grpc"

    def __init__(self, name: str, config: TFServingBackendConfig, max_message_bytes: int) -> None:
        assert config.grpc is not None
        self.name = name
        self.address = config.grpc
        self.timeout_s = config.timeout_s
        self._options = channel_options(max_message_bytes)
        self._channel: grpc.aio.Channel | None = None

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.address, options=self._options)
        self._predict = self._channel.unary_unary(
            PREDICT,
            request_serializer=tfs.PredictRequest.SerializeToString,
            response_deserializer=tfs.PredictResponse.FromString,
        )
        self._get_metadata = self._channel.unary_unary(
            GET_MODEL_METADATA,
            request_serializer=tfs.GetModelMetadataRequest.SerializeToString,
            response_deserializer=tfs.GetModelMetadataResponse.FromString,
        )
        self._get_status = self._channel.unary_unary(
            GET_MODEL_STATUS,
            request_serializer=tfs.GetModelStatusRequest.SerializeToString,
            response_deserializer=tfs.GetModelStatusResponse.FromString,
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        message = tfs.PredictRequest()
        _model_spec(message.model_spec, target)
        signature = request.parameters.get("signature_name")
        message.model_spec.signature_name = (
            signature if isinstance(signature, str) else DEFAULT_SIGNATURE
        )
        for tensor in request.inputs:
            to_tensor_proto(tensor, message.inputs[tensor.name])
        if request.outputs:
            message.output_filter.extend(wanted.name for wanted in request.outputs)
        with grpc_boundary(self.name, timeout_s):
            reply = await self._predict(message, timeout=timeout_s)
        outputs = [
            from_tensor_proto(key, reply.outputs[key], self.name) for key in sorted(reply.outputs)
        ]
        version = reply.model_spec.version.value if reply.model_spec.HasField("version") else None
        return InferResponse(
            model=reply.model_spec.name or target.name,
            version=str(version) if version is not None else target.version,
            outputs=outputs,
            id=request.id,
        )

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        message = tfs.GetModelMetadataRequest(metadata_field=["signature_def"])
        _model_spec(message.model_spec, target)
        with grpc_boundary(self.name, self.timeout_s):
            reply = await self._get_metadata(message, timeout=self.timeout_s)
        packed = reply.metadata.get("signature_def")
        if packed is None:
            raise BackendError(f"backend {self.name!r} returned no signature_def metadata")
        signatures = tfs.SignatureDefMap.FromString(packed.value)
        return metadata_from_signature_map(signatures, DEFAULT_SIGNATURE, self.name)

    async def ready(self, target: BackendModel) -> bool:
        message = tfs.GetModelStatusRequest()
        _model_spec(message.model_spec, target)
        try:
            reply = await self._get_status(message, timeout=READY_TIMEOUT_S)
        except grpc.RpcError:
            return False
        available = tfs.ModelVersionStatus.State.AVAILABLE
        return any(status.state == available for status in reply.model_version_status)


def _model_spec(spec: tfs.ModelSpec, target: BackendModel) -> None:
    spec.name = target.name
    spec.version.value = int(target.version)
