"""A refused TorchServe key against its key file: a renewal is in force before TorchServe writes
the file, so a refusal waits a moment for the new key; a file that never changes is renewed once
(with a token API), or else a refusal."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from pathlib import Path

from gateway.backends.torchserve_keys import (
    INFERENCE,
    KEY_CHANGE_WAIT_S,
    TorchServeKeys,
    bearer,
)


def write_keys(path: Path, inference: str) -> None:
    expiry = "2999-01-01T00:00:00.000000Z"
    path.write_text(
        json.dumps(
            {
                "management": {"key": "m-key", "expiration time": expiry},
                "inference": {"key": inference, "expiration time": expiry},
                "API": {"key": "api-key"},
            }
        )
    )


def test_a_key_written_after_the_refusal_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "key_file.json"
    write_keys(path, "old")
    keys = TorchServeKeys("ts", str(path), None)

    async def scenario() -> tuple[bool, float]:
        sent = keys.headers(INFERENCE)
        assert sent == bearer("old")
        # TorchServe has the new key in force; its file follows a little later.
        loop = asyncio.get_running_loop()
        loop.call_later(0.15, write_keys, path, "new")
        started = time.monotonic()
        retry = await keys.after_refusal(INFERENCE, sent)
        return retry, time.monotonic() - started

    retry, waited = asyncio.run(scenario())
    assert retry
    assert 0.1 < waited < KEY_CHANGE_WAIT_S
    assert keys.headers(INFERENCE) == bearer("new")


def test_a_file_that_keeps_the_refused_key_is_a_refusal_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "key_file.json"
    write_keys(path, "wrong")
    keys = TorchServeKeys("ts", str(path), None)

    async def scenario() -> tuple[bool, float]:
        sent = keys.headers(INFERENCE)
        started = time.monotonic()
        retry = await keys.after_refusal(INFERENCE, sent)
        return retry, time.monotonic() - started

    retry, waited = asyncio.run(scenario())
    assert not retry
    assert KEY_CHANGE_WAIT_S <= waited < KEY_CHANGE_WAIT_S + 0.5
    assert "from " + str(path) in keys.refusal(INFERENCE).message


class TokenApi(http.server.BaseHTTPRequestHandler):
    """TorchServe's ``GET /token?type=inference``: a new key, written to the key file."""

    key_file: Path
    renewals: list[str]

    def do_GET(self) -> None:
        assert self.headers["authorization"] == "Bearer api-key"
        assert self.path == "/token?type=inference"
        self.renewals.append(self.path)
        write_keys(self.key_file, f"renewed-{len(self.renewals)}")
        body = b'{"message": "renewed"}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_file_stuck_on_a_refused_key_is_renewed_once_for_every_refusal(tmp_path: Path) -> None:
    # Two renewals at once can leave TorchServe's file on the older key: nothing changes it.
    path = tmp_path / "key_file.json"
    write_keys(path, "stale")
    renewals: list[str] = []
    handler = type("Handler", (TokenApi,), {"key_file": path, "renewals": renewals})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    keys = TorchServeKeys("ts", str(path), f"http://127.0.0.1:{server.server_address[1]}")

    async def refusals() -> list[bool]:
        sent = keys.headers(INFERENCE)
        retries = await asyncio.gather(*(keys.after_refusal(INFERENCE, sent) for _ in range(5)))
        await keys.close()
        return list(retries)

    try:
        assert asyncio.run(refusals()) == [True] * 5
    finally:
        server.shutdown()
        server.server_close()
    assert renewals == ["/token?type=inference"]
    assert keys.headers(INFERENCE) == bearer("renewed-1")
