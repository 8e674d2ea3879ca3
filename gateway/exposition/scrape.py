"""One scrape: every family as text, produced in slices on the worker's own event loop.

A scrape of 10,000 models is about a million lines. Rendering them in one go would stop every
other request on the worker for as long; a thread would not help much, since formatting holds
the GIL and the loop would wait up to the 5 ms switch interval for it at every wake-up. Instead
the text is produced piece by piece and handed to the caller after at most ``SLICE_S`` of work,
then the loop runs whatever is ready before the next slice. Everything stays on one thread, so
prometheus_client's locks are only ever taken uncontended. Scrapes run one at a time (the index
of the metric files is shared); a second one waits for the first.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from gateway.exposition import process
from gateway.exposition.files import MergedFiles
from gateway.exposition.local import LocalCounter, LocalHistogram
from gateway.exposition.text import families_text

SLICE_S = 0.00025
"""Longest stretch of rendering between two turns of the event loop (a request that arrives
meanwhile waits for it, at each of its steps: the slice is about what one request costs)."""
CHUNK_BYTES = 1 << 18
"""Largest piece of the body handed to the transport at once."""


class Renders(Protocol):
    """A collector that writes its own text (faster than building samples)."""

    def pieces(self) -> Iterator[str]: ...


class _Generic:
    """A small family (a gauge): collected and formatted as prometheus_client gives it."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def pieces(self) -> Iterator[str]:
        return iter(families_text(self._collector.collect()))


def _local(metric: MetricWrapperBase) -> Renders:
    if isinstance(metric, Counter):
        return LocalCounter(metric)
    if isinstance(metric, Histogram):
        return LocalHistogram(metric)
    return _Generic(metric)


class Exposition:
    """The text of ``metrics`` (prometheus_client metrics) and ``collectors`` (computed here).

    With ``multiprocess_dir`` the metrics' values are every worker's, read from their files;
    collectors are always computed by the worker that answers.
    """

    def __init__(self, metrics: list[MetricWrapperBase], multiprocess_dir: str | None) -> None:
        self._files = MergedFiles(multiprocess_dir) if multiprocess_dir else None
        self._local = [] if self._files else [_local(metric) for metric in metrics]
        self._collectors: list[Renders] = []
        self._lock = asyncio.Lock()

    def add(self, collector: Renders) -> None:
        self._collectors.append(collector)

    def pieces(self) -> Generator[str | None, None, None]:
        """Every family's text; ``None`` is only a point to pause at."""
        if self._files is not None:
            yield from self._files.pieces()
            pids = self._files.live_pids()
        else:
            for source in self._local:
                yield from source.pieces()
            pids = [os.getpid()]
        for collector in self._collectors:
            yield from collector.pieces()
        yield from process.pieces(pids)

    def render(self) -> bytes:
        """The whole text at once (tests, tools); the server streams with :meth:`stream`."""
        return "".join(piece for piece in self.pieces() if piece).encode()

    async def stream(
        self, write: Callable[[bytes], Awaitable[None]], gone: Callable[[], bool]
    ) -> None:
        """Hand the text to ``write`` in chunks of ``CHUNK_BYTES``, yielding to the loop after
        every ``SLICE_S`` of work; stop early once ``gone()`` says the client left."""
        async with self._lock:
            pieces = self.pieces()
            buffer: list[str] = []
            size = 0
            clock = time.perf_counter
            deadline = clock() + SLICE_S
            try:
                for piece in pieces:
                    if piece:
                        buffer.append(piece)
                        size += len(piece)
                        if size >= CHUNK_BYTES:
                            await write("".join(buffer).encode())
                            buffer.clear()
                            size = 0
                    if clock() >= deadline:
                        await asyncio.sleep(0)
                        if gone():
                            return
                        deadline = clock() + SLICE_S
                if buffer:
                    await write("".join(buffer).encode())
            finally:
                pieces.close()
