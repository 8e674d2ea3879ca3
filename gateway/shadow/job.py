"""One sampled request as the worker hands it to its shadow process, and rebuilt there.

The worker sends what it has without decoding anything it would not decode anyway: the
client's body (a :class:`Payload`) for backends that speak its format, the input tensors if
they were decoded, and the primary's answer as its OIP JSON body or its tensors. Only a body
the shadow process cannot decode alone (its decoder needs the worker's model metadata) is
decoded by the worker first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.backends.boundary import reply_boundary
from gateway.codecs import oip_json
from gateway.errors import BackendError
from gateway.inference import (
    Formats,
    InferRequest,
    InferResponse,
    Parameters,
    Payload,
    RequestedOutput,
    Tensor,
)
from gateway.tracing.context import Outgoing, outgoing
from gateway.tracing.trace import Trace

SELF_DECODED = (Formats.OIP_JSON,)
"""Formats of a client's request (and of a backend's reply) the shadow process decodes alone."""


@dataclass(slots=True)
class Job:
    model: str
    primary: str
    """The primary variant's name."""
    version: str | None
    label: str | None
    request_id: str | None
    parameters: Parameters
    outputs: list[RequestedOutput]
    binary_output: bool
    payload: Payload | None
    inputs: list[Tensor] | None
    answer: list[Tensor] | Payload | str
    """The primary's outputs, its OIP JSON reply, or why they could not be read (the message
    of the error reading them)."""
    traceparent: str | None = None
    tracestate: str | None = None


PayloadTuple = tuple[str, bytes, str | None, int | None]
Wire = tuple[Any, ...]
"""A job as it is pickled: a tuple of builtins (and tensors, when decoded), ten times cheaper
to pickle than the dataclass, and built by the worker straight from the request."""


def _payload_tuple(payload: Payload | None) -> PayloadTuple | None:
    if payload is None:
        return None
    return (payload.format, payload.body, payload.content_type, payload.json_length)


def _payload(values: PayloadTuple | None) -> Payload | None:
    return None if values is None else Payload(*values)


def decode_job(wire: Wire) -> Job:
    (model, primary, version, label, request_id, parameters, outputs, binary_output, payload,
     inputs, answer, traceparent, tracestate) = wire  # fmt: skip
    return Job(
        model,
        primary,
        version,
        label,
        request_id,
        parameters,
        [RequestedOutput(name, binary) for name, binary in outputs] if outputs else [],
        binary_output,
        _payload(payload),
        inputs,
        Payload(*answer) if isinstance(answer, tuple) else answer,
        traceparent,
        tracestate,
    )


def needs_inputs(request: InferRequest) -> bool:
    """Whether the worker must decode the inputs before handing the request over."""
    return request.inputs is None and (
        request.payload is None or request.payload.format not in SELF_DECODED
    )


def needs_outputs(response: InferResponse) -> bool:
    payload = response.payload
    return response.outputs is None and (payload is None or payload.format not in SELF_DECODED)


def wire_of(
    request: InferRequest,
    primary: str,
    answer: list[Tensor] | Payload | str,
    trace: Trace | None = None,
) -> Wire:
    """The job of ``request`` as it is pickled (:func:`decode_job` makes it a :class:`Job`);
    ``trace``: the request's, unrecorded, its context goes with the shadow calls."""
    outputs = request.outputs
    return (
        request.model,
        primary,
        request.version,
        request.label,
        request.id,
        request.parameters,
        [(o.name, o.binary) for o in outputs] if outputs else None,
        request.binary_output,
        _payload_tuple(request.payload),
        request.inputs,
        _payload_tuple(answer) if isinstance(answer, Payload) else answer,
        trace.traceparent if trace is not None else None,
        trace.tracestate if trace is not None else None,
    )


def wire_bytes(request: InferRequest, answer: list[Tensor] | Payload | str) -> int:
    """About how many bytes a job pickles to: its bodies and tensors (the rest is small)."""
    size = 256
    if request.payload is not None:
        size += len(request.payload.body)
    if request.inputs is not None:
        size += sum(t.data.nbytes for t in request.inputs)
    if isinstance(answer, Payload):
        size += len(answer.body)
    elif isinstance(answer, list):
        size += sum(t.data.nbytes for t in answer)
    return size


def answer_of(response: InferResponse) -> list[Tensor] | Payload | None:
    """What of the primary's answer can go as it is (None: it must be decoded first)."""
    if response.outputs is not None:
        return response.outputs
    if response.payload is not None and response.payload.format in SELF_DECODED:
        return response.payload
    return None


def rebuilt_request(job: Job, limit: int) -> InferRequest:
    request = InferRequest(
        job.model,
        version=job.version,
        label=job.label,
        inputs=job.inputs,
        outputs=job.outputs,
        id=job.request_id,
        parameters=job.parameters,
        binary_output=job.binary_output,
        payload=job.payload,
    )
    payload = job.payload
    if job.inputs is None and payload is not None and payload.format == Formats.OIP_JSON:

        async def decode() -> list[Tensor]:
            decoded = oip_json.decode_request(
                payload.body, payload.json_length, job.model, job.version, limit=limit
            )
            return decoded.inputs or []

        request.decode_inputs = decode
    return request


def rebuilt_response(job: Job, backend: str) -> InferResponse:
    """The primary's answer; its outputs raise the worker's error if it could not read them."""
    answer = job.answer
    response = InferResponse(job.model, None, id=job.request_id)
    if isinstance(answer, str):
        message = answer

        async def unreadable() -> list[Tensor]:
            raise BackendError(message)

        response.decode_outputs = unreadable
        return response
    if isinstance(answer, list):
        response.outputs = answer
        return response
    body, length = answer.body, answer.json_length

    async def decode() -> list[Tensor]:
        with reply_boundary(backend):
            return oip_json.decode_response(body, length, backend).outputs or []

    response.decode_outputs = decode
    return response


def outgoing_of(job: Job) -> Outgoing | None:
    if job.traceparent is None:
        return None
    return outgoing(job.traceparent, job.tracestate)
