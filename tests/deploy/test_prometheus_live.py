"""A real Prometheus (Debian's binary) scraping a real gateway, TorchServe and TF Serving.

Prometheus listens on 127.0.0.1 only, scrapes every second and evaluates deploy/prometheus/rules
every second. Known traffic goes through the gateway (pinned variants, malformed requests, a
variant whose backend is down); the tests then ask Prometheus' HTTP API, polling until it has
scraped, and compare PromQL results with what was sent.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.devtools import require_tool
from deploy.local.process import ManagedProcess, free_port, http_ok
from deploy.local.stack import StackPorts
from tests.deploy.helpers import (
    RULE_FILES,
    RUNTIME_EXPORTERS,
    alert_names,
    dashboard,
    dashboard_queries,
    metric_names,
    recorded_names,
)
from tests.support.http import DIGITS, call, infer
from tests.support.stack import VARIANTS, backends_config, gateway_config, running_gateway

pytestmark = pytest.mark.stack

WAIT_S = 60.0
# Exporters of runtimes the local stack does not run (Triton's): their queries are checked by
# name against the real runtime in test_docker_stack.py instead.
NOT_HERE = tuple(prefix for prefix, runtime in RUNTIME_EXPORTERS.items() if runtime == "triton")
SENT_OK = {"torch-v2": 30, "tf-v1": 10}
MALFORMED = 5
TO_DOWN_VARIANT = 5


@dataclass
class Live:
    prometheus: str
    gateway: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        reply = call(url)
        assert reply.status == 200, (promql, reply.body)
        body = reply.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values(self, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
            for sample in self.query(promql)
        }

    def api(self, path: str) -> Any:
        reply = call(f"{self.prometheus}/api/v1/{path}")
        assert reply.status == 200, reply.body
        return reply.json()["data"]


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll ``check`` until it holds; Prometheus scrapes and evaluates every second."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(0.2)


def prometheus_config(gateway_port: int, backends: StackPorts) -> dict[str, Any]:
    def job(name: str, port: int, path: str = "/metrics") -> dict[str, Any]:
        return {
            "job_name": name,
            "metrics_path": path,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }

    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [
            job("gateway", gateway_port),
            job("torchserve", backends.torchserve.metrics),
            job("tfserving", backends.tfserving_rest, "/monitoring/prometheus/metrics"),
        ],
    }


@pytest.fixture(scope="module")
def gateway(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo's four variants plus torch-down, drained, whose backend is a closed port."""
    closed = f"http://127.0.0.1:{free_port()}"
    backends_down = backends_config(backends)
    backends_down["torchserve-down"] = {
        **backends_down["torchserve"],
        "inference": closed,
        "management": closed,
        "connect_timeout_s": 0.5,
    }
    down = {"name": "torch-down", "backend": "torchserve-down", "version": 1, "weight": 0}
    models = {"digits": {"variants": [*VARIANTS, down]}}
    config = gateway_config(backends, models=models, backends=backends_down)
    with running_gateway(tmp_path_factory.mktemp("gateway"), config) as url:
        yield url


@pytest.fixture(scope="module")
def live(
    gateway: str, backends: StackPorts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    run_dir = tmp_path_factory.mktemp("prometheus")
    config = run_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(int(gateway.rsplit(":", 1)[1]), backends)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name="prometheus",
        argv=[
            require_tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={run_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        run_dir=run_dir,
        ready=lambda: http_ok(f"{url}/-/ready"),
    )
    process.start()
    try:
        process.wait_ready(timeout=30)
        live = Live(url, gateway)
        send_traffic(live)
        yield live
    finally:
        process.stop()


def pinned(live: Live, variant: str, count: int, rows: Any = None) -> list[int]:
    rows = DIGITS.inputs[:1] if rows is None else rows
    return [
        infer(live.gateway, rows, **{"x-gateway-variant": variant}).status for _ in range(count)
    ]


def send_traffic(live: Live) -> None:
    """One request per variant first, scraped before the rest, so that rate() sees the rest."""
    assert pinned(live, "torch-v2", 1) == [200]
    assert pinned(live, "tf-v1", 1) == [200]
    assert pinned(live, "torch-down", 1) == [503]
    wait_for(
        "the first requests to be scraped",
        lambda: (
            len(live.query("gateway_requests_total")) >= 3
            and len(live.query('ts_inference_requests_total{model_name="digits"}')) >= 1
            and len(live.query(':tensorflow:serving:request_count{model_name="digits"}')) >= 1
        ),
    )
    assert pinned(live, "torch-v2", SENT_OK["torch-v2"] - 1) == [200] * 29
    assert pinned(live, "tf-v1", SENT_OK["tf-v1"] - 1) == [200] * 9
    assert pinned(live, "torch-down", TO_DOWN_VARIANT - 1) == [503] * 4
    malformed = [
        call(
            live.gateway + "/v2/models/digits/infer",
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [1]}]}',
            {"content-type": "application/json", "x-gateway-variant": "torch-v2"},
        ).status
        for _ in range(MALFORMED)
    ]
    assert malformed == [400] * MALFORMED
    wait_for(
        "Prometheus to scrape every request sent",
        lambda: (
            sum(live.values("sum(gateway_requests_total)").values())
            == sum(SENT_OK.values()) + MALFORMED + TO_DOWN_VARIANT
        ),
    )


def test_requests_per_variant_are_what_was_sent(live):
    ok = live.values('sum by (variant) (gateway_requests_total{code="200"})', "variant")
    assert ok == {(variant,): float(count) for variant, count in SENT_OK.items()}
    failed = live.values('sum by (code) (gateway_requests_total{code!="200"})', "code")
    assert failed == {("400",): MALFORMED, ("503",): TO_DOWN_VARIANT}
    down = live.values('sum by (variant) (gateway_requests_total{code=~"5.."})', "variant")
    assert down == {("torch-down",): TO_DOWN_VARIANT}
    histogram = live.values("sum by (variant) (gateway_request_duration_seconds_count)", "variant")
    assert histogram[("torch-v2",)] >= SENT_OK["torch-v2"]
    assert histogram[("tf-v1",)] == SENT_OK["tf-v1"]


def test_readiness_and_weights_are_scraped(live):
    ready = live.values("gateway_variant_ready", "variant")
    assert ready == {
        ("tf-v1",): 1,
        ("torch-v1",): 1,
        ("tf-v2",): 1,
        ("torch-v2",): 1,
        ("torch-down",): 0,
    }
    weights = live.values("gateway_variant_weight", "variant")
    assert weights[("tf-v1",)] == 40
    assert weights[("torch-down",)] == 0


def test_recording_rules_evaluate_on_the_real_metrics(live):
    def evaluated_after_the_traffic() -> bool:
        # An evaluation that ran between a series' first scrape and its second is 0/0 = NaN.
        ratios = live.values("model_variant:gateway_request_error_ratio:rate5m", "variant")
        return len(ratios) == 3 and not any(math.isnan(value) for value in ratios.values())

    wait_for("the recording rules to see the traffic", evaluated_after_the_traffic)
    ratio = live.values("model_variant:gateway_request_error_ratio:rate5m", "variant")
    assert ratio == {("torch-v2",): 0.0, ("tf-v1",): 0.0, ("torch-down",): 1.0}
    share = live.values("model_variant:gateway_traffic_share:ratio_rate5m", "variant")
    assert set(share) == {("torch-v2",), ("tf-v1",), ("torch-down",)}
    assert sum(share.values()) == pytest.approx(1.0)
    # More requests went to torch-v2 than to tf-v1 (malformed ones count: they were answered).
    assert share[("torch-v2",)] > share[("tf-v1",)] > 0
    p99 = live.values("model_variant:gateway_request_duration_seconds:p99_5m", "variant")
    assert 0 < p99[("torch-v2",)] < 10
    assert 0 < p99[("tf-v1",)] < 10
    upstream = live.values("model_variant:gateway_upstream_duration_seconds:p99_5m", "variant")
    assert {("torch-v2",), ("tf-v1",)} <= set(upstream)
    overhead = live.values("backend:gateway_overhead_seconds:p99_5m", "backend")
    assert {("torchserve",), ("tfserving",)} <= set(overhead)
    assert all(0 < value < 0.1 for value in overhead.values())
    # Per runtime: torch-down's backend is its own runtime entry, failing every request.
    per_runtime = live.values("model_backend:gateway_request_error_ratio:rate5m", "backend")
    assert per_runtime == {("torchserve",): 0.0, ("tfserving",): 0.0, ("torchserve-down",): 1.0}
    runtime_p99 = live.values("model_backend:gateway_upstream_duration_seconds:p99_5m", "backend")
    assert {("torchserve",), ("tfserving",)} <= set(runtime_p99)


def test_every_rule_loads_and_evaluates_without_error(live):
    def rules() -> list[dict[str, Any]]:
        groups = live.api("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    wait_for("every rule to be evaluated", lambda: all(r["health"] != "unknown" for r in rules()))
    assert {r["name"] for r in rules() if r["type"] == "alerting"} == alert_names()
    assert {r["name"] for r in rules() if r["type"] == "recording"} == recorded_names()
    for rule in rules():
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_the_down_variant_raises_its_alert(live):
    def pending() -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = live.api("alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "GatewayVariantNotReady"]

    wait_for("GatewayVariantNotReady to become pending", lambda: bool(pending()))
    (alert,) = pending()
    assert alert["labels"]["variant"] == "torch-down"
    assert alert["state"] == "pending"  # it fires after 2 minutes; the test does not wait
    others = {a["labels"]["alertname"] for a in live.api("alerts")["alerts"]}
    assert "GatewayModelUnavailable" not in others
    assert "ScrapeTargetDown" not in others


def test_runtimes_are_scraped(live):
    up = live.values("up", "job")
    assert up == {("gateway",): 1, ("torchserve",): 1, ("tfserving",): 1}
    # Each target is scraped on its own clock: wait for the runtimes' scrapes to catch up.
    # (They are shared with other tests, so they may have served more than this test sent.)
    wait_for(
        "TorchServe's count of version 2 to include the requests sent",
        lambda: (
            live.values(
                'sum(ts_inference_requests_total{model_name="digits",model_version="2"})'
            ).get((), 0)
            >= SENT_OK["torch-v2"]
        ),
    )
    wait_for(
        "TF Serving's count to include the requests sent",
        lambda: (
            live.values(
                'sum(:tensorflow:serving:request_count{model_name="digits",status="OK"})'
            ).get((), 0)
            >= SENT_OK["tf-v1"]
        ),
    )


def query_with_data(live: Live, expr: str) -> list[dict[str, Any]]:
    """``expr``'s result, asked again for a while when it is empty: a scrape that missed its
    1 s timeout on a busy machine leaves that target's series stale until the next ones."""
    deadline = time.monotonic() + WAIT_S
    while not (result := live.query(expr)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return result


def test_dashboard_queries_use_scraped_metrics_and_return_data(live):
    wait_for(
        "the recording rules to produce series",
        lambda: all(live.query(name) for name in recorded_names()),
    )
    names = set(live.api("label/__name__/values"))
    for title, expr in dashboard_queries(dashboard()):
        if any(name.startswith(NOT_HERE) for name in metric_names(expr)):
            continue
        for name in metric_names(expr):
            assert name in names, f"{title}: Prometheus has no metric named {name}"
        result = query_with_data(live, expr)
        assert result, f"{title}: no data for {expr}"
        values = [float(sample["value"][1]) for sample in result]
        assert any(value == value for value in values), f"{title}: only NaN for {expr}"


def test_prometheus_listens_on_loopback_only(live):
    port = int(live.prometheus.rsplit(":", 1)[1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            assert address == "0100007F", f"Prometheus listens on {address}, not 127.0.0.1"
            break
    else:
        raise AssertionError(f"nothing listens on port {port}")
    flags = live.api("status/flags")
    assert flags["web.listen-address"] == f"127.0.0.1:{port}"
    assert json.loads(json.dumps(flags))  # the API answers as JSON
