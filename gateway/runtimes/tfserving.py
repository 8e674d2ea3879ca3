"""A model version into (and out of) TF Serving, through ``HandleReloadConfigRequest``.

A reload replaces TF Serving's whole config and unloads every model it does not name, so the
gateway holds the full ``ModelServerConfig`` and must be its only writer: it starts from the file
TF Serving was started with (the backend's ``model_config_file``) and keeps every config it sent
in its state directory (``tfserving/<backend>.config``), written once the reload succeeded. A
deploy adds the version to the model's ``specific`` version policy, waits until GetModelStatus
says AVAILABLE (a new version of a known model loads after the reload returns), and only then
moves the version labels asked for: TF Serving refuses a label on a version not yet loaded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc

from gateway.runtimes.model_server_config import (
    ModelConfigError,
    model_entry,
    parse_model_server_config,
    read_model_server_config,
    render,
    specific_versions,
    with_labels,
    with_version,
    without_version,
    write_atomically,
)
from gateway.runtimes.results import StepFailed, TFServingTarget
from gateway.wire import tensorflow_serving_pb2 as tfs
from gateway.wire.tensorflow_serving_config_pb2 import (
    ModelServerConfig,
    ReloadConfigRequest,
    ReloadConfigResponse,
)

RELOAD_CONFIG = "/tensorflow.serving.ModelService/HandleReloadConfigRequest"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
State = tfs.ModelVersionStatus.State


class TFServingRuntime:
    kind = "tfserving"

    def __init__(
        self,
        backend: str,
        grpc_address: str,
        model_config_file: str | None,
        state_dir: Path,
        timeout_s: float = 120.0,
        poll_s: float = 0.25,
    ) -> None:
        self.backend = backend
        self._address = grpc_address
        self._start_file = model_config_file
        self._state_file = state_dir / "tfserving" / f"{backend}.config"
        self._timeout_s = timeout_s
        self._poll_s = poll_s
        self._channel: grpc.aio.Channel | None = None

    def _stub(self, path: str, request: Any, response: Any) -> Any:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._address)
        return self._channel.unary_unary(
            path,
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def config(self) -> ModelServerConfig:
        """The config in force: the last one the gateway sent, else the start-up file."""
        if self._state_file.is_file():
            return read_model_server_config(self._state_file)
        if self._start_file is None:
            raise StepFailed(
                f"backend {self.backend!r} has no model_config_file: the gateway must start from "
                "the ModelServerConfig TF Serving was started with"
            )
        try:
            return read_model_server_config(self._start_file)
        except ModelConfigError as error:
            raise StepFailed(str(error)) from None

    async def reload(self, config: ModelServerConfig) -> None:
        """Send the whole config; persisted once TF Serving accepted it."""
        request = ReloadConfigRequest()
        request.config.CopyFrom(config)
        call = self._stub(RELOAD_CONFIG, ReloadConfigRequest, ReloadConfigResponse)
        try:
            await call(request, timeout=self._timeout_s)
        except grpc.RpcError as error:
            code = error.code().name if hasattr(error, "code") else "UNKNOWN"
            details = error.details() if hasattr(error, "details") else str(error)
            raise StepFailed(
                f"TF Serving {self.backend!r} refused the config ({code}): {details}"
            ) from None
        write_atomically(self._state_file, render(config))

    async def states(self, model: str) -> dict[int, tuple[int, str]]:
        """Every version TF Serving knows of ``model``: its state and any error message."""
        request = tfs.GetModelStatusRequest()
        request.model_spec.name = model
        call = self._stub(GET_MODEL_STATUS, tfs.GetModelStatusRequest, tfs.GetModelStatusResponse)
        try:
            reply = await call(request, timeout=10)
        except grpc.RpcError as error:
            if hasattr(error, "code") and error.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise StepFailed(
                f"TF Serving {self.backend!r}: GetModelStatus failed: {error}"
            ) from None
        return {s.version: (s.state, s.status.error_message) for s in reply.model_version_status}

    async def observe(self, model: str, version: str) -> dict[str, Any]:
        return {"config": render(self.config())}

    async def deploy(self, target: TFServingTarget, model: str, version: str) -> str:
        number = _number(version)
        config = self.config()
        states = await self.states(model)
        serving = [v for v, (state, _) in states.items() if state == State.AVAILABLE]
        try:
            wanted = with_version(config, model, number, target.base_path, serving)
        except ModelConfigError as error:
            raise StepFailed(str(error)) from None
        done = []
        if wanted != config or states.get(number, (None, ""))[0] != State.AVAILABLE:
            await self.reload(wanted)
            done.append(f"version {number} in the config")
            await self.wait_available(model, number)
        labels = {label: number for label in target.labels}
        entry = model_entry(wanted, model)
        if entry is not None and any(entry.version_labels.get(k) != v for k, v in labels.items()):
            await self.reload(with_labels(wanted, model, labels))
            done.append(f"labels {', '.join(target.labels)} moved to {number}")
        return ", ".join(done)

    async def wait_available(self, model: str, version: int) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            state, error = (await self.states(model)).get(version, (None, ""))
            if state == State.AVAILABLE:
                return
            if state == State.END and error:
                raise StepFailed(
                    f"TF Serving {self.backend!r} failed to load {model}/{version}: {error}"
                )
            if time.monotonic() > deadline:
                seen = State.Name(state) if state is not None else "not found"
                raise StepFailed(
                    f"TF Serving {self.backend!r}: {model}/{version} not AVAILABLE after "
                    f"{self._timeout_s:g}s ({seen}; is {version} a version directory under the "
                    "model's base path?)"
                )
            await asyncio.sleep(self._poll_s)

    async def undo(self, model: str, version: str, before: dict[str, Any]) -> str:
        """Send the config held before the deploy again: even a reload TF Serving refused may
        have replaced its config (it takes the new config before it checks the labels)."""
        await self.reload(parse_model_server_config(before["config"]))
        return "config restored"

    async def undeploy(self, model: str, version: str, drop_labels: bool) -> bool:
        """Take the version out of the config; False if it was not in it."""
        number = _number(version)
        config = self.config()
        entry = model_entry(config, model)
        listed = specific_versions(entry) if entry is not None else []
        if entry is None or (listed is not None and number not in listed):
            return False
        if drop_labels:
            labels = {k: None for k, v in entry.version_labels.items() if v == number}
            config = with_labels(config, model, labels)
        try:
            wanted = without_version(config, model, number)
        except ModelConfigError as error:
            raise StepFailed(f"{error}; undeploy with drop_labels to remove them") from None
        await self.reload(wanted)
        return True


def _number(version: str) -> int:
    if not version.isdigit():
        raise StepFailed(f"TF Serving versions are integers, got {version!r}")
    return int(version)
