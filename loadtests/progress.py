"""Where a long run is and how long it has left: shown as it goes, and kept on disk.

``Progress`` prints one line per step, such as
``bench [ 12/104  11%] closed: gateway-1, round 1/3: 12,811 req/s · 1m40s in, ~12m05s left``;
on a terminal it rewrites one status line in place instead (``live``), and messages that must
stay (``say``) go above it. Each step's record is appended to a JSON-lines file as soon as it
is known, so a run that is interrupted keeps what it measured. The estimate of what is left is
the time so far scaled by the work left (``total`` in any unit: steps, planned seconds, ...).

Used by the benchmark and the load-test runner; standard library only, no Locust.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

CLEAR_LINE = "\r\x1b[K"


def duration(seconds: float) -> str:
    """``9s``, ``1m15s``, ``1h02m``: short and at most two units."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def append_json_line(path: Path, doc: dict[str, Any]) -> None:
    """One JSON document as one line at the end of ``path``, written through at once."""
    with path.open("a") as handle:
        handle.write(json.dumps(doc, default=str) + "\n")


class JsonLinesTail:
    """The documents appended to a JSON-lines file since the last look (another process writes
    it; a line not yet finished waits for the next look)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


class Progress:
    def __init__(
        self,
        title: str,
        total: float,
        *,
        steps: int | None = None,
        out: TextIO | None = None,
        records: Path | None = None,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``total``: the work planned, in the unit ``advance``/``at`` count in; ``steps``: how
        many steps are planned, if known (shown as ``12/104``); ``records``: the JSON-lines file
        each step is appended to; ``live``: rewrite one line in place (default: if ``out`` is a
        terminal)."""
        self.title = title
        self.total = max(float(total), 1e-9)
        self.steps = steps
        self.done = 0.0
        self.step = 0
        self._out = out if out is not None else sys.stderr
        self._live = self._out.isatty() if live is None else live
        self._clock = clock
        self._started = clock()
        self._records = records
        self._showing = False  # a live line is on screen
        if records is not None:
            records.parent.mkdir(parents=True, exist_ok=True)

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def left_s(self) -> float | None:
        """Seconds left at the pace so far; None before any work is done."""
        if self.done <= 0:
            return None
        return max(0.0, self.elapsed_s * (self.total - self.done) / self.done)

    def advance(self, amount: float, message: str, **record: Any) -> None:
        """One more step, worth ``amount`` of the total, with what it found."""
        self.at(self.done + amount, message, **record)

    def at(self, done: float, message: str, **record: Any) -> None:
        """One more step, ``done`` of the total in all, with what it found."""
        self.done = max(0.0, float(done))
        self.step += 1
        self.record(message=message, **record)
        self._show(self.line(message))

    def record(self, **fields: Any) -> None:
        """Append one JSON line (time, progress and ``fields``) to the records file."""
        if self._records is None:
            return
        doc = {
            "time": round(time.time(), 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "step": self.step,
            "done": round(self.done, 3),
            "total": round(self.total, 3),
            **fields,
        }
        append_json_line(self._records, doc)

    def say(self, message: str) -> None:
        """A line that stays (above the live line on a terminal)."""
        self._clear()
        print(message, file=self._out, flush=True)

    def finish(self, message: str = "done") -> None:
        self._clear()
        print(f"{self.title}: {message} in {duration(self.elapsed_s)}", file=self._out, flush=True)

    def line(self, message: str) -> str:
        share = min(1.0, self.done / self.total)
        counted = f"{self.step:>{len(str(self.steps))}}/{self.steps} " if self.steps else ""
        left = self.left_s()
        estimate = f"~{duration(left)} left" if left is not None else "time left unknown"
        return (
            f"{self.title} [{counted}{share:4.0%}] {message} · "
            f"{duration(self.elapsed_s)} in, {estimate}"
        )

    def _show(self, line: str) -> None:
        if self._live:  # cut to the terminal's width: a wrapped line cannot be rewritten
            width = shutil.get_terminal_size().columns - 1
            self._out.write(CLEAR_LINE + line[:width])
            self._out.flush()
            self._showing = True
        else:
            print(line, file=self._out, flush=True)

    def _clear(self) -> None:
        if self._showing:
            self._out.write(CLEAR_LINE)
            self._showing = False
