"""The demos' shared command line: where the stack is, how much load, what to leave behind."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.local import stack
from deploy.local.demos.flow import Stack, local_stack, read_token
from gateway.rollout.cli import DEFAULT_ADMIN, DEFAULT_CONTROLLER


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config", type=Path, default=stack.REPO / "deploy/local/gateway.yaml",
        help="the running gateway's config: its HTTP and gRPC ports (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--controller", default=DEFAULT_CONTROLLER, metavar="URL",
        help="the rollout controller (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--admin", default=DEFAULT_ADMIN, metavar="URL",
        help="the gateway's admin API (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--token-file", type=Path, default=stack.RUN_DIR / stack.ADMIN_TOKEN, metavar="FILE",
        help="the admin token, when GATEWAY_ADMIN_TOKEN is not set (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=float, default=15.0, help="requests a second per client protocol"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the model as the demo ends it (else: restored)"
    )
    parser.add_argument(
        "--skip-shadow", action="store_true",
        help="leave the plan's shadow step out (a gateway without shadow traffic)",
    )  # fmt: skip
    return parser


def stack_of(args: argparse.Namespace) -> Stack:
    return local_stack(args.config, args.controller, args.admin, read_token(args.token_file))
