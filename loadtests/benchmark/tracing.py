"""The tracing case: what OpenTelemetry tracing adds to a request.

End to end: four 1-worker gateways in front of the no-op upstream, at the same fixed rate:
tracing off, a second tracing-off gateway (the A/A twin), on but the request not sampled
(ratio 0), and every request sampled and exported in batches over OTLP/gRPC to a receiver
process. The figure is the worker's CPU time per request (every thread, the SDK's export
thread included, from the scheduler's nanosecond counts) in interleaved rounds whose order
rotates; a mode's cost is the median over the rounds of its CPU per request minus tracing
off's in the same round. The twin's difference, measured the same way, is the noise floor: two
identical gateways differ by that much. On a machine shared with other work, throughput and
latency move with the neighbours' load; CPU time per request at a fixed rate much less (a
closed loop would not do: a worker that gets less of the machine serves fewer requests per
event-loop turn, and each costs more).

In process: the tracing hooks alone, as the front end and the service call them, in CPU time per
request (the sampled figure includes the batch thread encoding and sending to the receiver).
"""

from __future__ import annotations

import argparse
import contextvars
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from deploy.local.process import ManagedProcess, free_port, port_open
from gateway.backends.base import Backend, BackendModel
from gateway.config_observability import TracingConfig
from gateway.metrics import RequestRecord
from gateway.routing.router import Variant
from gateway.tracing.calls import backend_call
from gateway.tracing.settings import resolve
from loadtests.benchmark import footprint, peers
from loadtests.benchmark import plan as p
from loadtests.benchmark.cases import Load, Starter, interleaved, small_body
from loadtests.benchmark.steps import Steps
from loadtests.benchmark.wrk import WrkResult

REPO = Path(__file__).resolve().parents[2]
MODES = p.TRACING_TARGETS
OFF, TWIN = MODES[0], MODES[1]
IN_PROCESS_REQUESTS = 20_000
FIXED_LOAD = (400.0, 20)  # requests/s, connections: well within a loaded 1-worker gateway
JSON_HEADERS = {"Content-Type": "application/json"}


def otlp_sink(run: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    process = ManagedProcess(
        "otlp-sink",
        [sys.executable, "-m", "loadtests.benchmark.otlp_sink", "--port", str(port)],
        run,
        ready=lambda: port_open("127.0.0.1", port),
        cwd=REPO,
    )
    return process, port


def tracing_section(mode: str, otlp_port: int) -> dict[str, object] | None:
    if mode in (OFF, TWIN):
        return None
    ratio = 0.0 if mode == MODES[2] else 1.0
    return {"endpoint": f"http://127.0.0.1:{otlp_port}", "ratio": ratio}


def measure_tracing(
    run: Path,
    ups: peers.Upstreams,
    scripts: Path,
    args: argparse.Namespace,
    start: Starter,
    steps: Steps,
) -> dict[str, Any]:
    sink, otlp_port = otlp_sink(run / "otlp")
    start(sink)
    urls: dict[str, str] = {}
    pids: dict[str, int] = {}
    for index, mode in enumerate(MODES):
        config = peers.gateway_config(ups, free_port(), 1)
        section = tracing_section(mode, otlp_port)
        if section is not None:
            config["tracing"] = section
        process, port = peers.gateway(run / f"gw-trace-{index}", config, f"gateway-trace-{index}")
        start(process)
        assert process.popen is not None
        urls[mode] = f"http://127.0.0.1:{port}"
        pids[mode] = footprint.worker_pids(process.popen.pid)[0]
    rate, connections = FIXED_LOAD
    load = Load(
        "/v2/models/m/infer", small_body(run), JSON_HEADERS, connections, args.seconds, rate
    )
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    measured = interleaved(
        {
            mode: _counting_cpu(load.measure(url, scripts), pids[mode], load.seconds, cpu[mode])
            for mode, url in urls.items()
        },
        args.rounds,
        steps.measured("tracing"),
        rotate=True,
    )
    in_process: dict[str, float] = {}
    for mode in p.TRACING_IN_PROCESS:
        # Its own context: an unsampled trace sets the trace context of the task that begins it.
        in_process[mode] = contextvars.copy_context().run(hooks_cost_us, mode, otlp_port)
        what = f"in process, {mode}: {in_process[mode]:.2f} us per request"
        steps.did("tracing", what, p.IN_PROCESS_S, mode=mode, us=in_process[mode])
    added_rounds = added_us_rounds(cpu)
    return {
        "fixed_rate": measured,
        "cpu_us": {mode: statistics.median(values) for mode, values in cpu.items()},
        "cpu_us_rounds": cpu,
        "added_us": {mode: statistics.median(values) for mode, values in added_rounds.items()},
        "added_us_rounds": added_rounds,
        "in_process_us": in_process,
    }


def added_us_rounds(cpu_us: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per round, the CPU time per request each other gateway adds to tracing off's (the
    twin's is the noise floor)."""
    off = cpu_us[OFF]
    return {
        mode: [value - base for value, base in zip(values, off, strict=True)]
        for mode, values in cpu_us.items()
        if mode != OFF
    }


def cpu_ns(pid: int) -> dict[int, int]:
    """Nanoseconds on a CPU so far, of each live thread of ``pid`` (the scheduler's counts:
    ``/proc/<pid>/stat`` counts 10 ms ticks, which is 5 us per request over a 5 s round at
    400 req/s)."""
    threads: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            threads[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return threads


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far, ended threads included, in
    clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used_s(pid: int, before: tuple[dict[int, int], float]) -> float:
    """CPU seconds of ``pid`` since ``before`` (its :func:`cpu_ns`, :func:`cpu_seconds`): to
    the nanosecond if no thread ended in between, else in ticks (an ended thread's time is no
    longer in any ``schedstat``)."""
    threads, ticks = before
    now = cpu_ns(pid)
    if threads.keys() <= now.keys():
        return sum(now.values()) / 1e9 - sum(threads.values()) / 1e9
    return cpu_seconds(pid) - ticks


def _counting_cpu(
    measure: Callable[[], WrkResult], pid: int, seconds: float, into: list[float]
) -> Callable[[], WrkResult]:
    """``measure``, also appending the worker's CPU microseconds per request to ``into``."""

    def run() -> WrkResult:
        before = cpu_ns(pid), cpu_seconds(pid)
        result = measure()
        requests = result.requests_per_s * max(1, round(seconds))
        into.append(cpu_used_s(pid, before) / max(requests, 1.0) * 1e6)
        return result

    return run


class _Backend:
    name = "u1"
    kind = "oip"
    protocol = "rest"
    runtime = "oip"


VARIANT = Variant("m", "a", cast(Backend, _Backend()), BackendModel("m", "1"), 90)
SCOPE = {
    "method": "POST",
    "path": "/v2/models/m/infer",
    "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
    "client": ("127.0.0.1", 40000),
}


def hooks_cost_us(mode: str, otlp_port: int) -> float:
    """Microseconds per request of what tracing runs on the request path, in process."""
    section = tracing_section(mode, otlp_port)
    tracer = None
    if section is not None:
        from gateway.tracing.export import SpanSink
        from gateway.tracing.tracer import RequestTracer

        # Room for every span: a full queue drops spans, and their export would go uncounted.
        queue = {"max_queue_size": 2 * IN_PROCESS_REQUESTS + 8}
        settings = resolve(TracingConfig.model_validate({**section, **queue}), {})
        assert settings is not None
        tracer = RequestTracer(settings, SpanSink(settings))
    out: list[tuple[bytes, bytes]] = []
    started = time.process_time()
    for _ in range(IN_PROCESS_REQUESTS):
        record = RequestRecord("oip_rest", time.perf_counter())
        if tracer is not None:
            record.trace = tracer.begin_http(SCOPE, "/v2/models/{model}/infer", "oip_rest")
        record.model, record.variant = "m", VARIANT
        with backend_call(record, VARIANT):
            pass
        if record.trace is not None:
            out.append((b"traceparent", record.trace.header))  # as the HTTP front end does
            record.trace.end(record, 200)
        out.clear()
    if tracer is not None:
        tracer.sink.flush()  # the batch thread's encoding and sending count too
        tracer.shutdown()
    return (time.process_time() - started) / IN_PROCESS_REQUESTS * 1e6
