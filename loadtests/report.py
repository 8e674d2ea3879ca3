"""Accuracy per variant at the end of a run: on the console and next to Locust's reports.

Listeners on Locust's events: the book starts empty with each test, workers send their counts
with every stats report, and the only process (when the test stops) or the master (when it
quits, once the workers' last counts are in) prints the table and writes
``{csv prefix}_accuracy.json`` and ``.csv`` (or beside ``--html``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner

from loadtests.accuracy import BOOK

log = logging.getLogger(__name__)
REPORT_KEY = "digits_accuracy"


def report_prefix(options: Any) -> str | None:
    """Where the accuracy files go: Locust's ``--csv`` prefix, else ``--html`` less ``.html``."""
    prefix = getattr(options, "csv_prefix", None)
    if prefix:
        return str(prefix)
    html = getattr(options, "html_file", None)
    if html:
        return str(html).removesuffix(".html")
    return None


def _on_test_start(environment: Environment, **_: Any) -> None:
    BOOK.reset()


def _on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[REPORT_KEY] = BOOK.take()


def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    BOOK.merge(data.get(REPORT_KEY, {}))


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, LocalRunner):
        _report(environment)


def _on_quitting(environment: Environment, **_: Any) -> None:
    # A master's test stops before its workers' last counts arrive; they are in by the time
    # it quits.
    if isinstance(environment.runner, MasterRunner):
        _report(environment)


def _report(environment: Environment) -> None:
    print(f"\ndigits accuracy per variant (x-gateway-variant)\n{BOOK.table()}\n", flush=True)
    prefix = report_prefix(environment.parsed_options)
    if prefix is not None:
        paths = BOOK.write(prefix)
        log.info("accuracy per variant written to %s", ", ".join(map(str, paths)))


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
