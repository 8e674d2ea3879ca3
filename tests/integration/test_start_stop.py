"""Start-up failures and crash loops, with real `gateway serve` processes and real sockets."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from deploy.local.process import free_port
from tests.support.http import call
from tests.support.standalone import GatewayProcess, standalone_config


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held by a listening socket without SO_REUSEPORT: nobody else can bind it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def failed_start(gateway: GatewayProcess) -> tuple[str, str]:
    """Run a gateway that cannot start: it exits 1; its log and its one ERROR line."""
    gateway.start()
    try:
        assert gateway.wait_exit(30) == 1
    finally:
        gateway.stop()
    log = gateway.log
    assert "Traceback" not in log
    (line,) = [line for line in log.splitlines() if "ERROR" in line]
    return log, line


def test_one_worker_with_its_port_taken_exits_1_with_one_line(tmp_path, taken_port):
    config = standalone_config()
    config["server"]["http"]["port"] = taken_port
    _, line = failed_start(GatewayProcess(tmp_path, config))
    assert f"cannot listen for HTTP on 127.0.0.1:{taken_port}: Address already in use" in line


def test_grpc_port_taken_stops_the_http_server_already_started(tmp_path, taken_port):
    config = standalone_config(grpc={"host": "127.0.0.1", "port": taken_port})
    log, line = failed_start(GatewayProcess(tmp_path, config))
    assert "HTTP on 127.0.0.1" in log  # it had started, and was stopped on the way out
    assert f"cannot listen for gRPC on 127.0.0.1:{taken_port}" in line


def test_two_workers_that_cannot_bind_stop_the_start_with_the_reason(tmp_path, taken_port):
    config = standalone_config(workers=2)
    config["server"]["http"]["port"] = taken_port
    gateway = GatewayProcess(tmp_path, config)
    gateway.start()
    try:
        assert gateway.wait_exit(60) == 1
        deadline = time.monotonic() + 10
        while gateway.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not gateway.group_alive(), "a worker outlived the supervisor"
    finally:
        gateway.stop()
    log = gateway.log
    assert "Traceback" not in log
    assert f"cannot listen for HTTP on 127.0.0.1:{taken_port}: Address already in use" in log
    assert "exited during start-up (exit code 3); stopping" in log
    assert "gateway ready" not in log


def test_a_killed_worker_is_replaced_and_keeps_serving(tmp_path):
    restart = {"quick_exit_s": 0.5}  # the killed worker lived longer: a first, plain restart
    gateway = GatewayProcess(tmp_path, standalone_config(workers=2, worker_restart=restart))
    gateway.start()
    try:
        gateway.wait_for("gateway ready")
        first, second = gateway.workers()
        os.kill(first, signal.SIGKILL)
        gateway.wait_for("(slot 0) ready")
        time.sleep(1.0)  # a replacement that dies once ready (a closed pipe) would be gone now
        workers = gateway.workers()
        assert len(workers) == 2
        assert second in workers
        assert first not in workers
        for _ in range(10):  # new connections each: both workers answer
            assert call(gateway.url + "/v2/health/live").status == 200
    finally:
        gateway.stop()
    assert "replacing it in 1.00s" in gateway.log
    assert "Traceback" not in gateway.log


def test_a_crash_looping_worker_backs_off_and_the_gateway_gives_up(tmp_path):
    restart = {"backoff_s": 0.25, "max_backoff_s": 1.0, "quick_exit_s": 10, "max_quick_exits": 4}
    config = standalone_config(workers=2, worker_restart=restart)
    port = free_port()
    config["server"]["http"]["port"] = port
    gateway = GatewayProcess(tmp_path, config)
    gateway.start()
    squatter = socket.socket()
    try:
        gateway.wait_for("gateway ready")
        for pid in gateway.workers():
            os.kill(pid, signal.SIGKILL)
        # Once both are gone the port is free: take it, so every replacement fails to bind.
        deadline = time.monotonic() + 10
        while True:
            try:
                squatter.bind(("127.0.0.1", port))
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        squatter.listen()
        assert gateway.wait_exit(60) == 1
    finally:
        squatter.close()
        gateway.stop()
    log = gateway.log
    assert "Traceback" not in log
    delays: dict[str, list[float]] = {}
    for slot, delay in re.findall(r"\(slot (\d)\) exited with -?\d+ after [\d.]+s; "
                                  r"replacing it in ([\d.]+)s", log):  # fmt: skip
        delays.setdefault(slot, []).append(float(delay))
    # The kill (within quick_exit_s of the start: a first quick exit), then the replacements
    # that cannot bind: the delay doubles from 0.25 s and stops at 1 s.
    for observed in delays.values():
        assert observed == [0.5, 1.0, 1.0][: len(observed)]
    (gave_up,) = re.findall(r"\(slot (\d)\) exited with 3 after [\d.]+s: 4 quick exits", log)
    assert len(delays[gave_up]) == 3
    assert "cannot listen for HTTP" in log
