"""The config files: a ModelServerConfig (or the single-model flags) and a MonitoringConfig."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from deploy.local.tfserving import PROMETHEUS_PATH, read_monitoring_config
from deploy.local.tfserving_standin.errors import StartupError


def model_server_config(
    model_config_file: str, model_name: str, model_base_path: str
) -> model_server_config_pb2.ModelServerConfig:
    """The config file's models, or else the one model the ``--model_*`` flags name."""
    config = model_server_config_pb2.ModelServerConfig()
    if model_config_file:
        text_format.Parse(Path(model_config_file).read_text(), config)
        if config.WhichOneof("config") != "model_config_list":
            raise StartupError("the stand-in serves model_config_list configs only")
        return config
    if not model_base_path:
        raise StartupError(
            "Both server_options.model_base_path and server_options.model_config_file are empty!"
        )
    config.model_config_list.config.add(
        name=model_name, base_path=model_base_path, model_platform="tensorflow"
    )
    return config


def prometheus_path(monitoring_config_file: str) -> str | None:
    """The metrics path a MonitoringConfig file turns on, or None when it does not."""
    if not monitoring_config_file:
        return None
    prometheus = read_monitoring_config(Path(monitoring_config_file)).prometheus_config
    if not prometheus.enable:
        return None
    return prometheus.path or PROMETHEUS_PATH
