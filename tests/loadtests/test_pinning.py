"""Pinning for the latency cases: every thread of a process moves, the load's core is this
process's only inside the block."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from loadtests.benchmark import pinning

THREADED = (
    "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); "
    "time.sleep(30)"
)


@pytest.mark.skipif(pinning.placement() is None, reason="one core: nothing to pin")
def test_every_thread_is_pinned_and_the_load_block_restores_this_process() -> None:
    where = pinning.placement()
    assert where is not None
    assert where.load.isdisjoint(where.gateway)
    child = subprocess.Popen([sys.executable, "-c", THREADED])
    try:
        deadline = time.monotonic() + 10
        while len(pinning.threads(child.pid)) < 2:
            assert time.monotonic() < deadline, "the child's thread did not start"
            time.sleep(0.01)
        pinning.pin([child.pid], where.gateway)
        assert {tid: pinning.cores_of(tid) for tid in pinning.threads(child.pid)} == {
            tid: set(where.gateway) for tid in pinning.threads(child.pid)
        }
    finally:
        child.kill()
        child.wait()
    before = os.sched_getaffinity(0)
    with pinning.load_from(where.load):
        assert os.sched_getaffinity(0) == set(where.load)
        inherited = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert inherited.stdout.strip() == str(sorted(where.load))
    assert os.sched_getaffinity(0) == before


@pytest.mark.skipif(pinning.placement() is None, reason="one core: nothing to pin")
def test_a_pinned_run_places_everyone_and_frees_the_upstream_after() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    upstream, gateway, beside = (subprocess.Popen(sleeper) for _ in range(3))
    try:
        everywhere = os.sched_getaffinity(0)
        with pinning.pinned(upstream.pid, [[gateway.pid]], [beside.pid]) as where:
            assert where is not None
            assert pinning.cores_of(upstream.pid) == set(where.load)
            assert pinning.cores_of(gateway.pid) == set(where.gateway)
            assert pinning.cores_of(beside.pid) == set(where.load)
            assert os.sched_getaffinity(0) == set(where.load)
        assert pinning.cores_of(upstream.pid) == everywhere
        assert os.sched_getaffinity(0) == everywhere
    finally:
        for child in (upstream, gateway, beside):
            child.kill()
            child.wait()
