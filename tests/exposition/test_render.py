"""The hand-written exposition against prometheus_client's own, in one process and merged from
several processes' files, and the slicing that keeps a scrape from holding the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gateway.exposition import process
from gateway.exposition.files import MergedFiles
from gateway.exposition.scrape import Exposition

REPO = Path(__file__).resolve().parents[2]
ODD_LABELS = ["plain", 'quote"d', "back\\slash", "new\nline", "caf\u00e9", "le"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def without_process(found: Samples) -> Samples:
    return {key: value for key, value in found.items() if not key[0].startswith("process_")}


def without_created(found: Samples) -> Samples:
    return {key: value for key, value in found.items() if not key[0].endswith("_created")}


def test_one_process_matches_generate_latest_without_created_series():
    registry = CollectorRegistry()
    requests = Counter("t_requests", "Requests.", ["model", "code"], registry=registry)
    latency = Histogram(
        "t_latency_seconds", "Latency.", ["model"], buckets=(0.1, 1.0, 10.0), registry=registry
    )
    bare = Histogram("t_bare_seconds", "No labels.", buckets=(0.5,), registry=registry)
    inflight = Gauge("t_inflight", "In flight.", ["backend"], registry=registry)
    for index, model in enumerate(ODD_LABELS):
        requests.labels(model, "200").inc(index + 1)
        latency.labels(model).observe(0.05 * index)
        latency.labels(model).observe(5.0)
    latency.labels("inf").observe(float("inf"))
    bare.observe(0.25)
    inflight.labels("b").set(3)
    exposition = Exposition([requests, latency, bare, inflight], None)
    text = exposition.render().decode()
    assert "_created" not in text
    expected = without_created(samples(generate_latest(registry).decode()))
    assert without_process(samples(text)) == expected
    # The label texts are cached: a second scrape after more traffic is still right.
    latency.labels("plain").observe(0.5)
    requests.labels("new", "503").inc()
    again = exposition.render().decode()
    expected = without_created(samples(generate_latest(registry).decode()))
    assert without_process(samples(again)) == expected


WRITER = """
import json, sys
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
registry = CollectorRegistry()
requests = Counter("t_requests", "Requests.", ["model", "code"], registry=registry)
latency = Histogram("t_latency_seconds", "Latency.", ["model"], buckets=(0.1, 1.0),
                    registry=registry)
inflight = Gauge("t_inflight", "In flight.", ["backend"], multiprocess_mode="livesum",
                 registry=registry)
start = Gauge("t_start", "Start.", multiprocess_mode="liveall", registry=registry)
start.set(1.0)
for model, count, seconds in json.loads(sys.argv[1]):
    requests.labels(model, "200").inc(count)
    latency.labels(model).observe(seconds)
    inflight.labels("b").inc()
"""


def write(directory: Path, ops: list[tuple[str, int, float]]) -> None:
    """Run one writer process (its pid names its files) in multiprocess mode."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", WRITER, json.dumps(ops)], env=env, check=True)


def reference(directory: Path) -> Samples:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return samples(generate_latest(registry).decode())


def test_files_of_several_processes_merge_like_multiprocess_collector(tmp_path):
    write(tmp_path, [(model, 1, 0.05) for model in ODD_LABELS])
    write(tmp_path, [("plain", 2, 0.5), ("other", 1, 3.0)])
    merged = MergedFiles(str(tmp_path))
    text = "".join(piece for piece in merged.pieces() if piece)
    assert "_created" not in text
    assert samples(text) == reference(tmp_path)
    assert len(merged.live_pids()) == 2
    # A third process appears, with new series and more of the old ones: the index extends.
    write(tmp_path, [("plain", 5, 0.01), ("third", 1, 0.2)])
    again = samples("".join(piece for piece in merged.pieces() if piece))
    assert again == reference(tmp_path)
    assert again[("t_requests_total", (("code", "200"), ("model", "plain")))] == 1 + 2 + 5
    assert again[("t_latency_seconds_count", (("model", "plain"),))] == 3
    assert len(merged.live_pids()) == 3


def test_a_scrape_yields_to_the_event_loop_between_slices():
    registry = CollectorRegistry()
    latency = Histogram("t_latency_seconds", "Latency.", ["model"], registry=registry)
    for index in range(3000):
        latency.labels(f"model-{index}").observe(0.01)
    exposition = Exposition([latency], None)
    events: list[str] = []

    async def both() -> None:
        started = asyncio.Event()

        async def writer(chunk: bytes) -> None:
            events.append("chunk")
            started.set()

        async def scrape() -> None:
            await exposition.stream(writer, lambda: False)
            events.append("end")

        async def other_request() -> None:
            await started.wait()
            events.append("other request")

        await asyncio.gather(scrape(), other_request())

    asyncio.run(both())
    served = events.index("other request")
    # Another task ran while the scrape was under way, with most of the text still to come.
    assert events.count("chunk") > 10
    assert events[served + 1 :].count("chunk") > events[:served].count("chunk")
    assert events[-1] == "end"


def test_a_scrape_stops_when_the_client_is_gone():
    registry = CollectorRegistry()
    latency = Histogram("t_latency_seconds", "Latency.", ["model"], registry=registry)
    for index in range(3000):
        latency.labels(f"model-{index}").observe(0.01)
    chunks: list[bytes] = []

    async def writer(chunk: bytes) -> None:
        chunks.append(chunk)

    asyncio.run(Exposition([latency], None).stream(writer, lambda: len(chunks) >= 2))
    assert len(chunks) == 2


def test_process_statistics_of_this_process():
    values = process.read(os.getpid())
    assert values is not None
    cpu, rss, virtual, started, open_fds, max_fds = values
    status = Path("/proc/self/status").read_text()
    vm_rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if "VmRSS" in line)
    assert 0.5 * vm_rss < rss < 2 * vm_rss
    assert virtual > rss
    assert cpu > 0
    assert abs(open_fds - len(os.listdir("/proc/self/fd"))) <= 2
    assert open_fds < max_fds
    assert started < Path("/proc/self").stat().st_mtime + 5
    text = "".join(process.pieces([os.getpid(), 2**22 + 1]))  # the second pid does not exist
    found = samples(text)
    assert {labels for _, labels in found} == {(("pid", str(os.getpid())),)}
    assert len(found) == len(process.FAMILIES)


@pytest.mark.parametrize("pids", [[]])
def test_no_process_statistics_without_live_pids(pids):
    assert list(process.pieces(pids)) == []
