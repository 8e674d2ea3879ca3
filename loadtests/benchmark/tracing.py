"""The tracing case: what OpenTelemetry tracing adds to a request.

End to end: three 1-worker gateways in front of the no-op upstream, closed loop (the worker's
CPU is the bottleneck, so 1/throughput is its CPU time per request): tracing off, on but the
request not sampled (ratio 0), and every request sampled and exported in batches over OTLP/gRPC
to a receiver process. The difference in microseconds per request is the cost.

In process: the tracing hooks alone, as the front end and the service call them, per request
(the sampled figure includes the SDK's batch thread encoding and sending to the receiver).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, cast

from deploy.local.process import ManagedProcess, free_port, port_open
from gateway.backends.base import Backend, BackendModel
from gateway.config_observability import TracingConfig
from gateway.metrics import RequestRecord
from gateway.routing.router import Variant
from gateway.tracing.calls import backend_call
from gateway.tracing.settings import resolve
from loadtests.benchmark import peers
from loadtests.benchmark import plan as p
from loadtests.benchmark.cases import Load, Starter, Summary, interleaved, small_body
from loadtests.benchmark.steps import Steps

REPO = Path(__file__).resolve().parents[2]
MODES = p.TRACING_TARGETS
IN_PROCESS_REQUESTS = 20_000
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
    if mode == MODES[0]:
        return None
    ratio = 0.0 if mode == MODES[1] else 1.0
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
    for index, mode in enumerate(MODES):
        config = peers.gateway_config(ups, free_port(), 1)
        section = tracing_section(mode, otlp_port)
        if section is not None:
            config["tracing"] = section
        process, port = peers.gateway(run / f"gw-trace-{index}", config, f"gateway-trace-{index}")
        start(process)
        urls[mode] = f"http://127.0.0.1:{port}"
    load = Load("/v2/models/m/infer", small_body(run), JSON_HEADERS, 32, args.seconds)
    closed = interleaved(
        {mode: load.measure(url, scripts) for mode, url in urls.items()},
        args.rounds,
        steps.measured("tracing"),
    )
    in_process: dict[str, float] = {}
    for mode in MODES:
        in_process[mode] = hooks_cost_us(mode, otlp_port)
        what = f"in process, {mode}: {in_process[mode]:.2f} us per request"
        steps.did("tracing", what, p.IN_PROCESS_S, mode=mode, us=in_process[mode])
    return {"closed": closed, "in_process_us": in_process, "added_us": added_us(closed)}


def added_us(closed: dict[str, Summary]) -> dict[str, float]:
    """Per-request CPU time each traced mode adds to tracing off, from closed-loop throughput."""
    base = 1e6 / closed[MODES[0]].requests_per_s
    return {mode: 1e6 / closed[mode].requests_per_s - base for mode in MODES[1:]}


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

        settings = resolve(TracingConfig.model_validate(section), {})
        assert settings is not None
        tracer = RequestTracer(settings, SpanSink(settings))
    started = time.perf_counter()
    for _ in range(IN_PROCESS_REQUESTS):
        record = RequestRecord("oip_rest", time.perf_counter())
        if tracer is not None:
            record.trace = tracer.begin_http(SCOPE, "/v2/models/{model}/infer", "oip_rest")
        record.model, record.variant = "m", VARIANT
        with backend_call(record, VARIANT):
            pass
        if record.trace is not None:
            record.trace.traceparent.encode()
            record.trace.end(record, 200)
    if tracer is not None:
        tracer.sink.flush()  # the batch thread's encoding and sending count too
        tracer.shutdown()
    return (time.perf_counter() - started) / IN_PROCESS_REQUESTS * 1e6
