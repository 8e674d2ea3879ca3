"""``server.tls``: both front ports speak TLS with the configured certificate, and only TLS.

A self-signed certificate for localhost and 127.0.0.1 (tests/support/tls.py); real
handshakes with httpx (HTTP) and grpcio (gRPC) verify it, and a client that does not trust it,
or speaks plaintext, gets nowhere.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.config import ConfigError, parse_config
from tests.support.offline_gateway import offline_config, running
from tests.support.tls import self_signed


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    return {"cert_file": cert, "key_file": key}


def tls_config(certificate: dict[str, Path]) -> dict[str, Any]:
    return offline_config(tls={name: str(path) for name, path in certificate.items()})


def test_http_and_grpc_answer_over_tls_with_the_configured_certificate(certificate):
    trusted = ssl.create_default_context(cafile=str(certificate["cert_file"]))
    root = certificate["cert_file"].read_bytes()

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with running(tls_config(certificate)) as gateway:
            https = f"https://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(verify=trusted) as client:
                reply = await client.get(f"{https}/v2/health/live")
                seen["https"] = reply.status_code
                stream = reply.extensions["network_stream"]
                seen["tls_version"] = stream.get_extra_info("ssl_object").version()
            async with httpx.AsyncClient(verify=True) as client:
                try:
                    await client.get(f"{https}/v2/health/live")
                    seen["untrusted"] = "accepted"
                except httpx.ConnectError as error:
                    seen["untrusted"] = str(error)
            async with httpx.AsyncClient() as client:
                try:
                    plain = await client.get(f"http://127.0.0.1:{gateway.http_port}/v2/health/live")
                    seen["plaintext"] = plain.status_code
                except httpx.HTTPError as error:
                    seen["plaintext"] = type(error).__name__

            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            async with grpc.aio.secure_channel(f"localhost:{gateway.grpc_port}", credentials) as ch:
                health = health_pb2_grpc.HealthStub(ch)
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                seen["grpc"] = answer.status
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
                health = health_pb2_grpc.HealthStub(ch)
                try:
                    await health.Check(health_pb2.HealthCheckRequest(), timeout=3)
                    seen["grpc_plaintext"] = "accepted"
                except grpc.RpcError as error:
                    seen["grpc_plaintext"] = error.code()
        return seen

    seen = asyncio.run(scenario())
    assert seen["https"] == 200
    assert seen["tls_version"] in {"TLSv1.2", "TLSv1.3"}
    assert "CERTIFICATE_VERIFY_FAILED" in seen["untrusted"]
    assert seen["plaintext"] != 200
    # Served, and NOT_SERVING because the only backend is down: the handshake and call worked.
    assert seen["grpc"] == health_pb2.HealthCheckResponse.NOT_SERVING
    assert seen["grpc_plaintext"] == grpc.StatusCode.UNAVAILABLE


def test_tls_files_that_do_not_exist_are_refused_by_key_path(certificate, tmp_path):
    config = offline_config(
        tls={"cert_file": str(tmp_path / "missing.crt"), "key_file": str(certificate["key_file"])}
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(config)
    ((path, reason),) = refused.value.problems
    assert path == "server.tls.cert_file"
    assert "missing.crt" in reason


def test_tls_is_off_unless_configured():
    assert parse_config(offline_config()).server.tls is None
