"""The command-line flags: the ones of ``tensorflow_model_server`` the stand-in understands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from deploy.local.tfserving_standin.identity import STANDIN_BANNER


def _flag_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.tfserving_standin",
        description=f"{STANDIN_BANNER}: TF Serving's gRPC and REST APIs over SavedModels.",
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="REST port (0: no REST)")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30000)
    parser.add_argument("--rest_api_num_threads", type=int, default=8)
    parser.add_argument("--grpc_max_threads", type=int, default=8)
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_base_path", default="")
    parser.add_argument("--model_config_file", default="")
    parser.add_argument("--monitoring_config_file", default="")
    parser.add_argument(
        "--allow_version_labels_for_unavailable_models",
        type=_flag_bool,
        nargs="?",
        const=True,
        default=False,
    )
    parser.add_argument("--max_num_load_retries", type=int, default=5)
    parser.add_argument("--load_retry_interval_micros", type=int, default=60_000_000)
    # The stand-in's own flag (the real server has none): the address both APIs listen on.
    parser.add_argument(
        "--standin_bind_address",
        default="127.0.0.1",
        help="interface both APIs bind (stand-in only; 0.0.0.0 or :: for every interface)",
    )
    parser.add_argument("--version", type=_flag_bool, nargs="?", const=True, default=False)
    return parser.parse_args(argv)
