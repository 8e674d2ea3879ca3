"""The report as one self-contained HTML page: headline numbers, the plots (PNG, inline), then
the tables. No script, no external asset: it opens from a file, a mail or a CI artefact."""

from __future__ import annotations

import base64
import html
import math
import time

from gateway.report import plots
from gateway.report.collect import Report
from gateway.report.text import (
    OVERHEAD_HEADER,
    PAIR_HEADER,
    VARIANT_HEADER,
    overhead_rows,
    pair_row,
    percent,
    variant_row,
    window_text,
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #1d2330; background: #fafbfc; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub { color: #5b6473; margin-top: 0; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1.2rem 0; }
.card { background: white; border: 1px solid #dde2ea; border-radius: 8px; padding: .8rem 1.1rem;
        min-width: 10rem; }
.card b { display: block; font-size: 1.5rem; } .card span { color: #5b6473; font-size: .85rem; }
figure { background: white; border: 1px solid #dde2ea; border-radius: 8px; margin: 1rem 0;
         padding: .6rem; } figure img { width: 100%; height: auto; }
figcaption { color: #5b6473; font-size: .85rem; }
table { border-collapse: collapse; background: white; width: 100%; font-size: .88rem; }
th, td { border-bottom: 1px solid #e6e9ef; padding: .35rem .55rem; text-align: right; }
table.names3 th:nth-child(-n+3), table.names3 td:nth-child(-n+3),
table.names2 th:nth-child(-n+2), table.names2 td:nth-child(-n+2),
table.names1 th:nth-child(1), table.names1 td:nth-child(1) { text-align: left; }
tr.runtime td { font-weight: 600; background: #f2f5f9; }
.note { color: #5b6473; font-size: .85rem; }
"""


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode()
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table(
    header: tuple[str, ...], rows: list[list[str]], classes: list[str], names: int = 3
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f'<tr class="{cls}">' + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row, cls in zip(rows, classes, strict=True)
    )
    return (
        f'<table class="names{names}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _cards(report: Report) -> str:
    requests = sum(v.requests for v in report.variants.values())
    errors = sum(v.errors for v in report.variants.values())
    compared = [p for p in report.pairs if p.counts.compared]
    agreement = min((p.agreement for p in compared), default=math.nan)
    cards = [
        (f"{requests:,}", "requests"),
        (percent(errors / requests if requests else math.nan), "5xx errors"),
        (str(len(report.runtimes)), "runtimes"),
        (str(len(report.variants)), "variants"),
        (percent(agreement), "lowest cross-runtime agreement"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f"<div class='card'><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>"
            for value, label in cards
        )
        + "</div>"
    )


def page(report: Report) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.generated_at))
    figures = [
        _img(plots.latency_distributions(report), "latency distributions",
             "Share of requests answered within a time, per variant: further left is faster; "
             "the dotted line is p99. From the gateway's histogram buckets."),
        _img(plots.percentiles(report), "latency percentiles",
             "p50, p95 and p99 per variant, of the backend call and end to end."),
    ]  # fmt: skip
    agreement, over_time = plots.agreement(report), plots.p99_over_time(report)
    later = []
    if agreement is not None:
        later.append(_img(agreement, "agreement", "How often two runtimes (or versions) gave "
                          "the same answer to the same request (shadow traffic)."))  # fmt: skip
    if over_time is not None:
        figures.append(
            _img(over_time, "p99 over time", "Backend p99 per variant, from Prometheus.")
        )
    rows = [variant_row(v) for v in report.variants.values()]
    rows += [variant_row(r, f"({r.runtime})") for r in report.runtimes.values()]
    classes = ["variant"] * len(report.variants) + ["runtime"] * len(report.runtimes)
    sections = [
        f"<h1>{html.escape(report.model)}: TensorFlow Serving, TorchServe and friends</h1>",
        f'<p class="sub">{html.escape(window_text(report))} · {html.escape(report.source)} · '
        f"{html.escape(when)}</p>",
        _cards(report),
        "<h2>Latency</h2>",
        *figures,
        "<h2>Per variant and runtime (ms)</h2>",
        _table(VARIANT_HEADER, rows, classes),
    ]
    overhead = overhead_rows(report)
    if overhead:
        sections += ["<h2>What the gateway adds</h2>",
                     _table(OVERHEAD_HEADER, overhead, ["variant"] * len(overhead), 1)]  # fmt: skip
    sections.append("<h2>Agreement between runtimes</h2>")
    if report.pairs:
        sections += later
        sections.append(
            _table(
                PAIR_HEADER, [pair_row(p) for p in report.pairs], ["variant"] * len(report.pairs), 2
            )
        )
    else:
        sections.append('<p class="note">No shadow comparisons in this window.</p>')
    sections += [f'<p class="note">{html.escape(note)}</p>' for note in report.notes]
    body = "\n".join(sections)
    title = html.escape(f"{report.model} report")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
