"""Run a command under ``valgrind --tool=callgrind`` and count instructions over chosen windows.

Instrumentation starts off (start-up costs nothing and runs faster); :class:`Window` switches it
on in one process, zeroes its counters, and on leaving dumps them to a numbered file whose
``totals:`` line is every thread's instructions (Ir) since the zeroing. Children are traced too
(``--trace-children``), each with its own output file named by its pid.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

_TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


def wrap(argv: Sequence[str], out_dir: Path) -> list[str]:
    """``argv`` under callgrind, instrumentation off, one ``callgrind.<pid>.out`` per process."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--trace-children=yes",
        f"--callgrind-out-file={out_dir}/callgrind.%p.out",
        *argv,
    ]


def control(pid: int, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120
    )


def totals(path: Path) -> int:
    """The instructions a callgrind output file counted (all threads)."""
    found = _TOTALS.search(path.read_text(errors="replace"))
    if found is None:
        raise ValueError(f"no totals line in {path}")
    return int(found.group(1))


class Window:
    """``with Window(pid, out_dir, n):`` counts what process ``pid`` executes inside the block
    into ``callgrind.<pid>.out.<n>`` (``n``: this window's number among the process's dumps)."""

    def __init__(self, pid: int, out_dir: Path, number: int) -> None:
        self.pid = pid
        self.path = out_dir / f"callgrind.{pid}.out.{number}"
        self.instructions = 0

    def __enter__(self) -> Window:
        control(self.pid, "--instr=on")
        control(self.pid, "--zero")
        return self

    def __exit__(self, *exc: object) -> None:
        control(self.pid, "--dump")
        self.instructions = totals(self.path)
