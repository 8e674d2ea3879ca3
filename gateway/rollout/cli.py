"""``gateway rollout ...``: run the controller, and start, watch and steer rollouts through it.

``register(commands)`` adds the ``rollout`` command to the gateway's command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gateway.api_call import ApiRefused, ApiUnreachable, json_call
from gateway.rollout.plan import PlanError, load_plan, parse_duration
from gateway.rollout.state import Rollout

DEFAULT_CONTROLLER = "http://127.0.0.1:8003"
DEFAULT_ADMIN = "http://127.0.0.1:8002"


class CommandError(Exception):
    """One line for the terminal, and exit 1."""


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    token = os.environ.get("GATEWAY_ADMIN_TOKEN", "").strip() or None
    try:
        return json_call(args.controller.rstrip("/") + path, method, body, token, args.timeout)
    except ApiRefused as error:
        raise CommandError(f"{method} {path}: {error}") from None
    except ApiUnreachable as error:
        raise CommandError(
            f"cannot reach the rollout controller at {args.controller}: {error.reason} "
            "(is `gateway rollout controller` running? --controller URL)"
        ) from None


def _show(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    from gateway.rollout.show import status_text

    print(status_text(Rollout.model_validate(doc)))


def _quoted(model: str) -> str:
    return urllib.parse.quote(model, safe="")


def _start(args: argparse.Namespace) -> int:
    plan: dict[str, Any] = {}
    if args.plan:
        plan = load_plan(args.plan).model_dump(mode="json", exclude_unset=True)
    if args.skip_shadow:
        from gateway.rollout.plan import DEFAULT_STEPS

        steps = plan.get("steps") or [s.model_dump(mode="json") for s in DEFAULT_STEPS]
        plan["steps"] = [s for s in steps if s.get("kind") != "shadow"]
    body = {"candidates": args.candidate, "plan": plan}
    _show(args, call(args, "POST", f"/rollouts/{_quoted(args.model)}", body))
    return 0


def _status(args: argparse.Namespace) -> int:
    if args.model:
        _show(args, call(args, "GET", f"/rollouts/{_quoted(args.model)}"))
        return 0
    rollouts = call(args, "GET", "/rollouts")["rollouts"]
    if args.json:
        print(json.dumps(rollouts, indent=1))
    for doc in [] if args.json else rollouts:
        rollout = Rollout.model_validate(doc)
        print(f"{rollout.model:<20} {rollout.phase:<13} {rollout.step_name()}")
    if not rollouts and not args.json:
        print("no rollouts")
    return 0


def _command(args: argparse.Namespace) -> int:
    _show(args, call(args, "POST", f"/rollouts/{_quoted(args.model)}/{args.rollout_command}"))
    return 0


def _controller(args: argparse.Namespace) -> int:
    from gateway.rollout.daemon import DaemonOptions, run
    from gateway.rollout.store import StoreError

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host, _, port = args.listen.rpartition(":")
    options = DaemonOptions(
        state_dir=args.state_dir,
        admin_url=args.admin,
        host=host or "127.0.0.1",
        port=int(port),
        prometheus=args.prometheus,
        scrape=tuple(args.scrape or ()),
        token_file=args.token_file,
        sample_every_s=float(parse_duration(args.sample_every)),
    )
    try:
        return run(options)
    except (StoreError, OSError) as error:
        raise CommandError(str(error)) from None


def _handle(args: argparse.Namespace) -> int:
    try:
        code: int = args.rollout_handler(args)
    except (CommandError, PlanError) as error:
        print(f"gateway rollout: {error}", file=sys.stderr)
        return 1
    return code


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controller",
        default=os.environ.get("GATEWAY_ROLLOUT_URL", DEFAULT_CONTROLLER),
        metavar="URL",
        help="the rollout controller (default: $GATEWAY_ROLLOUT_URL or %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the state as JSON")
    parser.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)


DESCRIPTION = """Walk candidate variants of a model through shadow and canary steps, judged on
the gateway's own metrics, then promote them or roll them back through the admin API. The
controller runs on its own (`gateway rollout controller`); the other commands talk to it, with
the admin token from GATEWAY_ADMIN_TOKEN."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gateway rollout`` to the gateway's command line."""
    rollout = commands.add_parser(
        "rollout",
        help="run and steer progressive rollouts (canary, shadow)",
        description=DESCRIPTION,
    )
    rollout.set_defaults(handler=_handle)
    sub = rollout.add_subparsers(dest="rollout_command", required=True, metavar="COMMAND")
    controller = sub.add_parser(
        "controller",
        help="run the controller (its loop and HTTP API)",
        description="Run the rollout controller: evaluate every rollout each interval of its "
        "plan, act through the gateway's admin API, serve the state and the analysis over HTTP.",
    )
    controller.add_argument("--state-dir", type=Path, required=True, metavar="DIR")
    controller.add_argument("--listen", default="127.0.0.1:8003", metavar="HOST:PORT")
    controller.add_argument(
        "--admin",
        default=DEFAULT_ADMIN,
        metavar="URL",
        help="the gateway's admin API (default: %(default)s)",
    )
    controller.add_argument(
        "--prometheus", metavar="URL", help="a Prometheus that scrapes every gateway replica"
    )
    controller.add_argument(
        "--scrape",
        action="append",
        metavar="URL",
        help="a replica's /metrics (repeat for each), without Prometheus",
    )
    controller.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="the admin token, when GATEWAY_ADMIN_TOKEN is not set",
    )
    controller.add_argument(
        "--sample-every",
        default="10s",
        metavar="DURATION",
        help="without Prometheus: how often a model asked for an analysis is scraped",
    )
    controller.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    controller.set_defaults(rollout_handler=_controller)
    start = sub.add_parser(
        "start",
        help="start a rollout of candidate variants",
        description="Start a rollout: the candidates (deployed, at weight 0) go through the "
        "plan's steps against the variants that take the model's traffic now.",
    )
    start.add_argument("model", metavar="MODEL")
    start.add_argument(
        "--candidate",
        nargs="+",
        action="extend",
        required=True,
        metavar="VARIANT",
        help="the variants to roll out",
    )
    start.add_argument("--plan", metavar="FILE", help="YAML or JSON plan (default: the default)")
    start.add_argument("--skip-shadow", action="store_true", help="leave out the shadow step")
    _client_options(start)
    start.set_defaults(rollout_handler=_start)
    status = sub.add_parser(
        "status",
        help="show a rollout (or list them)",
        description="Show a rollout's state, its gates and its history (without MODEL: list).",
    )
    status.add_argument("model", nargs="?", metavar="MODEL")
    _client_options(status)
    status.set_defaults(rollout_handler=_status)
    for name, text in (
        ("pause", "stop advancing (failed gates still roll back)"),
        ("resume", "advance again after a pause"),
        ("promote", "promote the candidates now, skipping the remaining steps"),
        ("abort", "roll back now: candidates disabled, the baseline restored"),
    ):
        command = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}.")
        command.add_argument("model", metavar="MODEL")
        _client_options(command)
        command.set_defaults(rollout_handler=_command)
