"""The REST API's paths: ``/v1/models/{m}[/versions/{v}|/labels/{l}]`` and what each one asks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from tensorflow_serving.apis import model_pb2

from deploy.local.tfserving_standin.errors import invalid

REST_PATH = re.compile(r"/v1/.*", re.I | re.S)
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I
)
INFERENCE_ACTIONS = ("predict", "classify", "regress")


@dataclass(frozen=True)
class RestRoute:
    action: str  # predict, classify, regress, status or metadata
    model_name: str
    version: int | None
    label: str | None

    def spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name)
        if self.version is not None:
            spec.version.value = self.version
        if self.label is not None:
            spec.version_label = self.label
        return spec


def parse_route(method: str, path: str) -> RestRoute:
    malformed = invalid(f"Malformed request: {method} {path}")
    if method == "POST":
        match = _PREDICT_PATH.fullmatch(path)
        action = match.group(4) if match else ""
    elif method == "GET":
        match = _STATUS_PATH.fullmatch(path)
        action = "metadata" if match and match.group(4) == "metadata" else "status"
    else:
        raise malformed
    if match is None or action not in (*INFERENCE_ACTIONS, "status", "metadata"):
        raise malformed
    version_text = match.group(2)
    version = int(version_text) if version_text else None
    if version is not None and version >= 2**63:
        raise invalid(f"Failed to convert version: {version_text} to numeric.")
    label = unquote(match.group(3)) if match.group(3) else None
    return RestRoute(action, unquote(match.group(1) or ""), version, label)
