"""GetModelStatus: the state of every version of a model the server knows of, or of one."""

from __future__ import annotations

from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from deploy.local.tfserving_standin.core import ServerCore
from deploy.local.tfserving_standin.errors import Code, ServingError
from deploy.local.tfserving_standin.manager import VersionState


def _fill(entry: get_model_status_pb2.ModelVersionStatus, state: VersionState) -> None:
    entry.state = state.state
    entry.status.SetInParent()
    if state.error is not None:
        entry.status.error_code = state.error.code.value[0]
        entry.status.error_message = state.error.message


def model_status(
    core: ServerCore, spec: model_pb2.ModelSpec
) -> get_model_status_pb2.GetModelStatusResponse:
    version = core.requested_version(spec)
    known = core.versions(spec.name)
    if version is None:
        if not known:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        chosen = list(known)
    elif version not in known:
        raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {spec.name}")
    else:
        chosen = [version]
    response = get_model_status_pb2.GetModelStatusResponse()
    for number in chosen:
        _fill(response.model_version_status.add(version=number), known[number])
    return response
