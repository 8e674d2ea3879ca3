"""A real TorchServe, started by ``deploy.local.torchserve``, serving both ``digits`` versions.

Needs Java (TorchServe's frontend); each TorchServe runs on free ports in a temporary directory.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from deploy.local.process import ManagedProcess, free_port
from deploy.local.torchserve import (
    PID_FILE,
    TorchServePorts,
    config_properties,
    key_file,
    torchserve_process,
)
from gateway.backends.torchserve_keys import INFERENCE, MANAGEMENT, bearer, parse_key_file
from model_store.digits import DigitsSet, load_test_set
from tests.support.torchserve_grpc_messages import PredictionsRequest, predictions_stub

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None, reason="TorchServe needs Java on PATH"),
    # TorchServe's handler format is TorchScript, which this torch release deprecates.
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[2]
MODEL_STORE = REPO / "model_store" / "torchserve"
VERSIONS = ("1", "2")
START_TIMEOUT = 120.0

EXPECTED_METADATA = {
    "platform": "pytorch_torchscript",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
}


@dataclass
class Server:
    process: ManagedProcess
    ports: TorchServePorts
    seconds_to_ready: float
    keys: Path

    def auth(self, role: str) -> dict[str, str]:
        """The Authorization header of one API (token authorization is on)."""
        return bearer(parse_key_file(self.keys.read_bytes(), 0.0).keys[role].value)

    @property
    def inference(self) -> str:
        return f"http://127.0.0.1:{self.ports.inference}"

    @property
    def management(self) -> str:
        return f"http://127.0.0.1:{self.ports.management}"


@dataclass
class Reply:
    status: int
    content_type: str
    body: Any


def free_ports() -> TorchServePorts:
    ports = {free_port() for _ in range(20)}
    assert len(ports) >= 5
    return TorchServePorts(*sorted(ports)[:5])


def start_server(run_dir: Path) -> Server:
    ports = free_ports()
    process = torchserve_process(run_dir, MODEL_STORE, ports)
    process.start()
    try:
        seconds = process.wait_ready(START_TIMEOUT)
    except BaseException:
        process.stop()
        raise
    return Server(process, ports, seconds, key_file(run_dir))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    run_dir = tmp_path_factory.mktemp("torchserve")
    # A previous run's pid file whose number now belongs to another TorchServe (on a shared
    # machine, pids are reused): the launcher would refuse to start ("TorchServe is already
    # running") if it were left there. The other one is a sleeper with the launcher's marker.
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "org.pytorch.serve.ModelServer"]
    )
    (run_dir / "tmp").mkdir()
    (run_dir / "tmp" / PID_FILE).write_text(str(other.pid))
    try:
        started = start_server(run_dir)
    finally:
        other.kill()
        other.wait()
    try:
        yield started
    finally:
        started.process.stop()


@pytest.fixture(scope="module")
def test_set() -> DigitsSet:
    return load_test_set()


@pytest.fixture(scope="module")
def expected(test_set: DigitsSet) -> dict[str, np.ndarray[Any, Any]]:
    """Each version's TorchScript output on the test split, computed in-process."""
    import torch

    outputs = {}
    for version in VERSIONS:
        with zipfile.ZipFile(MODEL_STORE / f"digits_v{version}.mar") as archive:
            manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
            serialized = archive.read(manifest["model"]["serializedFile"])
        module = torch.jit.load(io.BytesIO(serialized), map_location="cpu")
        module.eval()
        with torch.inference_mode():
            outputs[version] = module(torch.from_numpy(test_set.inputs)).numpy()
    return outputs


def oip_request(inputs: np.ndarray[Any, Any], request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(inputs.shape),
                "data": inputs.ravel().tolist(),
            }
        ]
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def call(url: str, body: Any = None, auth: dict[str, str] | None = None) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(auth or {})}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, response.headers["Content-Type"], json.load(response))
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers["Content-Type"], json.load(error))


def worker_pids(server: Server, version: str) -> list[int]:
    described = call(
        f"{server.management}/models/digits/{version}", auth=server.auth(MANAGEMENT)
    ).body
    return [worker["pid"] for worker in described[0]["workers"] if worker["status"] == "READY"]


def check_oip_response(
    body: dict[str, Any], version: str, expected: np.ndarray[Any, Any], request_id: str
) -> None:
    assert body["id"] == request_id
    assert body["model_name"] == "digits"
    assert body["model_version"] == version
    assert len(body["outputs"]) == 1
    output = body["outputs"][0]
    assert output["name"] == "probabilities"
    assert output["datatype"] == "FP32"
    assert output["shape"] == list(expected.shape)
    got = np.asarray(output["data"], dtype=np.float32).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_config_properties_bind_loopback_with_tokens_on(tmp_path: Path) -> None:
    text = config_properties(tmp_path, TorchServePorts(), ("a.mar", "b.mar"))
    settings = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert settings["inference_address"] == "http://127.0.0.1:8080"
    assert settings["management_address"] == "http://127.0.0.1:8081"
    assert settings["metrics_address"] == "http://127.0.0.1:8082"
    assert settings["grpc_inference_port"] == "7070"
    assert settings["grpc_management_port"] == "7071"
    assert settings["load_models"] == "a.mar,b.mar"
    assert settings["model_store"] == str(tmp_path)
    assert settings["disable_token_authorization"] == "false"
    assert settings["enable_model_api"] == "true"
    assert settings["allowed_urls"] == f"file://\\\\Q{tmp_path}\\\\E/.*"  # Java-escaped
    assert settings["default_workers_per_model"] == "1"
    assert settings["metrics_mode"] == "prometheus"


def test_both_versions_are_registered_under_one_name(server: Server) -> None:
    assert server.seconds_to_ready < START_TIMEOUT
    for version in VERSIONS:
        assert worker_pids(server, version)
    listed = call(f"{server.management}/models/digits/all", auth=server.auth(MANAGEMENT)).body
    assert sorted(entry["modelVersion"] for entry in listed) == list(VERSIONS)


@pytest.mark.parametrize("version", VERSIONS)
def test_rest_predictions_match_torchscript(
    server: Server, test_set: DigitsSet, expected: dict[str, np.ndarray[Any, Any]], version: str
) -> None:
    reply = call(
        f"{server.inference}/predictions/digits/{version}",
        oip_request(test_set.inputs, request_id=f"rest-v{version}"),
        server.auth(INFERENCE),
    )
    assert reply.status == 200
    assert reply.content_type == "application/json"
    check_oip_response(reply.body, version, expected[version], f"rest-v{version}")


def test_rest_accepts_nested_data_and_assigns_an_id(
    server: Server, test_set: DigitsSet, expected: dict[str, np.ndarray[Any, Any]]
) -> None:
    body = oip_request(test_set.inputs[:3])
    body["inputs"][0]["data"] = test_set.inputs[:3].tolist()
    reply = call(f"{server.inference}/predictions/digits/2", body, server.auth(INFERENCE))
    assert reply.status == 200
    assert isinstance(reply.body["id"], str)
    assert reply.body["id"]
    check_oip_response(reply.body, "2", expected["2"][:3], reply.body["id"])


@pytest.mark.parametrize("version", VERSIONS)
def test_grpc_predictions_match_torchscript(
    server: Server, test_set: DigitsSet, expected: dict[str, np.ndarray[Any, Any]], version: str
) -> None:
    body = json.dumps(oip_request(test_set.inputs[:16], request_id=f"grpc-v{version}")).encode()
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc_inference}") as channel:
        reply = predictions_stub(channel)(
            PredictionsRequest(model_name="digits", model_version=version, input={"data": body}),
            timeout=30,
            metadata=tuple(server.auth(INFERENCE).items()),
        )
    check_oip_response(
        json.loads(reply.prediction), version, expected[version][:16], f"grpc-v{version}"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_describe_returns_oip_metadata(server: Server, version: str) -> None:
    reply = call(
        f"{server.management}/models/digits/{version}?customized=true",
        auth=server.auth(MANAGEMENT),
    )
    assert reply.status == 200
    [described] = reply.body
    assert described["modelVersion"] == version
    # The handler returns a JSON string; the management API embeds it as a JSON object.
    metadata = described["customizedMetadata"]
    assert metadata == {"name": "digits", "versions": [version], **EXPECTED_METADATA}


def test_malformed_request_is_rejected_and_the_worker_survives(
    server: Server, test_set: DigitsSet, expected: dict[str, np.ndarray[Any, Any]]
) -> None:
    before = worker_pids(server, "1")
    wrong_shape = oip_request(test_set.inputs[:2, :32].reshape(1, 64))
    wrong_shape["inputs"][0]["shape"] = [2, 32]
    inference = server.auth(INFERENCE)
    reply = call(f"{server.inference}/predictions/digits/1", wrong_shape, inference)
    assert reply.status == 400
    assert reply.content_type == "application/json"
    assert reply.body["code"] == 400
    assert "shape [N, 64]" in reply.body["message"]

    wrong_name = oip_request(test_set.inputs[:1])
    wrong_name["inputs"][0]["name"] = "pixels"
    reply = call(f"{server.inference}/predictions/digits/1", wrong_name, inference)
    assert reply.status == 400
    assert "unknown input 'pixels'" in reply.body["message"]

    with (
        grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc_inference}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        predictions_stub(channel)(
            PredictionsRequest(
                model_name="digits",
                model_version="1",
                input={"data": json.dumps(wrong_shape).encode()},
            ),
            timeout=30,
            metadata=tuple(inference.items()),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    reply = call(
        f"{server.inference}/predictions/digits/1",
        oip_request(test_set.inputs[:1], "ok"),
        inference,
    )
    assert reply.status == 200
    check_oip_response(reply.body, "1", expected["1"][:1], "ok")
    assert worker_pids(server, "1") == before


def test_unknown_version_is_not_found(server: Server, test_set: DigitsSet) -> None:
    reply = call(
        f"{server.inference}/predictions/digits/9",
        oip_request(test_set.inputs[:1]),
        server.auth(INFERENCE),
    )
    assert reply.status == 404
    assert reply.body["type"] == "ModelVersionNotFoundException"


def test_stop_leaves_no_process_behind(tmp_path: Path, server: Server) -> None:
    # A second TorchServe beside the module's one: each run has its own temporary directory.
    second = start_server(tmp_path / "ts")
    try:
        pids = [pid for version in VERSIONS for pid in worker_pids(second, version)]
        assert (tmp_path / "ts" / "logs" / "ts_log.log").is_file()
        assert call(f"{server.inference}/ping", auth=server.auth(INFERENCE)).status == 200
    finally:
        second.process.stop()
    assert second.process.popen is not None
    group = second.process.popen.pid
    deadline = time.monotonic() + 10
    while _live(group, pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _live(group, pids) == []
    assert call(f"{server.inference}/ping", auth=server.auth(INFERENCE)).status == 200


def _live(pgid: int, pids: list[int]) -> list[int]:
    """Processes, zombies aside, that are in process group ``pgid`` or are one of ``pids``."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, state, pgrp = int(stat.parent.name), fields[0], int(fields[2])
        if state != "Z" and (pgrp == pgid or pid in pids):
            live.append(pid)
    return live


def test_every_api_needs_its_key(server: Server, test_set: DigitsSet) -> None:
    body = oip_request(test_set.inputs[:1])
    for url, auth in (
        (f"{server.inference}/predictions/digits/1", None),
        (f"{server.inference}/predictions/digits/1", server.auth(MANAGEMENT)),
        (f"{server.management}/models/digits/1", server.auth(INFERENCE)),
        (f"{server.inference}/ping", None),
    ):
        reply = call(url, body if "predictions" in url else None, auth)
        assert reply.status == 400, url
        assert reply.body["type"] == "InvalidKeyException", url


def test_the_model_api_takes_archives_from_the_model_store_only(server: Server) -> None:
    remote = "http://127.0.0.1:9/digits_v3.mar"
    request = urllib.request.Request(
        f"{server.management}/models?url={remote}", method="POST", headers=server.auth(MANAGEMENT)
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    with raised.value as error:
        assert error.code == 404
        assert "does not match any allowed URL" in json.load(error)["message"]
