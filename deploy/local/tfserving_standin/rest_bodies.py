"""REST bodies that are not tensors: the request document, error bodies, protos as JSON."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from deploy.local.tfserving_standin.errors import invalid
from deploy.local.tfserving_standin.json_values import json_text


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object; its ``signature_name``, if any, must be a string."""
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError as exc:
        raise invalid(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from exc
    except json.JSONDecodeError as exc:
        raise invalid(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from exc
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {json_text(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid(
            f"JSON Value: {json_text(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return doc


def error_body(message: str) -> str:
    return '{ "error": ' + json.dumps(message) + " }"


def message_json(message: Any, preserve_names: bool) -> str:
    return json_format.MessageToJson(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=preserve_names,
        indent=1,
    )
