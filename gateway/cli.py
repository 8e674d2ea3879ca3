"""``gateway serve --config FILE`` and ``gateway validate FILE``."""

from __future__ import annotations

import argparse
import logging
import sys

from gateway import __version__
from gateway.config import ConfigError, GatewayConfig, load_config


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
    if args.workers is not None:
        server = config.server.model_copy(update={"workers": args.workers})
        config = config.model_copy(update={"server": server})
    from gateway.server import run

    return run(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--workers", type=int, default=None, help="override server.workers")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=_serve)
    validate = commands.add_parser("validate", help="check a config file and exit")
    validate.add_argument("file")
    validate.set_defaults(handler=_validate)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
