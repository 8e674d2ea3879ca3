"""A refused TorchServe key against its key file: a renewal is in force before TorchServe writes
the file, so a refusal waits a moment for the new key; a file that never changes is a refusal."""

from __future__ import annotations

import asyncio
import json
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
