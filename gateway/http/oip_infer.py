"""``POST /v2/models/{m}[/versions/{v}]/infer``: the Open Inference Protocol hot path.

Decode the body once, route, call the backend, encode once.
"""

from __future__ import annotations

from gateway import media_types
from gateway.codecs import oip_json
from gateway.codecs.oip_raw import timeout_s
from gateway.http.asgi import Headers
from gateway.http.endpoint import INFERENCE_HEADER_LENGTH, JSON_TYPE, Incoming, RawEndpoint
from gateway.inference import Formats
from gateway.metrics import RequestRecord
from gateway.service import RouteHints


class OipInferEndpoint(RawEndpoint):
    protocol = "oip_rest"
    route = "/v2/models/{model}/infer"

    async def handle(self, incoming: Incoming, record: RequestRecord) -> tuple[int, Headers, bytes]:
        model = incoming.params["model"]
        assert model is not None
        request = oip_json.decode_request(
            incoming.body,
            incoming.json_length,
            model,
            incoming.params["version"],
            limit=self._limit,
            lazy=True,
        )
        pin, sticky = incoming.hints.pin, incoming.hints.sticky_key
        hints = RouteHints(pin, sticky, timeout_s(request.parameters))
        decision = self.service.route(model, request.version, None, hints)
        response = await self.service.infer(request, decision, record)
        variant = decision.variant
        forwarded = response.payload
        if forwarded is not None and forwarded.format == Formats.OIP_JSON:
            # An OIP backend answered the client's own body, in the encoding the client asked
            # for; only a variant whose backend model has another name needs its reply renamed.
            payload, binary_from = forwarded.body, forwarded.json_length
            if variant.target.name != variant.model:
                payload, binary_from = oip_json.rename_response(
                    payload, binary_from, variant.model, variant.version
                )
        else:
            outputs = await response.output_tensors()
            payload, binary_from = oip_json.encode_response(outputs, response, request)
        if binary_from is None:
            return 200, list(JSON_TYPE), payload
        headers = [
            (b"content-type", media_types.BINARY.encode()),
            (INFERENCE_HEADER_LENGTH, str(binary_from).encode()),
        ]
        return 200, headers, payload
