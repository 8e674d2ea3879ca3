"""The Locust suite against a real gateway in front of the real backends, as ``make loadtest``
runs it: every way in, real digits, SLOs judged from Locust's own reports.

Locust runs in a child process (``python -m loadtests.run``), so gevent's monkey-patching never
reaches pytest.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.local.process import free_port
from deploy.local.stack import StackPorts
from loadtests.endpoints import ENDPOINTS
from tests.support.stack import VARIANTS, gateway_config, running_gateway

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Gateway:
    http: str
    grpc: str


@pytest.fixture(scope="module")
def gateway(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(backends, grpc={"host": "127.0.0.1", "port": free_port()})
    with running_gateway(tmp_path_factory.mktemp("loadtest-gateway"), config) as url:
        yield Gateway(url, f"127.0.0.1:{config['server']['grpc']['port']}")


def run_loadtest(gateway: Gateway, reports: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "loadtests.run", "--host", gateway.http,
        "--grpc-target", gateway.grpc, "--reports", str(reports), *flags,
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_every_way_in_meets_its_slos_with_real_digits(gateway, tmp_path):
    started = time.monotonic()
    # Half the requests anonymous: the 10% canaries answer enough digits whatever the sticky
    # users' draw.
    run = run_loadtest(gateway, tmp_path, "--run-time", "20s", "--anonymous-share", "0.5")
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "SLO PASS" in run.stdout
    stats = (tmp_path / "loadtest_stats.csv").read_text()
    html = (tmp_path / "loadtest.html").read_text()
    for endpoint in ENDPOINTS.values():
        assert f"{endpoint.request_type},{endpoint.name}," in stats
        assert f'"name": {json.dumps(endpoint.name)}' in html
        assert re.search(rf"^{endpoint.key} .* PASS$", run.stdout, re.MULTILINE), run.stdout
    accuracy = json.loads((tmp_path / "loadtest_accuracy.json").read_text())["variants"]
    assert set(accuracy) == {variant["name"] for variant in VARIANTS}
    for name, tally in accuracy.items():
        assert tally["accuracy"] >= 0.9, (name, tally)
        assert re.search(rf"^{name} .* PASS$", run.stdout, re.MULTILINE)
    assert (tmp_path / "loadtest_accuracy.csv").read_text().startswith("variant,digits,correct")
    assert elapsed < 60


def test_a_missed_slo_fails_the_run_and_names_the_threshold(gateway, tmp_path):
    run = run_loadtest(gateway, tmp_path, "--run-time", "4s", "--users", "6", "--p50-ms", "0.001")
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-4000:]
    assert "SLO FAIL" in run.stdout
    for key in ENDPOINTS:
        assert re.search(rf"^  {key}: p50 [\d.]+ ms > 0\.001 ms$", run.stdout, re.MULTILINE), (
            run.stdout
        )
