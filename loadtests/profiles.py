"""The load shapes' arithmetic: how many users, how fast, at each moment of a bounded run.

``shapes.DigitsShape`` hands Locust what ``stage`` says; this module imports no Locust.
"""

from __future__ import annotations

import math

SHAPES = ("constant", "ramp", "spike")
DEFAULT_DURATION_S = 60.0
RAMP_SHARE = 0.8  # the ramp reaches its peak after this share of the run, then holds
SPIKE_START, SPIKE_END = 0.4, 0.6  # the spike's window, as shares of the run
SPIKE_BASE_SHARE = 1 / 3  # users outside the spike, as a share of the peak


def stage(
    shape: str, elapsed_s: float, duration_s: float, users: int, spawn_rate: float
) -> tuple[int, float] | None:
    """(user count, spawn rate) ``elapsed_s`` into a run of ``duration_s``; None once it is over.

    constant: ``users`` throughout. ramp: up from 1 to ``users`` over the first 80%, then hold.
    spike: a third of ``users``, all of them for the middle fifth (started within about a
    second), then a third again.
    """
    if elapsed_s >= duration_s:
        return None
    progress = elapsed_s / duration_s
    if shape == "constant":
        return users, spawn_rate
    if shape == "ramp":
        return max(1, min(users, math.ceil(users * progress / RAMP_SHARE))), spawn_rate
    if shape == "spike":
        burst = max(spawn_rate, float(users))
        if SPIKE_START <= progress < SPIKE_END:
            return users, burst
        return max(1, round(users * SPIKE_BASE_SHARE)), burst
    raise ValueError(f"unknown load shape {shape!r} (known: {', '.join(SHAPES)})")
