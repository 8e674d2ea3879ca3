"""The server core: the loaded models, and the servable a ModelSpec's version or label names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensorflow_serving.apis import model_pb2

from deploy.local.tfserving_standin.errors import Code, ServingError, invalid
from deploy.local.tfserving_standin.models import Model
from deploy.local.tfserving_standin.servables import Servable


def model_spec(name: str, version: int, signature_name: str | None) -> model_pb2.ModelSpec:
    """The spec a response names the servable (and signature) that answered with."""
    spec = model_pb2.ModelSpec(name=name)
    spec.version.value = version
    if signature_name is not None:
        spec.signature_name = signature_name
    return spec


def require_model_spec(request: Any) -> model_pb2.ModelSpec:
    """The request's ModelSpec: every API refuses a request without one."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    return request.model_spec


class ServerCore:
    """Resolves model specs to loaded servables."""

    def __init__(self, models: Mapping[str, Model]) -> None:
        self._models = dict(models)

    def model(self, name: str) -> Model | None:
        return self._models.get(name)

    def _label_version(self, name: str, label: str) -> int:
        model = self._models.get(name)
        if model is None or label not in model.labels:
            raise invalid(f"Unrecognized servable version label: {label}")
        return model.labels[label]

    def requested_version(self, spec: model_pb2.ModelSpec) -> int | None:
        """The version the spec asks for, by number or by label; None for the latest."""
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            return self._label_version(spec.name, spec.version_label)
        return int(spec.version.value) if choice == "version" else None

    def servable(self, spec: model_pb2.ModelSpec) -> Servable:
        version = self.requested_version(spec)
        model = self._models.get(spec.name)
        if version is None:
            if model is None or not model.versions:
                raise ServingError(
                    Code.NOT_FOUND, f"Servable not found for request: Latest({spec.name})"
                )
            return model.versions[max(model.versions)]
        if model is None or version not in model.versions:
            raise ServingError(
                Code.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, {version})"
            )
        return model.versions[version]
