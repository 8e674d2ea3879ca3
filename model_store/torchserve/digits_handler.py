"""TorchServe handler for the ``digits`` TorchScript model, speaking Open Inference Protocol JSON.

TorchServe loads this file from the model archive (it is not imported by the gateway). A request
body, over REST (``POST /predictions/digits/<version>``) or gRPC (``Predictions`` with
``input={"data": <body>}``), is an Open Inference Protocol (KServe v2) infer request::

    {"id": "r1", "inputs": [{"name": "input", "datatype": "FP32", "shape": [N, 64],
                             "data": [...N*64 numbers, flat or nested...]}]}

and the response is the matching infer response::

    {"id": "r1", "model_name": "digits", "model_version": "1",
     "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [N, 10],
                  "data": [...N*10 floats, row-major...]}]}

The translation uses TorchServe's own KServe v2 envelope for this model only (no server-wide
``service_envelope``), with two fixes: that envelope names output *i* after input *i* and
flattens every output's shape to one dimension, while here each output keeps its own name and
shape. Malformed requests fail with status 400 and a message saying what is wrong. That logic
lives in ``digits_protocol.py``, packed beside this file; only what needs torch is here.

``GET /models/digits/<version>?customized=true`` on the management API returns, as
``customizedMetadata``, the model's Open Inference Protocol metadata as a JSON string.

Runs on the official image's Python 3.9: nothing newer than 3.9 at run time (``make lint``
checks these files with vermin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from digits_protocol import NUM_FEATURES, OUTPUT_NAME, DigitsEnvelope, NamedOutput, describe
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException


class DigitsHandler(BaseHandler):  # type: ignore[misc]
    """Runs the TorchScript model on one OIP request at a time (the model's batch size is 1)."""

    def __init__(self) -> None:
        super().__init__()
        self._envelope: DigitsEnvelope | None = None

    def initialize(self, context: Any) -> None:
        super().initialize(context)
        # The envelope wraps BaseHandler.handle: preprocess -> inference -> postprocess, timed.
        predict: Callable[[Any, Any], Any] = super().handle
        self._envelope = DigitsEnvelope(predict)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        self.context = context
        if self._is_describe():
            # A describe request has no OIP body, so it must not reach the envelope.
            return [self.describe_handle()]
        if self._envelope is None:
            raise PredictionException("the digits handler is not initialized", 503)
        result: list[Any] = self._envelope.handle(data, context)
        return result

    def preprocess(self, data: list[dict[str, Any]]) -> torch.Tensor:
        # The envelope has validated the request and reshaped "data" to [N, 64] nested lists.
        values = np.asarray(data[0]["data"], dtype=np.float32).reshape(-1, NUM_FEATURES)
        return torch.from_numpy(values).to(self.device)

    def postprocess(self, data: torch.Tensor) -> list[NamedOutput]:
        probabilities = data.detach().to("cpu").numpy().astype(np.float32, copy=False)
        return [(OUTPUT_NAME, probabilities)]

    def describe_handle(self) -> str:
        return describe(self.manifest)
