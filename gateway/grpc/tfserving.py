"""TF Serving's gRPC API: ``tensorflow.serving.PredictionService`` and ``ModelService``.

A Predict, Classify or Regress request is routed by its model_spec and forwarded as it came to a
TF Serving variant; a TorchServe variant gets Predict's tensors, decoded only then. A model_spec
without a version (TF Serving's "latest") is the gateway's traffic split, like an unversioned
request in any other protocol; replies name the version that served.
"""

from __future__ import annotations

from google.protobuf import any_pb2

from gateway.codecs.oip_json import select_outputs
from gateway.codecs.tfserving_grpc import (
    parse_predict_view,
    predict_request_tensors,
    predict_response_from_tensors,
    retarget_predict_response,
    retarget_result_response,
)
from gateway.codecs.tfserving_metadata import DEFAULT_SIGNATURE, PREDICT_METHOD
from gateway.codecs.tfserving_tensor import DATATYPE_TO_DT
from gateway.errors import InvalidInput
from gateway.grpc.call import Call, Method, parse
from gateway.inference import (
    Formats,
    InferRequest,
    ModelMetadata,
    Payload,
    RequestedOutput,
    Tensor,
    TensorSpec,
)
from gateway.routing.router import Variant
from gateway.service import InferenceService
from gateway.wire import passthrough_pb2 as views
from gateway.wire import tensorflow_pb2 as tf
from gateway.wire import tensorflow_serving_pb2 as tfs

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
PROTOCOL = "tfs_grpc"
SIGNATURE_DEF = "signature_def"
# Clients unpack the Any by this name; our copy of the message has a different full name.
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
TF_UNAVAILABLE = 14  # tensorflow.error.Code.UNAVAILABLE

State = tfs.ModelVersionStatus.State


def spec_version(spec: tfs.ModelSpec) -> tuple[str | None, str | None]:
    """(version, version label) of a model_spec; neither means the gateway's split decides."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return str(spec.version.value), None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _number(variant: Variant) -> int | None:
    """TF Serving versions are integers; a TorchServe variant's version may not be."""
    return int(variant.version) if variant.version.isdigit() else None


class TFServingService:
    def __init__(self, service: InferenceService, limit: int) -> None:
        self._service = service
        self._limit = limit

    def methods(self) -> dict[str, dict[str, Method]]:
        return {
            PREDICTION_SERVICE: {
                "Predict": Method(self.predict, PROTOCOL),
                "GetModelMetadata": Method(self.get_model_metadata),
                "Classify": Method(self.classify, PROTOCOL),
                "Regress": Method(self.regress, PROTOCOL),
            },
            MODEL_SERVICE: {"GetModelStatus": Method(self.get_model_status)},
        }

    async def predict(self, body: bytes, call: Call) -> bytes:
        view = parse_predict_view(body)
        if not view.HasField("model_spec"):
            raise InvalidInput("Missing ModelSpec")
        spec = view.model_spec
        version, label = spec_version(spec)
        decision = self._service.route(spec.name, version, label, call.hints())

        async def decode() -> list[Tensor]:
            return predict_request_tensors(parse(tfs.PredictRequest, body), self._limit)

        request = InferRequest(
            spec.name,
            version=version,
            label=label,
            payload=Payload(Formats.TFS_PREDICT_PB, body),
            decode_inputs=decode,
            outputs=[RequestedOutput(name) for name in view.output_filter],
            parameters={"signature_name": spec.signature_name} if spec.signature_name else {},
        )
        response = await self._service.infer(request, decision, call.record)
        variant = decision.variant
        signature = spec.signature_name or DEFAULT_SIGNATURE
        number = _number(variant)
        payload = response.payload
        if payload is not None and payload.format == Formats.TFS_PREDICT_PB and number is not None:
            return retarget_predict_response(payload.body, variant.model, number, signature)
        selected = select_outputs(await response.output_tensors(), request, variant.model)
        reply = predict_response_from_tensors(
            [tensor for tensor, _ in selected], variant.model, number or 0, signature
        )
        if number is None:
            reply.model_spec.ClearField("version")
        return reply.SerializeToString()

    async def classify(self, body: bytes, call: Call) -> bytes:
        return await self._tf_api("classify", body, call)

    async def regress(self, body: bytes, call: Call) -> bytes:
        return await self._tf_api("regress", body, call)

    async def _tf_api(self, api: str, body: bytes, call: Call) -> bytes:
        view = parse(views.InputRequestView, body)
        if not view.HasField("model_spec"):
            raise InvalidInput("Missing ModelSpec")
        spec = view.model_spec
        version, label = spec_version(spec)
        decision = self._service.route(spec.name, version, label, call.hints())
        payload = Payload(Formats.TFS_INPUT_PB, body)
        reply = await self._service.tf_api(api, decision, payload, call.record)
        variant = decision.variant
        # tf_api only reaches TF Serving variants, whose versions are integers.
        signature = spec.signature_name or DEFAULT_SIGNATURE
        return retarget_result_response(reply.body, variant.model, int(variant.version), signature)

    async def get_model_metadata(self, body: bytes, call: Call) -> bytes:
        request = parse(tfs.GetModelMetadataRequest, body)
        if not request.HasField("model_spec"):
            raise InvalidInput("Missing ModelSpec")
        if not request.metadata_field:
            raise InvalidInput("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF:
                raise InvalidInput(f"Metadata field {field} is not supported")
        version, label = spec_version(request.model_spec)
        # Like TF Serving: the latest version unless one is named; the reply says which.
        name = request.model_spec.name
        latest = self._service.latest_version(name, version, label)
        view = await self._service.model_view(name, latest)
        reply = tfs.GetModelMetadataResponse()
        reply.model_spec.name = view.name
        if latest.isdigit():
            reply.model_spec.version.value = int(latest)
        packed = any_pb2.Any(
            type_url=SIGNATURE_DEF_MAP_URL,
            value=signature_def_map(view.metadata).SerializeToString(),
        )
        reply.metadata[SIGNATURE_DEF].CopyFrom(packed)
        return reply.SerializeToString()

    async def get_model_status(self, body: bytes, call: Call) -> bytes:
        """A version is AVAILABLE when a variant serving it is ready. Otherwise it is LOADING:
        TF Serving's state for a version it knows but cannot serve yet (END would say it is
        gone for good), with UNAVAILABLE and the reason in its status."""
        request = parse(tfs.GetModelStatusRequest, body)
        if not request.HasField("model_spec"):
            raise InvalidInput("Missing ModelSpec")
        spec = request.model_spec
        version, label = spec_version(spec)
        reply = tfs.GetModelStatusResponse()
        for served, ready in self._service.version_readiness(spec.name, version, label):
            if not served.isdigit():
                continue  # not expressible as TF Serving's int64 version
            entry = reply.model_version_status.add(
                version=int(served), state=State.AVAILABLE if ready else State.LOADING
            )
            entry.status.SetInParent()
            if not ready:
                entry.status.error_code = TF_UNAVAILABLE
                entry.status.error_message = f"no ready backend serves version {served}"
        return reply.SerializeToString()


def signature_def_map(metadata: ModelMetadata) -> tfs.SignatureDefMap:
    """One ``serving_default`` predict signature with the tensors the backends report."""
    signatures = tfs.SignatureDefMap()
    signature = signatures.signature_def[DEFAULT_SIGNATURE]
    signature.method_name = PREDICT_METHOD
    for spec in metadata.inputs:
        _tensor_info(signature.inputs[spec.name], spec)
    for spec in metadata.outputs:
        _tensor_info(signature.outputs[spec.name], spec)
    return signatures


def _tensor_info(info: tf.TensorInfo, spec: TensorSpec) -> None:
    info.dtype = DATATYPE_TO_DT.get(spec.datatype, tf.DT_INVALID)  # type: ignore[assignment]
    for size in spec.shape:
        info.tensor_shape.dim.add().size = size
