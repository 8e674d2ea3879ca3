"""The neighbour of ``loadtests.neighbour``: its duty cycle and its priority, measured."""

import os
import time
from pathlib import Path

import pytest

from loadtests import neighbour


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _policy(pid: int) -> int:
    return os.sched_getscheduler(pid)


@pytest.mark.parametrize("work_ms", [2.0, 6.0])
def test_the_neighbour_is_idle_priority_and_busy_for_its_share_of_each_period(work_ms: float):
    with neighbour.neighbour(work_ms, None, 30) as pid:
        assert _policy(pid) == os.SCHED_IDLE
        before, began = _cpu_s(pid), time.monotonic()
        time.sleep(2.0)
        share = (_cpu_s(pid) - before) / (time.monotonic() - began)
    # At most work_ms of every 20 ms (clock ticks blur it); less only when the machine is busy,
    # since at idle priority anything else goes first: it must still have worked.
    assert share <= work_ms / 20 * 1.3
    assert share > work_ms / 20 * 0.1


def test_the_neighbour_ends_by_itself_at_its_limit():
    with neighbour.neighbour(1.0, None, 0.5) as pid:
        time.sleep(1.5)
        assert os.waitpid(pid, os.WNOHANG) != (0, 0)
