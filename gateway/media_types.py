"""The media types the gateway reads and writes, and the headers that carry them, named once."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

JSON = "application/json"
BINARY = "application/octet-stream"
"""An Open Inference Protocol body with binary tensors (JSON header, then raw bytes)."""
INFERENCE_HEADER_LENGTH = "inference-header-content-length"
"""The OIP binary extension's header: the length of the JSON part of the body."""

JSON_HEADERS: Mapping[str, str] = MappingProxyType({"content-type": JSON})
"""Request headers of a JSON body (backend clients)."""
