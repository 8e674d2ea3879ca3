"""TF Serving over gRPC: ``tensorflow.serving.PredictionService`` with binary ``tensor_content``.

A client's own PredictRequest is forwarded with only its model_spec rewritten; other requests are
encoded from tensors. Replies are kept as bytes and decoded only if the client needs tensors.
"""

from __future__ import annotations

from typing import Any

import grpc

from gateway.backends.base import BackendModel
from gateway.backends.boundary import grpc_boundary, reply_boundary
from gateway.backends.grpc_reconnect import BACKOFF_OPTIONS, ChannelRenewal
from gateway.backends.probe import CONTROL_CHANNEL_OPTIONS, PROBE_TIMEOUT_S, probe
from gateway.backends.replies import undecoded_response
from gateway.backends.tfserving_apis import TFServingApis
from gateway.codecs.tfserving_grpc import (
    predict_request_from_tensors,
    predict_response_tensors,
    retarget_predict_request,
)
from gateway.codecs.tfserving_metadata import DEFAULT_SIGNATURE, metadata_from_signature_map
from gateway.codecs.tfserving_shapes import charge_predict_inputs
from gateway.config import GrpcLoadBalancing, TFServingBackendConfig
from gateway.errors import BackendError
from gateway.inference import Formats, InferRequest, InferResponse, ModelMetadata, Payload
from gateway.metadata import MetadataCache
from gateway.tracing.context import grpc_metadata
from gateway.wire import tensorflow_serving_pb2 as tfs

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
BACKEND_METADATA_BYTES = 64 * 1024


def channel_options(
    max_message_bytes: int, load_balancing: GrpcLoadBalancing = "pick_first"
) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.lb_policy_name", load_balancing),
        # A closed connection (a replica gone, a GOAWAY from max_connection_age) makes the
        # channel resolve the name again; gRPC's default waits up to 30 s between resolutions.
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
        *BACKOFF_OPTIONS,
        # A backend's error may quote a long value of the client's (a 10 kB model name): with
        # gRPC's default 8 KiB its status would be lost as "metadata size exceeds limit".
        ("grpc.max_metadata_size", BACKEND_METADATA_BYTES),
    ]


def model_spec(spec: tfs.ModelSpec, target: BackendModel) -> None:
    spec.name = target.name
    spec.version.value = int(target.version)


class TFServingGrpcBackend:
    kind = "tfserving"
    protocol = "grpc"

    def __init__(
        self,
        name: str,
        config: TFServingBackendConfig,
        max_message_bytes: int,
        metadata: MetadataCache,
    ) -> None:
        assert config.grpc is not None
        self.name = name
        self.runtime = config.runtime
        self.address = config.grpc
        self.timeout_s = config.timeout_s
        self._limit = max_message_bytes
        self._options = channel_options(max_message_bytes, config.grpc_load_balancing)
        self._apis = TFServingApis(name, config, self._options, max_message_bytes)
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
        # Bytes in, bytes out: messages are built and read by the codecs (under the reply
        # boundary), not by gRPC.
        self._predict = channel.unary_unary(PREDICT)
        self._get_metadata = control.unary_unary(GET_MODEL_METADATA)
        self._get_status = control.unary_unary(GET_MODEL_STATUS)
        await self._apis.start(channel, None)

    async def reconnect(self) -> bool:
        fresh = await self._renewal.renewed(self._channels[0])
        if fresh is None:
            return False
        self._channels[0] = fresh
        self._predict = fresh.unary_unary(PREDICT)
        self._apis.use_channel(fresh)
        return True

    async def close(self) -> None:
        await self._renewal.close()
        await self._apis.close()
        for channel in self._channels:
            await channel.close()
        self._channels = []

    async def tf_api(
        self, api: str, target: BackendModel, payload: Payload, timeout_s: float
    ) -> Payload:
        return await self._apis.call(api, target, payload, timeout_s)

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        payload = request.payload
        if payload is not None and payload.format == Formats.TFS_PREDICT_PB:
            # TF Serving expands a value that fills a shape: charge that, as decoding would.
            charge_predict_inputs(payload.body, self._limit)
            body = retarget_predict_request(payload.body, target.name, int(target.version))
        else:
            inputs = await request.input_tensors()  # may set the signature_name parameter
            signature = request.parameters.get("signature_name")
            message = predict_request_from_tensors(
                inputs,
                [wanted.name for wanted in request.outputs],
                target.name,
                int(target.version),
                signature if isinstance(signature, str) else DEFAULT_SIGNATURE,
                self._limit,
            )
            body = message.SerializeToString()
        with grpc_boundary(self.name, timeout_s):
            reply: bytes = await self._predict(body, timeout=timeout_s, metadata=grpc_metadata())
        return undecoded_response(
            target,
            request,
            reply,
            Formats.TFS_PREDICT_PB,
            lambda body: predict_response_tensors(body, self._limit),
            self.name,
            "PredictResponse",
        )

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        message = tfs.GetModelMetadataRequest(metadata_field=["signature_def"])
        model_spec(message.model_spec, target)
        with grpc_boundary(self.name, self.timeout_s):
            raw: bytes = await self._get_metadata(
                message.SerializeToString(), timeout=self.timeout_s
            )
        with reply_boundary(self.name, "GetModelMetadataResponse"):
            packed = tfs.GetModelMetadataResponse.FromString(raw).metadata.get("signature_def")
            if packed is None:
                raise BackendError(f"backend {self.name!r} returned no signature_def metadata")
            signatures = tfs.SignatureDefMap.FromString(packed.value)
            return metadata_from_signature_map(signatures, DEFAULT_SIGNATURE, self.name)

    async def ready(self, target: BackendModel) -> bool | None:
        return await probe(self._available(target))

    async def _available(self, target: BackendModel) -> bool:
        message = tfs.GetModelStatusRequest()
        model_spec(message.model_spec, target)
        with grpc_boundary(self.name, PROBE_TIMEOUT_S):
            raw: bytes = await self._get_status(
                message.SerializeToString(), timeout=PROBE_TIMEOUT_S
            )
        with reply_boundary(self.name, "GetModelStatusResponse"):
            reply = tfs.GetModelStatusResponse.FromString(raw)
        available = tfs.ModelVersionStatus.State.AVAILABLE
        return any(status.state == available for status in reply.model_version_status)
