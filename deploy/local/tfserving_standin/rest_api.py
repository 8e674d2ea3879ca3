"""TF Serving's REST API over the server core, with no HTTP server: path and body in, reply out."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    model_pb2,
    regression_pb2,
)

from deploy.local.tfserving_standin.classify import classify
from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.errors import ServingError, http_status, invalid
from deploy.local.tfserving_standin.identity import log
from deploy.local.tfserving_standin.json_examples import json_examples
from deploy.local.tfserving_standin.json_inputs import json_inputs
from deploy.local.tfserving_standin.json_outputs import (
    render_classifications,
    render_predictions,
    render_regressions,
)
from deploy.local.tfserving_standin.metadata import model_metadata
from deploy.local.tfserving_standin.metrics import Metrics
from deploy.local.tfserving_standin.predict import input_infos, predict
from deploy.local.tfserving_standin.regress import regress
from deploy.local.tfserving_standin.rest_bodies import error_body, message_json, parse_json_body
from deploy.local.tfserving_standin.rest_routes import INFERENCE_ACTIONS, RestRoute, parse_route
from deploy.local.tfserving_standin.signatures import SIGNATURE_DEF_FIELD
from deploy.local.tfserving_standin.status import model_status


@dataclass(frozen=True)
class RestReply:
    status: int
    body: str


class RestApi:
    """Answers REST requests; ``process`` runs on a worker thread."""

    def __init__(self, core: ServerCore, metrics: Metrics, metrics_path: str | None) -> None:
        self._core = core
        self._metrics = metrics
        self._metrics_path = metrics_path

    def process(self, method: str, path: str, body: bytes) -> RestReply:
        try:
            route = parse_route(method, path)
            with self._observed(route):
                return RestReply(200, self._dispatch(route, body))
        except ServingError as exc:
            return RestReply(http_status(exc.code), error_body(exc.message))
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            return RestReply(500, error_body(f"{type(exc).__name__}: {exc}"))

    def metrics_text(self, path: str) -> str | None:
        """The Prometheus metrics when the path is the one the monitoring config turned on."""
        if self._metrics_path is None or path != self._metrics_path:
            return None
        return self._metrics.render()

    def _observed(self, route: RestRoute) -> AbstractContextManager[None]:
        if route.action not in INFERENCE_ACTIONS:
            return nullcontext()
        return self._metrics.observe(route.model_name, route.action, "REST")

    def _dispatch(self, route: RestRoute, body: bytes) -> str:
        if route.action in ("status", "metadata") and not route.model_name:
            raise invalid("Missing model name in request.")
        if route.action == "status":
            return message_json(model_status(self._core, route.spec()), preserve_names=False)
        if route.action == "metadata":
            return self._metadata(route)
        doc = parse_json_body(body)
        spec = route.spec(doc.get("signature_name", ""))
        if route.action == "predict":
            return self._predict(spec, doc)
        if route.action == "classify":
            classification = classification_pb2.ClassificationRequest(
                model_spec=spec, input=json_examples(doc)
            )
            return render_classifications(classify(self._core, classification).result)
        regression = regression_pb2.RegressionRequest(model_spec=spec, input=json_examples(doc))
        return render_regressions(regress(self._core, regression).result)

    def _predict(self, spec: model_pb2.ModelSpec, doc: dict[str, Any]) -> str:
        infos = input_infos(self._core, spec)
        if not infos:
            raise invalid(
                f"Failed to get input map for signature: {spec.signature_name or 'DEFAULT'}"
            )
        arrays, row_format = json_inputs(doc, infos)
        prediction = predict(self._core, spec, arrays)
        return render_predictions(prediction.outputs, row_format)

    def _metadata(self, route: RestRoute) -> str:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=route.spec(), metadata_field=[SIGNATURE_DEF_FIELD]
        )
        response = model_metadata(self._core, request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_defs)
        return (
            '{\n"model_spec":'
            + message_json(response.model_spec, preserve_names=True)
            + ',\n"metadata": {"signature_def": '
            + message_json(signature_defs, preserve_names=True)
            + "}\n}\n"
        )
