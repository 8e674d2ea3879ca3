"""`/metrics` of a real gateway process: rendered between other requests, no `_created` series,
and every worker's process statistics whichever worker answers."""

from __future__ import annotations

import http.client
import re
import select
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.http import call
from tests.support.standalone import GatewayProcess, standalone_config

DOC = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}'
FILLER = 4000  # models with traffic: about 200,000 lines to render


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def infer_all(port: int, models: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for model in models:
        connection.request("POST", f"/v2/models/{model}/infer", DOC)
        response = connection.getresponse()
        response.read()
        assert response.status == 503  # the backend's port is closed: fast, and counted
    connection.close()


def dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    rest = body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(out)
        out.append(rest[:size])
        rest = rest[size + 2 :]


def test_a_request_sent_during_a_scrape_is_served_before_the_scrape_ends(tmp_path: Path):
    config = standalone_config(models=FILLER + 1)
    probe = f"m{FILLER}"
    gateway = GatewayProcess(tmp_path, config)
    gateway.start()
    try:
        gateway.wait_for("gateway ready")
        names = [f"m{index}" for index in range(FILLER)]
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda part: infer_all(gateway.port, part), [names[i::4] for i in range(4)]
                )
            )
        infer_all(gateway.port, [probe])  # the probe's series are the last of each family
        scrape = socket.create_connection(("127.0.0.1", gateway.port))
        scrape.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received or received.endswith(b"\r\n\r\n"):
            received += scrape.recv(65536)  # the headers and the first piece of the body
        request = socket.create_connection(("127.0.0.1", gateway.port))
        request.sendall(
            b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (probe.encode(), len(DOC), DOC)
        )
        events: list[str] = []
        answer = b""
        while "scrape ended" not in events:
            readable, _, _ = select.select([scrape, request], [], [], 30)
            assert readable, "nothing arrived for 30 s"
            if scrape in readable:
                received += scrape.recv(1 << 20)
                if received.endswith(b"\r\n0\r\n\r\n"):
                    events.append("scrape ended")
            if request in readable and "request answered" not in events:
                answer += request.recv(65536)
                if b"\r\n\r\n" in answer:
                    events.append("request answered")
        scrape.close()
        request.close()
    finally:
        gateway.stop()
    assert events == ["request answered", "scrape ended"]
    assert answer.startswith(b"HTTP/1.1 503 ")
    text = dechunk(received.partition(b"\r\n\r\n")[2]).decode()
    assert "_created" not in text
    # The probe's upstream histogram comes after ~90% of the text: the request sent once the
    # scrape had begun was served while the scrape went on, and the scrape saw it.
    count = re.search(
        rf'^gateway_upstream_duration_seconds_count\{{[^}}]*model="{probe}"[^}}]*\}} (\S+)$',
        text,
        re.MULTILINE,
    )
    assert count is not None
    assert float(count.group(1)) == 2


def test_every_worker_is_in_every_scrape(tmp_path: Path):
    gateway = GatewayProcess(tmp_path, standalone_config(workers=2))
    gateway.start()
    try:
        gateway.wait_for("gateway ready")
        workers = {str(pid) for pid in gateway.workers()}
        for _ in range(20):  # a new connection each: both workers serve some
            assert call(gateway.url + "/v2/models/m0/infer", DOC).status == 503
        for _ in range(6):  # whichever worker answers the scrape
            reply = call(gateway.url + "/metrics")
            assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
            text = reply.body.decode()
            assert "_created" not in text
            found = samples(text)
            for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                         "process_open_fds", "process_max_fds", "process_start_time_seconds",
                         "process_virtual_memory_bytes"):  # fmt: skip
                pids = {dict(labels)["pid"] for sample, labels in found if sample == name}
                assert pids == workers, (name, pids, workers)
            for pid in workers:
                rss = found[("process_resident_memory_bytes", (("pid", pid),))]
                status = Path(f"/proc/{pid}/status").read_text()
                vm_rss = next(int(line.split()[1]) * 1024 for line in status.splitlines()
                              if line.startswith("VmRSS"))  # fmt: skip
                assert 0.5 * vm_rss < rss < 2 * vm_rss
                assert found[("process_open_fds", (("pid", pid),))] >= 5
            total = sum(
                value for (name, labels), value in found.items()
                if name == "gateway_requests_total" and dict(labels)["model"] == "m0"
            )  # fmt: skip
            assert total == 20
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log
