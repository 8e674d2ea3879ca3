"""The ``gateway`` command: ``gateway serve --config FILE`` and ``gateway validate FILE``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gateway import __version__
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.control.cli import register as register_control
from gateway.report.cli import register as register_report
from gateway.rollout.cli import register as register_rollout


def _load(path: str) -> GatewayConfig | None:
    try:
        return load_config(path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return None


def _validate(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return 1
    variants = sum(len(model.variants) for model in config.models.values())
    print(
        f"{args.file}: ok ({len(config.models)} models, {variants} variants, "
        f"{len(config.backends)} backends)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = _load(args.config)
    if config is None:
        return 1
    from gateway.control.plane import startup_config

    try:
        config = startup_config(Path(args.config), config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    if args.workers is not None:
        server = config.server.model_copy(update={"workers": args.workers})
        config = config.model_copy(update={"server": server})
    from gateway.server import run

    return run(config, Path(args.config))


DESCRIPTION = """One front door over TF Serving, TorchServe and Open Inference Protocol servers,
routing each request by model, version and weighted traffic split."""
EPILOG = """examples:
  gateway validate deploy/local/gateway.yaml
  gateway serve --config deploy/local/gateway.yaml
  gateway routes digits                        (the admin API; token: GATEWAY_ADMIN_TOKEN)
  gateway weights digits tf-v1=90 tf-v3=10

Environment variables override the file: GATEWAY_SERVER__WORKERS=4 sets server.workers."""


def parser() -> argparse.ArgumentParser:
    """The command line: ``serve`` and ``validate``, with help meant to be read in a terminal."""
    root = argparse.ArgumentParser(
        prog="gateway",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway: its HTTP and gRPC front ends in server.workers processes, "
        "until SIGTERM or Ctrl-C (in-flight requests get server.graceful_shutdown_s to finish).",
    )
    serve.add_argument("--config", required=True, metavar="FILE", help="YAML (or JSON) config")
    serve.add_argument("--workers", type=int, metavar="N", help="override server.workers")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: %(default)s",
    )
    serve.set_defaults(handler=_serve)
    validate = commands.add_parser(
        "validate",
        help="check a config file and exit",
        description="Check a config file, with the GATEWAY_* environment overrides applied, and "
        "exit: 0 if the gateway would accept it, 1 with one line per problem if not.",
    )
    validate.add_argument("file", metavar="FILE", help="YAML (or JSON) config")
    validate.set_defaults(handler=_validate)
    for register in (register_control, register_rollout, register_report):
        register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
