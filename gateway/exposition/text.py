"""Pieces of the Prometheus text exposition format (version 0.0.4), written by hand for speed.

``prometheus_client.generate_latest`` builds a ``Sample`` with a label dict for every line; with
10,000 models that is about a million objects and seconds per scrape. These helpers format a
series' labels once and its values as plain floats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def value_text(value: float) -> str:
    """A sample value as Prometheus writes it (``+Inf``, ``-Inf``, ``NaN``; else Python's repr)."""
    if math.isfinite(value):
        return repr(float(value))
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def labels_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``a="1",b="2"`` (no braces), so that a histogram can append its ``le``."""
    return ",".join(
        f'{name}="{_escape_label(value)}"' for name, value in zip(names, values, strict=True)
    )


def series_name(name: str, labels: str) -> str:
    """``name{labels}``, or the bare name when there are no labels."""
    return f"{name}{{{labels}}}" if labels else name


def histogram_template(name: str, les: Sequence[str], labelled: bool) -> str:
    """One histogram child's lines as a ``str.format`` template.

    Arguments: the labels text, each bucket's cumulative count (finite floats, so ``!r``), and the
    sum as text. One ``format`` call per child is several times faster than a line at a time.
    """
    lines = []
    for position, le in enumerate(les, start=1):
        labels = f'{{0}},le="{le}"' if labelled else f'le="{le}"'
        lines.append(f"{name}_bucket{{{{{labels}}}}} {{{position}!r}}\n")
    where = "{{{0}}}" if labelled else ""
    lines.append(f"{name}_count{where} {{{len(les)}!r}}\n")
    lines.append(f"{name}_sum{where} {{{len(les) + 1}}}\n")
    return "".join(lines)


def header(name: str, kind: str, documentation: str) -> str:
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


def family_text(metric: Metric) -> str:
    """Any collected family (a small one: gauges, process statistics), samples as they are."""
    name = metric.name + "_total" if metric.type == "counter" else metric.name
    kind = "untyped" if metric.type == "unknown" else metric.type
    lines = [header(name, kind, metric.documentation)]
    for sample in metric.samples:
        labels = labels_text(list(sample.labels), list(sample.labels.values()))
        lines.append(f"{series_name(sample.name, labels)} {value_text(sample.value)}\n")
    return "".join(lines)


def families_text(metrics: Iterable[Metric]) -> Iterable[str]:
    for metric in metrics:
        if metric.samples:
            yield family_text(metric)
