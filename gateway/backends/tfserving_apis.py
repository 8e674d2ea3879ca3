"""TF Serving's Classify and Regress, forwarded verbatim over whichever protocol the client used.

Both TF Serving backends offer them, sharing their own channel or pool and opening the other kind
only when its address is configured.
"""

from __future__ import annotations

from typing import Any

import grpc

from gateway.backends.base import BackendModel
from gateway.backends.boundary import error_text, grpc_boundary, http_error
from gateway.backends.http_pool import HttpPool, backend_pool
from gateway.codecs.tfserving_grpc import retarget_input_request
from gateway.config import TFServingBackendConfig
from gateway.errors import BackendError, InvalidInput
from gateway.inference import Formats, Payload
from gateway.media_types import JSON_HEADERS
from gateway.tracing.context import grpc_metadata

API_METHODS = {
    "classify": "/tensorflow.serving.PredictionService/Classify",
    "regress": "/tensorflow.serving.PredictionService/Regress",
}


class TFServingApis:
    def __init__(
        self,
        name: str,
        config: TFServingBackendConfig,
        channel_options: list[tuple[str, Any]],
        max_message_bytes: int,
    ) -> None:
        self._name = name
        self._config = config
        self._grpc_address = config.grpc
        self._rest_url = config.rest
        self._channel_options = channel_options
        self._max_message_bytes = max_message_bytes
        self._channel: grpc.aio.Channel | None = None
        self._pool: HttpPool | None = None
        self._owned: list[grpc.aio.Channel | HttpPool] = []

    async def start(self, channel: grpc.aio.Channel | None, pool: HttpPool | None) -> None:
        """Share the backend's channel or pool; open the other kind if it has an address."""
        if channel is None and self._grpc_address is not None:
            channel = grpc.aio.insecure_channel(self._grpc_address, options=self._channel_options)
            self._owned.append(channel)
        if pool is None and self._rest_url is not None:
            pool = backend_pool(self._name, self._config, self._max_message_bytes)
            await pool.start()
            self._owned.append(pool)
        self._channel, self._pool = channel, pool

    def use_channel(self, channel: grpc.aio.Channel) -> None:
        """The backend replaced the channel it shares (see :mod:`grpc_reconnect`)."""
        if self._channel not in self._owned:
            self._channel = channel

    async def close(self) -> None:
        for owned in self._owned:
            await owned.close()
        self._owned.clear()

    async def call(
        self, api: str, target: BackendModel, payload: Payload, timeout_s: float
    ) -> Payload:
        if api not in API_METHODS:
            raise InvalidInput(f"unknown TF Serving API {api!r}")
        if payload.format == Formats.TFS_INPUT_PB:
            if self._channel is None:
                raise BackendError(f"backend {self._name!r} has no gRPC address for {api}")
            body = retarget_input_request(payload.body, target.name, int(target.version))
            call = self._channel.unary_unary(API_METHODS[api])
            with grpc_boundary(self._name, timeout_s):
                reply: bytes = await call(body, timeout=timeout_s, metadata=grpc_metadata())
            return Payload(Formats.TFS_INPUT_PB, reply)
        if self._pool is None or self._rest_url is None:
            raise BackendError(f"backend {self._name!r} has no REST address for {api}")
        url = f"{self._rest_url}/v1/models/{target.name}/versions/{target.version}:{api}"
        answer = await self._pool.request("POST", url, timeout_s, payload.body, JSON_HEADERS)
        if answer.status != 200:
            raise http_error(answer.status, error_text(answer.body, "error"), self._name)
        return Payload(Formats.TFS_INPUT_JSON, answer.body, answer.content_type)
