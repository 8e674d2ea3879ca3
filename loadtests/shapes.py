"""The load test's ``LoadTestShape``: constant, ramp or spike (``--load-shape``), bounded in time.

It reads Locust's common options (``use_common_options``), so the command line and the web UI
set it the same way: ``--users`` is the peak, ``--spawn-rate`` how fast users start, and
``--run-time`` how long the shape lasts (``profiles.DEFAULT_DURATION_S`` when unset).
"""

from __future__ import annotations

import time

from locust import LoadTestShape

from loadtests.profiles import DEFAULT_DURATION_S, stage


class DigitsShape(LoadTestShape):
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None, "Locust sets the runner before the first tick"
        options = self.runner.environment.parsed_options
        shape = getattr(options, "load_shape", "constant")
        users = getattr(options, "num_users", None) or 1
        spawn_rate = getattr(options, "spawn_rate", None) or 1.0
        duration = getattr(options, "run_time", None) or DEFAULT_DURATION_S
        elapsed = time.perf_counter() - self.start_time  # get_run_time(), which is untyped
        return stage(shape, elapsed, float(duration), int(users), float(spawn_rate))
