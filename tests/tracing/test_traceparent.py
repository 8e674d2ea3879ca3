import pytest

from gateway.tracing.traceparent import (
    Parent,
    clean_tracestate,
    format_traceparent,
    parse_traceparent,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_the_spec_example_parses():
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == Parent(int(TRACE, 16), int(SPAN, 16), True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == Parent(
        int(TRACE, 16), int(SPAN, 16), False
    )
    # Only the sampled bit counts; other flags are for future use.
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-03").sampled  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{SPAN}-01",  # hex is lower case
        f"00-{TRACE[:-1]}g-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"0x-{TRACE}-{SPAN}-01",
    ],
)
def test_invalid_headers_are_ignored(value):
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_by_its_first_four_fields():
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-what-comes-next") == Parent(
        int(TRACE, 16), int(SPAN, 16), True
    )
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01x") is None


def test_format_round_trips():
    header = format_traceparent(int(TRACE, 16), int(SPAN, 16), True)
    assert header == f"00-{TRACE}-{SPAN}-01"
    assert format_traceparent(1, 2, False) == f"00-{1:032x}-{2:016x}-00"


def test_tracestate_is_passed_on_only_when_it_is_safe_everywhere():
    assert clean_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7") == (
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    )
    assert clean_tracestate("a=\u00e9") is None  # Latin-1 over HTTP, not valid gRPC metadata
    assert clean_tracestate("a=b\tc") is None
    assert clean_tracestate("x" * 513) is None
    assert clean_tracestate("") is None
