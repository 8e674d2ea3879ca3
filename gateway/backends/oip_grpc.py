"""Any Open Inference Protocol gRPC server (Triton, MLServer, KServe) as a backend.

``inference.GRPCInferenceService``: ModelInfer, ModelMetadata and ModelReady over one channel per
worker. A client's own ModelInferRequest is forwarded with only its model name and version
rewritten, so the server answers it in kind (raw contents for raw requests); tensors from other
protocols are sent raw. Replies are kept as bytes and decoded only if the client needs tensors.
"""

from __future__ import annotations

import grpc

from gateway.backends.base import BackendModel
from gateway.backends.boundary import grpc_boundary, grpc_error, reply_boundary
from gateway.backends.grpc_reconnect import ChannelRenewal
from gateway.backends.oip_faults import not_serving
from gateway.backends.probe import CONTROL_CHANNEL_OPTIONS, PROBE_TIMEOUT_S, probe
from gateway.backends.replies import undecoded_response
from gateway.backends.tfserving_grpc import channel_options
from gateway.codecs.oip_grpc_client import (
    infer_request,
    infer_response_tensors,
    retarget_infer_request,
)
from gateway.codecs.oip_raw import checked_spec
from gateway.config import OipBackendConfig
from gateway.inference import Formats, InferRequest, InferResponse, ModelMetadata, TensorSpec
from gateway.metadata import MetadataCache
from gateway.tracing.context import grpc_metadata
from gateway.wire import oip_pb2 as oip

SERVICE = "/inference.GRPCInferenceService"
MODEL_INFER = f"{SERVICE}/ModelInfer"
MODEL_METADATA = f"{SERVICE}/ModelMetadata"
MODEL_READY = f"{SERVICE}/ModelReady"


class OipGrpcBackend:
    kind = "oip"
    protocol = "grpc"

    def __init__(
        self,
        name: str,
        config: OipBackendConfig,
        max_message_bytes: int,
        metadata: MetadataCache,
    ) -> None:
        assert config.grpc is not None
        self.name = name
        self.runtime = config.runtime
        self.address = config.grpc
        self.timeout_s = config.timeout_s
        self._limit = max_message_bytes
        self._versioned = config.versioned_urls
        self._options = channel_options(max_message_bytes, config.grpc_load_balancing)
        self._channels: list[grpc.aio.Channel] = []
        self._renewal = ChannelRenewal(
            lambda: grpc.aio.insecure_channel(self.address, options=self._options)
        )

    async def start(self) -> None:
        channel = grpc.aio.insecure_channel(self.address, options=self._options)
        # Metadata and readiness on a connection of their own, never behind inference streams.
        control = grpc.aio.insecure_channel(
            self.address, options=self._options + CONTROL_CHANNEL_OPTIONS
        )
        self._channels = [channel, control]
        # Bytes in, bytes out: the codecs build and read the messages (under the reply boundary).
        self._infer = channel.unary_unary(MODEL_INFER)
        self._metadata = control.unary_unary(MODEL_METADATA)
        self._ready = control.unary_unary(MODEL_READY)

    async def reconnect(self) -> bool:
        fresh = await self._renewal.renewed(self._channels[0])
        if fresh is None:
            return False
        self._channels[0] = fresh
        self._infer = fresh.unary_unary(MODEL_INFER)
        return True

    async def close(self) -> None:
        await self._renewal.close()
        for channel in self._channels:
            await channel.close()
        self._channels = []

    def _version(self, target: BackendModel) -> str:
        return target.version if self._versioned else ""

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        payload = request.payload
        if payload is not None and payload.format == Formats.OIP_INFER_PB:
            body = retarget_infer_request(payload.body, target.name, self._version(target))
        else:
            inputs = await request.input_tensors()
            body = infer_request(request, inputs, target.name, self._version(target), self._limit)
        try:
            reply: bytes = await self._infer(body, timeout=timeout_s, metadata=grpc_metadata())
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise not_serving(self.name, target, error.details() or "NOT_FOUND") from None
            raise grpc_error(error, self.name, timeout_s) from None
        return undecoded_response(
            target,
            request,
            reply,
            Formats.OIP_INFER_PB,
            lambda body: infer_response_tensors(body, self._limit),
            self.name,
            "ModelInferResponse",
        )

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        message = oip.ModelMetadataRequest(name=target.name, version=self._version(target))
        with grpc_boundary(self.name, self.timeout_s):
            raw: bytes = await self._metadata(message.SerializeToString(), timeout=self.timeout_s)
        with reply_boundary(self.name, "ModelMetadataResponse"):
            reply = oip.ModelMetadataResponse.FromString(raw)
            return ModelMetadata(
                platform=reply.platform,
                inputs=tuple(_spec(item) for item in reply.inputs),
                outputs=tuple(_spec(item) for item in reply.outputs),
            )

    async def ready(self, target: BackendModel) -> bool | None:
        return await probe(self._model_ready(target))

    async def _model_ready(self, target: BackendModel) -> bool:
        message = oip.ModelReadyRequest(name=target.name, version=self._version(target))
        with grpc_boundary(self.name, PROBE_TIMEOUT_S):
            raw: bytes = await self._ready(message.SerializeToString(), timeout=PROBE_TIMEOUT_S)
        with reply_boundary(self.name, "ModelReadyResponse"):
            return bool(oip.ModelReadyResponse.FromString(raw).ready)


def _spec(item: oip.ModelMetadataResponse.TensorMetadata) -> TensorSpec:
    return checked_spec(item.name, item.datatype, item.shape)
