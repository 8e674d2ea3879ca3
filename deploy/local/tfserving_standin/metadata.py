"""GetModelMetadata: a servable's signature defs, the one metadata field TF Serving serves."""

from __future__ import annotations

from tensorflow_serving.apis import get_model_metadata_pb2

from deploy.local.tfserving_standin.core import ServerCore, model_spec, require_model_spec
from deploy.local.tfserving_standin.errors import invalid
from deploy.local.tfserving_standin.signatures import SIGNATURE_DEF_FIELD


def model_metadata(
    core: ServerCore, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    spec = require_model_spec(request)
    if not request.metadata_field:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    for field_name in request.metadata_field:
        if field_name != SIGNATURE_DEF_FIELD:
            raise invalid(f"Metadata field {field_name} is not supported")
    servable = core.servable(spec)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_defs.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.CopyFrom(model_spec(servable.name, servable.version, None))
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
    return response
