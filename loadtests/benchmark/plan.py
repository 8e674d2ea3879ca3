"""What each benchmark case measures, named once: the run follows it, and its progress display
counts it in advance (steps, and roughly how many seconds they take) to say how long is left."""

from __future__ import annotations

from collections.abc import Iterable

CASES = (
    "closed", "fixed", "big", "footprint", "routing", "torchserve", "runtimes", "scrape", "shadow",
    "tracing", "baseline",
)  # fmt: skip
DEFAULT_CASES = tuple(c for c in CASES if c != "baseline")  # baseline needs --baseline DIR
PROXY_CASES = {"closed", "fixed", "big", "footprint"}  # the cases that start every proxy

PROXIES = ("envoy-1", "envoy-2", "nginx", "naive", "gateway-1", "gateway-2")
CLOSED_TARGETS = ("direct", *PROXIES)
FIXED_LOADS = ((200, 20), (2000, 50))  # (requests/s, connections)
FIXED_TARGETS = ("direct", "envoy-2", "nginx", "gateway-1", "gateway-2")
BIG_REST_TARGETS = ("direct", "envoy-2", "nginx", "gateway-2")
BIG_GRPC_TARGET = "gateway-2 grpc"
FOOTPRINT_GATEWAYS = ("gateway-1", "gateway-2")
STARTUP_SIZES = (("1 model", 0), ("10,000 models", 10_000))  # (label, extra models)
STARTUP_ATTEMPTS = 3
ROUTING_TARGETS = ("1 model, /m", "10k models, /m", "10k models, /model-9999")
ROUTING_IN_PROCESS = tuple((models, sticky) for models in (1, 10_000) for sticky in (False, True))
TORCHSERVE_LOADS = (("100 req/s", 4, 100.0), ("closed c4", 4, None))  # (label, conns, rate)
TORCHSERVE_TARGETS = ("direct", "envoy-2", "gateway torchserve api", "gateway oip api")
RUNTIMES_LOADS = (("100 req/s", 4, 100.0),)  # (label, connections, rate)
# Label -> the variant of the runtimes case's gateway it pins (runtimes.gateway_config).
RUNTIMES_THROUGH_GATEWAY = {
    "gateway -> mlserver rest": "ml-rest-v1",
    "gateway -> mlserver grpc": "ml-grpc-v1",
    "gateway -> torchserve rest": "ts-rest-v1",
    "gateway -> tfserving stand-in grpc": "tf-grpc-v1",
}
RUNTIMES_DIRECT = ("mlserver rest, direct", "torchserve rest, direct")
SCRAPE_GATEWAYS = tuple((workers, models) for workers in (1, 2) for models in (1_000, 10_000))
SCRAPE_TRAFFIC = (("every model", (None,)), ("every variant", ("a", "b")))  # x-gateway-variant
SCRAPE_STREAM = ("200 req/s, no scrapes", "200 req/s, scrapes back to back")
SCRAPES = 5  # timed scrapes after the first, per gateway and traffic
SHADOW_LOADS = ((200, 20), (500, 30))  # (requests/s, connections)
# The plain gateway twice: the second ("A/A") changes nothing, so its ratio to the first is
# how far this machine moves a p99 on its own.
SHADOW_TARGETS = ("gateway-1, no shadow", "gateway-1, no shadow (A/A)", "gateway-1, shadow 100%")
BASELINE_CLOSED = ("gateway-1", "gateway-1 old", "gateway-2", "gateway-2 old")
TRACING_TARGETS = (
    "tracing off",
    "tracing off, twin (A/A)",
    "tracing on, unsampled",
    "tracing on, sampled + OTLP export",
)
"""The gateways of the tracing case; the twin is a second tracing-off gateway: how much two
identical gateways differ is the noise floor of every difference from tracing off."""
TRACING_IN_PROCESS = ("tracing off", "tracing on, unsampled", "tracing on, sampled + OTLP export")

SETTLE_S = 0.5  # the pause after each measurement (cases.interleaved)
WARM_UP_S = 2.0  # each target's unrecorded run before a load's rounds (cases.warm_up)
PEERS_START_S = 10.0  # the upstream and every proxy started and ready, about
STARTUP_S = 3.0  # one gateway started and waited on, about
IN_PROCESS_S = 3.0  # one in-process routing measurement, about
TORCHSERVE_START_S = 30.0  # TorchServe loading both archives, about
RUNTIMES_START_S = 30.0  # TorchServe, the TF Serving stand-in, MLServer and a gateway, about
SCRAPE_TRAFFIC_S = 20.0  # one traffic pass and its scrapes, at 10,000 models, about
TRACING_START_S = 6.0  # the OTLP receiver and four gateways, about


def measurements(case: str, rounds: int) -> int:
    """How many timed measurements (wrk or gRPC runs) ``case`` makes in ``rounds`` rounds."""
    per_round = {
        "closed": len(CLOSED_TARGETS),
        "fixed": len(FIXED_LOADS) * len(FIXED_TARGETS),
        "big": len(BIG_REST_TARGETS) + 1,
        "routing": len(ROUTING_TARGETS),
        "torchserve": len(TORCHSERVE_LOADS) * len(TORCHSERVE_TARGETS),
        "runtimes": len(RUNTIMES_LOADS) * (len(RUNTIMES_DIRECT) + len(RUNTIMES_THROUGH_GATEWAY)),
        "scrape": len(SCRAPE_STREAM),
        "shadow": len(SHADOW_LOADS) * len(SHADOW_TARGETS),
        "tracing": len(TRACING_TARGETS),
        "baseline": len(BASELINE_CLOSED) + len(FIXED_LOADS) * (1 + len(BASELINE_CLOSED)),
    }
    return per_round.get(case, 0) * rounds


def plan(cases: Iterable[str], rounds: int, seconds: float) -> tuple[int, float]:
    """(steps, planned seconds) of a run: every measurement, start-up and routing count."""
    chosen = set(cases)
    measured = sum(measurements(case, rounds) for case in chosen)
    steps = 1 + measured  # the peers' start, then every measurement
    planned = PEERS_START_S + measured * (seconds + SETTLE_S)
    if "footprint" in chosen:
        startups = len(STARTUP_SIZES) * STARTUP_ATTEMPTS
        steps += len(FOOTPRINT_GATEWAYS) + startups
        planned += startups * STARTUP_S
    if "routing" in chosen:
        steps += len(ROUTING_IN_PROCESS)
        planned += len(ROUTING_IN_PROCESS) * IN_PROCESS_S
    if "torchserve" in chosen:
        steps += 1  # TorchServe's start
        planned += TORCHSERVE_START_S
    if "runtimes" in chosen:
        steps += 1  # the runtimes' start
        planned += RUNTIMES_START_S
    if "shadow" in chosen:
        steps += 1  # the shadow counts read back
        planned += len(SHADOW_TARGETS) * STARTUP_S
    if "scrape" in chosen:
        passes = len(SCRAPE_GATEWAYS) * len(SCRAPE_TRAFFIC)
        steps += passes
        planned += len(SCRAPE_GATEWAYS) * STARTUP_S + passes * SCRAPE_TRAFFIC_S
    if "baseline" in chosen:
        steps += 1  # the four gateways' start
        planned += len(BASELINE_CLOSED) * STARTUP_S
    if "tracing" in chosen:
        steps += len(TRACING_IN_PROCESS)  # the in-process measurements
        planned += TRACING_START_S + len(TRACING_IN_PROCESS) * IN_PROCESS_S
    return steps, planned
