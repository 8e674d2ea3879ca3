"""TF Serving's gRPC services over the server core: PredictionService and ModelService."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import grpc
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from deploy.local.tfserving_standin.classify import classify
from deploy.local.tfserving_standin.core import ServerCore, model_spec, require_model_spec
from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.identity import IDENTITY_METADATA, log
from deploy.local.tfserving_standin.metadata import model_metadata
from deploy.local.tfserving_standin.metrics import Metrics
from deploy.local.tfserving_standin.predict import Prediction, predict
from deploy.local.tfserving_standin.regress import regress
from deploy.local.tfserving_standin.status import model_status
from deploy.local.tfserving_standin.tensor_proto import fill_tensor_proto

T = TypeVar("T")


def _serve_rpc(
    context: grpc.ServicerContext,
    call: Callable[[], T],
    api: str = "",
    observed: AbstractContextManager[None] | None = None,
) -> T:
    """Run one RPC: a ServingError becomes its status, any other error INTERNAL."""
    context.set_trailing_metadata(IDENTITY_METADATA)
    try:
        with observed or nullcontext():
            result = call()
    except ServingError as exc:
        context.abort(exc.code, exc.message)
    except Exception as exc:
        log.exception("%s failed", api or "RPC")
        context.abort(Code.INTERNAL, f"{type(exc).__name__}: {exc}")
    return result


def predict_response(prediction: Prediction) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    servable = prediction.servable
    response.model_spec.CopyFrom(
        model_spec(servable.name, servable.version, prediction.signature_name)
    )
    for alias, tensor in prediction.outputs.items():
        fill_tensor_proto(response.outputs[alias], tensor)
    return response


def grpc_predict(
    core: ServerCore, request: predict_pb2.PredictRequest
) -> predict_pb2.PredictResponse:
    spec = require_model_spec(request)
    return predict_response(predict(core, spec, request.inputs, request.output_filter))


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, core: ServerCore, metrics: Metrics) -> None:
        self._core = core
        self._metrics = metrics

    def _inference(
        self, context: grpc.ServicerContext, api: str, request: Any, call: Callable[[], T]
    ) -> T:
        """An inference RPC, counted and timed under the requested model's name."""
        observed = self._metrics.observe(request.model_spec.name, api, "GRPC")
        return _serve_rpc(context, call, api, observed)

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._inference(
            context, "Predict", request, lambda: grpc_predict(self._core, request)
        )

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._inference(context, "Classify", request, lambda: classify(self._core, request))

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._inference(context, "Regress", request, lambda: regress(self._core, request))

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _serve_rpc(context, lambda: model_metadata(self._core, request))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, core: ServerCore) -> None:
        self._core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _serve_rpc(context, lambda: model_status(self._core, require_model_spec(request)))

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _serve_rpc(context, lambda: self._reload(request, context))

    def _reload(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        config = request.config
        try:
            if config.WhichOneof("config") != "model_config_list":
                raise invalid(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                    "ModelConfigList is currently supported"
                )
            for index, entry in enumerate(config.model_config_list.config):
                log.info(
                    "Config entry index: %d path: %s name: %s platform: %s",
                    index,
                    entry.base_path,
                    entry.name,
                    entry.model_platform,
                )
            self._core.reload(config, context.is_active)
        except ServingError as error:
            log.error("ReloadConfig failed: %s", error.message)
            raise
        response = model_management_pb2.ReloadConfigResponse()
        response.status.SetInParent()
        # The stand-in keeps none of TF's internal counters: each one asked for rose by 0.
        for name in request.metric_names:
            response.metric.add(name=name, int64_value_increase=0)
        return response
