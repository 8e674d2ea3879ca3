"""TorchServe over gRPC: ``InferenceAPIsService/Predictions``.

A client's own PredictionsRequest is forwarded with only its model name and version rewritten; a
TorchServe or OIP JSON body travels as ``input["data"]`` (what TorchServe's REST body becomes);
tensors from other protocols are sent as OIP JSON there too. Metadata and readiness come from the
management REST API, which has no gRPC twin worth the port.
"""

from __future__ import annotations

import grpc

from gateway.backends.base import BackendModel
from gateway.backends.boundary import grpc_boundary, reply_boundary
from gateway.backends.grpc_reconnect import ChannelRenewal
from gateway.backends.http_pool import tls_options
from gateway.backends.tfserving_grpc import channel_options
from gateway.backends.torchserve_keys import INFERENCE, TorchServeKeys, call_with_key
from gateway.backends.torchserve_management import TorchServeManagement
from gateway.backends.torchserve_rest import torchserve_response
from gateway.codecs import oip_json
from gateway.codecs.torchserve import retarget_predictions_request
from gateway.config import TorchServeBackendConfig
from gateway.inference import Formats, InferRequest, InferResponse, ModelMetadata
from gateway.metadata import MetadataCache
from gateway.tracing.context import grpc_metadata
from gateway.wire import torchserve_pb2 as ts

PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"


class TorchServeGrpcBackend:
    kind = "torchserve"
    protocol = "grpc"

    def __init__(
        self,
        name: str,
        config: TorchServeBackendConfig,
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
        self._channel: grpc.aio.Channel | None = None
        self._renewal = ChannelRenewal(
            lambda: grpc.aio.insecure_channel(self.address, options=self._options)
        )
        self._keys = TorchServeKeys(
            name, config.key_file, config.management, config.connect_timeout_s, tls_options(config)
        )
        self._management = TorchServeManagement(name, config, max_message_bytes, self._keys)

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.address, options=self._options)
        self._predictions = self._channel.unary_unary(PREDICTIONS)
        await self._management.start()

    async def reconnect(self) -> bool:
        if self._channel is None:
            return False
        fresh = await self._renewal.renewed(self._channel)
        if fresh is None:
            return False
        self._channel = fresh
        self._predictions = fresh.unary_unary(PREDICTIONS)
        return True

    async def close(self) -> None:
        await self._renewal.close()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        await self._management.close()
        await self._keys.close()

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        payload = request.payload
        if payload is not None and payload.format == Formats.TORCHSERVE_PB:
            body = retarget_predictions_request(payload.body, target.name, target.version)
        else:
            if payload is not None and (
                payload.format == Formats.TORCHSERVE_BODY
                or (payload.format == Formats.OIP_JSON and payload.json_length is None)
            ):
                data = payload.body
            else:
                data = oip_json.encode_request(request, await request.input_tensors(), self._limit)
            message = ts.PredictionsRequest(
                model_name=target.name, model_version=target.version, input={"data": data}
            )
            body = message.SerializeToString()

        async def call(metadata: tuple[tuple[str, str], ...] | None) -> bytes:
            reply: bytes = await self._predictions(
                body, timeout=timeout_s, metadata=grpc_metadata(metadata)
            )
            return reply

        with grpc_boundary(self.name, timeout_s):
            reply = await call_with_key(self._keys, INFERENCE, call)
        with reply_boundary(self.name):
            prediction = ts.PredictionResponse.FromString(reply).prediction
        return torchserve_response(target, request, prediction, None, self.name)

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        return await self._management.metadata(target)

    async def ready(self, target: BackendModel) -> bool | None:
        return await self._management.ready(target)
