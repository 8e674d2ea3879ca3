"""HandleReloadConfigRequest on the TF Serving the local stack runs (the real binary if installed,
else the stand-in), over the model store's digits, versions 1 to 4.

The shared assertions (tests/support/tfserving_reload.py) also run against the real image in
``make test-docker``; the stand-in's own details (a failed load, the hang on a missing base path,
the bind address) are checked here when the stand-in is what runs.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from deploy.local.process import free_port
from deploy.local.tfserving import tfserving_process, uses_real_tfserving, write_model_config
from tests.support.tfserving_reload import (
    LABELS,
    State,
    assert_reload_semantics,
    config,
    refused,
    reload,
    states,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "model_store" / "tfserving" / "digits"
standin_only = pytest.mark.skipif(
    uses_real_tfserving(), reason="stand-in behaviour; the real binary is on PATH"
)


@dataclass(frozen=True)
class Server:
    grpc_target: str
    rest_port: int
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    run_dir = tmp_path_factory.mktemp("tfserving")
    models = write_model_config(run_dir / "models.config", DIGITS)
    grpc_port, rest_port = free_port(), free_port()
    process = tfserving_process(run_dir, models, grpc_port, rest_port)
    process.start()
    try:
        process.wait_ready(timeout=180)
        yield Server(f"127.0.0.1:{grpc_port}", rest_port, process.log_path)
    finally:
        process.stop()


@pytest.fixture
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as chan:
        yield chan


def test_reload_semantics(channel: grpc.Channel) -> None:
    assert_reload_semantics(channel, str(DIGITS))


@standin_only
def test_a_version_that_fails_to_load_ends_with_its_error(
    channel: grpc.Channel, tmp_path: Path
) -> None:
    base = tmp_path / "digits"
    for version in (1, 2):
        shutil.copytree(DIGITS / str(version), base / str(version))
    (base / "5").mkdir()
    (base / "5" / "saved_model.pb").write_bytes(b"\xffnot a SavedModel")
    try:
        reload(channel, config(str(base), [1, 2, 5], LABELS))
        wait_for(channel, {5: State.END})
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "digits"
        request.model_spec.version.value = 5
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        (status,) = stub.GetModelStatus(request, timeout=10).model_version_status
        assert status.status.error_code == grpc.StatusCode.DATA_LOSS.value[0]
        assert status.status.error_message == f"Can't parse {base}/5/saved_model.pb as binary proto"
        assert states(channel)[1] == State.AVAILABLE
    finally:
        reload(channel, config(str(DIGITS), [1, 2], LABELS))
        wait_for(channel, {1: State.AVAILABLE, 2: State.AVAILABLE})


@standin_only
def test_a_new_model_that_cannot_load_fails_the_reload(
    channel: grpc.Channel, tmp_path: Path
) -> None:
    (tmp_path / "bad" / "1").mkdir(parents=True)
    both = config(str(DIGITS), [1, 2], LABELS)
    both.model_config_list.config.add(
        name="bad", base_path=str(tmp_path / "bad"), model_platform="tensorflow"
    )
    error = refused(channel, both)
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert error.details().startswith(
        "1 model(s) did not become available: {{{name: bad version: 1}"
    )
    reload(channel, config(str(DIGITS), [1, 2], LABELS))


@standin_only
def test_a_new_model_with_no_base_path_waits_until_the_caller_gives_up(
    channel: grpc.Channel,
) -> None:
    missing = config(str(DIGITS), [1, 2], LABELS)
    missing.model_config_list.config.add(
        name="x", base_path="/nowhere/x", model_platform="tensorflow"
    )
    with pytest.raises(grpc.RpcError) as raised:
        reload(channel, missing, timeout=1.5)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reload(channel, config(str(DIGITS), [1, 2], LABELS), timeout=10)  # not stuck behind it
    assert states(channel)[2] == State.AVAILABLE


def _own_addresses() -> set[str]:
    """This machine's address on its default route (no packet is sent), and its name's."""
    found = {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            found.add(str(probe.getsockname()[0]))
        except OSError:
            pass
    return {address for address in found if ":" not in address}


@standin_only
def test_both_apis_listen_on_loopback_only(server: Server) -> None:
    grpc_port = int(server.grpc_target.rsplit(":", 1)[1])
    addresses = {address for address in _own_addresses() if not address.startswith("127.")}
    for address in addresses:
        for port in (grpc_port, server.rest_port):
            with socket.socket() as sock:
                sock.settimeout(1)
                assert sock.connect_ex((address, port)) != 0, f"{address}:{port} answers"
    for port in (grpc_port, server.rest_port):
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    assert f"gRPC on 127.0.0.1 port {grpc_port}" in server.log.read_text()
