"""A demo's verdict, from what it saw: each rollout's end against the one expected, the checks
of the model's final state, and the clients' requests. Exit 0 only if every part holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deploy.local.demos.load import WayStats
from gateway.rollout.state import Rollout


@dataclass(frozen=True)
class Expected:
    what: str
    """``version 3``, ``torch-v1 -> mlserver-v1``."""
    phase: str
    """``succeeded`` (promoted) or ``rolled_back``."""


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str = ""


PHASE_WORDS = {"succeeded": "promoted", "rolled_back": "rolled back"}


def rollout_checks(results: Sequence[tuple[Expected, Rollout | None]]) -> list[Check]:
    checks = []
    for expected, rollout in results:
        want = PHASE_WORDS.get(expected.phase, expected.phase)
        if rollout is None:
            checks.append(Check(f"{expected.what} {want}", False, "the rollout never started"))
            continue
        got = PHASE_WORDS.get(rollout.phase, rollout.phase)
        detail = f"{got}" + (f": {rollout.reason}" if rollout.reason else "")
        checks.append(Check(f"{expected.what} {want}", rollout.phase == expected.phase, detail))
    return checks


def client_checks(stats: dict[str, WayStats]) -> list[Check]:
    """Every protocol's clients sent requests, and none of them failed."""
    checks = []
    for name, s in stats.items():
        detail = f"{s.requests} requests, {s.failed} failed"
        checks.append(Check(f"{name} clients: no failed request", s.requests > 0 and not s.failed,
                            detail))  # fmt: skip
    return checks


def verdict(checks: Sequence[Check]) -> tuple[int, list[str]]:
    """The exit code and one line per check."""
    lines = [
        f"  {'PASS' if c.ok else 'FAIL'}  {c.what}" + (f" ({c.detail})" if c.detail else "")
        for c in checks
    ]
    return (0 if checks and all(c.ok for c in checks) else 1), lines
