"""The command: ``--version``, or load every configured model and serve it until stopped."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence

import tensorflow as tf
from google.protobuf import text_format

from deploy.local.tfserving_standin.config import model_server_config, prometheus_path
from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.errors import ServingError, StartupError
from deploy.local.tfserving_standin.flags import parse_args
from deploy.local.tfserving_standin.identity import STANDIN_VERSION, announce, log
from deploy.local.tfserving_standin.manager import LoadRetries, ServableManager
from deploy.local.tfserving_standin.metrics import Metrics
from deploy.local.tfserving_standin.servables import load_servable
from deploy.local.tfserving_standin.server import serve
from gateway.runtimes.model_server_config import ModelConfigError


def main(argv: Sequence[str] | None = None) -> int:
    announce()
    args = parse_args(argv)
    if args.version:
        print(f"Stand-in version: {STANDIN_VERSION}\nTensorFlow Library: {tf.__version__}")
        return 0
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    started = time.monotonic()
    try:
        metrics_path = prometheus_path(args.monitoring_config_file)
        config = model_server_config(args.model_config_file, args.model_name, args.model_base_path)
        retries = LoadRetries(args.max_num_load_retries, args.load_retry_interval_micros / 1e6)
        manager = ServableManager(load_servable, retries)
        core = ServerCore(manager, args.allow_version_labels_for_unavailable_models)
        try:
            core.reload(config)
            log.info("All models loaded in %.2fs", time.monotonic() - started)
            return asyncio.run(serve(core, Metrics(), args, metrics_path))
        finally:
            manager.close()
    except ServingError as exc:
        print(f"Failed to start server. Error: {exc.message}", file=sys.stderr, flush=True)
        return 1
    except (StartupError, OSError, text_format.ParseError, ModelConfigError) as exc:
        print(f"Failed to start server. Error: {exc}", file=sys.stderr, flush=True)
        return 1
