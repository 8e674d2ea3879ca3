"""The protocol-neutral inference model every codec translates to and from.

Tensor data lives in numpy arrays: binary payloads are wrapped without copying, JSON payloads are
converted once, and every backend codec reads the same arrays.
"""

from __future__ import annotations

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

DATATYPE_OF: dict[np.dtype[Any], str] = {dtype: name for name, dtype in DATATYPES.items()}

Parameters = dict[str, Any]


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


@dataclass(slots=True)
class InferRequest:
    model: str
    version: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] = field(default_factory=list)
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    binary_output: bool = False
    """Request-level default for outputs the client did not name (``binary_data_output``)."""
    oip_json: bytes | None = None
    """The body exactly as an OIP JSON client sent it, for backends that read OIP JSON too."""


@dataclass(slots=True)
class InferResponse:
    model: str
    version: str | None
    outputs: list[Tensor]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)


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
