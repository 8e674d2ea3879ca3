"""The demo's clients against a real gateway over the real backends: all three protocols get
judged answers; a runtime's failure and a wrong artifact are failures, with their reasons."""

from __future__ import annotations

import time

from deploy.local.demos.load import BackgroundLoad, Catalog, summary
from deploy.local.demos.ways import all_ways
from deploy.local.process import free_port
from tests.deploy.demos.conftest import Gateway
from tests.integration.test_resilience import failing_server
from tests.support.stack import gateway_config, running_gateway
from tests.support.swapped_model import swapped_model_server

WAYS = {"OIP REST", "TF Serving gRPC", "TorchServe REST"}
SPLIT = {"tf-v1", "torch-v1", "tf-v2", "torch-v2"}


def _load(url: str, http_port: int, grpc_port: int, seconds: float) -> BackgroundLoad:
    load = BackgroundLoad(
        all_ways("127.0.0.1", http_port, grpc_port), Catalog.of_gateway(url, "digits"), rate=10
    )
    with load:
        time.sleep(seconds)
    return load


def test_every_protocol_is_answered_and_judged(demo_gateway: Gateway):
    load = _load(demo_gateway.url, demo_gateway.http_port, demo_gateway.grpc_port, 3.0)
    assert set(load.stats) == WAYS
    for name, stats in load.stats.items():
        assert 20 <= stats.requests <= 40, (name, stats.requests)  # 10/s for 3 s: bounded
        assert stats.failed == 0, summary(load.stats)
        assert set(stats.by_variant) <= SPLIT
        assert stats.digits == stats.requests
        assert stats.correct / stats.digits > 0.8
    table = summary(load.stats)
    assert table.splitlines()[0].startswith("client protocol   requests  failed")
    assert "TF Serving gRPC" in table
    assert load.totals() == (sum(s.requests for s in load.stats.values()), 0)


def test_a_runtime_failing_and_a_wrong_artifact_are_failed_requests(tmp_path):
    with swapped_model_server() as swapped, failing_server(503) as failing:
        backends = {
            "swapped": {"kind": "oip", "url": swapped, "protocol": "rest", "timeout_s": 5},
            "down": {"kind": "oip", "url": failing, "timeout_s": 5},  # ready, answers 503
        }
        # Neither retried nor ejected, so that the runtime down reaches the clients.
        models = {"digits": {
            "retry_policy": {"num_retries": 0},
            "outlier_detection": {"enabled": False},
            "variants": [
                {"name": "swapped-v1", "backend": "swapped", "version": 1, "weight": 50},
                {"name": "down-v1", "backend": "down", "version": 1, "weight": 50},
            ],
        }}  # fmt: skip
        grpc_port = free_port()
        config = gateway_config(
            None, models, backends, grpc={"host": "127.0.0.1", "port": grpc_port}
        )
        http_port = config["server"]["http"]["port"]
        with running_gateway(tmp_path, config, ready_path="/v2/health/live") as url:
            load = _load(url, http_port, grpc_port, 2.0)
    problems = [p for s in load.stats.values() for p in s.problems]
    for name, stats in load.stats.items():
        assert stats.requests > 0
        assert stats.failed == stats.requests, (name, summary(load.stats))
    assert any("answer differs from version 1's own output" in p for p in problems), problems
    assert any(p.split(": ", 1)[1].startswith(("HTTP 503", "UNAVAILABLE")) for p in problems)
    assert all(p.startswith("at ") and p.split(": ", 1)[0].endswith("s") for p in problems)
    assert "    failed: " in summary(load.stats)
