"""``gateway rollout controller`` as a real process on real sockets: driven by the CLI, acting on
a fake admin listener, scraping a simulated gateway's /metrics that moves in real time; killed
with SIGKILL mid-rollout and restarted; its analysis endpoint as Flagger and Argo read it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.process import free_port, http_ok
from gateway.rollout.state import VariantState
from tests.rollout.fake_admin_server import TOKEN, admin_server
from tests.rollout.live import live_world
from tests.rollout.world import Behaviour, FakeAdmin, World, starting_variants

REPO = Path(__file__).resolve().parents[2]
PLAN = {
    "interval": "0.5s",
    "settle": "0.2s",
    "gates": {"min_requests": 40},
    "steps": [
        {"kind": "canary", "weight": 25, "duration": "2s"},
        {"kind": "canary", "weight": 50, "duration": "2s"},
        {"kind": "bake", "duration": "1s"},
    ],
}


@dataclass
class Controller:
    url: str
    state_dir: Path
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "GATEWAY_ADMIN_TOKEN": TOKEN}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while not http_ok(f"{self.url}/healthz"):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            assert self.process.wait(timeout=10) == 0, self.log.read_text()


@contextmanager
def controller(tmp_path: Path, admin_url: str, metrics_url: str) -> Iterator[Controller]:
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "rollout", "controller",
            "--state-dir", str(tmp_path / "state"), "--listen", f"127.0.0.1:{port}",
            "--admin", admin_url, "--scrape", metrics_url, "--sample-every", "0.3s"]  # fmt: skip
    running = Controller(f"http://127.0.0.1:{port}", tmp_path / "state", argv,
                         tmp_path / "controller.log")  # fmt: skip
    running.start()
    try:
        yield running
    finally:
        running.stop()


def cli(
    controller_url: str, *args: str, token: str | None = TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_ADMIN_TOKEN"}
    if token:
        env["GATEWAY_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "gateway", "rollout", *args, "--controller", controller_url],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def status(controller_url: str) -> dict[str, Any]:
    run = cli(controller_url, "status", "digits", "--json")
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


def wait_for(controller_url: str, phase: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = status(controller_url)
        if doc["phase"] == phase:
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.3)


def test_a_rollout_driven_from_the_cli_survives_sigkill(tmp_path):
    world = World(FakeAdmin(starting_variants()), {}, rps=300)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(PLAN))
    with admin_server(world.admin) as (admin_url, seen), live_world(world) as metrics_url:
        with controller(tmp_path, admin_url, metrics_url) as running:
            refused = cli(running.url, "start", "digits", "--candidate", "tf-v3", token="bad")
            assert refused.returncode == 1
            assert "401 missing or wrong bearer token" in refused.stderr
            started = cli(running.url, "start", "digits", "--candidate", "tf-v3", "torch-v3",
                          "--plan", str(plan))  # fmt: skip
            assert started.returncode == 0, started.stderr
            assert started.stdout.startswith("digits: progressing at step 1 of 3 (canary 25%)")
            assert round(world.admin.share("tf-v3") + world.admin.share("torch-v3"), 2) == 0.25
            time.sleep(0.5)
            running.kill()  # mid-step, between two evaluations
            before = json.loads((running.state_dir / "digits.rollout.json").read_text())
            running.start()
            done = wait_for(running.url, "succeeded")
        assert done["history"][: len(before["history"])] == before["history"]
        entered = [e["event"] for e in done["history"] if "entered" in e["event"]]
        assert entered == [
            "action done: entered canary 25%",
            "action done: entered canary 50%",
            "action done: entered bake",
        ]
        variants = world.admin.variants_now
        assert (variants["tf-v3"].weight, variants["tf-v3"].labels) == (40, ("stable",))
        assert not variants["tf-v1"].enabled
        assert all(
            headers["authorization"] == f"Bearer {TOKEN}" for _, _, headers, _ in seen.requests
        )
        text = cli(running.url, "status", "digits")
        assert text.returncode == 1  # the controller is stopped: one line, exit 1
        assert "cannot reach the rollout controller" in text.stderr


def _post(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def analysing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A controller with no rollout, over a world where torch-v4 fails half its requests and
    tf-v3 gets no traffic."""
    variants = {**starting_variants(), "torch-v4": VariantState(
        name="torch-v4", backend="torchserve", version="4", weight=20)}  # fmt: skip
    world = World(FakeAdmin(variants), {"torch-v4": Behaviour(error_rate=0.5)}, rps=400)
    state = tmp_path_factory.mktemp("analysis")
    with (
        admin_server(world.admin) as (admin_url, _),
        live_world(world) as metrics_url,
        controller(state, admin_url, metrics_url) as running,
    ):
        url = f"{running.url}/analysis/digits"
        # Without Prometheus, the controller scrapes the models it is asked about from the
        # first question on: the first answer has no data.
        query = f"{url}?candidate=torch-v4&baseline=tf-v1,torch-v1&window=1m"
        assert _get(query)[1]["verdict"] == "nodata"
        deadline = time.monotonic() + 30
        while _get(query)[1]["gate"]["error_rate"]["verdict"] == "nodata":  # 200 requests
            assert time.monotonic() < deadline
            time.sleep(0.3)
        yield url


def test_argo_reads_the_verdict_with_a_json_path(analysing):
    status, doc = _get(f"{analysing}?candidate=torch-v4&baseline=tf-v1,torch-v1&window=1m")
    assert status == 200  # always: Argo's successCondition/failureCondition read the body
    assert doc["verdict"] == "fail"
    assert doc["fail"] is True
    assert doc["gate"]["error_rate"]["verdict"] == "fail"
    assert doc["gate"]["error_rate"]["value"] > 0.3
    assert doc["candidates"] == ["torch-v4"]
    status, quiet = _get(f"{analysing}?candidate=tf-v3&baseline=tf-v1&window=1m")
    assert (status, quiet["verdict"]) == (200, "nodata")
    assert "candidate has 0 of 200 requests" in quiet["gate"]["error_rate"]["detail"]


def test_flagger_reads_the_status_code(analysing):
    flagger = {"name": "digits", "namespace": "test", "phase": "Progressing",
               "metadata": {"candidate": "torch-v4", "baseline": "tf-v1,torch-v1"}}  # fmt: skip
    assert _post(f"{analysing}?hook=rollout", flagger)[0] == 412
    assert _post(f"{analysing}?hook=confirm", flagger)[0] == 412
    assert _post(f"{analysing}?hook=rollback", flagger)[0] == 200
    flagger["metadata"] = {"candidate": "tf-v3", "baseline": "tf-v1"}  # no traffic yet
    assert _post(f"{analysing}?hook=rollout", flagger)[0] == 200  # no data is not a failure
    assert _post(f"{analysing}?hook=confirm", flagger)[0] == 425  # ...nor a pass
    assert _post(f"{analysing}?hook=rollback", flagger)[0] == 412
    status, doc = _get(analysing)
    assert status == 404
    assert "no rollout of digits" in doc["error"]


def test_the_local_stack_runs_the_controller(tmp_path):
    """`make up`'s part for it (on a free port here: `make up` uses 8003)."""
    from deploy.local.stack import rollout_process

    port = free_port()
    process = rollout_process(tmp_path / "rollout", gateway_http=free_port(), port=port)
    process.start()
    try:
        process.wait_ready(timeout=30)
        listed = cli(f"http://127.0.0.1:{port}", "status")
        assert (listed.returncode, listed.stdout) == (0, "no rollouts\n")
        assert (tmp_path / "rollout" / "state" / ".controller.lock").exists()
    finally:
        process.stop()
