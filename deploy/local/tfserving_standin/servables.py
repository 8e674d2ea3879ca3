"""One version of a model, loaded from its SavedModel directory with TensorFlow."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from deploy.local.tfserving_standin.errors import CODE_BY_NUMBER, Code, ServingError
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
        raise ServingError(
            Code.NOT_FOUND,
            "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{path}. Check that the directory exists and that you have the right permissions "
            "for accessing it.",
        )
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(saved_model_file.read_bytes())
    except DecodeError:
        raise ServingError(
            Code.DATA_LOSS, f"Can't parse {saved_model_file} as binary proto"
        ) from None
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ServingError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}. To inspect "
        "available tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


def load_servable(name: str, version: int, path: Path) -> Servable:
    """Load one version; any failure is a ServingError with TF Serving's code and message."""
    started = time.monotonic()
    log.info("Loading servable version {name: %s version: %d} from %s", name, version, path)
    meta_graph = _serving_meta_graph(path)
    try:
        loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    except tf.errors.OpError as error:
        code = CODE_BY_NUMBER.get(error.error_code, Code.UNKNOWN)
        raise ServingError(code, error.message) from None
    except (OSError, ValueError) as error:
        raise ServingError(Code.UNKNOWN, str(error)) from None
    functions = {key: loaded.signatures[key] for key in loaded.signatures}
    log.info(
        "Loaded servable version {name: %s version: %d} in %.2fs; signatures: %s",
        name,
        version,
        time.monotonic() - started,
        ", ".join(sorted(meta_graph.signature_def)),
    )
    return Servable(name, version, path, dict(meta_graph.signature_def), functions, loaded)
