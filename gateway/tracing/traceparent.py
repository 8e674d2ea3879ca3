"""W3C Trace Context (https://www.w3.org/TR/trace-context/): ``traceparent`` and ``tracestate``.

Pure functions. A header that breaks the rules is ignored, as the spec says: the request then
starts a new trace rather than failing.
"""

from __future__ import annotations

from typing import NamedTuple

_HEX = frozenset("0123456789abcdef")
_VERSION_00_LENGTH = 55
MAX_TRACESTATE = 512


class Parent(NamedTuple):
    """The caller's span, as its ``traceparent`` names it."""

    trace_id: int
    span_id: int
    sampled: bool


def _hex(text: str) -> bool:
    return _HEX.issuperset(text)


def parse_traceparent(value: str) -> Parent | None:
    """``version-traceid-parentid-flags``; None when the header is not valid.

    Versions after ``00`` may append fields: their first four are read the same way.
    """
    if len(value) < _VERSION_00_LENGTH:
        return None
    version = value[:2]
    if version == "00":
        if len(value) != _VERSION_00_LENGTH:
            return None
    elif (
        version == "ff"
        or not _hex(version)
        or (len(value) > _VERSION_00_LENGTH and value[_VERSION_00_LENGTH] != "-")
    ):
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    trace, span, flags = value[3:35], value[36:52], value[53:55]
    if not (_hex(trace) and _hex(span) and _hex(flags)):
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1))


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    # %-formatting: a format spec in an f-string goes through the general formatter, 2x slower.
    return "00-%032x-%016x-%s" % (trace_id, span_id, "01" if sampled else "00")  # noqa: UP031


def clean_tracestate(value: str) -> str | None:
    """The caller's ``tracestate`` if it can be passed on as it is (printable ASCII, at most
    512 characters: also valid gRPC metadata and an HTTP/1.1 header), else None."""
    if not value or len(value) > MAX_TRACESTATE:
        return None
    if not value.isascii() or not value.isprintable():
        return None
    return value
