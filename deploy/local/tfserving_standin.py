"""TF Serving stand-in: TensorFlow Serving's gRPC and REST APIs over real SavedModels, in Python.

This is NOT TensorFlow Serving. The gateway project runs it where ``tensorflow_model_server`` cannot
be installed (no Docker, no wheel). It loads every selected version of each configured SavedModel
with TensorFlow and answers like the real server as far as a client can see: the same gRPC services
(from the official ``tensorflow-serving-api`` definitions), REST paths, JSON shapes, error bodies,
status codes and error messages for the same faults, and Prometheus metrics of the same names.

Behaviours a client may notice, all as in TF Serving unless said otherwise:

- Predict responses carry values in the typed ``*_val`` fields (``float_val``...), not in
  ``tensor_content``: TF Serving's ServerCore serialises "as proto fields by default, for backward
  compatibility". Requests may use either.
- No version and no label means the highest loaded version. An unknown model or version is
  NOT_FOUND (REST 404, "Servable not found for request: Latest(m)" / "Specific(m, 3)"); an unknown
  label is INVALID_ARGUMENT (REST 400, "Unrecognized servable version label: l").
- REST errors are ``{ "error": "<message>" }`` with TF Serving's status-code-to-HTTP mapping.
- Differences: models are loaded once at start (no file-system polling, no config reload, no
  batching, no MultiInference); the grpc.health.v1 service is served as well; every response says it
  comes from the stand-in (the ``Server`` header on REST, ``x-tfserving-standin`` trailing metadata
  on gRPC), and so does the first line of its log and ``--version``.

Run from the repository root: ``python -m deploy.local.tfserving_standin --model_config_file=F``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import math
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import grpc
import numpy as np
from aiohttp import web
from google.protobuf import json_format, text_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from deploy.local.tfserving import PROMETHEUS_PATH, TextFormatError, parse_text_format

STANDIN_BANNER = "TF Serving stand-in (gateway project, not TensorFlow Serving)"
STANDIN_VERSION = "0.1.0"
_announced = False


def _announce() -> None:
    global _announced
    if not _announced:
        print(STANDIN_BANNER, flush=True)
        _announced = True


# TensorFlow logs to stderr as soon as it is imported, and the banner must be the log's first line.
if __name__ == "__main__":
    _announce()

import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import tensor_pb2, types_pb2  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

log = logging.getLogger("tfserving_standin")

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
EXAMPLES_INPUT = "inputs"
CLASSES_OUTPUT = "classes"
SCORES_OUTPUT = "scores"
REGRESSION_OUTPUT = "outputs"
SIGNATURE_DEF_FIELD = "signature_def"
# TF Serving sets no limit below int32 on gRPC messages, either way.
MAX_MESSAGE_BYTES = 2**31 - 1
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
IDENTITY_METADATA = (("x-tfserving-standin", STANDIN_BANNER),)
REST_HEADERS = {"Content-Type": "application/json", "Server": STANDIN_BANNER}
# TF Serving's request_latency sampler: microseconds, scale 10, growth 1.8, 33 buckets.
LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(33))

Code = grpc.StatusCode
# TF Serving's http_server.cc mapping of error codes to HTTP statuses.
HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}
CODE_BY_NUMBER = {code.value[0]: code for code in Code}

T = TypeVar("T")


class ServingError(Exception):
    """A request failed with this status; the message is the one TF Serving gives."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def status_text(self) -> str:
        return f"{self.code.name}: {self.message}"


class StartupError(Exception):
    """The configuration or the models cannot be served."""


def invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def dtype_name(dtype: int) -> str:
    """TensorFlow's DataTypeString: DT_FLOAT -> "float"."""
    return str(types_pb2.DataType.Name(dtype))[3:].lower()


def _braced(names: Iterable[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def _shape_text(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


# --------------------------------------------------------------------------- models and config


@dataclass(frozen=True)
class Servable:
    """One loaded version of a model."""

    name: str
    version: int
    path: Path
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., Mapping[str, Any]]]
    saved_model: object  # keeps the loaded object, and so its variables, alive


@dataclass(frozen=True)
class Model:
    name: str
    versions: Mapping[int, Servable]
    labels: Mapping[str, int]


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


def _version_dirs(name: str, base_path: Path) -> dict[int, Path]:
    if not base_path.is_dir():
        raise StartupError(f"Could not find base path {base_path} for servable {name}")
    return {int(d.name): d for d in base_path.iterdir() if d.is_dir() and d.name.isdigit()}


def _select_versions(
    config: model_server_config_pb2.ModelConfig, found: Mapping[int, Path]
) -> list[int]:
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        chosen = sorted(found)
    elif kind == "specific":
        chosen = sorted(set(policy.specific.versions))
        missing = [v for v in chosen if v not in found]
        if missing:
            raise StartupError(
                f"Model {config.name}: versions {missing} not found under {config.base_path}"
            )
    else:
        chosen = sorted(found)[-max(policy.latest.num_versions, 1) :]
    if not chosen:
        raise StartupError(f"No versions of servable {config.name} found under {config.base_path}")
    return chosen


def load_model(
    config: model_server_config_pb2.ModelConfig, allow_unavailable_labels: bool
) -> Model:
    if config.model_platform not in ("", "tensorflow"):
        raise StartupError(f"Model {config.name}: platform {config.model_platform!r} not supported")
    found = _version_dirs(config.name, Path(config.base_path))
    versions = {v: load_servable(config.name, v, found[v]) for v in _select_versions(config, found)}
    labels = dict(config.version_labels)
    for version in labels.values():
        if version not in versions and not allow_unavailable_labels:
            raise StartupError(
                f"Request to assign label to version {version} of model {config.name}, "
                "which is not currently available for inference"
            )
    return Model(config.name, versions, labels)


def model_server_config(args: argparse.Namespace) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    if args.model_config_file:
        text_format.Parse(Path(args.model_config_file).read_text(), config)
        if config.WhichOneof("config") != "model_config_list":
            raise StartupError("the stand-in serves model_config_list configs only")
        return config
    if not args.model_base_path:
        raise StartupError(
            "Both server_options.model_base_path and server_options.model_config_file are empty!"
        )
    config.model_config_list.config.add(
        name=args.model_name, base_path=args.model_base_path, model_platform="tensorflow"
    )
    return config


def prometheus_path(monitoring_config_file: str) -> str | None:
    """The metrics path a MonitoringConfig file turns on, or None when it does not."""
    if not monitoring_config_file:
        return None
    message = parse_text_format(Path(monitoring_config_file).read_text())
    unknown = set(message.fields) - {"prometheus_config"}
    if unknown:
        raise StartupError(f"MonitoringConfig has no field named {sorted(unknown)[0]!r}")
    prometheus = message.message("prometheus_config")
    if prometheus is None or prometheus.scalar("enable") is not True:
        return None
    return str(prometheus.scalar("path") or PROMETHEUS_PATH)


# --------------------------------------------------------------------------- tensors


@dataclass(frozen=True)
class OutputTensor:
    dtype: int  # a types_pb2.DataType
    value: np.ndarray[Any, Any]


@dataclass(frozen=True)
class Prediction:
    servable: Servable
    signature_name: str
    outputs: Mapping[str, OutputTensor]


_PROTO_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def fill_tensor_proto(proto: tensor_pb2.TensorProto, tensor: OutputTensor) -> None:
    """Serialise like TF's Tensor::AsProtoField: shape plus the typed value field."""
    values = tensor.value
    proto.dtype = tensor.dtype
    for size in values.shape:
        proto.tensor_shape.dim.add(size=size)
    field_name = _PROTO_FIELD.get(tensor.dtype)
    if field_name is not None:
        getattr(proto, field_name).extend(values.ravel().tolist())
    elif tensor.dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        proto.half_val.extend(values.view(np.uint16).ravel().tolist())
    elif tensor.dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        pairs = np.stack([values.real, values.imag], axis=-1).ravel().tolist()
        field = proto.scomplex_val if tensor.dtype == types_pb2.DT_COMPLEX64 else proto.dcomplex_val
        field.extend(pairs)
    else:
        proto.CopyFrom(tf.make_tensor_proto(values))


def _proto_to_array(alias: str, proto: tensor_pb2.TensorProto) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(tf.make_ndarray(proto))
    except (TypeError, ValueError) as exc:
        raise invalid(f"tensor parsing error: {alias}") from exc


_EAGER_PREFIX = re.compile(
    r"\AGraph execution error:\s*(?:Detected at node .*?<stack traces unavailable>\s*)?", re.S
)
_EAGER_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*\Z")


def _tf_error(exc: tf.errors.OpError) -> ServingError:
    # Eager execution wraps the runtime's message; TF Serving's session reports it bare.
    message = _EAGER_SUFFIX.sub("", _EAGER_PREFIX.sub("", exc.message))
    return ServingError(CODE_BY_NUMBER.get(exc.error_code, Code.UNKNOWN), message)


def run_signature(
    servable: Servable,
    signature_name: str,
    signature: meta_graph_pb2.SignatureDef,
    inputs: Mapping[str, np.ndarray[Any, Any]],
) -> dict[str, OutputTensor]:
    function = servable.functions.get(signature_name)
    if function is None:
        raise ServingError(Code.INTERNAL, f"signature {signature_name} cannot be run")
    try:
        feeds = {
            alias: tf.convert_to_tensor(value, dtype=tf.as_dtype(signature.inputs[alias].dtype))
            for alias, value in inputs.items()
        }
        results = function(**feeds)
    except tf.errors.OpError as exc:
        raise _tf_error(exc) from exc
    except (TypeError, ValueError) as exc:
        raise invalid(str(exc)) from exc
    return {
        alias: OutputTensor(int(tensor.dtype.as_datatype_enum), np.asarray(tensor.numpy()))
        for alias, tensor in results.items()
    }


# --------------------------------------------------------------------------- the server core


def model_spec(name: str, version: int, signature_name: str | None) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name)
    spec.version.value = version
    if signature_name is not None:
        spec.signature_name = signature_name
    return spec


def _check_input_names(
    signature: meta_graph_pb2.SignatureDef, requested: Iterable[str]
) -> list[str]:
    sent = sorted(requested)
    expected = set(signature.inputs)
    if len(sent) != len(expected):
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({_braced(sent)}) != len({_braced(expected)}). "
            f"Sent extra: {_braced(set(sent) - expected)}. "
            f"Missing but required: {_braced(expected - set(sent))}."
        )
    for alias in sent:
        if alias not in expected:
            raise invalid(
                f"input tensor alias not found in signature: {alias}. "
                f"Inputs expected to be in the set {_braced(expected)}."
            )
    return sent


def _output_aliases(
    signature: meta_graph_pb2.SignatureDef, output_filter: Sequence[str]
) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid(
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {_braced(signature.outputs)}."
            )
        if alias in seen:
            raise invalid(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def serialized_examples(examples_input: input_pb2.Input) -> np.ndarray[Any, Any]:
    """The request's tf.Examples as a string vector; a context is prepended to each example."""
    kind = examples_input.WhichOneof("kind")
    blobs: list[bytes] = []
    if kind == "example_list":
        blobs = [e.SerializeToString() for e in examples_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = examples_input.example_list_with_context
        context = with_context.context.SerializeToString()
        blobs = [context + e.SerializeToString() for e in with_context.examples]
    if not blobs:
        raise invalid("Input is empty.")
    return np.array(blobs, dtype=object)


class ServerCore:
    """Resolves model specs to loaded servables; answers status, metadata and inference calls."""

    def __init__(self, models: Mapping[str, Model]) -> None:
        self._models = dict(models)

    def _label_version(self, name: str, label: str) -> int:
        model = self._models.get(name)
        if model is None or label not in model.labels:
            raise invalid(f"Unrecognized servable version label: {label}")
        return model.labels[label]

    def _requested_version(self, spec: model_pb2.ModelSpec) -> int | None:
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            return self._label_version(spec.name, spec.version_label)
        return int(spec.version.value) if choice == "version" else None

    def servable(self, spec: model_pb2.ModelSpec) -> Servable:
        version = self._requested_version(spec)
        model = self._models.get(spec.name)
        if version is None:
            if model is None or not model.versions:
                raise ServingError(
                    Code.NOT_FOUND, f"Servable not found for request: Latest({spec.name})"
                )
            return model.versions[max(model.versions)]
        if model is None or version not in model.versions:
            raise ServingError(
                Code.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, {version})"
            )
        return model.versions[version]

    def model_status(
        self, spec: model_pb2.ModelSpec
    ) -> get_model_status_pb2.GetModelStatusResponse:
        version = self._requested_version(spec)
        model = self._models.get(spec.name)
        if version is None:
            if model is None or not model.versions:
                raise ServingError(
                    Code.NOT_FOUND, f"Could not find any versions of model {spec.name}"
                )
            versions = sorted(model.versions, reverse=True)
        elif model is None or version not in model.versions:
            raise ServingError(
                Code.NOT_FOUND, f"Could not find version {version} of model {spec.name}"
            )
        else:
            versions = [version]
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in versions:
            entry = response.model_version_status.add(
                version=number, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
            )
            entry.status.SetInParent()
        return response

    def metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field_name in request.metadata_field:
            if field_name != SIGNATURE_DEF_FIELD:
                raise invalid(f"Metadata field {field_name} is not supported")
        servable = self.servable(request.model_spec)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_defs.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.CopyFrom(model_spec(servable.name, servable.version, None))
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
        return response

    def input_infos(self, spec: model_pb2.ModelSpec) -> Mapping[str, meta_graph_pb2.TensorInfo]:
        """The signature's inputs, as the REST API looks them up before it parses the JSON."""
        name = spec.signature_name or DEFAULT_SIGNATURE
        signature = self.servable(spec).signature_defs.get(name)
        if signature is None:
            raise invalid(f'Serving signature name: "{name}" not found in signature def')
        inputs: Mapping[str, meta_graph_pb2.TensorInfo] = signature.inputs
        return inputs

    def predict(
        self,
        spec: model_pb2.ModelSpec,
        inputs: Mapping[str, tensor_pb2.TensorProto | np.ndarray[Any, Any]],
        output_filter: Sequence[str] = (),
    ) -> Prediction:
        servable = self.servable(spec)
        name = spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise ServingError(
                Code.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.'
            )
        if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(
                Code.INTERNAL,
                "Expected prediction signature method_name to be one of "
                f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
                f"Was: {signature.method_name}",
            )
        arrays = self._input_arrays(signature, inputs)
        aliases = _output_aliases(signature, output_filter)
        outputs = run_signature(servable, name, signature, arrays)
        return Prediction(servable, name, {alias: outputs[alias] for alias in aliases})

    @staticmethod
    def _input_arrays(
        signature: meta_graph_pb2.SignatureDef,
        inputs: Mapping[str, tensor_pb2.TensorProto | np.ndarray[Any, Any]],
    ) -> dict[str, np.ndarray[Any, Any]]:
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        for position, alias in enumerate(_check_input_names(signature, inputs)):
            value = inputs[alias]
            if isinstance(value, np.ndarray):
                arrays[alias] = value
                continue
            arrays[alias] = _proto_to_array(alias, value)
            expected = signature.inputs[alias].dtype
            if value.dtype != expected:
                # The message TF's function call frame gives when a session is fed the wrong type.
                raise invalid(
                    f"Expects arg[{position}] to be {dtype_name(expected)} "
                    f"but {dtype_name(value.dtype)} is provided"
                )
        return arrays

    def _examples_signature(
        self, servable: Servable, spec: model_pb2.ModelSpec, method: str, kind: str
    ) -> tuple[str, meta_graph_pb2.SignatureDef]:
        name = spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise invalid(f"No signature was found with the name: {name}")
        if signature.method_name != method:
            raise invalid(
                f"Expected {kind} signature method_name to be {method}. "
                f"Was: {signature.method_name}"
            )
        if len(signature.inputs) != 1:
            raise invalid("Expected one input Tensor.")
        if EXAMPLES_INPUT not in signature.inputs:
            raise ServingError(
                Code.FAILED_PRECONDITION, f"No {kind} inputs found in SignatureDef: {signature}"
            )
        return name, signature

    def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        servable = self.servable(request.model_spec)
        name, signature = self._examples_signature(
            servable, request.model_spec, CLASSIFY_METHOD, "classification"
        )
        if len(signature.outputs) not in (1, 2):
            raise invalid(f"Expected one or two output Tensors, found {len(signature.outputs)}")
        if CLASSES_OUTPUT not in signature.outputs and SCORES_OUTPUT not in signature.outputs:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                "Expected classification signature outputs to contain at least one of "
                f'"{CLASSES_OUTPUT}" or "{SCORES_OUTPUT}". Signature was: {signature}',
            )
        examples = serialized_examples(request.input)
        outputs = run_signature(servable, name, signature, {EXAMPLES_INPUT: examples})
        response = classification_pb2.ClassificationResponse()
        response.model_spec.CopyFrom(model_spec(servable.name, servable.version, name))
        _fill_classifications(response.result, outputs, len(examples))
        return response

    def regress(
        self, request: regression_pb2.RegressionRequest
    ) -> regression_pb2.RegressionResponse:
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        servable = self.servable(request.model_spec)
        name, signature = self._examples_signature(
            servable, request.model_spec, REGRESS_METHOD, "regression"
        )
        if len(signature.outputs) != 1:
            raise invalid("Expected one output Tensor.")
        if REGRESSION_OUTPUT not in signature.outputs:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                f"No regression outputs found in SignatureDef: {signature}",
            )
        examples = serialized_examples(request.input)
        outputs = run_signature(servable, name, signature, {EXAMPLES_INPUT: examples})
        response = regression_pb2.RegressionResponse()
        response.model_spec.CopyFrom(model_spec(servable.name, servable.version, name))
        for value in _regression_values(outputs[REGRESSION_OUTPUT], len(examples)):
            response.result.regressions.add(value=value)
        return response


def _class_matrix(
    tensor: OutputTensor | None, dtype: int, num_examples: int, what: str
) -> np.ndarray[Any, Any] | None:
    if tensor is None:
        return None
    if tensor.value.ndim != 2:
        raise invalid(
            "Expected Tensor shape: [batch_size num_classes] but got "
            + _shape_text(tensor.value.shape)
        )
    if tensor.dtype != dtype:
        raise invalid(
            f"Expected {what} Tensor of {types_pb2.DataType.Name(dtype)}. "
            f"Got: {types_pb2.DataType.Name(tensor.dtype)}"
        )
    if tensor.value.shape[0] != num_examples:
        raise invalid(
            f"Expected {what} output batch size of {num_examples}. Got: {tensor.value.shape[0]}"
        )
    return tensor.value


def _fill_classifications(
    result: classification_pb2.ClassificationResult,
    outputs: Mapping[str, OutputTensor],
    num_examples: int,
) -> None:
    classes = _class_matrix(
        outputs.get(CLASSES_OUTPUT), types_pb2.DT_STRING, num_examples, "classes"
    )
    scores = _class_matrix(outputs.get(SCORES_OUTPUT), types_pb2.DT_FLOAT, num_examples, "scores")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid(
            "Tensors class and score should match in dim_size(1). "
            f"Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    reference = classes if classes is not None else scores
    num_classes = reference.shape[1] if reference is not None else 0
    for row in range(num_examples):
        classifications = result.classifications.add()
        for column in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                entry.label = bytes(classes[row, column]).decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[row, column])


def _regression_values(tensor: OutputTensor, num_examples: int) -> list[float]:
    shape = tensor.value.shape
    if tensor.dtype != types_pb2.DT_FLOAT:
        raise invalid(
            f"Expected output Tensor of DT_FLOAT.  Got: {types_pb2.DataType.Name(tensor.dtype)}"
        )
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise invalid(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {_shape_text(shape)}"
        )
    if shape[0] != num_examples:
        raise invalid(
            f"Input batch size did not match output batch size: {num_examples} vs. {shape[0]}"
        )
    return [float(v) for v in tensor.value.ravel()]


def predict_response(prediction: Prediction) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    servable = prediction.servable
    response.model_spec.CopyFrom(
        model_spec(servable.name, servable.version, prediction.signature_name)
    )
    for alias, tensor in prediction.outputs.items():
        fill_tensor_proto(response.outputs[alias], tensor)
    return response


# --------------------------------------------------------------------------- JSON (REST) tensors

_INT_RANGES = {
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
# Largest integer each float type holds exactly, and its largest finite value.
_FLOAT_LIMITS = {
    types_pb2.DT_FLOAT: (2**24 - 1, float(np.finfo(np.float32).max)),
    types_pb2.DT_DOUBLE: (2**53 - 1, float(np.finfo(np.float64).max)),
}


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String" if isinstance(value, str) else "Number"


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid(
        f"JSON Value: {json_text(value)} Type: {_json_type(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def _b64_decode(value: Any) -> bytes:
    if not _is_b64(value):
        raise invalid(f"JSON Value: {json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("Unable to base64 decode") from exc


def _float_leaf(value: Any, dtype: int) -> float:
    if not _is_number(value):
        raise _type_error(value, dtype)
    max_int, max_float = _FLOAT_LIMITS[dtype]
    lossy = abs(value) > max_int if isinstance(value, int) else abs(value) > max_float
    if lossy and not (isinstance(value, float) and math.isinf(value)):
        target = "float" if dtype == types_pb2.DT_FLOAT else "double"
        raise invalid(
            f"Cannot convert JSON value: {json_text(value)} to {target} without loss of precision."
        )
    return float(value)


def _leaf(value: Any, dtype: int) -> Any:
    if isinstance(value, dict):
        if dtype != types_pb2.DT_STRING:
            raise _type_error(value, dtype)
        return _b64_decode(value)
    if dtype in _FLOAT_LIMITS:
        return _float_leaf(value, dtype)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise ServingError(
        Code.UNIMPLEMENTED,
        f"Conversion of JSON Value: {json_text(value)} to type: {dtype_name(dtype)}",
    )


def _dense_shape(value: Any) -> list[int]:
    """The shape a (nested) JSON list implies, following first elements as TF Serving does."""
    dims: list[int] = []
    while isinstance(value, list):
        dims.append(len(value))
        if not value:
            break
        value = value[0]
    return dims


def _flatten(value: Any, level: int, dims: Sequence[int], dtype: int, out: list[Any]) -> None:
    rank = len(dims)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(
                f"JSON Value: {json_text(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        out.append(_leaf(value, dtype))
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != dims[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {dims[level]}"
        )
    for item in value:
        _flatten(item, level + 1, dims, dtype, out)


def _to_array(values: list[Any], dims: Sequence[int], dtype: int) -> np.ndarray[Any, Any]:
    if dtype == types_pb2.DT_STRING:
        flat = np.array(values, dtype=object)
    elif dtype in _INT_RANGES and dtype != types_pb2.DT_UINT64:
        # Narrow integer types wrap like TF's proto parsing rather than raise.
        flat = np.array(values, dtype=np.int64).astype(tf.as_dtype(dtype).as_numpy_dtype)
    else:
        flat = np.array(values, dtype=tf.as_dtype(dtype).as_numpy_dtype)
    return flat.reshape(dims)


def json_to_array(value: Any, dtype: int) -> np.ndarray[Any, Any]:
    dims = _dense_shape(value)
    values: list[Any] = []
    _flatten(value, 0, dims, dtype, values)
    return _to_array(values, dims, dtype)


class _Instances:
    """Accumulates row-format instances into one batch per input name."""

    def __init__(self, infos: Mapping[str, meta_graph_pb2.TensorInfo]) -> None:
        self.infos = infos
        self.values: dict[str, list[Any]] = {}
        self.shapes: dict[str, list[int]] = {}

    def add(self, name: str, item: Any) -> None:
        if name not in self.infos:
            raise invalid(f"JSON object: does not have named input: {name}")
        dims = _dense_shape(item)
        values: list[Any] = []
        _flatten(item, 0, dims, self.infos[name].dtype, values)
        if name not in self.shapes:
            self.shapes[name] = dims
            self.values[name] = values
            return
        expected = self.shapes[name]
        if len(values) != math.prod(expected):
            raise invalid(f"Expecting tensor size: {math.prod(expected)} but got: {len(values)}")
        if dims != expected:
            raise invalid(f"Expecting shape {_shape_text(expected)} but got: {_shape_text(dims)}")
        self.values[name].extend(values)

    def arrays(self, count: int) -> dict[str, np.ndarray[Any, Any]]:
        return {
            name: _to_array(values, [count, *self.shapes[name]], self.infos[name].dtype)
            for name, values in self.values.items()
        }


def instances_to_arrays(
    instances: list[Any], infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, np.ndarray[Any, Any]]:
    names = sorted(infos)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = _is_object(instances[0])
    batch = _Instances(infos)
    for index, element in enumerate(instances):
        if objects:
            _add_object_instance(batch, index, element, names)
            continue
        if _is_object(element):
            raise invalid(f"Expecting value/list but got object at item {index} of input list")
        try:
            batch.add(names[0], element)
        except ServingError as exc:
            raise invalid(
                f"Failed to process element: {index} of 'instances' list. "
                f"Error: {exc.status_text()}"
            ) from exc
    return batch.arrays(len(instances))


def _add_object_instance(batch: _Instances, index: int, element: Any, names: list[str]) -> None:
    if not _is_object(element):
        raise invalid(f"Expecting object but got list at item {index} of input list")
    for key, item in element.items():
        try:
            batch.add(key, item)
        except ServingError as exc:
            raise invalid(
                f"Failed to process element: {index} key: {key} of 'instances' list. "
                f"Error: {exc.status_text()}"
            ) from exc
    if sorted(element) != names:
        raise invalid(
            f"Failed to process element: {index} of 'instances' list. "
            f"JSON object: {json_text(element)} must only have keys: {','.join(names)}"
        )


def columns_to_arrays(
    value: Any, infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, np.ndarray[Any, Any]]:
    names = sorted(infos)
    if not _is_object(value):
        if len(names) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        return {names[0]: json_to_array(value, infos[names[0]].dtype)}
    arrays = {}
    for name in names:
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], infos[name].dtype)
    return arrays


def json_inputs(
    doc: dict[str, Any], infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> tuple[dict[str, np.ndarray[Any, Any]], bool]:
    """The request's input arrays, and whether it used the row ("instances") format."""
    if "instances" in doc and "inputs" in doc:
        raise invalid(
            f"JSON Value: {json_text(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid(f"JSON Value: {json_text(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid(f"JSON Value: {json_text(doc)} No values in 'instances' array")
        return instances_to_arrays(instances, infos), True
    if "inputs" in doc:
        return columns_to_arrays(doc["inputs"], infos), False
    raise invalid("Missing 'inputs' or 'instances' key")


def format_decimal(value: float, single: bool) -> str:
    """A float as TF Serving writes it: six significant digits unless that does not round-trip."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = f"{value:g}"
    parsed = float(np.float32(text)) if single else float(text)
    if parsed != value:
        text = f"{value:.9g}" if single else f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


_INTEGER_JSON_TYPES = frozenset(
    {
        types_pb2.DT_INT32,
        types_pb2.DT_INT16,
        types_pb2.DT_INT8,
        types_pb2.DT_UINT8,
        types_pb2.DT_INT64,
        types_pb2.DT_UINT32,
        types_pb2.DT_UINT64,
    }
)


def json_tokens(name: str, tensor: OutputTensor) -> list[str]:
    """Each value of the tensor as JSON text, in row-major order."""
    flat = tensor.value.ravel().tolist()
    dtype = tensor.dtype
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        single = dtype == types_pb2.DT_FLOAT
        return [format_decimal(v, single) for v in flat]
    if dtype in _INTEGER_JSON_TYPES:
        return [str(int(v)) for v in flat]
    if dtype == types_pb2.DT_BOOL:
        return ["true" if v else "false" for v in flat]
    if dtype == types_pb2.DT_STRING:
        # Only outputs named "*_bytes" are binary: they go out base64-encoded.
        if name.endswith("_bytes"):
            return ['{"b64": "' + base64.b64encode(v).decode("ascii") + '"}' for v in flat]
        return [json.dumps(bytes(v).decode("utf-8", "replace")) for v in flat]
    raise invalid(f"Failed to write JSON value for tensor type: {dtype_name(dtype)}")


def nest(tokens: Sequence[str], dims: Sequence[int]) -> str:
    """Row-major values as nested JSON lists of these dimensions (a bare value for none)."""
    items = list(tokens)
    for depth in range(len(dims) - 1, -1, -1):
        size = dims[depth]
        items = [
            "[" + ",".join(items[g * size : (g + 1) * size]) + "]"
            for g in range(math.prod(dims[:depth]))
        ]
    return items[0]


def _row_items(outputs: Mapping[str, OutputTensor]) -> tuple[int, dict[str, list[str]]]:
    batch = 0
    rows: dict[str, list[str]] = {}
    for name in sorted(outputs):
        dims = outputs[name].value.shape
        if not dims:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if dims[0] < 1:
            raise invalid(f"Tensor name: {name} has invalid batch size: {dims[0]}")
        if batch and dims[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {dims[0]} expecting: {batch}"
            )
        batch = dims[0]
        tokens = json_tokens(name, outputs[name])
        per_row = math.prod(dims[1:])
        rows[name] = [nest(tokens[i * per_row : (i + 1) * per_row], dims[1:]) for i in range(batch)]
    return batch, rows


def render_predictions(outputs: Mapping[str, OutputTensor], row_format: bool) -> str:
    """The predict response body: one output is written bare, several as an object by name."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    if row_format:
        batch, rows = _row_items(outputs)
        if len(rows) == 1:
            items = next(iter(rows.values()))
        else:
            items = [
                "{" + ",".join(f"{json.dumps(n)}: {rows[n][i]}" for n in rows) + "}"
                for i in range(batch)
            ]
        return '{\n    "predictions": [' + ",".join(items) + "]\n}"
    columns = {
        name: nest(json_tokens(name, outputs[name]), outputs[name].value.shape)
        for name in sorted(outputs)
    }
    if len(columns) == 1:
        body = next(iter(columns.values()))
    else:
        body = "{" + ",".join(f"{json.dumps(n)}: {v}" for n, v in columns.items()) + "}"
    return '{\n    "outputs": ' + body + "\n}"


def _feature_kind_error(name: str, kind: str | None) -> ServingError:
    found = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}
    expected = found.get(kind or "", "UNKNOWN")
    return invalid(f"Unexpected element type in feature: {name} expecting type: {expected}")


def _add_feature_value(value: Any, name: str, feature: Any) -> None:
    """Append one JSON value to a tf.train.Feature: bools and ints are int64, strings bytes."""
    if value is None or isinstance(value, list) or _is_object(value):
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")
    item: int | float | bytes
    if isinstance(value, bool | int):
        kind, item = "int64_list", int(value)
        if item > 2**63 - 1:
            raise invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
    elif isinstance(value, float):
        kind, item = "float_list", _float_leaf(value, types_pb2.DT_FLOAT)
    else:
        kind = "bytes_list"
        item = _b64_decode(value) if isinstance(value, dict) else value.encode()
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise _feature_kind_error(name, current)
    getattr(feature, kind).value.append(item)


def _fill_example(value: Any, example: Any) -> None:
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {_json_type(value)}")
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)


def json_examples(doc: dict[str, Any]) -> input_pb2.Input:
    """The ``context`` and ``examples`` of a classify or regress request as an Input proto."""
    examples_input = input_pb2.Input()
    has_context = "context" in doc
    if has_context:
        _fill_example(doc["context"], examples_input.example_list_with_context.context)
    examples = doc.get("examples")
    if examples is None:
        raise invalid(
            f"JSON Value: {json_text(doc)} When method is classify, key 'examples' is expected "
            "and was not found"
        )
    if not isinstance(examples, list):
        raise invalid(
            f"JSON Value: {json_text(doc)} Expecting 'examples' value to be an list/array"
        )
    if not examples:
        raise invalid(f"JSON Value: {json_text(doc)} 'examples' value is an empty array")
    target = (
        examples_input.example_list_with_context.examples
        if has_context
        else examples_input.example_list.examples
    )
    for item in examples:
        _fill_example(item, target.add())
    return examples_input


def render_classifications(result: classification_pb2.ClassificationResult) -> str:
    rows = [
        "["
        + ",".join(
            f"[{json.dumps(c.label)}, {format_decimal(c.score, True)}]"
            for c in classifications.classes
        )
        + "]"
        for classifications in result.classifications
    ]
    return '{\n    "results": [' + ",".join(rows) + "]\n}"


def render_regressions(result: regression_pb2.RegressionResult) -> str:
    values = [format_decimal(r.value, True) for r in result.regressions]
    return '{\n    "results": [' + ",".join(values) + "]\n}"


# --------------------------------------------------------------------------- metrics


class Metrics:
    """TF Serving's request count and latency metrics, exported in its exporter's text format."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry()
        self._requests = Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ["model_name", "status"],
            registry=self._registry,
        )
        self._latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=self._registry,
        )

    def record(
        self, model_name: str, code: grpc.StatusCode, api: str, entrypoint: str, seconds: float
    ) -> None:
        self._requests.labels(model_name, code.name).inc()
        if code is Code.OK:
            self._latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def render(self) -> str:
        # TF's exporter names counters without "_total", writes no HELP and no "_created".
        lines: list[str] = []
        for family in self._registry.collect():
            lines.append(f"# TYPE {family.name} {family.type}")
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                name = family.name if family.type == "counter" else sample.name
                labels = ",".join(
                    f'{key}="{_label_value(key, value)}"' for key, value in sample.labels.items()
                )
                lines.append(f"{name}{{{labels}}} {_metric_number(sample.value)}")
        return "\n".join(lines) + "\n"


def _label_value(key: str, value: str) -> str:
    if key == "le" and value != "+Inf":
        value = f"{float(value):.6g}"
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _metric_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


# --------------------------------------------------------------------------- gRPC


def _serve_rpc(
    context: grpc.ServicerContext,
    call: Callable[[], T],
    metrics: Metrics | None = None,
    model_name: str = "",
    api: str = "",
) -> T:
    """Run one RPC: a ServingError becomes its status; inference calls are counted and timed."""
    started = time.perf_counter()
    context.set_trailing_metadata(IDENTITY_METADATA)
    try:
        result = call()
    except ServingError as exc:
        if metrics is not None:
            metrics.record(model_name, exc.code, api, "GRPC", 0.0)
        context.abort(exc.code, exc.message)
    except Exception as exc:
        log.exception("%s failed", api or "RPC")
        if metrics is not None:
            metrics.record(model_name, Code.INTERNAL, api, "GRPC", 0.0)
        context.abort(Code.INTERNAL, f"{type(exc).__name__}: {exc}")
    if metrics is not None:
        metrics.record(model_name, Code.OK, api, "GRPC", time.perf_counter() - started)
    return result


def grpc_predict(
    core: ServerCore, request: predict_pb2.PredictRequest
) -> predict_pb2.PredictResponse:
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    return predict_response(core.predict(request.model_spec, request.inputs, request.output_filter))


def grpc_model_status(
    core: ServerCore, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    return core.model_status(request.model_spec)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, core: ServerCore, metrics: Metrics) -> None:
        self._core = core
        self._metrics = metrics

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        name = request.model_spec.name
        return _serve_rpc(
            context, lambda: grpc_predict(self._core, request), self._metrics, name, "Predict"
        )

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        name = request.model_spec.name
        return _serve_rpc(
            context, lambda: self._core.classify(request), self._metrics, name, "Classify"
        )

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        name = request.model_spec.name
        return _serve_rpc(
            context, lambda: self._core.regress(request), self._metrics, name, "Regress"
        )

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _serve_rpc(context, lambda: self._core.metadata(request))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, core: ServerCore) -> None:
        self._core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _serve_rpc(context, lambda: grpc_model_status(self._core, request))


def start_grpc(
    core: ServerCore, metrics: Metrics, port: int, threads: int
) -> tuple[grpc.Server, health.HealthServicer, int]:
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"), options=GRPC_OPTIONS
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    health_servicer = health.HealthServicer()
    for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"0.0.0.0:{port}")
    if not bound:
        raise OSError(f"cannot listen for gRPC on port {port}")
    server.start()
    return server, health_servicer, bound


# --------------------------------------------------------------------------- REST

_REST_PATH = re.compile(r"/v1/.*", re.I | re.S)
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I
)
_INFERENCE_ACTIONS = ("predict", "classify", "regress")


@dataclass(frozen=True)
class RestRoute:
    action: str  # predict, classify, regress, status or metadata
    model_name: str
    version: int | None
    label: str | None

    def spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name)
        if self.version is not None:
            spec.version.value = self.version
        if self.label is not None:
            spec.version_label = self.label
        return spec


def parse_route(method: str, path: str) -> RestRoute:
    malformed = invalid(f"Malformed request: {method} {path}")
    if method == "POST":
        match = _PREDICT_PATH.fullmatch(path)
        action = match.group(4) if match else ""
    elif method == "GET":
        match = _STATUS_PATH.fullmatch(path)
        action = "metadata" if match and match.group(4) == "metadata" else "status"
    else:
        raise malformed
    if match is None or action not in (*_INFERENCE_ACTIONS, "status", "metadata"):
        raise malformed
    version_text = match.group(2)
    version = int(version_text) if version_text else None
    if version is not None and version >= 2**63:
        raise invalid(f"Failed to convert version: {version_text} to numeric.")
    label = unquote(match.group(3)) if match.group(3) else None
    return RestRoute(action, unquote(match.group(1) or ""), version, label)


def parse_json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError as exc:
        raise invalid(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from exc
    except json.JSONDecodeError as exc:
        raise invalid(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from exc
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {json_text(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid(
            f"JSON Value: {json_text(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return doc


def error_body(message: str) -> str:
    return '{ "error": ' + json.dumps(message) + " }"


def _message_json(message: Any, preserve_names: bool) -> str:
    return json_format.MessageToJson(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=preserve_names,
        indent=1,
    )


@dataclass(frozen=True)
class RestReply:
    status: int
    body: str


class RestApi:
    """TF Serving's REST API over the server core; ``process`` runs on a worker thread."""

    def __init__(self, core: ServerCore, metrics: Metrics, metrics_path: str | None) -> None:
        self._core = core
        self._metrics = metrics
        self._metrics_path = metrics_path

    def process(self, method: str, path: str, body: bytes) -> RestReply:
        started = time.perf_counter()
        route: RestRoute | None = None
        try:
            route = parse_route(method, path)
            reply = RestReply(200, self._dispatch(route, body))
            code = Code.OK
        except ServingError as exc:
            reply = RestReply(HTTP_STATUS.get(exc.code, 500), error_body(exc.message))
            code = exc.code
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            reply = RestReply(500, error_body(f"{type(exc).__name__}: {exc}"))
            code = Code.INTERNAL
        if route is not None and route.action in _INFERENCE_ACTIONS:
            elapsed = time.perf_counter() - started
            self._metrics.record(route.model_name, code, route.action, "REST", elapsed)
        return reply

    def _dispatch(self, route: RestRoute, body: bytes) -> str:
        if route.action == "status":
            if not route.model_name:
                raise invalid("Missing model name in request.")
            return _message_json(self._core.model_status(route.spec()), preserve_names=False)
        if route.action == "metadata":
            return self._metadata(route)
        doc = parse_json_body(body)
        spec = route.spec(doc.get("signature_name", ""))
        if route.action == "predict":
            return self._predict(spec, doc)
        if route.action == "classify":
            return self._classify(spec, doc)
        return self._regress(spec, doc)

    def _classify(self, spec: model_pb2.ModelSpec, doc: dict[str, Any]) -> str:
        request = classification_pb2.ClassificationRequest(model_spec=spec)
        request.input.CopyFrom(json_examples(doc))
        return render_classifications(self._core.classify(request).result)

    def _regress(self, spec: model_pb2.ModelSpec, doc: dict[str, Any]) -> str:
        request = regression_pb2.RegressionRequest(model_spec=spec)
        request.input.CopyFrom(json_examples(doc))
        return render_regressions(self._core.regress(request).result)

    def _predict(self, spec: model_pb2.ModelSpec, doc: dict[str, Any]) -> str:
        infos = self._core.input_infos(spec)
        if not infos:
            raise invalid(
                f"Failed to get input map for signature: {spec.signature_name or 'DEFAULT'}"
            )
        arrays, row_format = json_inputs(doc, infos)
        prediction = self._core.predict(spec, arrays)
        return render_predictions(prediction.outputs, row_format)

    def _metadata(self, route: RestRoute) -> str:
        if not route.model_name:
            raise invalid("Missing model name in request.")
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=route.spec(), metadata_field=[SIGNATURE_DEF_FIELD]
        )
        response = self._core.metadata(request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_defs)
        return (
            '{\n"model_spec":'
            + _message_json(response.model_spec, preserve_names=True)
            + ',\n"metadata": {"signature_def": '
            + _message_json(signature_defs, preserve_names=True)
            + "}\n}\n"
        )

    def metrics_page(self, path: str) -> web.Response | None:
        if self._metrics_path is None or path != self._metrics_path:
            return None
        return web.Response(
            body=self._metrics.render().encode(),
            headers={"Content-Type": "text/plain", "Server": STANDIN_BANNER},
        )


class RestServer:
    """The aiohttp front of :class:`RestApi`: requests run on a fixed pool, with a time limit."""

    def __init__(self, api: RestApi, pool: ThreadPoolExecutor, timeout_s: float | None) -> None:
        self._api = api
        self._pool = pool
        self._timeout_s = timeout_s

    async def handle(self, request: web.Request) -> web.Response:
        path = request.rel_url.raw_path
        page = self._api.metrics_page(path)
        if page is not None:
            return page
        if not _REST_PATH.fullmatch(path):
            return web.Response(status=404, text="Not Found", headers={"Server": STANDIN_BANNER})
        body = await request.read()
        work = asyncio.get_running_loop().run_in_executor(
            self._pool, self._api.process, request.method, path, body
        )
        try:
            reply = await asyncio.wait_for(work, self._timeout_s)
        except TimeoutError:
            reply = RestReply(HTTP_STATUS[Code.DEADLINE_EXCEEDED], error_body("Deadline Exceeded"))
        return web.Response(status=reply.status, body=reply.body.encode(), headers=REST_HEADERS)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def start_rest(server: RestServer, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)


# --------------------------------------------------------------------------- command line


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
    parser.add_argument("--version", type=_flag_bool, nargs="?", const=True, default=False)
    return parser.parse_args(argv)


async def serve(core: ServerCore, metrics: Metrics, args: argparse.Namespace) -> int:
    """Listen on both ports, print READY, and run until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    grpc_server, health_servicer, grpc_port = start_grpc(
        core, metrics, args.port, args.grpc_max_threads
    )
    pool = ThreadPoolExecutor(max_workers=args.rest_api_num_threads, thread_name_prefix="rest")
    runner: web.AppRunner | None = None
    rest_port = 0
    try:
        if args.rest_api_port:
            api = RestApi(core, metrics, prometheus_path(args.monitoring_config_file))
            timeout_s = (
                args.rest_api_timeout_in_ms / 1000 if args.rest_api_timeout_in_ms > 0 else None
            )
            runner, rest_port = await start_rest(
                RestServer(api, pool, timeout_s), args.rest_api_port
            )
        log.info("gRPC on port %d, REST on port %d", grpc_port, rest_port)
        print(f"READY grpc={grpc_port} rest={rest_port}", flush=True)
        await stop.wait()
        log.info("Stopping")
    finally:
        health_servicer.enter_graceful_shutdown()
        stopped = grpc_server.stop(grace=1.0)
        if runner is not None:
            await runner.cleanup()
        pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(stopped.wait, 2.0)
    return 0


def _load(args: argparse.Namespace) -> ServerCore:
    config = model_server_config(args)
    models: dict[str, Model] = {}
    for model_config in config.model_config_list.config:
        if model_config.name in models:
            raise StartupError(
                f"Illegal to list model {model_config.name} multiple times in config"
            )
        models[model_config.name] = load_model(
            model_config, args.allow_version_labels_for_unavailable_models
        )
    if not models:
        raise StartupError("the model config lists no models")
    return ServerCore(models)


def main(argv: Sequence[str] | None = None) -> int:
    _announce()
    args = parse_args(argv)
    if args.version:
        print(f"Stand-in version: {STANDIN_VERSION}\nTensorFlow Library: {tf.__version__}")
        return 0
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    started = time.monotonic()
    try:
        prometheus_path(args.monitoring_config_file)
        core = _load(args)
        log.info("All models loaded in %.2fs", time.monotonic() - started)
        return asyncio.run(serve(core, Metrics(), args))
    except (StartupError, OSError, text_format.ParseError, TextFormatError) as exc:
        print(f"Failed to start server. Error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
