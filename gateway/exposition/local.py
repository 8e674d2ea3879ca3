"""Counters and histograms of this process, read child by child (one worker, no metric files).

``Metric.collect()`` would build every sample of a family at once (1.6 s for a histogram with
20,000 children); instead each child is read and formatted on its own, so that the caller can
pause between children. This reads prometheus_client's child objects (``_metrics``, ``_value``,
``_buckets``, ``_sum``), which its public API does not expose;
``tests/exposition/test_render.py`` checks the result against ``generate_latest`` so that an
upgrade that moves them fails loudly. Bucket values are read without their locks (a third of
the time): every writer runs on the event loop's thread, the one that renders.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.utils import floatToGoString

from gateway.exposition.text import (
    header,
    histogram_template,
    labels_text,
    series_name,
    value_text,
)


def _children(metric: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each child with its label values, as of the call.

    The keys are copied, not the items: a scrape lasts many garbage collections, and 20,000 new
    tuples surviving them would count towards the next full collection, which walks every metric
    child of the worker (400 ms with 10,000 models).
    """
    if not metric._labelnames:  # a metric without labels is its own only child
        yield (), metric
        return
    children = metric._metrics
    with metric._lock:
        keys = list(children)
    for key in keys:
        yield key, children[key]


class _LocalFamily:
    """A labelled metric's header, label names, and each child's labels text once formatted."""

    def __init__(self, metric: Counter | Histogram, kind: str) -> None:
        (described,) = metric.describe()
        self._name = described.name + "_total" if kind == "counter" else described.name
        self._header = header(self._name, kind, described.documentation)
        self._labelnames: tuple[str, ...] = metric._labelnames
        self._metric = metric
        self._labels: dict[tuple[str, ...], str] = {}

    def _labels_of(self, values: tuple[str, ...]) -> str:
        text = self._labels.get(values)
        if text is None:
            text = self._labels[values] = labels_text(self._labelnames, values)
        return text


class LocalCounter(_LocalFamily):
    def __init__(self, counter: Counter) -> None:
        super().__init__(counter, "counter")

    def pieces(self) -> Iterator[str]:
        if not self._metric._labelnames or self._metric._metrics:
            yield self._header
        name = self._name
        for values, child in _children(self._metric):
            labels = self._labels_of(values)
            yield f"{series_name(name, labels)} {value_text(child._value.get())}\n"


class LocalHistogram(_LocalFamily):
    def __init__(self, histogram: Histogram) -> None:
        super().__init__(histogram, "histogram")
        les = [floatToGoString(b) for b in histogram._upper_bounds]  # type: ignore[no-untyped-call]
        self._template = histogram_template(self._name, les, bool(self._labelnames))

    def pieces(self) -> Iterator[str]:
        if not self._metric._labelnames or self._metric._metrics:
            yield self._header
        template, accumulate = self._template.format, itertools.accumulate
        for values, child in _children(self._metric):
            counts = accumulate([bucket._value for bucket in child._buckets])
            yield template(self._labels_of(values), *counts, value_text(child._sum.get()))
