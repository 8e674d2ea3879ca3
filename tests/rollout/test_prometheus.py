"""The queries the controller and the report send to Prometheus, run by a real one (Debian's
binary, `make tools`) that scrapes a simulated gateway every second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deploy.devtools import require_tool
from deploy.local.process import ManagedProcess, free_port, http_ok
from gateway.report import collect
from gateway.rollout.observations import summarize
from gateway.rollout.plan import Gates, NoisePair
from gateway.rollout.sources import PrometheusSource
from gateway.rollout.state import ShadowTarget
from tests.rollout.live import live_world
from tests.rollout.world import Behaviour, FakeAdmin, World, starting_variants


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    admin = FakeAdmin(starting_variants())
    admin.variants_now["tf-v3"] = admin.variants_now["tf-v3"].model_copy(update={"weight": 20})
    admin.shadow = ShadowTarget(variants=("torch-v1", "torch-v3"), percent=100)
    behaviour = {"tf-v3": Behaviour(error_rate=0.1), "torch-v3": Behaviour(divergence=0.3)}
    world = World(admin, behaviour, rps=200)
    run_dir: Path = tmp_path_factory.mktemp("prometheus")
    with live_world(world) as metrics_url:
        target = metrics_url.removeprefix("http://").removesuffix("/metrics")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [target]}]}],
        }
        (run_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = ManagedProcess(
            name="prometheus",
            argv=[require_tool("prometheus"), f"--config.file={run_dir / 'prometheus.yml'}",
                  f"--storage.tsdb.path={run_dir / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            run_dir=run_dir,
            ready=lambda: http_ok(f"{url}/-/ready"),
        )  # fmt: skip
        process.start()
        try:
            process.wait_ready(timeout=30)
            source = PrometheusSource(url)
            deadline = time.monotonic() + 60
            while len(source.query("gateway_requests_total", time.time())) < 4:
                assert time.monotonic() < deadline, "Prometheus never scraped"
                time.sleep(0.3)
            time.sleep(6)  # several scrapes: increase() needs two samples in its window
            yield url, world
        finally:
            process.stop()


def test_windows_from_prometheus_are_the_traffic_sent(prometheus):
    url, _ = prometheus
    samples = PrometheusSource(url).window("digits", "upstream", time.time() - 30, time.time())
    noise = [NoisePair(primary="tf-v1", shadow="torch-v1")]
    observed = summarize(samples, ["tf-v3", "torch-v3"], ["tf-v1", "torch-v1"], noise, Gates())
    # 200 req/s split 40/40/0/20 of 100: tf-v3 takes a fifth, and fails a tenth of it.
    share = observed.candidate.requests / (observed.candidate.requests + observed.baseline.requests)
    assert 0.15 < share < 0.25
    assert 0.05 < observed.candidate.error_rate < 0.15
    assert observed.baseline.errors == 0
    assert observed.candidate.latency.total == pytest.approx(observed.candidate.requests, rel=0.1)
    assert observed.baseline.latency.quantile(0.5) == pytest.approx(0.004, rel=0.5)
    assert observed.shadow.compared > 100
    assert 0.2 < observed.shadow.divergence_rate < 0.4  # torch-v3 shadowing every request
    assert observed.noise is not None
    assert observed.noise.divergence_rate < 0.05


def test_the_report_from_prometheus_has_its_window_and_history(prometheus):
    url, _ = prometheus
    report = collect.from_prometheus(url, "digits", since_s=120)
    assert set(report.variants) == {"tf-v1", "torch-v1", "tf-v3"}
    assert report.variants["tf-v3"].errors > 0
    assert report.since_s == 120
    assert report.runtimes["tfserving"].requests > report.runtimes["torchserve"].requests
    pairs = {(p.primary, p.shadow): p for p in report.pairs}
    assert pairs["tf-v1", "torch-v1"].agreement > 0.95
    assert pairs["tf-v1", "torch-v3"].agreement < 0.8
    assert report.overhead["tfserving"].total > 0
    assert "tf-v1 / torch-v3" in report.agreement_over_time
    assert set(report.p99_over_time) == {"tf-v1", "torch-v1", "tf-v3"}
