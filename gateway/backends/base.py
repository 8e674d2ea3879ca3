"""What every backend client offers the core, whatever runtime and protocol sit behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gateway.inference import InferRequest, InferResponse, ModelMetadata, Payload


@dataclass(frozen=True, slots=True)
class BackendModel:
    """A model version as the backend names it."""

    name: str
    version: str


class Backend(Protocol):
    """A connection-pooled client of one model server.

    Implementations translate every transport error into :mod:`gateway.errors` types and never let
    a third-party exception escape. When a request carries a payload in the backend's own format,
    they forward it (retargeted at their model and version) instead of re-encoding tensors.
    """

    name: str
    """The key of this backend in the config's ``backends``."""
    kind: str
    """``tfserving``, ``torchserve`` or ``oip``: which API family it speaks."""
    protocol: str
    """``grpc`` or ``rest``: what :meth:`infer` speaks."""
    runtime: str
    """What serves behind it (``tfserving``, ``torchserve``, ``mlserver``, ``triton``...)."""
    timeout_s: float
    """Default deadline of one call."""

    async def start(self) -> None:
        """Open pools and channels; called once per worker before traffic."""

    async def close(self) -> None:
        """Close pools and channels."""

    async def infer(
        self, target: BackendModel, request: InferRequest, timeout_s: float
    ) -> InferResponse:
        """Run one inference; the response names the model and version as the backend does."""

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        """Input and output tensors of the model version, as the backend reports them."""

    async def ready(self, target: BackendModel) -> bool | None:
        """Whether the model version can serve now: False (never an exception) on any failure,
        None when no answer came within the probe timeout (see :mod:`gateway.backends.probe`:
        probes go over a lane of their own, and :func:`~gateway.backends.probe.probe` makes the
        verdict)."""


@runtime_checkable
class TFServingExtras(Protocol):
    """TF Serving's APIs beyond predict, forwarded verbatim: ``classify`` and ``regress``."""

    async def tf_api(
        self, api: str, target: BackendModel, payload: Payload, timeout_s: float
    ) -> Payload:
        """Forward a Classify/Regress request (gRPC message or REST body); return the reply."""
