"""One measurement each: interleaved rounds over several targets, medians out."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import orjson

from loadtests.benchmark.plan import SETTLE_S, WARM_UP_S
from loadtests.benchmark.wrk import WrkResult, lua_script, run_wrk

BIG_BYTES = 1 << 20


@dataclass(frozen=True)
class Summary:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def summarize(results: list[WrkResult | Summary]) -> Summary:
    return Summary(
        statistics.median(r.requests_per_s for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


# Told of each measurement as soon as it is taken: (target, round from 1, result).
Measured = Callable[[str, int, WrkResult | Summary], None]
Starter = Callable[..., None]
"""Starts a process, waits on its readiness, and stops it when the run ends."""


def interleaved(
    targets: Mapping[str, Callable[[], WrkResult | Summary]],
    rounds: int,
    measured: Measured | None = None,
    rotate: bool = False,
) -> dict[str, Summary]:
    """A B C, A B C, ...: drift in the machine's load spreads over every target alike.
    ``rotate``: A B C, B C A, C A B, ...: each target also takes each place in a round as
    often as the others (over a multiple of len(targets) rounds)."""
    results: dict[str, list[WrkResult | Summary]] = {name: [] for name in targets}
    order = list(targets.items())
    for round_ in range(1, rounds + 1):
        first = (round_ - 1) % len(order) if rotate and order else 0
        for name, measure in order[first:] + order[:first]:
            result = measure()
            results[name].append(result)
            if measured is not None:
                measured(name, round_, result)
            time.sleep(SETTLE_S)
    return {name: summarize(values) for name, values in results.items()}


def small_body(run: Path) -> Path:
    """The ~300-byte OIP JSON request of the anchor measurements."""
    doc = {
        "id": "42",
        "inputs": [
            {
                "name": "input0",
                "datatype": "FP32",
                "shape": [1, 24],
                "data": [round(0.1 * i, 1) for i in range(1, 25)],
            }
        ],
        "outputs": [{"name": "output0"}],
        "parameters": {
            "binary_data_output": False,
            "priority": 1,
            "timeout": 1000000,
            "sequence_id": 7,
        },
    }
    path = run / "body.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def big_body(run: Path) -> tuple[Path, int]:
    """A 1 MiB FP32 tensor in the binary extension; returns the file and its JSON length."""
    count = BIG_BYTES // 4
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input0",
                    "datatype": "FP32",
                    "shape": [1, count],
                    "parameters": {"binary_data_size": BIG_BYTES},
                }
            ]
        }
    )
    data = np.random.default_rng(0).random(count, dtype=np.float32).tobytes()
    path = run / "big.bin"
    path.write_bytes(head + data)
    return path, len(head)


def digits_body(run: Path) -> Path:
    from model_store.digits import load_test_set

    row = load_test_set().inputs[0]
    doc = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": row.tolist()}]
    }
    path = run / "digits.json"
    path.write_bytes(orjson.dumps(doc))
    return path


@dataclass(frozen=True)
class Load:
    """How one wrk run is shaped."""

    url_path: str
    body: Path
    headers: dict[str, str]
    connections: int
    seconds: float
    rate: float | None = None  # requests/s across all connections; None = closed loop

    def measure(self, base_url: str, scripts: Path, threads: int = 1) -> Callable[[], WrkResult]:
        mean_delay_ms = None if self.rate is None else self.connections * 1000.0 / self.rate
        model = self.url_path.strip("/").replace("/", "_")
        name = f"{model}-{self.body.stem}-{self.connections}-{self.rate or 'closed'}.lua"
        script = lua_script(scripts / name, self.body, self.url_path, self.headers, mean_delay_ms)
        return lambda: run_wrk(
            base_url + self.url_path, script, self.connections, self.seconds, threads
        )


def warm_up(load: Load, base_urls: Iterable[str], scripts: Path) -> None:
    """Each target under ``load`` for ``WARM_UP_S``, unrecorded, before its rounds: a gateway's
    first run after start-up (or after a different load) is slower in its tail (first
    connections, first allocations, cold caches), and the first target of round 1 would carry
    it alone."""
    short = replace(load, seconds=WARM_UP_S)
    for url in base_urls:
        short.measure(url, scripts)()
