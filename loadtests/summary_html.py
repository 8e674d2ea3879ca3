"""Our own HTML report beside Locust's: the SLO verdict, then per endpoint, variant and runtime
what was served, how fast, with how many failures, and how accurately.

Locust's report is a React page of its own statistics; this one is static HTML from the same
verdict the runner prints (``judge.Verdict``), and links to Locust's for the charts.
"""

from __future__ import annotations

import math
from html import escape

from loadtests.judge import Verdict
from loadtests.variant_stats import NO_VARIANT, VariantStats

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.verdict { display: inline-block; padding: .3em .8em; border-radius: 4px; color: #fff;
           font-weight: bold; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
table { border-collapse: collapse; margin-top: .5em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
td.miss { color: #c62828; font-weight: bold; } td.ok { color: #2e7d32; }
"""


def _number(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}g}"


def _cells(values: list[str], tag: str = "td") -> str:
    return "".join(f"<{tag}>{escape(v)}</{tag}>" for v in values)


def _result(missed: str) -> str:
    if missed:
        return f'<td class="miss">FAIL: {escape(missed)}</td>'
    return '<td class="ok">PASS</td>'


def _served(name: str, s: VariantStats) -> list[str]:
    return [
        name, s.runtime, s.version, str(s.requests), str(s.failures),
        _number(s.percentile_ms(0.5)), _number(s.percentile_ms(0.99)), str(s.digits),
        "-" if math.isnan(s.accuracy) else f"{s.accuracy:.3f}", str(s.mismatched),
    ]  # fmt: skip


SERVED_HEADER = [
    "", "runtime", "version", "requests", "failures", "p50 ms", "p99 ms", "digits",
    "accuracy", "not the model's output",
]  # fmt: skip


def render(verdict: Verdict, title: str, about: str, locust_report: str | None) -> str:
    """The whole page; ``about`` says what ran (load, host, SLO file)."""
    state = "pass" if verdict.passed else "fail"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>",
        f"<p>{escape(about)}</p>",
        f'<p><span class="verdict {state}">SLO {state.upper()}</span></p>',
    ]
    if verdict.misses:
        items = "".join(f"<li>{escape(miss)}</li>" for miss in verdict.misses)
        parts.append(f"<ul>{items}</ul>")
    if locust_report:
        parts.append(f'<p>Charts and every request: <a href="{escape(locust_report)}">'
                     f"Locust's report</a>.</p>")  # fmt: skip
    parts.append("<h2>Endpoints</h2><table><tr>")
    parts.append(_cells(["endpoint", "requests", "p50 ms", "≤", "p99 ms", "≤", "failures",
                         "≤", "not the model's output", "result"], "th"))  # fmt: skip
    parts.append("</tr>")
    for row in verdict.endpoints:
        s, limits = row.stats, row.limits
        ratio = "-" if math.isnan(s.failure_ratio) else f"{s.failure_ratio:.2%}"
        values = [
            row.key, str(s.requests), _number(s.p50_ms), _number(limits.p50_ms),
            _number(s.p99_ms), _number(limits.p99_ms), ratio,
            f"{limits.max_failure_ratio:.1%}", str(s.mismatches),
        ]  # fmt: skip
        parts.append(f"<tr>{_cells(values)}{_result('; '.join(row.missed))}</tr>")
    parts.append("</table><h2>Variants (x-gateway-variant)</h2><table><tr>")
    parts.append(_cells(["variant", *SERVED_HEADER[1:], "accuracy ≥", "result"], "th") + "</tr>")
    for vrow in verdict.variants:
        values = [*_served(vrow.name, vrow.stats), f"{vrow.min_accuracy:g}"]
        parts.append(f"<tr>{_cells(values)}{_result(vrow.missed)}</tr>")
    parts.append("</table><h2>Runtimes</h2><table><tr>")
    parts.append(_cells(["runtime", *SERVED_HEADER[3:]], "th") + "</tr>")  # no runtime, version
    rows = list(verdict.runtimes.items())
    if NO_VARIANT in verdict.all_variants:
        rows.append(("(no variant)", verdict.all_variants[NO_VARIANT]))
    for name, stats in rows:
        values = _served(name, stats)
        parts.append(f"<tr>{_cells([values[0], *values[3:]])}</tr>")
    parts.append(
        "</table><p>Accuracy is the model's, against the labels; an answer that is not the "
        "served version's own output (model_store/digits_reference.npz) is a failure.</p>"
        "</body></html>\n"
    )
    return "".join(parts)
