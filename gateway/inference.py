"""The protocol-neutral inference model every codec translates to and from.

Tensor data lives in numpy arrays: binary payloads are wrapped without copying, JSON payloads are
converted once, and every backend codec reads the same arrays.

A request may also carry its body as the client sent it (a :class:`Payload`). A backend that
speaks that same format forwards the body without decoding a tensor; any other backend asks for
the tensors, which are decoded then, once. Responses work the same way in the other direction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Open Inference Protocol datatype -> numpy dtype. BYTES is an object array of ``bytes``.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

Parameters = dict[str, Any]


class Formats:
    """Names of the wire formats a :class:`Payload` can be in."""

    OIP_JSON = "oip_json"
    """An Open Inference Protocol REST body: JSON, or JSON and binary tensors (``json_length``).
    Without a binary part it is also what TorchServe's kservev2 handlers read."""
    OIP_INFER_PB = "oip_infer_pb"
    """A serialized Open Inference Protocol ``ModelInferRequest`` / ``ModelInferResponse``."""
    TFS_PREDICT_PB = "tfs_predict_pb"
    """A serialized ``tensorflow.serving.PredictRequest`` / ``PredictResponse``."""
    TFS_PREDICT_JSON = "tfs_predict_json"
    """A TF Serving REST ``:predict`` body, row (``instances``) or columnar (``inputs``)."""
    TORCHSERVE_BODY = "torchserve_body"
    """A TorchServe prediction body: REST request/response body, gRPC ``input["data"]``."""
    TORCHSERVE_PB = "torchserve_pb"
    """A serialized TorchServe ``PredictionsRequest`` (its whole ``input`` map)."""
    TFS_INPUT_PB = "tfs_input_pb"
    """A serialized ``ClassificationRequest`` / ``RegressionRequest`` or its response."""
    TFS_INPUT_JSON = "tfs_input_json"
    """A TF Serving REST ``:classify`` / ``:regress`` body, or its response."""


@dataclass(slots=True, frozen=True)
class Payload:
    """A body exactly as one side sent it, in one of :class:`Formats`."""

    format: str
    body: bytes
    content_type: str | None = None
    json_length: int | None = None
    """For OIP bodies with binary tensors: where the JSON ends (Inference-Header-Content-Length)."""


@dataclass(slots=True)
class Tensor:
    """A named tensor; ``data`` is C-contiguous, shaped, and of ``DATATYPES[datatype]``."""

    name: str
    datatype: str
    data: np.ndarray[Any, Any]
    parameters: Parameters | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.data.shape)


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for; ``binary`` is None when the client did not say."""

    name: str
    binary: bool | None = None


TensorSource = Callable[[], Awaitable[list[Tensor]]]


@dataclass(slots=True, eq=False)
class InferRequest:
    model: str
    version: str | None = None
    """A version, or (for protocols whose version field may hold one) a version label."""
    label: str | None = None
    """An explicit version label (TF Serving's ``version_label``, ``/labels/{l}``)."""
    inputs: list[Tensor] | None = None
    decode_inputs: TensorSource | None = None
    """Produces ``inputs`` on first need when the front end deferred decoding them."""
    outputs: list[RequestedOutput] = field(default_factory=list)
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    binary_output: bool = False
    """Request-level default for outputs the client did not name (``binary_data_output``)."""
    payload: Payload | None = None
    """The body as the client sent it, for a backend that speaks the same format."""

    async def input_tensors(self) -> list[Tensor]:
        if self.inputs is None:
            if self.decode_inputs is None:
                raise ValueError("request has neither inputs nor a way to decode them")
            self.inputs = await self.decode_inputs()
        return self.inputs


@dataclass(slots=True, eq=False)
class InferResponse:
    model: str
    version: str | None
    outputs: list[Tensor] | None = None
    decode_outputs: TensorSource | None = None
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    payload: Payload | None = None
    """The body as the backend sent it, for a front end that speaks the same format."""

    async def output_tensors(self) -> list[Tensor]:
        if self.outputs is None:
            if self.decode_outputs is None:
                raise ValueError("response has neither outputs nor a way to decode them")
            self.outputs = await self.decode_outputs()
        return self.outputs


@dataclass(slots=True, frozen=True)
class TensorSpec:
    """Metadata of one input or output; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(slots=True, frozen=True)
class ModelMetadata:
    """What a backend reports about one model version."""

    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
