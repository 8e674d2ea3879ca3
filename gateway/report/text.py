"""The report as tables: the terminal's, and the rows the HTML page shows."""

from __future__ import annotations

import math
import time

from gateway.report.collect import PairReport, Report, VariantReport
from gateway.rollout.stats import Histogram

QUANTILES = (0.5, 0.95, 0.99)
VARIANT_HEADER = (
    "variant", "runtime", "version", "requests", "errors",
    "backend p50", "p95", "p99", "end-to-end p50", "p95", "p99", "accuracy",
)  # fmt: skip
PAIR_HEADER = ("primary", "shadow", "compared", "agree", "diverge", "error", "dropped",
               "max |diff| p99")  # fmt: skip
OVERHEAD_HEADER = ("runtime", "gateway overhead p50", "p95", "p99", "requests (all models)")


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.2f}"


def percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.2f}%"


def quantiles(histogram: Histogram) -> list[str]:
    return [ms(histogram.quantile(q)) for q in QUANTILES]


def variant_row(v: VariantReport, name: str | None = None) -> list[str]:
    accuracy = "-" if v.accuracy is None else f"{v.accuracy:.3f}"
    return [
        name or v.variant, v.runtime, v.version, str(v.requests), percent(v.error_rate),
        *quantiles(v.upstream), *quantiles(v.end_to_end), accuracy,
    ]  # fmt: skip


def pair_row(p: PairReport) -> list[str]:
    c = p.counts
    diff = c.max_abs_diff.quantile(0.99) if c.max_abs_diff.total else math.nan
    return [
        p.primary, p.shadow, str(c.compared), percent(p.agreement), str(c.diverge),
        str(c.error), str(c.dropped), "-" if math.isnan(diff) else f"{diff:.3g}",
    ]  # fmt: skip


def overhead_rows(report: Report) -> list[list[str]]:
    return [
        [runtime, *[f"{h.quantile(q) * 1e6:.0f}µs" for q in QUANTILES], str(h.total)]
        for runtime, h in sorted(report.overhead.items())
        if h.total
    ]


def table(header: tuple[str, ...], rows: list[list[str]], left: int = 3) -> str:
    """Columns padded to their widest cell; the first ``left`` ones are names, flushed left."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def window_text(report: Report) -> str:
    if report.since_s is None:
        return "since the replicas started"
    return f"over the last {report.since_s / 60:g} minutes"


def text(report: Report) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.generated_at))
    parts = [f"{report.model}: {window_text(report)} ({report.source}, {when}); times in ms"]
    rows = [variant_row(v) for v in report.variants.values()]
    rows += [variant_row(r, f"({r.runtime})") for r in report.runtimes.values()]
    parts.append(table(VARIANT_HEADER, rows) if rows else "no requests for this model")
    overhead = overhead_rows(report)
    if overhead:
        parts.append(table(OVERHEAD_HEADER, overhead, left=1))
    if report.pairs:
        parts.append("shadow comparisons (the same request, both answers):")
        parts.append(table(PAIR_HEADER, [pair_row(p) for p in report.pairs], left=2))
    else:
        parts.append("no shadow comparisons: no agreement between runtimes to show")
    parts += [f"note: {note}" for note in report.notes]
    return "\n\n".join(parts)
