"""TF Serving's REST API: ``POST /v1/models/{m}[/versions/{v}|/labels/{l}]:{verb}``.

The verb is ``predict``, ``classify`` or ``regress``.

``:predict`` bodies go to a TF Serving REST backend untouched; any other backend gets the tensors,
decoded with the routed variant's metadata (JSON has no dtypes), and the answer is rendered back
in the client's format (row or columnar). ``:classify`` and ``:regress`` go to TF Serving as
they are.
"""

from __future__ import annotations

from gateway.codecs.tfserving_json import (
    PredictBody,
    decode_predict_request,
    encode_predict_response,
    load_body,
)
from gateway.http.asgi import Headers
from gateway.http.endpoint import JSON_TYPE, Incoming, RawEndpoint
from gateway.inference import Formats, InferRequest, Payload, Tensor
from gateway.metrics import RequestRecord


class TFServingRestEndpoint(RawEndpoint):
    protocol = "tfs_rest"
    route = "/v1/models/{model}:{verb}"

    async def handle(self, incoming: Incoming, record: RequestRecord) -> tuple[int, Headers, bytes]:
        params = incoming.params
        model, version, label = params["model"], params["version"], params["label"]
        verb = params["verb"]
        assert model is not None
        decision = self.service.route(model, version, label, incoming.hints)
        if verb != "predict":
            assert verb is not None
            payload = Payload(Formats.TFS_INPUT_JSON, incoming.body, incoming.content_type)
            reply = await self.service.tf_api(verb, decision, payload, record)
            return 200, list(JSON_TYPE), reply.body
        decoded: list[PredictBody] = []

        async def decode() -> list[Tensor]:
            metadata = await self.service.metadata(decision)
            body = decode_predict_request(load_body(incoming.body), metadata, self._limit)
            if body.signature_name is not None:
                request.parameters["signature_name"] = body.signature_name
            decoded.append(body)
            return body.inputs

        request = InferRequest(
            model,
            version,
            label,
            decode_inputs=decode,
            payload=Payload(Formats.TFS_PREDICT_JSON, incoming.body, incoming.content_type),
        )
        response = await self.service.infer(request, decision, record)
        if response.payload is not None and response.payload.format == Formats.TFS_PREDICT_JSON:
            return 200, list(JSON_TYPE), response.payload.body
        row_format = decoded[0].row_format if decoded else "instances" in load_body(incoming.body)
        outputs = await response.output_tensors()
        return 200, list(JSON_TYPE), encode_predict_response(outputs, row_format)
