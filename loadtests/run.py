"""Headless load test with SLOs: ``python -m loadtests.run`` (``make loadtest``).

Runs Locust on ``loadtests/locustfile.py`` in a child process for a bounded time, with every
user class (or those of ``--endpoints``), and shows how far along it is (a line every few
seconds, from the snapshots Locust's process appends to ``loadtest_progress.jsonl``). Locust's
CSV and HTML reports and the statistics per variant go to ``--reports``; then the runner prints
each endpoint's p50, p99 and failure ratio and each variant's accuracy against the SLOs
(``--slo`` file, then the flags), and writes the same verdict as ``loadtest_summary.html``.
Exits 0 when every objective is met, 1 when one is missed, 2 when the run itself failed.
Arguments after ``--`` go to Locust as they are.

This process never imports Locust: gevent's monkey-patching stays in the child.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtests import summary_html
from loadtests.endpoints import ENDPOINTS
from loadtests.judge import judge, read_results
from loadtests.profiles import SHAPES
from loadtests.progress import JsonLinesTail, Progress
from loadtests.slo import DEFAULT_PATH, SloError, load_slo

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
REPORTS = REPO / "loadtests" / "reports"
PREFIX = "loadtest"
STOP_TIMEOUT_S = 5  # users finish their request in flight, then stop
GRACE_S = 60  # Locust's start-up and report writing, beyond the run time
_SPAN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``2m``, ``1m30s`` or ``1h`` (as Locust's ``--run-time``)."""
    match = _SPAN.match(text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 2m, 1m30s)")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def endpoint_keys(text: str) -> list[str]:
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in ENDPOINTS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown endpoint {unknown[0] if unknown else text!r} (known: {', '.join(ENDPOINTS)})"
        )
    return keys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.run", description=__doc__.split("\n\n")[1]
    )
    target = p.add_argument_group("target and load")
    target.add_argument("--host", default="http://127.0.0.1:8000", help="the gateway's HTTP URL")
    target.add_argument("--grpc-target", default="127.0.0.1:8001", help="its gRPC host:port")
    target.add_argument("--users", type=int, default=12, help="peak users (default %(default)s)")
    target.add_argument("--spawn-rate", type=float, default=12.0, help="users started per second")
    target.add_argument("--run-time", type=parse_duration, default=60.0, help="e.g. 30s, 2m")
    target.add_argument("--load-shape", choices=SHAPES, default="constant")
    target.add_argument(
        "--endpoints",
        type=endpoint_keys,
        default=list(ENDPOINTS),
        help=f"comma-separated, of: {', '.join(ENDPOINTS)} (default: all)",
    )
    target.add_argument("--batch-size", type=int, default=1, help="digits per request")
    target.add_argument("--user-rate", type=float, default=10.0, help="requests/s per user, 0: max")
    target.add_argument(
        "--anonymous-share", type=float, default=0.25, help="share of requests without x-user-id"
    )
    objectives = p.add_argument_group("objectives (flags override --slo for every endpoint)")
    objectives.add_argument("--slo", type=Path, default=DEFAULT_PATH, help="YAML file of SLOs")
    objectives.add_argument("--p50-ms", type=float, help="median response time, at most")
    objectives.add_argument("--p99-ms", type=float, help="99th percentile, at most")
    objectives.add_argument("--max-failure-ratio", type=float, help="failures / requests, at most")
    objectives.add_argument("--min-accuracy", type=float, help="per variant, at least")
    p.add_argument("--reports", type=Path, default=REPORTS, help="directory for the reports")
    p.add_argument("locust_args", nargs="*", help="after --: more arguments for Locust")
    return p


def locust_command(args: argparse.Namespace, prefix: Path) -> list[str]:
    classes = [ENDPOINTS[key].user_class for key in args.endpoints]
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", args.host, "--grpc-target", args.grpc_target,
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{args.run_time:g}s", "--stop-timeout", str(STOP_TIMEOUT_S),
        "--load-shape", args.load_shape, "--batch-size", str(args.batch_size),
        "--user-rate", str(args.user_rate), "--anonymous-share", str(args.anonymous_share),
        "--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary",
        "--exit-code-on-error", "0",  # failures are judged against the SLOs below
        *args.locust_args, *classes,
    ]  # fmt: skip


def run_locust(command: list[str], prefix: Path, run_time_s: float) -> int | None:
    """Locust's exit code, showing its snapshots as they come; None if it overran its time."""
    progress = Progress("loadtest", run_time_s)
    snapshots = JsonLinesTail(Path(f"{prefix}_progress.jsonl"))
    deadline = time.monotonic() + run_time_s + STOP_TIMEOUT_S + GRACE_S
    locust = subprocess.Popen(command, cwd=REPO)
    try:
        while True:
            try:
                code = locust.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
            for doc in snapshots.new():
                progress.at(min(float(doc["elapsed_s"]), run_time_s), _snapshot_line(doc))
            if code is not None:
                progress.finish(f"Locust exited with {code}")
                return code
            if time.monotonic() > deadline:
                locust.kill()
                locust.wait()
                return None
    except KeyboardInterrupt:  # Locust got the SIGINT too: let it write its reports
        locust.wait(timeout=30)
        raise


def _snapshot_line(doc: dict[str, Any]) -> str:
    return (
        f"{doc['users']} users, {doc['requests']:,} requests, {doc['failures']:,} failures, "
        f"{doc['rps']:g} req/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        slo = load_slo(args.slo).overridden(
            args.p50_ms, args.p99_ms, args.max_failure_ratio, args.min_accuracy
        )
    except SloError as error:
        print(f"bad SLO file: {error}", file=sys.stderr)
        return 2
    args.reports.mkdir(parents=True, exist_ok=True)
    for previous in args.reports.glob(f"{PREFIX}*"):  # never judge an older run's files
        previous.unlink()
    prefix = args.reports.resolve() / PREFIX
    try:
        code = run_locust(locust_command(args, prefix), prefix, args.run_time)
    except KeyboardInterrupt:
        print(f"\ninterrupted: what was measured is in {prefix}_*", file=sys.stderr)
        return 130
    if code is None:
        print(f"Locust did not finish within {args.run_time:g}s + {GRACE_S}s", file=sys.stderr)
        return 2
    if code != 0:
        print(f"Locust failed (exit code {code})", file=sys.stderr)
        return 2
    try:
        results = read_results(str(prefix))
    except (OSError, KeyError, ValueError) as error:
        print(f"cannot read Locust's reports at {prefix}_*: {error}", file=sys.stderr)
        return 2
    verdict = judge(results, slo, [ENDPOINTS[key] for key in args.endpoints])
    about = f"{args.run_time:g}s of {args.load_shape} load on {args.host}, SLOs from {args.slo}"
    summary = Path(f"{prefix}_summary.html")
    summary.write_text(summary_html.render(verdict, "digits load test", about, f"{PREFIX}.html"))
    print(f"\nSLOs ({args.slo}) for {args.run_time:g}s of {args.load_shape} load on {args.host}")
    print(verdict.table)
    print(f"\nreports: {summary} (the verdict), {prefix}.html (Locust's), {prefix}_stats.csv, ")
    print(f"         {prefix}_variants.json, {prefix}_progress.jsonl")
    if verdict.passed:
        print("SLO PASS")
        return 0
    print(f"SLO FAIL, {len(verdict.misses)} missed:")
    for miss in verdict.misses:
        print(f"  {miss}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
