"""The run as it goes and at its end: progress snapshots, and what each variant served.

Listeners on Locust's events. When a test starts, every process reads the gateway's catalog
(which version and runtime each variant serves) and empties its variant book; workers send
their counts with every stats report. The only process (or the master) appends a snapshot of
the run every few seconds to ``{csv prefix}_progress.jsonl`` (the runner shows them), and when
the test stops (the master: when it quits, once the workers' last counts are in) prints the
table and writes ``{csv prefix}_variants.json`` and ``.csv`` (or beside ``--html``).

Locust rewrites its CSV files once a second and does not write them again before it closes
them, so requests that finish in the last second (those in flight at ``--run-time``, finished
during ``--stop-timeout``) would be missing from ``_stats.csv`` while the console and the HTML
report count them: when quitting, this waits for one more write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust import events, stats
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadtests.expected import EXPECTED, fetch_catalog
from loadtests.options import Settings
from loadtests.progress import append_json_line
from loadtests.variant_stats import BOOK

log = logging.getLogger(__name__)
REPORT_KEY = "digits_variants"
SNAPSHOT_INTERVAL_S = 5.0
_snapshots: list[Any] = []  # the running snapshot greenlet, if any


def report_prefix(options: Any) -> str | None:
    """Where our files go: Locust's ``--csv`` prefix, else ``--html`` less ``.html``."""
    prefix = getattr(options, "csv_prefix", None)
    if prefix:
        return str(prefix)
    html = getattr(options, "html_file", None)
    if html:
        return str(html).removesuffix(".html")
    return None


def snapshot(environment: Environment, elapsed_s: float, final: bool = False) -> dict[str, Any]:
    """Where the run is: users, Locust's totals, and each variant's counts so far."""
    runner = environment.runner
    assert runner is not None, "snapshots are taken while a test runs"
    total = runner.stats.total
    variants = {
        name or "(none)": {k: v for k, v in s.to_json().items() if k != "latency_ms"}
        for name, s in BOOK.variants().items()
    }
    return {
        "elapsed_s": round(elapsed_s, 3),
        "final": final,
        "users": runner.user_count,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rps": round(total.current_rps, 1),
        "variants": variants,
    }


def _on_test_start(environment: Environment, **_: Any) -> None:
    BOOK.reset()
    EXPECTED.tolerance = Settings.of(environment).tolerance
    try:
        EXPECTED.catalog = fetch_catalog(environment.host or "")
    except (OSError, ValueError, KeyError) as error:
        EXPECTED.catalog = {}
        log.error("cannot read the gateway's catalog at %s: %r", environment.host, error)
    prefix = report_prefix(environment.parsed_options)
    if prefix is not None and not isinstance(environment.runner, WorkerRunner):
        path = Path(f"{prefix}_progress.jsonl")
        path.unlink(missing_ok=True)
        _snapshots.append(gevent.spawn(_take_snapshots, environment, path, time.monotonic()))


def _take_snapshots(environment: Environment, path: Path, started: float) -> None:
    try:
        while True:
            gevent.sleep(SNAPSHOT_INTERVAL_S)
            append_json_line(path, snapshot(environment, time.monotonic() - started))
    except gevent.GreenletExit:
        append_json_line(path, snapshot(environment, time.monotonic() - started, final=True))


def _on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[REPORT_KEY] = BOOK.take()


def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    BOOK.merge(data.get(REPORT_KEY, {}))


def _on_test_stop(environment: Environment, **_: Any) -> None:
    while _snapshots:
        _snapshots.pop().kill(block=True)  # writes the final snapshot
    if isinstance(environment.runner, LocalRunner):
        _report(environment)


def _on_quitting(environment: Environment, **_: Any) -> None:
    # A master's test stops before its workers' last counts arrive; they are in by the time
    # it quits.
    if isinstance(environment.runner, MasterRunner):
        _report(environment)
    if getattr(environment.parsed_options, "csv_prefix", None) and not isinstance(
        environment.runner, WorkerRunner
    ):
        gevent.sleep(stats.CSV_STATS_INTERVAL_SEC * 1.5)  # one more write of the final counts


def _report(environment: Environment) -> None:
    print(f"\ndigits per variant (x-gateway-variant)\n{BOOK.table()}\n", flush=True)
    prefix = report_prefix(environment.parsed_options)
    if prefix is not None:
        paths = BOOK.write(prefix)
        log.info("statistics per variant written to %s", ", ".join(map(str, paths)))


def listen(hook: Any, handler: Callable[..., None]) -> None:
    """``hook.add_listener(handler)``: Locust's ``EventHook`` is untyped, this is its typed door."""
    hook.add_listener(handler)


def register() -> None:
    """Add the listeners to Locust's events (once, from the locustfile)."""
    listen(events.test_start, _on_test_start)
    listen(events.report_to_master, _on_report_to_master)
    listen(events.worker_report, _on_worker_report)
    listen(events.test_stop, _on_test_stop)
    listen(events.quitting, _on_quitting)
