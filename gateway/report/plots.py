"""The report's plots, as PNG bytes (matplotlib's Agg canvas, no pyplot and no display).

Imported only by ``gateway report``: matplotlib is the ``report`` extra and costs a worker
tens of MB, so the serving path never loads it (tests/test_no_heavy_imports.py).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterable

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gateway.report.collect import Points, Report, VariantReport
from gateway.rollout.stats import Histogram

RUNTIME_STYLES = ("-", "--", "-.", ":")


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _cdf(histogram: Histogram) -> tuple[list[float], list[float]]:
    xs, ys, seen = [], [], 0
    total = histogram.total
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        seen += count
        if math.isfinite(bound):
            xs.append(bound * 1000)
            ys.append(seen / total)
    return xs, ys


def _visible_range(histograms: Iterable[Histogram]) -> tuple[float, float] | None:
    """Milliseconds from a little below the first filled bucket to a little above the last."""
    lows, highs = [], []
    for histogram in histograms:
        filled = [i for i, count in enumerate(histogram.counts) if count]
        if not filled:
            continue
        first, last = filled[0], filled[-1]
        lows.append(histogram.bounds[first - 1] if first else histogram.bounds[0] / 2)
        top = histogram.bounds[last]
        highs.append(top if math.isfinite(top) else histogram.bounds[last - 1] * 2)
    if not lows:
        return None
    return min(lows) * 1000 / 1.5, max(highs) * 1000 * 1.5


def _styles(variants: Iterable[VariantReport]) -> dict[str, str]:
    runtimes = sorted({v.runtime for v in variants})
    return {r: RUNTIME_STYLES[i % len(RUNTIME_STYLES)] for i, r in enumerate(runtimes)}


def latency_distributions(report: Report) -> bytes:
    figure = Figure(figsize=(11, 4.2))
    styles = _styles(report.variants.values())
    for index, (title, attribute) in enumerate(
        (("backend call", "upstream"), ("end to end", "end_to_end"))
    ):
        axes = figure.add_subplot(1, 2, index + 1)
        for v in report.variants.values():
            histogram: Histogram = getattr(v, attribute)
            if histogram.total:
                xs, ys = _cdf(histogram)
                axes.step(xs, ys, where="post", linestyle=styles[v.runtime], linewidth=2,
                          label=f"{v.variant} ({v.runtime})")  # fmt: skip
        axes.set_xscale("log")
        shown = _visible_range(getattr(v, attribute) for v in report.variants.values())
        if shown is not None:
            axes.set_xlim(*shown)
        axes.set_ylim(0, 1.02)
        axes.axhline(0.99, color="grey", linewidth=0.8, linestyle=":")
        axes.set_title(f"{title}: share of requests within")
        axes.set_xlabel("milliseconds (log scale)")
        axes.grid(True, which="both", alpha=0.3)
        if index == 0:
            axes.set_ylabel("share of requests")
            axes.legend(fontsize=8, loc="lower right")
    return _png(figure)


def percentiles(report: Report) -> bytes:
    figure = Figure(figsize=(11, 3.8))
    variants = [v for v in report.variants.values() if v.upstream.total]
    for index, (title, attribute) in enumerate(
        (("backend call", "upstream"), ("end to end", "end_to_end"))
    ):
        axes = figure.add_subplot(1, 2, index + 1)
        width = 0.27
        for offset, q in enumerate((0.5, 0.95, 0.99)):
            values = [getattr(v, attribute).quantile(q) * 1000 for v in variants]
            positions = [i + (offset - 1) * width for i in range(len(variants))]
            axes.bar(positions, values, width, label=f"p{q * 100:g}")
        axes.set_xticks(range(len(variants)), [v.variant for v in variants], rotation=20)
        axes.set_title(f"{title}: percentiles (ms)")
        axes.grid(True, axis="y", alpha=0.3)
        if index == 0:
            axes.legend(fontsize=8)
    return _png(figure)


def _time_axis(axes: Axes, series: dict[str, Points], ylabel: str) -> None:
    first = min(points[0][0] for points in series.values())
    for name, points in sorted(series.items()):
        axes.plot([(t - first) / 60 for t, _ in points], [v for _, v in points], linewidth=2,
                  label=name)  # fmt: skip
    axes.set_xlabel("minutes since " + time.strftime("%H:%M", time.localtime(first)))
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)


def agreement(report: Report) -> bytes | None:
    """Agreement over time per shadow pair (Prometheus), else the window's agreement per pair."""
    if not report.pairs and not report.agreement_over_time:
        return None
    figure = Figure(figsize=(11, 3.6))
    axes = figure.add_subplot(1, 1, 1)
    if report.agreement_over_time:
        _time_axis(axes, report.agreement_over_time, "share of answers that agree")
        axes.set_title("cross-runtime agreement over time (shadow comparisons)")
    else:
        pairs = [p for p in report.pairs if p.counts.compared]
        axes.barh([f"{p.primary} / {p.shadow}" for p in pairs], [p.agreement for p in pairs])
        axes.set_xlim(0, 1)
        axes.set_xlabel("share of answers that agree")
        axes.set_title("cross-runtime agreement (shadow comparisons)")
        axes.grid(True, axis="x", alpha=0.3)
    return _png(figure)


def p99_over_time(report: Report) -> bytes | None:
    if not report.p99_over_time:
        return None
    figure = Figure(figsize=(11, 3.4))
    axes = figure.add_subplot(1, 1, 1)
    ms = {name: [(t, v * 1000) for t, v in points] for name, points in report.p99_over_time.items()}
    _time_axis(axes, ms, "backend p99, ms")
    axes.set_title("backend call p99 over time, per variant")
    return _png(figure)


def summary(report: Report) -> bytes:
    """One PNG for ``--png``: the latency distributions (and agreement, when there is some)."""
    pairs = [p for p in report.pairs if p.counts.compared]
    rows = 2 if pairs else 1
    figure = Figure(figsize=(11, 4.2 * rows))
    styles = _styles(report.variants.values())
    axes = figure.add_subplot(rows, 1, 1)
    for v in report.variants.values():
        if v.upstream.total:
            xs, ys = _cdf(v.upstream)
            axes.step(xs, ys, where="post", linestyle=styles[v.runtime], linewidth=2,
                      label=f"{v.variant} ({v.runtime})")  # fmt: skip
    axes.set_xscale("log")
    shown = _visible_range(v.upstream for v in report.variants.values())
    if shown is not None:
        axes.set_xlim(*shown)
    axes.set_title(f"{report.model}: backend call latency, share of requests within (ms)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    if pairs:
        bars = figure.add_subplot(rows, 1, 2)
        bars.barh([f"{p.primary} / {p.shadow}" for p in pairs], [p.agreement for p in pairs])
        bars.set_xlim(0, 1)
        bars.set_title("cross-runtime agreement (shadow comparisons)")
    return _png(figure)
