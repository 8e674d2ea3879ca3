"""CPU pinning for a latency comparison: the load (wrk) and the primary's upstream on one core,
the gateway under test on another.

Unpinned, where the scheduler happens to put each process is itself a difference between two
gateways: one that shares a core with wrk for a while answers later than one that does not, and
two identical gateways' p99 then differ by tens of percent in the same run. Pinned, each target
meets the same placement. Affinity is per thread, so every thread of a process is pinned, and
threads started later inherit it from the thread that starts them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Placement:
    load: frozenset[int]  # wrk and the upstream
    gateway: frozenset[int]  # the gateway's worker


def placement() -> Placement | None:
    """The first usable core for the load, the next for the gateway; None on one core."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None
    return Placement(frozenset(usable[:1]), frozenset(usable[1:2]))


def threads(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    return []


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def pin(pids: Iterable[int], cores: frozenset[int]) -> None:
    """Every thread of each process onto ``cores``."""
    for pid in pids:
        for tid in threads(pid):
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setaffinity(tid, cores)


def cores_of(pid: int) -> set[int]:
    return set(os.sched_getaffinity(pid))


@contextlib.contextmanager
def load_from(cores: frozenset[int]) -> Iterator[None]:
    """This process (and so the wrk it starts) on ``cores`` while inside; as before after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def pinned(
    upstream: int, gateways: Iterable[list[int]], beside_load: Iterable[int] = ()
) -> Iterator[Placement | None]:
    """While inside: this process (and so wrk) and the ``upstream`` nginx (its leader and
    workers) on the load's core, every gateway's workers on the gateway's, ``beside_load`` on
    the load's too. The upstream is free again after: it serves the cases that follow."""
    where = placement()
    if where is None:
        yield None
        return
    nginx = [upstream, *children(upstream)]
    everywhere = frozenset(os.sched_getaffinity(0))
    pin(nginx, where.load)
    for workers in gateways:
        pin(workers, where.gateway)
    pin(beside_load, where.load)
    try:
        with load_from(where.load):
            yield where
    finally:
        pin(nginx, everywhere)
