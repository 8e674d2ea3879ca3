"""Open Inference Protocol (KServe v2) REST bodies, with the binary tensor extension.

A body is JSON, optionally followed by raw tensor bytes; ``Inference-Header-Content-Length`` tells
where the JSON ends. Binary inputs carry ``parameters.binary_data_size``; outputs are returned
binary when asked for per output (``parameters.binary_data``) or per request
(``parameters.binary_data_output``). BYTES elements are 4-byte little-endian length-prefixed.

``request`` reads a client's request, ``response`` renders and reads responses, ``upstream``
writes requests for backends; ``document`` and ``values`` hold what they share.
"""

from gateway.codecs.oip_json.request import decode_inputs, decode_request
from gateway.codecs.oip_json.response import (
    decode_response,
    encode_response,
    rename_response,
    select_outputs,
)
from gateway.codecs.oip_json.upstream import encode_binary_request, encode_request

__all__ = [
    "decode_inputs",
    "decode_request",
    "decode_response",
    "encode_binary_request",
    "encode_request",
    "encode_response",
    "rename_response",
    "select_outputs",
]
