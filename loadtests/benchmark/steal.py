"""How much of the machine the hypervisor gave to other guests during a run (``steal`` in
``/proc/stat``). On a shared virtual machine a run with 20-30% steal has latencies several times
a quiet one's, and its p99s move by tens of percent from one round to the next: the report says
so rather than let such a run pass for a quiet one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAT = Path("/proc/stat")
NOISY = 0.05  # beyond this share of stolen time, latency figures are the neighbours' too


@dataclass(frozen=True)
class CpuTimes:
    busy_or_idle: int  # every field but guest time (already counted in user)
    steal: int


def read(stat: Path = STAT) -> CpuTimes | None:
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[0] != "cpu" or len(first) < 9:
        return None
    fields = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return CpuTimes(sum(fields), fields[7])


def share(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """Stolen time over all CPU time between two readings."""
    if before is None or after is None or after.busy_or_idle <= before.busy_or_idle:
        return None
    return (after.steal - before.steal) / (after.busy_or_idle - before.busy_or_idle)


def describe(stolen: float | None) -> str:
    if stolen is None:
        return "CPU steal: not known (no /proc/stat)"
    line = f"CPU steal during the run: {stolen:.1%} of all CPU time"
    if stolen > NOISY:
        line += (
            f" (over {NOISY:.0%}: other guests took that much of this machine; latencies and"
            " p99s from this run are not comparable with a quiet run's, ratios within it only"
            " roughly)"
        )
    return line
