"""Counters and histograms of every worker, merged from prometheus_client's multiprocess files.

Each worker's values live in ``counter_<pid>.db`` / ``histogram_<pid>.db`` (the ``MmapedDict``
layout: a used-bytes header, then entries of a length, a JSON key padded to 8 bytes, a double
value and a double timestamp). ``MultiProcessCollector`` re-reads and re-parses every key on every
scrape (22 s for 10,000 models with two variants each). Here the keys are parsed once, when an
entry first appears: an index maps each file's value positions to a series, so a scrape reads
the values with one numpy gather per file and sums them with ``bincount``. Parsing yields
``None`` every few thousand entries so that the caller can serve requests in between.

Gauges (few series, and modes such as ``liveall`` that keep one series per pid) still go through
``MultiProcessCollector.merge``.
"""

from __future__ import annotations

import bisect
import contextlib
import glob
import itertools
import mmap
import os
import struct
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.exposition.text import (
    families_text,
    header,
    histogram_template,
    labels_text,
    series_name,
    value_text,
)

PARSE_BATCH = 2000  # entries between pauses while indexing
_INT = struct.Struct("i")
_FAST_KINDS = ("counter", "histogram")
_LE = b'"le": "'  # as json.dumps writes the label (a quote in any JSON string is escaped)
_LE_LENGTH = len(_LE)


class _Line:
    """One series, one line: a counter's ``_total`` (or any sample that is not a bucket)."""

    __slots__ = ("prefix", "series")

    def __init__(self, prefix: str, series: int) -> None:
        self.prefix = prefix
        self.series = series

    def text(self, values: list[float]) -> str:
        return f"{self.prefix} {value_text(values[self.series])}\n"


class _Buckets:
    """One histogram child: its buckets (ordered by bound, cumulated at render), count, sum.

    Kept small, with 40,000 of them for 10,000 models: the bucket bounds are one tuple shared by
    the family's children, the series numbers packed in bytes; and one object the garbage
    collector walks per child (more would bring a full collection of the worker nearer).
    """

    __slots__ = ("family", "labels", "les", "series", "sum_series", "template")

    def __init__(self, family: _Family, labels: str) -> None:
        self.family = family
        self.labels = labels
        self.les: tuple[str, ...] = ()
        self.series = b""  # int32 series numbers, one per bucket, in the order of ``les``
        self.sum_series: int | None = None
        self.template: str | None = None

    def bucket(self, le: str, new: Callable[[], int]) -> int:
        les = self.les
        at = len(les)
        if les and float(le) <= float(les[-1]):  # buckets are written in order: rarely needed
            at = bisect.bisect_left([float(known) for known in les], float(le))
            if at < len(les) and float(les[at]) == float(le):
                return int(memoryview(self.series).cast("i")[at])
        series = new()
        self.les = self.family.shared((*les[:at], le, *les[at:]))
        numbers = list(memoryview(self.series).cast("i"))
        numbers.insert(at, series)
        self.series = array("i", numbers).tobytes()
        self.template = None
        return series

    def text(self, values: list[float]) -> str:
        if self.template is None:
            self.template = self.family.template(self.les, bool(self.labels))
        series = memoryview(self.series).cast("i")
        counts = itertools.accumulate([values[number] for number in series])
        total = 0.0 if self.sum_series is None else values[self.sum_series]
        return self.template.format(self.labels, *counts, value_text(total))


class _Family:
    __slots__ = (
        "_shared",
        "_templates",
        "bucket_name",
        "children",
        "header",
        "histograms",
        "kind",
        "lines",
        "name",
        "sum_name",
    )

    def __init__(self, name: str, kind: str, documentation: str) -> None:
        self.name = name
        self.kind = kind
        self.bucket_name = name + "_bucket"
        self.sum_name = name + "_sum"
        shown = name + "_total" if kind == "counter" else name
        self.header = header(shown, kind, documentation)
        self.children: list[_Line | _Buckets] = []
        # Keyed by text (a string is nothing for the garbage collector to walk).
        self.lines: dict[str, _Line] = {}
        self.histograms: dict[str, _Buckets] = {}
        self._shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._templates: dict[tuple[bool, tuple[str, ...]], str] = {}

    def shared(self, les: tuple[str, ...]) -> tuple[str, ...]:
        """One tuple (and one string per bound) for every child with these buckets."""
        return self._shared.setdefault(les, les)

    def template(self, les: tuple[str, ...], labelled: bool) -> str:
        key = (labelled, les)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = histogram_template(self.name, les, labelled)
        return template


class _FileIndex:
    """Which series each value of one worker's file belongs to, as far as it has been parsed."""

    __slots__ = ("parsed", "series", "slots")

    def __init__(self) -> None:
        self.parsed = 8  # the used-bytes header and its padding
        self.series = array("i")
        self.slots = array("i")  # value position / 8


class MergedFiles:
    """Every worker's metrics from ``directory``, merged; the index lives as long as this does."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._families: dict[str, _Family] = {}
        self._files: dict[str, _FileIndex] = {}
        self._count = 0

    def live_pids(self) -> list[int]:
        """Workers with a ``live*`` gauge file: ``mark_process_dead`` removes a dead one's."""
        pids = set()
        for path in glob.glob(os.path.join(self._directory, "gauge_live*_*.db")):
            pid = os.path.basename(path)[:-3].rsplit("_", 1)[1]
            if pid.isdigit():
                pids.add(int(pid))
        return sorted(pids)

    def pieces(self) -> Iterator[str | None]:
        """The merged text, family by family; ``None`` marks a point to pause at."""
        fast: list[tuple[str, str]] = []
        others: list[str] = []
        for path in sorted(glob.glob(os.path.join(self._directory, "*.db"))):
            kind = os.path.basename(path).split("_", 1)[0]
            if kind in _FAST_KINDS:
                fast.append((path, kind))
            else:
                others.append(path)
        self._files = {path: self._files.get(path) or _FileIndex() for path, _ in fast}
        for path, kind in fast:
            with _mapped(path) as mapped:
                if mapped is not None:
                    yield from self._index(mapped, self._files[path], kind)
        totals = np.zeros(self._count)
        for path, _ in fast:
            with _mapped(path) as mapped:
                if mapped is not None:
                    totals += _gather(mapped, self._files[path], self._count)
            yield None
        values: list[float] = totals.tolist()
        for family in self._families.values():
            yield family.header
            for child in family.children:
                yield child.text(values)
        yield None
        yield from families_text(MultiProcessCollector.merge(others, accumulate=True))  # type: ignore[no-untyped-call]

    def _index(self, mapped: mmap.mmap, index: _FileIndex, kind: str) -> Iterator[None]:
        used = min(_INT.unpack_from(mapped, 0)[0], len(mapped))
        if index.parsed > used:  # a file that shrank was replaced: start over
            index.parsed, index.series, index.slots = 8, array("i"), array("i")
        pos, batch = index.parsed, 0
        unpack, add_series, add_slot = _INT.unpack_from, index.series.append, index.slots.append
        # A histogram child's buckets are written one after the other, and their keys differ
        # only in "le": the previous bucket's key without it finds the child without parsing.
        last: tuple[bytes, _Buckets] | None = None
        while pos + 4 <= used:
            length = unpack(mapped, pos)[0]
            value_at = pos + 4 + length + (8 - (length + 4) % 8)
            if value_at + 16 > used:
                break
            key = mapped[pos + 4 : pos + 4 + length]
            at = key.find(_LE) if kind == "histogram" else -1
            if at >= 0:
                start = at + _LE_LENGTH
                end = key.index(b'"', start)
                rest = key[:at] + key[end + 1 :]
                le = key[start:end].decode()
                if last is not None and last[0] == rest:
                    series = last[1].bucket(le, self._new_series)
                else:
                    series, child = self._series(key, kind)
                    last = (rest, child) if child is not None else None
            else:
                series = self._series(key, kind)[0]
            add_series(series)
            add_slot(value_at // 8)
            pos = value_at + 16
            batch += 1
            if batch == PARSE_BATCH:
                index.parsed, batch = pos, 0
                yield None
        index.parsed = pos

    def _new_series(self) -> int:
        self._count += 1
        return self._count - 1

    def _series(self, key: bytes, kind: str) -> tuple[int, _Buckets | None]:
        """The series of one entry, and the histogram child if it is a bucket."""
        metric_name, sample_name, labels, documentation = orjson.loads(key)
        family = self._families.get(metric_name)
        if family is None:
            family = self._families[metric_name] = _Family(metric_name, kind, documentation)
        if kind == "histogram":
            le = labels.pop("le", None)
            is_bucket = le is not None and sample_name == family.bucket_name
            if is_bucket or (le is None and sample_name == family.sum_name):
                text = labels_text(list(labels), list(labels.values()))
                child = family.histograms.get(text)
                if child is None:
                    child = family.histograms[text] = _Buckets(family, text)
                    family.children.append(child)
                if is_bucket:
                    return child.bucket(le, self._new_series), child
                if child.sum_series is None:
                    child.sum_series = self._new_series()
                return child.sum_series, None
            if le is not None:
                labels["le"] = le
        prefix = series_name(sample_name, labels_text(list(labels), list(labels.values())))
        line = family.lines.get(prefix)
        if line is None:
            line = family.lines[prefix] = _Line(prefix, self._new_series())
            family.children.append(line)
        return line.series, None


@contextlib.contextmanager
def _mapped(path: str) -> Iterator[mmap.mmap | None]:
    """A read-only map of one metrics file, or ``None`` if it vanished."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            mapped = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ) if size >= 8 else None
    except FileNotFoundError:
        mapped = None
    try:
        yield mapped
    finally:
        if mapped is not None:
            mapped.close()


def _gather(
    mapped: mmap.mmap, index: _FileIndex, count: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """This file's value of every series it has (0 for the others)."""
    if not index.slots:
        return np.zeros(count)
    doubles = np.frombuffer(mapped, dtype=np.float64, count=index.parsed // 8)
    values = doubles[np.frombuffer(index.slots, dtype=np.int32)]
    del doubles  # the map cannot close while an array still points into it
    series = np.frombuffer(index.series, dtype=np.int32)
    return np.bincount(series, weights=values, minlength=count).astype(np.float64, copy=False)
