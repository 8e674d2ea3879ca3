"""Resilience with real processes: a failing variant is retried around and ejected, and a backend
killed with SIGKILL under load costs unpinned clients nothing while a healthy variant exists."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.process import free_port
from deploy.local.stack import gateway_process
from tests.support.http import DIGITS, call, infer
from tests.support.stack import backends_config, gateway_config, running_gateway

pytestmark = pytest.mark.stack


HANG = 0
"""A ``failing_server`` status: inference never answers (within the test)."""


class _Failing(BaseHTTPRequestHandler):
    """An OIP server whose model is ready and whose inference answers ``status`` (503, 400),
    or never (``HANG``)."""

    status = 503

    def do_GET(self) -> None:  # readiness: always ready
        self._answer(200, {"ready": True})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.status == HANG:
            time.sleep(5)
            return
        self._answer(self.status, {"error": f"fault server says {self.status}"})

    def _answer(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def failing_server(status: int) -> Iterator[str]:
    handler = type("Failing", (_Failing,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def samples(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = call(url + "/metrics").body.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def two_variants(flaky_backend: str) -> dict[str, Any]:
    return {
        "digits": {
            "variants": [
                {"name": "flaky", "backend": flaky_backend, "version": 1, "weight": 50},
                {"name": "torch", "backend": "torchserve", "version": 1, "weight": 50},
            ]
        }
    }


def test_503s_are_retried_on_the_healthy_variant_and_eject_the_failing_one(backends, tmp_path):
    with failing_server(503) as flaky_url:
        config = gateway_config(
            backends,
            models=two_variants("flaky"),
            backends=backends_config(backends, flaky={"kind": "oip", "url": flaky_url}),
            readiness_interval_s=60,  # no probe ends the ejection during the test
        )
        with running_gateway(tmp_path, config) as url:
            replies = [infer(url, DIGITS.inputs[:1]) for _ in range(40)]
            assert [r.status for r in replies] == [200] * 40
            assert {r.headers["x-gateway-variant"] for r in replies} == {"torch"}
            retries = samples(url, "gateway_retries_total")
            key = (("backend", "torchserve"), ("model", "digits"), ("reason", "unavailable"))
            assert 1 <= retries[key] <= 5  # five failures eject the flaky variant
            # Each counted where it failed too, for the rollout gates (the requests were not).
            attempts = samples(url, "gateway_retried_attempts_total")
            failed = (("backend", "flaky"), ("model", "digits"), ("reason", "unavailable"),
                      ("runtime", "oip"), ("variant", "flaky"))  # fmt: skip
            assert attempts == {failed: retries[key]}
            requests = samples(url, "gateway_requests_total")
            assert not any(dict(labels)["variant"] == "flaky" for labels in requests)
            ejected = samples(url, "gateway_outlier_ejections_total")
            assert ejected == {
                (("backend", "flaky"), ("backend_model", "digits"), ("version", "1")): 1.0
            }
            assert samples(url, "gateway_outlier_ejections_active") == {
                (("backend", "flaky"),): 1.0
            }
            pinned = infer(url, DIGITS.inputs[:1], **{"x-gateway-variant": "flaky"})
            assert pinned.status == 503  # a pinned request is never moved
            assert pinned.headers["x-gateway-variant"] == "flaky"


def test_a_4xx_is_never_retried(backends, tmp_path):
    with failing_server(400) as flaky_url:
        config = gateway_config(
            backends,
            models=two_variants("flaky"),
            backends=backends_config(backends, flaky={"kind": "oip", "url": flaky_url}),
        )
        with running_gateway(tmp_path, config) as url:
            statuses = [infer(url, DIGITS.inputs[:1]).status for _ in range(30)]
            assert set(statuses) == {200, 400}
            assert samples(url, "gateway_retries_total") == {}
            assert samples(url, "gateway_retried_attempts_total") == {}
            assert samples(url, "gateway_outlier_ejections_total") == {}


def test_an_attempt_past_its_per_try_timeout_is_retried(backends, tmp_path):
    with failing_server(HANG) as flaky_url:
        flaky = {"kind": "oip", "url": flaky_url, "retry_policy": {"per_try_timeout_s": 0.3}}
        config = gateway_config(
            backends,
            models=two_variants("flaky"),
            backends=backends_config(backends, flaky=flaky),
            readiness_interval_s=60,
        )
        with running_gateway(tmp_path, config) as url:
            for _ in range(40):  # half go to the hung variant until 5 of them have ejected it
                started = time.monotonic()
                reply = infer(url, DIGITS.inputs[:1])
                assert reply.status == 200
                assert reply.headers["x-gateway-variant"] == "torch"
                assert time.monotonic() - started < 3  # 0.3 s on the hung one, at most
            retries = samples(url, "gateway_retries_total")
            key = (("backend", "torchserve"), ("model", "digits"), ("reason", "per_try_timeout"))
            assert 1 <= retries[key] <= 5  # then the timeouts have ejected it
            assert samples(url, "gateway_outlier_ejections_active") == {
                (("backend", "flaky"),): 1.0
            }


@dataclass
class Outcome:
    at: float
    status: int
    variant: str
    user: str | None
    error: bytes = b""


class Load:
    """Client threads, each sending one request at a time until stopped: two unpinned, one
    sticky. At most three requests are in flight, so a retry of each always fits the retry
    budget's floor (``min_retry_concurrency``)."""

    def __init__(self, url: str, users: list[str], threads: int = 2) -> None:
        self.url = url
        self.users = users
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]
        self._threads.append(threading.Thread(target=self._sticky, daemon=True))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)

    def _send(self, user: str | None) -> None:
        headers = {"x-user-id": user} if user else {}
        reply = infer(self.url, DIGITS.inputs[:1], **headers)
        variant = reply.headers.get("x-gateway-variant", "")
        error = reply.body if reply.status != 200 else b""
        self.outcomes.append(Outcome(time.monotonic(), reply.status, variant, user, error))

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            self._send(None)

    def _sticky(self) -> None:
        while not self._stop.is_set():
            for user in self.users:
                if self._stop.is_set():
                    return
                self._send(user)


def middle_gateway(run_dir: Path, config: dict[str, Any]) -> Any:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return gateway_process(run_dir, path, config["server"]["http"]["port"])


def both_ready(url: str) -> None:
    """Wait until the gateway's probes found both variants ready (sticky owners are then the
    rendezvous table's)."""
    waited = time.monotonic() + 30
    while time.monotonic() < waited:
        ready = samples(url, "gateway_variant_ready")
        if len(ready) == 2 and all(value == 1.0 for value in ready.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"variants not ready: {samples(url, 'gateway_variant_ready')}")


def settled(before: list[Outcome], outcomes: list[Outcome], ready_at: float) -> bool:
    """The restarted variant has served for 2.5 s, and each of its sticky users since then (what
    the test asserts, known as soon as it holds)."""
    outcomes = list(outcomes)  # the load's threads go on appending
    flaky_at = [o.at for o in outcomes if o.variant == "flaky" and o.at > ready_at]
    if not flaky_at:
        return False
    owners = {o.user for o in before if o.user is not None and o.variant == "flaky"}
    since = {o.user for o in outcomes if o.at > flaky_at[0] + 2.5 and o.variant == "flaky"}
    return owners <= since


def test_backend_killed_under_load_costs_unpinned_clients_nothing(backends, tmp_path):
    """The killed variant is a gateway (an OIP gRPC server in front of TorchServe), restarted on
    the same ports: its clients see no failure, sticky users of it move to their next choice and
    come back, and traffic returns within 5 s of its readiness (no stale gRPC backoff)."""
    grpc_port = free_port()
    middle = gateway_config(
        backends,
        models={
            "digits": {
                "variants": [{"name": "ts", "backend": "torchserve", "version": 1, "weight": 1}]
            }
        },
        grpc={"host": "127.0.0.1", "port": grpc_port},
    )
    middle_http = middle["server"]["http"]["port"]
    mid_backend = {
        "kind": "oip",
        "grpc": f"127.0.0.1:{grpc_port}",
        "url": f"http://127.0.0.1:{middle_http}",
        "protocol": "grpc",
    }
    outer = gateway_config(
        backends,
        models=two_variants("middle"),
        backends=backends_config(backends, middle=mid_backend),
        readiness_interval_s=0.5,
    )
    users = [f"user-{i}" for i in range(24)]
    seen = {None, *users}
    process = middle_gateway(tmp_path / "middle", middle)
    process.start()
    process.wait_ready(60)
    try:
        with running_gateway(tmp_path / "outer", outer) as url:
            both_ready(url)
            with Load(url, users) as load:
                waited = time.monotonic() + 30
                while time.monotonic() < waited and {o.user for o in load.outcomes} < seen:
                    time.sleep(0.2)  # every sticky user has been served once
                before = list(load.outcomes)
                assert process.popen is not None
                os.kill(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
                killed_at = time.monotonic()
                time.sleep(4)
                process.start()
                process.wait_ready(60)
                ready_at = time.monotonic()
                deadline = ready_at + 8
                while time.monotonic() < deadline and not settled(before, load.outcomes, ready_at):
                    time.sleep(0.2)
                outcomes = list(load.outcomes)
    finally:
        process.stop()

    unpinned_failures = [o for o in outcomes if o.status != 200]
    timeline = f"killed at {killed_at:.2f}, ready at {ready_at:.2f}"
    assert unpinned_failures == [], (timeline, unpinned_failures[:5])
    owners = {o.user: o.variant for o in before if o.user is not None}
    of_flaky = {u for u, v in owners.items() if v == "flaky"}
    assert of_flaky, owners
    during = [o for o in outcomes if o.user in of_flaky and killed_at + 1 < o.at < ready_at]
    assert during
    assert {o.variant for o in during} == {"torch"}  # their next choice
    for o in outcomes:  # nobody else moved, ever
        if o.user is not None and o.user not in of_flaky:
            assert o.variant == owners[o.user]
    back = [o.at for o in outcomes if o.at > ready_at and o.variant == "flaky"]
    assert back, "no traffic went back to the restarted backend"
    assert back[0] - ready_at <= 5.0
    after = [o for o in outcomes if o.user in of_flaky and o.at > back[0] + 2]
    assert after
    assert {o.variant for o in after} == {"flaky"}  # sticky users came back
    print(f"traffic back {back[0] - ready_at:.2f}s after the restarted backend was ready")
