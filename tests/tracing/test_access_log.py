"""The access log: which requests get a line, what the line says, and a real gateway at
``--log-level debug`` whose log holds its own lines and no library chatter."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, cast

import grpc
import httpx
import pytest
import yaml

from deploy.local.process import ManagedProcess, free_port, http_ok
from gateway.access_log import AccessLog, line
from gateway.backends.base import Backend, BackendModel
from gateway.config_observability import AccessLogConfig
from gateway.metrics import RequestRecord
from gateway.routing.router import Variant
from gateway.wire import oip_pb2 as oip
from tests.support.recording_backend import rest_backend
from tests.support.stack import gateway_config

REPO = Path(__file__).resolve().parents[2]
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}]}


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))


def access_log(chance: float, **config: Any) -> tuple[AccessLog, Lines]:
    logger = logging.Logger("test-access", logging.INFO)
    lines = Lines()
    logger.addHandler(lines)
    return AccessLog(AccessLogConfig(**config), logger, lambda: chance), lines


def record(elapsed_s: float = 0.002) -> RequestRecord:
    return RequestRecord("oip_rest", time.perf_counter() - elapsed_s)


def test_errors_always_successes_by_ratio_or_when_slow():
    log, lines = access_log(chance=0.5, success_ratio=0.1, slow_ms=50)
    now = time.perf_counter()
    log.finish(record(), 200, now)  # 0.5 >= 0.1: not chosen, not slow
    log.finish(record(), 503, now)
    log.finish(record(), 499, now)  # the client left
    log.finish(record(0.2), 200, now)  # slow
    assert [entry["status"] for entry in lines.lines] == [503, 499, 200]
    chosen, chosen_lines = access_log(chance=0.05, success_ratio=0.1)
    chosen.finish(record(), 200, now)
    assert len(chosen_lines.lines) == 1
    quiet, quiet_lines = access_log(chance=0.0, success_ratio=0.0, errors=False)
    quiet.finish(record(), 500, now)
    quiet.finish(record(), 200, now)
    assert quiet_lines.lines == []


def test_a_line_has_every_field():
    backend = cast(Backend, type("B", (), {"name": "ts", "runtime": "torchserve"})())
    rec = record(0.010)
    rec.model, rec.variant = (
        "digits",
        Variant("digits", "torch-v1", backend, BackendModel("d", "1"), 1),
    )
    rec.upstream_s, rec.bytes_in, rec.bytes_out, rec.attempts = 0.004, 300, 120, 2
    rec.origin = {
        "path": "/v2/models/digits/infer",
        "client": ("127.0.0.1", 51234),
        "headers": [(b"x-request-id", b"abc")],
    }
    rec.request_id = "body-id"
    doc = json.loads(line(rec, 200, time.perf_counter()))
    assert set(doc) == {
        "time", "request_id", "trace_id", "protocol", "path", "model", "version", "variant",
        "backend", "runtime", "status", "duration_ms", "upstream_ms", "bytes_in", "bytes_out",
        "attempts", "retried", "shadow", "client", "error",
    }  # fmt: skip
    assert doc["request_id"] == "abc"  # the header wins over the body's id
    assert (doc["model"], doc["version"], doc["variant"], doc["runtime"]) == (
        "digits", "1", "torch-v1", "torchserve",
    )  # fmt: skip
    assert doc["client"] == "127.0.0.1:51234"
    assert doc["retried"] is True
    assert 10.0 <= doc["duration_ms"] < 1000
    assert doc["upstream_ms"] == 4.0
    assert doc["time"].endswith("+00:00")
    rec.origin = None
    assert json.loads(line(rec, 200, time.perf_counter()))["request_id"] == "body-id"


def test_debug_log_has_access_lines_and_no_library_chatter(tmp_path):
    with rest_backend() as (_, rest_port):
        config = gateway_config(
            None,
            backends={"rest": {"kind": "oip", "url": f"http://127.0.0.1:{rest_port}"}},
            models={
                "m": {"variants": [{"name": "v1", "backend": "rest", "version": "1", "weight": 1}]}
            },
            grpc={"host": "127.0.0.1", "port": free_port()},
        )
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        http = config["server"]["http"]["port"]
        process = ManagedProcess(
            name="gateway",
            argv=[
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                str(path),
                "--log-level",
                "debug",
            ],
            run_dir=tmp_path,
            ready=lambda: http_ok(f"http://127.0.0.1:{http}/v2/health/ready"),
            cwd=REPO,
        )
        process.start()
        try:
            process.wait_ready(60)
            url = f"http://127.0.0.1:{http}"
            assert httpx.post(f"{url}/v2/models/m/infer", json=BODY).status_code == 200
            missing = httpx.post(
                f"{url}/v2/models/nope/infer", json=BODY, headers={"x-request-id": "r-404"}
            )
            assert missing.status_code == 404
            request = oip.ModelInferRequest(model_name="m")
            tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 2])
            tensor.contents.fp32_contents.extend([1.0, 2.0])
            with grpc.insecure_channel(f"127.0.0.1:{config['server']['grpc']['port']}") as channel:
                infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
                infer(request.SerializeToString(), timeout=10)
                request.model_name = "nope"
                with pytest.raises(grpc.RpcError) as failed:
                    infer(request.SerializeToString(), timeout=10)
                assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            process.stop()
    log = process.log_path.read_text()
    assert "Loaded running loop" not in log
    assert " DEBUG asyncio" not in log
    assert " DEBUG grpc" not in log
    entries = [json.loads(text) for text in log.splitlines() if text.startswith("{")]
    errors = {entry["protocol"]: entry for entry in entries if entry["status"] >= 400}
    assert errors["oip_rest"]["request_id"] == "r-404"
    assert errors["oip_rest"]["model"] is None  # not routed: the path says what was asked
    assert errors["oip_rest"]["path"] == "/v2/models/nope/infer"
    assert errors["oip_rest"]["status"] == 404
    assert "nope" in errors["oip_rest"]["error"]
    assert errors["oip_grpc"]["path"] == "inference.GRPCInferenceService/ModelInfer"
    assert errors["oip_grpc"]["client"].startswith("ipv4:127.0.0.1:")


def test_a_reload_keeps_the_observability_sections_until_restart():
    from gateway.app import Gateway
    from gateway.config import parse_config

    def config(success_ratio: float) -> Any:
        return parse_config(
            {
                "server": {"http": {"host": "127.0.0.1", "port": 0}, "grpc": None},
                "backends": {"a": {"kind": "oip", "url": "http://127.0.0.1:9"}},
                "models": {
                    "m": {"variants": [{"name": "a1", "backend": "a", "version": 1, "weight": 1}]}
                },
                "access_log": {"success_ratio": success_ratio},
            }
        )

    async def main() -> None:
        gateway = Gateway(config(0.5))
        try:
            await gateway.apply(config(1.0))
            assert gateway.table.config.access_log.success_ratio == 0.5
            assert gateway.table.version.number == 2
        finally:
            await gateway.stop()

    asyncio.run(main())


def test_sampled_successes_keep_their_ratio():
    import random

    rng = random.Random(7)
    logger = logging.Logger("odds", logging.INFO)
    written = Lines()
    logger.addHandler(written)
    log = AccessLog(AccessLogConfig(success_ratio=0.05), logger, rng.random)
    now = time.perf_counter()
    for _ in range(40_000):
        log.finish(record(), 200, now)
    assert 1_800 < len(written.lines) < 2_200  # 2,000 expected; the bounds are 4.6 sigma
    everyone, lines = access_log(chance=0.99, success_ratio=1.0)
    for _ in range(10):
        everyone.finish(record(), 200, now)
    assert len(lines.lines) == 10
