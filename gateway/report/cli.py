"""``gateway report MODEL``: the live TensorFlow-vs-PyTorch report, as a table and a page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.rollout.plan import parse_duration
from gateway.rollout.sources import MetricsUnavailable

DEFAULT_SCRAPE = "http://127.0.0.1:8000/metrics"


def _report(args: argparse.Namespace) -> int:
    from gateway.report import collect
    from gateway.report.loadtest import LoadtestReportError, add_accuracy
    from gateway.report.text import text

    try:
        since = float(parse_duration(args.since))
        if args.prometheus:
            report = collect.from_prometheus(args.prometheus, args.model, since)
        else:
            report = collect.from_scrape(args.scrape or [DEFAULT_SCRAPE], args.model)
        if args.loadtest_report:
            add_accuracy(report, args.loadtest_report)
    except (MetricsUnavailable, LoadtestReportError, ValueError) as error:
        print(f"gateway report: {error}", file=sys.stderr)
        return 1
    print(text(report))
    if args.html or args.png:
        try:
            from gateway.report import html, plots
        except ImportError as error:  # matplotlib is the `report` extra
            print(f"gateway report: {error}: pip install 'gateway[report]'", file=sys.stderr)
            return 1
        if args.html:
            args.html.write_text(html.page(report))
            print(f"\nwrote {args.html}")
        if args.png:
            args.png.write_bytes(plots.summary(report))
            print(f"wrote {args.png}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gateway report`` to the gateway's command line."""
    report = commands.add_parser(
        "report",
        help="per runtime and variant: requests, errors, latency, agreement, accuracy",
        description="Report on one model from live metrics, per runtime and variant: requests, "
        "error rate, p50/p95/p99 of the backend call and end to end, the gateway's own "
        "overhead, agreement between runtimes from shadow comparisons, and accuracy from a "
        "load test's labelled digits. A table here; --html writes a page with plots.",
    )
    report.add_argument("model", metavar="MODEL")
    report.add_argument(
        "--since",
        default="1h",
        metavar="DURATION",
        help="window with --prometheus (default: %(default)s)",
    )
    report.add_argument("--prometheus", metavar="URL", help="a Prometheus scraping the gateway")
    report.add_argument(
        "--scrape",
        action="append",
        metavar="URL",
        help=f"a replica's /metrics, repeatable (default: {DEFAULT_SCRAPE})",
    )
    report.add_argument(
        "--loadtest-report",
        type=Path,
        metavar="FILE",
        help="accuracy per variant from loadtests/reports/loadtest_variants.json",
    )
    report.add_argument("--html", type=Path, metavar="FILE", help="write the page with plots")
    report.add_argument("--png", type=Path, metavar="FILE", help="write the plots as one PNG")
    report.set_defaults(handler=_report)
