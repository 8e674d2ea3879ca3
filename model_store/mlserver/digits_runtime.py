"""The MLServer runtime of ``digits``: the same TorchScript TorchServe runs, from the same ``.mar``.

Model settings name this class (``model_store.mlserver.digits_runtime.DigitsRuntime``) and point
``parameters.uri`` at a TorchServe archive, ``model_store/torchserve/digits_v<N>.mar``: one set of
weights, served by both runtimes. Input ``input`` FP32 ``[N, 64]``, output ``probabilities`` FP32
``[N, 10]``. A malformed request raises :class:`mlserver.errors.InferenceError`, which MLServer
answers with 400 (REST) or INVALID_ARGUMENT (gRPC) and this module's message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

from model_store.artifacts import torchscript_from_mar
from model_store.digits import INPUT_NAME, NUM_FEATURES, OUTPUT_NAME

DATATYPE = "FP32"


class DigitsRuntime(MLModel):  # type: ignore[misc]
    """One ``digits`` version; MLServer makes one instance per model-settings file."""

    async def load(self) -> bool:
        archive = Path(await get_model_uri(self._settings))
        self._module: Any = torchscript_from_mar(archive)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pixels = digits_input(payload)
        with torch.inference_mode():
            probabilities = self._module(torch.from_numpy(pixels)).numpy()
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[NumpyCodec.encode_output(OUTPUT_NAME, probabilities)],
        )


def digits_input(payload: InferenceRequest) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The request's pixels as C-contiguous float32 ``[N, 64]``; InferenceError names a fault."""
    if len(payload.inputs) != 1:
        raise InferenceError(f"'inputs' must list exactly one tensor, named '{INPUT_NAME}'")
    tensor = payload.inputs[0]
    if tensor.name != INPUT_NAME:
        raise InferenceError(f"unknown input {tensor.name!r}; the model takes '{INPUT_NAME}'")
    datatype = getattr(tensor.datatype, "value", tensor.datatype)
    if datatype != DATATYPE:
        raise InferenceError(f"input '{INPUT_NAME}' must be {DATATYPE}, got {datatype!r}")
    shape = list(tensor.shape)
    if len(shape) != 2 or shape[0] < 1 or shape[1] != NUM_FEATURES:
        raise InferenceError(
            f"input '{INPUT_NAME}' must have shape [N, {NUM_FEATURES}] with N >= 1, got {shape}"
        )
    for wanted in payload.outputs or []:
        if wanted.name != OUTPUT_NAME:
            raise InferenceError(
                f"unknown output {wanted.name!r}; the only output is '{OUTPUT_NAME}'"
            )
    try:
        values = np.asarray(getattr(tensor.data, "root", tensor.data), dtype=np.float32).ravel()
    except (TypeError, ValueError) as error:
        raise InferenceError(f"input '{INPUT_NAME}' data must be numbers: {error}") from None
    if values.size != shape[0] * shape[1]:
        raise InferenceError(
            f"input '{INPUT_NAME}' has {values.size} values but shape {shape} needs "
            f"{shape[0] * shape[1]}"
        )
    return np.ascontiguousarray(values.reshape(shape))
