"""The one metadata cache: single-flight, a TTL, failures remembered briefly, bounded waits.

The backend here is a stand-in that counts calls and answers when told to; lifetimes run on an
injected clock, timeouts on real (short) time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.backends.base import BackendModel
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable
from gateway.inference import ModelMetadata, TensorSpec
from gateway.metadata import MetadataCache

TARGET = BackendModel("digits", "1")
DESCRIBED = ModelMetadata("tf", (TensorSpec("input", "FP32", (-1, 64)),), ())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Described:
    """A backend's ``metadata``: answers with ``answer`` once ``release`` is set."""

    def __init__(self, answer: Any = DESCRIBED, name: str = "tfserving") -> None:
        self.name = name
        self.answer = answer
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def metadata(self, target: BackendModel) -> ModelMetadata:
        self.calls += 1
        await self.release.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_concurrent_lookups_share_one_fetch_and_the_answer_is_kept_for_the_ttl():
    clock = Clock()
    cache = MetadataCache(ttl_s=60, clock=clock)
    backend = Described()

    async def scenario() -> None:
        backend.release.clear()
        waiting = [asyncio.create_task(cache.get(backend, TARGET)) for _ in range(20)]
        await asyncio.sleep(0)
        backend.release.set()
        assert await asyncio.gather(*waiting) == [DESCRIBED] * 20
        assert backend.calls == 1
        clock.now += 59.9
        assert await cache.get(backend, TARGET) is DESCRIBED
        assert backend.calls == 1
        clock.now += 0.2
        assert await cache.get(backend, TARGET) is DESCRIBED
        assert backend.calls == 2
        other = Described(name="torchserve")  # another backend, same target: its own entry
        assert await cache.get(other, TARGET) is DESCRIBED
        assert other.calls == 1

    run(scenario())


def test_a_failure_is_remembered_briefly_and_each_caller_gets_its_own_copy():
    clock = Clock()
    cache = MetadataCache(failure_ttl_s=2, clock=clock)
    backend = Described(BackendUnavailable("backend 'tfserving' unreachable"))

    async def scenario() -> None:
        errors = []
        for _ in range(3):
            with pytest.raises(BackendUnavailable, match="unreachable") as raised:
                await cache.get(backend, TARGET)
            errors.append(raised.value)
        assert backend.calls == 1
        assert len({id(error) for error in errors}) == 3
        clock.now += 2.1
        backend.answer = DESCRIBED
        assert await cache.get(backend, TARGET) is DESCRIBED
        assert backend.calls == 2

    run(scenario())


def test_metadata_without_tensors_is_a_backend_error():
    cache = MetadataCache()
    backend = Described(ModelMetadata("tf", (), ()))
    with pytest.raises(BackendError, match="reported no tensors for model 'digits' version 1"):
        run(cache.get(backend, TARGET))


def test_a_hung_fetch_ends_at_the_timeout_and_a_short_deadline_ends_only_its_own_wait():
    cache = MetadataCache(timeout_s=0.2)
    backend = Described()
    backend.release.clear()

    async def scenario() -> None:
        patient = asyncio.create_task(cache.get(backend, TARGET))
        with pytest.raises(BackendTimeout, match=r"did not describe .* within 0\.05s"):
            await cache.get(backend, TARGET, within=0.05)
        assert not patient.done()
        with pytest.raises(BackendTimeout, match=r"did not describe .* within 0\.2s"):
            await patient
        assert backend.calls == 1
        with pytest.raises(BackendTimeout):  # remembered: no second wait
            await asyncio.wait_for(cache.get(backend, TARGET), 0.05)
        assert backend.calls == 1

    run(scenario())


def test_a_cancelled_caller_does_not_cancel_the_shared_fetch():
    cache = MetadataCache()
    backend = Described()
    backend.release.clear()

    async def scenario() -> None:
        first = asyncio.create_task(cache.get(backend, TARGET))
        second = asyncio.create_task(cache.get(backend, TARGET))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        backend.release.set()
        assert await second is DESCRIBED
        assert first.cancelled()
        assert backend.calls == 1

    run(scenario())
