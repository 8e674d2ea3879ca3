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


def _children(metric: Any) -> list[tuple[tuple[str, ...], Any]]:
    if not metric._labelnames:  # a metric without labels is its own only child
        return [((), metric)]
    with metric._lock:
        return list(metric._metrics.items())


class LocalCounter:
    def __init__(self, counter: Counter) -> None:
        (described,) = counter.describe()
        self._name = described.name + "_total"
        self._labelnames: tuple[str, ...] = counter._labelnames
        self._header = header(self._name, "counter", described.documentation)
        self._counter = counter
        self._labels: dict[tuple[str, ...], str] = {}

    def pieces(self) -> Iterator[str]:
        children = _children(self._counter)
        if not children:
            return
        yield self._header
        name, labels = self._name, self._labels
        for values, child in children:
            text = labels.get(values)
            if text is None:
                text = labels[values] = series_name(name, labels_text(self._labelnames, values))
            yield f"{text} {value_text(child._value.get())}\n"


class LocalHistogram:
    def __init__(self, histogram: Histogram) -> None:
        (described,) = histogram.describe()
        self._labelnames: tuple[str, ...] = histogram._labelnames
        self._header = header(described.name, "histogram", described.documentation)
        les = [floatToGoString(b) for b in histogram._upper_bounds]  # type: ignore[no-untyped-call]
        self._template = histogram_template(described.name, les, bool(self._labelnames))
        self._histogram = histogram
        self._labels: dict[tuple[str, ...], str] = {}

    def pieces(self) -> Iterator[str]:
        children = _children(self._histogram)
        if not children:
            return
        yield self._header
        template, accumulate = self._template.format, itertools.accumulate
        for values, child in children:
            labels = self._labels.get(values)
            if labels is None:
                labels = self._labels[values] = labels_text(self._labelnames, values)
            counts = accumulate([bucket._value for bucket in child._buckets])
            yield template(labels, *counts, value_text(child._sum.get()))
