"""The HTTP/1.1 pool against small hostile servers on real sockets (tests/backends/hostile.py)."""

from __future__ import annotations

import asyncio
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
import uvloop

from gateway.backends.http_pool import HttpPool, HttpReply, TlsOptions
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable
from tests.backends.hostile import Peer, self_signed_cert, serving

MiB = 1024 * 1024


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """On uvloop, the loop every worker runs."""
    return uvloop.run(coroutine)


def pool(limit: int = 4 * MiB, tls: TlsOptions | None = None, connections: int = 4) -> HttpPool:
    return HttpPool("hostile", connections, 1.0, limit, tls or TlsOptions())


async def get(url: str, limit: int = 4 * MiB, timeout_s: float = 5.0, **kw: Any) -> HttpReply:
    client = pool(limit, **kw)
    try:
        return await client.request("GET", url, timeout_s)
    finally:
        await client.close()


def test_keep_alive_reuses_one_connection():
    with serving(lambda peer: peer.serve(b'{"ok": true}')) as server:

        async def scenario() -> list[HttpReply]:
            client = pool()
            replies = [await client.request("GET", server.url + "/x", 5) for _ in range(5)]
            await client.close()
            return replies

        replies = run(scenario())
    assert [r.body for r in replies] == [b'{"ok": true}'] * 5
    assert server.connections == 1


def test_declared_length_over_the_limit_is_refused_before_the_body():
    def huge(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (300 * MiB))
        peer.send(b"x" * MiB)  # and the rest never comes: the client must not wait for it
        time.sleep(10)

    with serving(huge) as server:
        started = time.monotonic()
        with pytest.raises(BackendError, match="larger than the 1048576-byte limit"):
            run(get(server.url, limit=MiB))
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("framing", ["chunked", "until-close"])
def test_an_unbounded_body_is_cut_at_the_limit(framing):
    """The server would send 256 MiB; the client drops the connection soon after 1 MiB."""
    sent: list[int] = []

    def endless(peer: Peer) -> None:
        peer.request()
        try:
            blast(peer)
        finally:
            sent.append(peer.sent)

    def blast(peer: Peer) -> None:
        if framing == "chunked":
            peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(4096):
                peer.send(b"10000\r\n" + b"x" * 65536 + b"\r\n")
        else:
            peer.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
            for _ in range(4096):
                peer.send(b"x" * 65536)

    with (
        serving(endless) as server,
        pytest.raises(BackendError, match="larger than the 1048576-byte limit"),
    ):
        run(get(server.url, limit=MiB))
    # What the server got out before the reset: the socket buffers, not the 256 MiB.
    assert len(sent) == 1
    assert sent[0] < 32 * MiB, sent


def test_body_ended_by_close_is_read_to_the_end():
    body = b"no length, ended by close " * 10_000

    def until_close(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
        for start in range(0, len(body), 1000):
            peer.send(body[start : start + 1000])
        peer.sock.close()

    with serving(until_close) as server:
        reply = run(get(server.url))
    assert (reply.status, reply.body, reply.content_type) == (200, body, "text/plain")


def test_body_cut_short_is_a_dropped_connection():
    def truncated(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")

    with serving(truncated) as server, pytest.raises(BackendUnavailable, match="mid-reply"):
        run(get(server.url))


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n",
    ],
)
def test_interim_replies_are_skipped(interim):
    def interim_first(peer: Peer) -> None:
        while peer.request() is not None:
            peer.send(interim)
            peer.reply(b'{"final": 1}', content_type="application/json")

    with serving(interim_first) as server:

        async def scenario() -> list[HttpReply]:
            client = pool()
            replies = [await client.request("POST", server.url, 5, b"{}") for _ in range(2)]
            await client.close()
            return replies

        replies = run(scenario())
    assert [(r.status, r.body, r.content_type) for r in replies] == [
        (200, b'{"final": 1}', "application/json")
    ] * 2
    assert server.connections == 1  # and the connection stays usable


def test_switching_protocols_is_a_bad_reply():
    def upgrade(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade")
        peer.send(b"\r\n\r\n\x81\x05hello")

    with serving(upgrade) as server, pytest.raises(BackendError, match="bad HTTP response"):
        run(get(server.url))


def test_chunked_reply_is_joined():
    def chunked(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in (b'{"a":', b" [1, 2", b", 3]}"):
            peer.send(b"%x\r\n%s\r\n" % (len(part), part))
        peer.send(b"0\r\n\r\n")
        peer.serve()

    with serving(chunked) as server:
        reply = run(get(server.url))
    assert reply.body == b'{"a": [1, 2, 3]}'


def test_streamed_body_goes_chunked():
    parts = [b"first,", b"", b"x" * 300_000, b"last"]

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    with serving(lambda peer: peer.serve(b"ok")) as server:

        async def scenario() -> HttpReply:
            client = pool()
            try:
                return await client.request("POST", server.url + "/up", 5, body())
            finally:
                await client.close()

        reply = run(scenario())
    assert reply.body == b"ok"
    (request,) = server.requests
    assert request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in request.headers
    assert request.body == b"".join(parts)


def test_ipv6_host_is_bracketed():
    with serving(lambda peer: peer.serve(), host="::1") as server:
        run(get(server.url + "/v2/health/ready"))
    assert server.requests[0].headers["host"] == f"[::1]:{server.port}"
    assert server.requests[0].path == "/v2/health/ready"


def test_headers_per_pool_and_per_request():
    with serving(lambda peer: peer.serve()) as server:

        async def scenario() -> None:
            client = HttpPool("hostile", 2, 1.0, MiB, headers={"x-fixed": "always"})
            await client.request("GET", server.url, 5, headers={"x-call": "one"})
            await client.request("GET", server.url, 5)
            await client.close()

        run(scenario())
    first, second = server.requests
    assert (first.headers["x-fixed"], first.headers["x-call"]) == ("always", "one")
    assert second.headers["x-fixed"] == "always"
    assert "x-call" not in second.headers


def test_stalled_reader_holds_the_upload_not_the_gateway():
    """A backend that stops reading: the stream is pulled only as the socket drains."""
    pulled = 0

    def slow(peer: Peer) -> None:
        time.sleep(1.0)  # read nothing for a second, then everything
        peer.serve(b"done")

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(64):
            pulled += 1
            yield b"x" * MiB

    with serving(slow) as server:

        async def scenario() -> tuple[int, HttpReply]:
            client = pool()
            task = asyncio.create_task(client.request("POST", server.url, 20, body()))
            await asyncio.sleep(0.6)
            during_stall = pulled
            reply = await task
            await client.close()
            return during_stall, reply

        during_stall, reply = run(scenario())
    # Socket buffers on loopback take a few MiB; without flow control all 64 would be queued.
    assert during_stall <= 16, during_stall
    assert reply.body == b"done"
    assert len(server.requests[0].body) == 64 * MiB


def test_large_body_is_not_copied_into_the_transport_buffer():
    """On asyncio's own loop an unsent write is copied into the transport's buffer: a 64 MiB
    body to a backend that reads nothing would be a second 64 MiB. Written in slices, the copy
    stays near the transport's high-water mark."""
    body = b"x" * (64 * MiB)

    def slow(peer: Peer) -> None:
        time.sleep(1.0)
        peer.serve(b"done")

    async def scenario(url: str) -> tuple[int, HttpReply]:
        client = pool()
        tracemalloc.start()
        task = asyncio.create_task(client.request("POST", url, 20, body))
        await asyncio.sleep(0.6)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        reply = await task
        await client.close()
        return peak, reply

    with serving(slow) as server:
        peak, reply = asyncio.run(scenario(server.url))
    assert peak < 8 * MiB, peak
    assert reply.body == b"done"
    assert len(server.requests[0].body) == len(body)


def test_idle_connection_closed_by_the_server_is_replaced():
    def one_per_connection(peer: Peer) -> None:
        peer.request()
        peer.reply(b"fresh")  # keep-alive promised, then closed while idle

    with serving(one_per_connection) as server:

        async def scenario() -> list[bytes]:
            client = pool()
            first = await client.request("GET", server.url, 5)
            await asyncio.sleep(0.1)
            second = await client.request("GET", server.url, 5)
            await client.close()
            return [first.body, second.body]

        assert run(scenario()) == [b"fresh", b"fresh"]
    assert server.connections == 2


def test_bytes_after_the_reply_retire_the_connection():
    def chatty(peer: Peer) -> None:
        while peer.request() is not None:
            peer.reply(b"answer")
            peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nextra")

    with serving(chatty) as server:

        async def scenario() -> list[bytes]:
            client = pool()
            replies = []
            for _ in range(3):
                replies.append((await client.request("GET", server.url, 5)).body)
                await asyncio.sleep(0.05)
            await client.close()
            return replies

        assert run(scenario()) == [b"answer"] * 3  # never "extra"
    assert server.connections == 3


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    ],
)
def test_garbage_status_line_is_a_bad_reply(garbage):
    def liar(peer: Peer) -> None:
        peer.request()
        peer.send(garbage)
        time.sleep(1)

    with serving(liar) as server, pytest.raises(BackendError, match="bad HTTP response"):
        run(get(server.url))


def test_silence_is_a_timeout_and_a_closed_port_unreachable():
    with serving(lambda peer: time.sleep(3)) as server, pytest.raises(BackendTimeout):
        run(get(server.url, timeout_s=0.3))
    with pytest.raises(BackendUnavailable, match="unreachable"):
        run(get(f"http://127.0.0.1:{server.port}"))


def test_close_before_any_request():
    run(pool().close())


# TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, ssl.SSLContext]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return str(cert), context


def tls_server(context: ssl.SSLContext, names: list[str | None]):
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    return serving(lambda peer: peer.serve(b"secret"), tls=context)


def test_https_is_spoken_over_tls_with_sni(certificate):
    ca_file, context = certificate
    names: list[str | None] = []
    with tls_server(context, names) as server:
        url = f"https://localhost:{server.port}/v1/models/m"
        reply = run(get(url, tls=TlsOptions(ca_file=ca_file)))
    assert reply.body == b"secret"
    assert names == ["localhost"]
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"


def test_https_never_falls_back_to_plaintext():
    seen: list[bytes] = []

    def record(peer: Peer) -> None:
        seen.append(peer.sock.recv(5))

    with serving(record) as server, pytest.raises(BackendUnavailable, match=r"TLS|dropped"):
        run(get(f"https://127.0.0.1:{server.port}/"))
    assert [first[:1] for first in seen] == [b"\x16"]  # a TLS handshake record, not "GET /"


def test_certificates_are_checked(certificate):
    ca_file, context = certificate
    with tls_server(context, []) as server:
        port = server.port
        with pytest.raises(BackendUnavailable, match=r"TLS failed.*certificate verify failed"):
            run(get(f"https://localhost:{port}/"))  # not signed by a system CA
        with pytest.raises(BackendUnavailable, match=r"TLS failed.*127\.0\.0\.1"):
            run(get(f"https://127.0.0.1:{port}/", tls=TlsOptions(ca_file=ca_file)))  # wrong name
        insecure = run(get(f"https://127.0.0.1:{port}/", tls=TlsOptions(verify=False)))
    assert insecure.body == b"secret"
