"""HandleReloadConfigRequest as TF Serving answers it, asserted through the official client.

The same assertions run against the stand-in (tests/standin/test_reload.py) and against the real
``tensorflow/serving`` image (tests/deploy/test_docker_stack.py, ``make test-docker``): the server
must serve ``model`` from ``base_path`` (as the server sees it) with versions 1 and 2 and the
labels stable -> 1, canary -> 2, have versions 3 and 4 on disk, and is left so when they end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

State = get_model_status_pb2.ModelVersionStatus
LOADED_WITHIN_S = 60.0


def config(
    base_path: str,
    versions: Sequence[int],
    labels: dict[str, int] | None = None,
    model: str = "digits",
    platform: str = "tensorflow",
) -> model_server_config_pb2.ModelServerConfig:
    message = model_server_config_pb2.ModelServerConfig()
    entry = message.model_config_list.config.add(
        name=model, base_path=base_path, model_platform=platform
    )
    entry.model_version_policy.specific.versions.extend(versions)
    entry.version_labels.update(labels or {})
    return message


def reload(
    channel: grpc.Channel, message: model_server_config_pb2.ModelServerConfig, timeout: float = 60
) -> model_management_pb2.ReloadConfigResponse:
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(message)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    response: model_management_pb2.ReloadConfigResponse = stub.HandleReloadConfigRequest(
        request, timeout=timeout
    )
    return response


def refused(
    channel: grpc.Channel, message: model_server_config_pb2.ModelServerConfig
) -> grpc.RpcError:
    try:
        reload(channel, message)
    except grpc.RpcError as error:
        return error
    raise AssertionError("the reload was accepted")


def states(channel: grpc.Channel, model: str = "digits") -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    reply = stub.GetModelStatus(request, timeout=10)
    return {status.version: status.state for status in reply.model_version_status}


def wait_for(channel: grpc.Channel, wanted: dict[int, int], model: str = "digits") -> None:
    deadline = time.monotonic() + LOADED_WITHIN_S
    while True:
        seen = states(channel, model)
        if all(seen.get(version) == state for version, state in wanted.items()):
            return
        assert time.monotonic() < deadline, f"wanted {wanted}, GetModelStatus says {seen}"
        time.sleep(0.1)


LABELS = {"stable": 1, "canary": 2}


def assert_reload_semantics(channel: grpc.Channel, base_path: str) -> None:
    """Every assertion, in order; the server ends serving versions 1 and 2 with their labels."""
    wait_for(channel, {1: State.AVAILABLE, 2: State.AVAILABLE})

    # A new version of a known model: the reload answers OK at once, the version loads after.
    answer = reload(channel, config(base_path, [1, 2, 3], LABELS))
    assert answer.status.error_code == 0
    assert answer.status.error_message == ""
    wait_for(channel, {1: State.AVAILABLE, 2: State.AVAILABLE, 3: State.AVAILABLE})

    # Moving a label to a version that is not loaded is refused, and changes nothing.
    error = refused(channel, config(base_path, [1, 2, 3], {"stable": 1, "canary": 4}))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == (
        "Request to assign label to version 4 of model digits, which is not currently "
        "available for inference"
    )
    # ... and once the version is loaded, the label may move to it.
    reload(channel, config(base_path, [1, 2, 3], {"stable": 1, "canary": 3}))

    # The config replaces the whole config: versions it leaves out are unloaded (END).
    reload(channel, config(base_path, [3], {"stable": 3}))
    wait_for(channel, {1: State.END, 2: State.END, 3: State.AVAILABLE})

    # Refusals of the config itself, with TF Serving's codes and messages.
    error = refused(channel, config("relative/digits", [3]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "Expected model digits to have an absolute path or URI; got base_path()=relative/digits"
    )
    twice = config(base_path, [3])
    twice.model_config_list.config.append(twice.model_config_list.config[0])
    error = refused(channel, twice)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Illegal to list model digits multiple times in config list"
    error = refused(channel, config(base_path, [3], platform="pytorch"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "Illegal to change a model's platform. For model digits platform was tensorflow and new "
        "platform requested is pytorch"
    )
    assert states(channel)[3] == State.AVAILABLE  # none of them touched what is served

    # Back to the start: unloaded versions load again, the labels return.
    reload(channel, config(base_path, [1, 2], {"stable": 3}))
    wait_for(channel, {1: State.AVAILABLE, 2: State.AVAILABLE, 3: State.END})
    reload(channel, config(base_path, [1, 2], LABELS))
