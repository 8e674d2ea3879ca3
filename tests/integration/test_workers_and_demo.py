"""Several worker processes behind one port, and the README's demo against the real stack."""

from __future__ import annotations

import time

import pytest

from deploy.local.demo import run
from gateway.config import parse_config
from tests.integration.test_faults_and_metrics import samples, value
from tests.support.http import DIGITS, call, infer
from tests.support.stack import VARIANTS, gateway_config, running_gateway

pytestmark = pytest.mark.stack


def test_metrics_are_exact_across_worker_processes(backends, tmp_path):
    with running_gateway(tmp_path, gateway_config(backends, workers=2)) as url:
        for _ in range(40):  # urllib opens a new connection each time: both workers take some
            assert infer(url, DIGITS.inputs[:1], **{"x-gateway-variant": "tf-v1"}).status == 200
        labels = {
            "model": "digits",
            "version": "1",
            "variant": "tf-v1",
            "backend": "tfserving",
            "runtime": "tfserving",
            "protocol": "oip_rest",
            "code": "200",
        }
        # Each worker reports its start time; poll briefly so that a scrape racing a worker's
        # metrics file does not count as a missing worker (a missing one stays missing).
        deadline = time.monotonic() + 5
        while True:
            workers = {
                labels_["pid"]
                for (name, labels_items), _ in samples(url).items()
                if name == "gateway_worker_start_time_seconds"
                for labels_ in [dict(labels_items)]
            }
            if len(workers) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(workers) == 2, call(url + "/metrics").body.decode()[-3000:]
        # Whichever worker answers the scrape, it reports every worker's counts.
        for _ in range(4):
            assert value(samples(url), "gateway_requests_total", **labels) == 40
        weight = value(
            samples(url),
            "gateway_variant_weight",
            model="digits",
            variant="tf-v1",
            backend="tfserving",
            runtime="tfserving",
            version="1",
        )
        assert weight == 40
        assert call(url + "/v2/health/ready").status == 200


def test_demo_reports_split_stickiness_and_latency(backends, tmp_path):
    """The demo's config: the four-way split, and MLServer's variants drained (weight 0)."""
    drained = [
        {"name": f"mlserver-v{v}", "backend": "mlserver", "version": v, "weight": 0} for v in (1, 2)
    ]
    doc = gateway_config(backends, models={"digits": {"variants": [*VARIANTS, *drained]}})
    with running_gateway(tmp_path, doc):
        text = run(parse_config(doc), requests=120, rounds=20)
    assert "120 requests through the gateway (0 failed)" in text
    assert "each always on one variant: True" in text
    for variant in ("tf-v1", "torch-v1", "tf-v2", "torch-v2"):
        assert variant in text
    for version in ("1", "2"):
        row = next(line for line in text.splitlines() if line.startswith(f"mlserver-v{version}"))
        assert row.split()[1:] == ["mlserver", version, "0%", "0.0%", "0", "-", "-", "-"]
    for backend in ("TorchServe REST", "TF Serving gRPC", "MLServer gRPC"):
        assert backend in text
