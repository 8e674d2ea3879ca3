"""One version of a model, loaded from its SavedModel directory with TensorFlow."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from deploy.local.tfserving_standin.errors import StartupError
from deploy.local.tfserving_standin.identity import log
from deploy.local.tfserving_standin.signatures import SERVE_TAG


@dataclass(frozen=True)
class Servable:
    """One loaded version of a model."""

    name: str
    version: int
    path: Path
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., Mapping[str, Any]]]
    saved_model: object  # keeps the loaded object, and so its variables, alive


def _serving_meta_graph(path: Path) -> meta_graph_pb2.MetaGraphDef:
    saved_model_file = path / "saved_model.pb"
    if not saved_model_file.is_file():
        raise StartupError(f"SavedModel load failed: no saved_model.pb in {path}")
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(saved_model_file.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise StartupError(f'SavedModel at {path} has no MetaGraphDef tagged "{SERVE_TAG}"')


def load_servable(name: str, version: int, path: Path) -> Servable:
    started = time.monotonic()
    log.info("Loading servable version {name: %s version: %d} from %s", name, version, path)
    meta_graph = _serving_meta_graph(path)
    loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    functions = {key: loaded.signatures[key] for key in loaded.signatures}
    log.info(
        "Loaded servable version {name: %s version: %d} in %.2fs; signatures: %s",
        name,
        version,
        time.monotonic() - started,
        ", ".join(sorted(meta_graph.signature_def)),
    )
    return Servable(name, version, path, dict(meta_graph.signature_def), functions, loaded)
