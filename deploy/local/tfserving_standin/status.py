"""GetModelStatus: every loaded version of a model, or the one asked for, as AVAILABLE."""

from __future__ import annotations

from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.errors import Code, ServingError


def model_status(
    core: ServerCore, spec: model_pb2.ModelSpec
) -> get_model_status_pb2.GetModelStatusResponse:
    version = core.requested_version(spec)
    model = core.model(spec.name)
    if version is None:
        if model is None or not model.versions:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        versions = sorted(model.versions, reverse=True)
    elif model is None or version not in model.versions:
        raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {spec.name}")
    else:
        versions = [version]
    response = get_model_status_pb2.GetModelStatusResponse()
    for number in versions:
        entry = response.model_version_status.add(
            version=number, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
        )
        entry.status.SetInParent()
    return response
