"""The gRPC front end's server options, on a real gateway and real gRPC connections.

No backend is needed: the gateway starts (not ready) in front of a closed port, and the calls
here are its own health checks and reflection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.config import parse_config
from gateway.grpc.server import MAX_STATUS_MESSAGE_BYTES, status_message
from gateway.wire import oip_pb2
from tests.support.offline_gateway import offline_config, running


async def departures_from_ready(
    channel: grpc.aio.Channel, call: Callable[[], Awaitable[object]], duration_s: float
) -> tuple[int, int, int]:
    """Call every 50 ms for ``duration_s``; returns (calls, failed calls, times the channel left
    READY). Each departure is a connection the server closed under the client."""
    departures = 0

    async def watch() -> None:
        nonlocal departures
        state = channel.get_state(try_to_connect=True)
        while True:
            await channel.wait_for_state_change(state)
            if state == grpc.ChannelConnectivity.READY:
                departures += 1
            state = channel.get_state()

    watcher = asyncio.create_task(watch())
    calls = failed = 0
    deadline = time.monotonic() + duration_s
    try:
        while time.monotonic() < deadline:
            calls += 1
            try:
                await call()
            except grpc.RpcError:
                failed += 1
            await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
    return calls, failed, departures


@pytest.mark.parametrize(("age_s", "expect_reconnects"), [(1.0, True), (None, False)])
def test_connections_are_recycled_after_max_connection_age_without_a_failed_call(
    age_s, expect_reconnects
):
    config = offline_config(grpc_max_connection_age_s=age_s, grpc_max_connection_age_grace_s=0.5)

    async def scenario() -> tuple[int, int, int]:
        async with (
            running(config) as gateway,
            grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
        ):
            stub = health_pb2_grpc.HealthStub(channel)

            async def check() -> object:
                return await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)

            return await departures_from_ready(channel, check, duration_s=3.5)

    calls, failed, departures = asyncio.run(scenario())
    assert calls > 20
    assert failed == 0, f"{failed} of {calls} calls failed"
    if expect_reconnects:
        # About one GOAWAY per second (gRPC jitters the age by up to 10%).
        assert departures >= 2, departures
    else:
        assert departures == 0, departures


def test_server_options_carry_the_configured_age_and_grace():
    from gateway.grpc.server import server_options

    config = parse_config(offline_config(grpc_max_connection_age_s=300)).server
    options = dict(server_options(config, reuse_port=False))
    assert options["grpc.max_connection_age_ms"] == 300_000
    assert options["grpc.max_connection_age_grace_ms"] == 30_000  # the default grace
    unlimited = parse_config(offline_config(grpc_max_connection_age_s=None)).server
    assert "grpc.max_connection_age_ms" not in dict(server_options(unlimited, reuse_port=False))


@pytest.mark.parametrize("enabled", [True, False])
def test_reflection_answers_only_when_enabled(enabled):
    async def scenario() -> list[str] | grpc.StatusCode:
        async with (
            running(offline_config(grpc_reflection=enabled)) as gateway,
            grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
        ):
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            try:
                async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
                    return [s.name for s in reply.list_services_response.service]
            except grpc.RpcError as error:
                return error.code()
            raise AssertionError("no reflection reply")

    outcome = asyncio.run(scenario())
    if enabled:
        assert isinstance(outcome, list)
        assert "inference.GRPCInferenceService" in outcome
    else:
        assert outcome == grpc.StatusCode.UNIMPLEMENTED


HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
NOT_PROTOBUF = b"\xff\xff\xff\xff"  # field 0x1fffffff, wire type 7: no such wire type


def test_malformed_health_and_reflection_requests_are_invalid_argument_and_not_logged(caplog):
    async def scenario() -> tuple[list[tuple[grpc.StatusCode, str]], int]:
        async with (
            running(offline_config()) as gateway,
            grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
        ):
            raw: dict[str, None] = {"request_serializer": None, "response_deserializer": None}
            calls = [
                channel.unary_unary(HEALTH + "Check", **raw)(NOT_PROTOBUF, timeout=5),
                channel.unary_stream(HEALTH + "Watch", **raw)(NOT_PROTOBUF, timeout=5),
                channel.stream_stream(REFLECTION, **raw)(iter([NOT_PROTOBUF]), timeout=5),
            ]
            outcomes = []
            for call in calls:
                try:
                    if isinstance(call, grpc.aio.UnaryUnaryCall):
                        await call
                    else:
                        async for _ in call:
                            pass
                except grpc.RpcError as error:
                    outcomes.append((error.code(), error.details() or ""))
            # A well-formed request is still answered by the library's servicer.
            check = health_pb2_grpc.HealthStub(channel).Check
            reply = await check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            return outcomes, reply.status

    outcomes, status = asyncio.run(scenario())
    assert [code for code, _ in outcomes] == [grpc.StatusCode.INVALID_ARGUMENT] * 3
    assert "not a valid HealthCheckRequest" in outcomes[0][1]
    assert "not a valid ServerReflectionRequest" in outcomes[2][1]
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING  # offline: never ready
    assert not [record for record in caplog.records if record.exc_info], caplog.text


def test_an_error_that_quotes_a_10_kB_value_still_reaches_the_client():
    """The status message is cut to fit the client's 8 KiB trailers: the client gets NOT_FOUND,
    not "Stream removed (received metadata size exceeds soft limit)"."""
    name = "\U0001f4a5" * 2500  # 10 kB of UTF-8, 30 kB percent-encoded

    async def scenario() -> tuple[grpc.StatusCode, str]:
        async with (
            running(offline_config()) as gateway,
            grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
        ):
            ready = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelReady", request_serializer=None,
                response_deserializer=None,
            )  # fmt: skip
            try:
                await ready(oip_pb2.ModelReadyRequest(name=name).SerializeToString(), timeout=5)
            except grpc.RpcError as error:
                return error.code(), error.details() or ""
            raise AssertionError("an unknown model was ready")

    code, details = asyncio.run(scenario())
    assert code == grpc.StatusCode.NOT_FOUND, details
    assert details.startswith("unknown model '\U0001f4a5")
    assert details.endswith(" bytes in all)")
    assert len(details.encode()) < MAX_STATUS_MESSAGE_BYTES + 100


def test_status_messages_are_cut_on_a_character_boundary():
    assert status_message("short") == "short"
    cut = status_message("é" * MAX_STATUS_MESSAGE_BYTES)
    assert (
        cut
        == "é" * (MAX_STATUS_MESSAGE_BYTES // 2)
        + f"... ({2 * MAX_STATUS_MESSAGE_BYTES} bytes in all)"
    )
