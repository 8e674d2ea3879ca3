"""CPU, memory and file descriptors of each worker process, read from ``/proc`` when scraped.

prometheus_client's ``ProcessCollector`` describes only the process it runs in, so with several
workers a scrape would report whichever worker answered it. Here the worker that answers reads
every live worker's ``/proc/<pid>`` (same host, same user) and labels each series with ``pid``:
CPU time stays a monotonic counter per process (a sum would drop when a worker is replaced, and
``rate()`` would read that as a reset), descriptor counts stay comparable with their per-process
limit, and a worker that leaks memory shows. ``sum without (pid)`` gives the totals. The names
are the standard ``process_*`` ones. Nothing is reported where there is no ``/proc``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from gateway.exposition.text import header, value_text

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096

FAMILIES = (
    ("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds."),
    ("process_resident_memory_bytes", "gauge", "Resident memory size, in bytes."),
    ("process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes."),
    ("process_start_time_seconds", "gauge", "Start time of the process since the epoch, seconds."),
    ("process_open_fds", "gauge", "Number of open file descriptors."),
    ("process_max_fds", "gauge", "Maximum number of open file descriptors (soft limit)."),
)


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def _max_fds(limits: str) -> float:
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return float("inf") if soft == "unlimited" else float(soft)
    return float("nan")


def read(pid: int, proc: Path = Path("/proc")) -> tuple[float, ...] | None:
    """The six values of ``FAMILIES`` for one process, or ``None`` if it is gone."""
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_text()
        open_fds = len(os.listdir(base / "fd"))
        max_fds = _max_fds((base / "limits").read_text())
        boot = _boot_time(proc)
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, start_ticks = float(fields[11]), float(fields[12]), float(fields[19])
    vsize, rss_pages = float(fields[20]), float(fields[21])
    return (
        (utime + stime) / _TICKS,
        rss_pages * _PAGE,
        vsize,
        boot + start_ticks / _TICKS,
        float(open_fds),
        max_fds,
    )


def pieces(pids: Iterable[int], proc: Path = Path("/proc")) -> Iterator[str]:
    readings = [(pid, values) for pid in pids if (values := read(pid, proc)) is not None]
    if not readings:
        return
    for column, (name, kind, documentation) in enumerate(FAMILIES):
        lines = [header(name, kind, documentation)]
        for pid, values in readings:
            lines.append(f'{name}{{pid="{pid}"}} {value_text(values[column])}\n')
        yield "".join(lines)
