"""SIGTERM under load, through a real gateway process (one worker, and two under the
supervisor): readiness turns 503 first, then the listeners close, and every request the
gateway had taken gets its answer."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.support.http import call
from tests.support.slow_backend import slow_backend
from tests.support.standalone import GatewayProcess, standalone_config

BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1.0]}]}'
CLIENTS, DELAY_S, DRAIN_S = 16, 0.2, 0.5


@dataclass
class Tally:
    ok: int = 0
    refused: int = 0
    """Connections refused: the listener had closed, so nothing was in flight."""
    dropped: list[str] = field(default_factory=list)
    """Requests sent that never got a whole answer (or got one that was not 200)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(port: int, stop: threading.Event, tally: Tally) -> None:
    """Keep-alive requests back to back; a new connection when told ``Connection: close``,
    until the gateway refuses connections after ``stop``."""
    connection: http.client.HTTPConnection | None = None
    while True:
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.connect()
            except ConnectionRefusedError:
                connection = None
                with tally.lock:
                    tally.refused += 1
                if stop.is_set():
                    return
                time.sleep(0.01)
                continue
        try:
            connection.request("POST", "/v2/models/m0/infer", BODY, {"content-type": "json"})
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            with tally.lock:
                tally.dropped.append(repr(error))
            connection.close()
            connection = None
            continue
        with tally.lock:
            if response.status == 200:
                tally.ok += 1
            else:
                tally.dropped.append(f"status {response.status}")
        if response.will_close:
            connection.close()
            connection = None


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_drops_nothing_and_readiness_turns_first(tmp_path, workers):
    with slow_backend(DELAY_S, 64) as backend:
        config = standalone_config(
            f"http://127.0.0.1:{backend.port}",
            workers=workers,
            readiness_interval_s=0.5,
            graceful_shutdown_s=5,
            limits={"drain_s": DRAIN_S},
        )
        process = GatewayProcess(tmp_path, config)
        process.start()
        process.wait_for("gateway ready")
        deadline = time.monotonic() + 30
        while call(process.url + "/v2/health/ready").status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        tally, stop = Tally(), threading.Event()
        threads = [
            threading.Thread(target=client, args=(process.port, stop, tally))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            assert process.popen is not None
            served_before = tally.ok
            os.kill(process.popen.pid, signal.SIGTERM)
            signalled = time.monotonic()
            stop.set()
            not_ready_after = _first_not_ready(process.url, signalled)
            for thread in threads:
                thread.join(20)
            exit_code = process.wait_exit(20)
        finally:
            stop.set()
            process.stop()
    assert exit_code == 0
    assert served_before > 0
    assert tally.dropped == []
    assert tally.ok > served_before  # requests in flight at SIGTERM, and during the drain
    assert not_ready_after is not None
    assert not_ready_after < DRAIN_S  # 503 while requests were still served
    assert "Traceback" not in process.log


def _first_not_ready(url: str, since: float) -> float | None:
    """Seconds from ``since`` to the first readiness answer that is not 200."""
    while time.monotonic() - since < 5:
        try:
            status = call(url + "/v2/health/ready").status
        except OSError:
            return None  # closed before it ever said 503
        if status != 200:
            return time.monotonic() - since
        time.sleep(0.02)
    return None
