"""The backend call's timeout: asyncio.timeout's semantics, one timer."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.backends.deadline import Deadline


def test_an_expired_deadline_raises_timeout_error_on_time_and_leaves_the_task_uncancelled():
    async def scenario() -> tuple[float, int]:
        started = time.perf_counter()
        with pytest.raises(TimeoutError), Deadline(0.05):
            await asyncio.sleep(5)
        task = asyncio.current_task()
        assert task is not None
        return time.perf_counter() - started, task.cancelling()

    took, cancelling = asyncio.run(scenario())
    assert 0.04 < took < 1.0
    assert cancelling == 0  # the cancellation it made is taken back


def test_a_block_done_in_time_disarms_its_timer():
    async def scenario() -> str:
        with Deadline(0.05):
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)  # past the deadline: nothing fires now
        return "finished"

    assert asyncio.run(scenario()) == "finished"


def test_a_cancellation_from_outside_stays_a_cancellation():
    async def scenario() -> None:
        async def call() -> None:
            with Deadline(5):
                await asyncio.sleep(5)

        task = asyncio.ensure_future(call())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_an_outside_cancellation_at_expiry_is_not_swallowed_as_a_timeout():
    async def scenario() -> None:
        async def call() -> None:
            with Deadline(0):
                asyncio.current_task().cancel()  # type: ignore[union-attr]
                await asyncio.sleep(1)

        with pytest.raises(asyncio.CancelledError):
            await call()

    asyncio.run(scenario())


def test_errors_in_the_block_pass_through():
    async def scenario() -> None:
        with pytest.raises(ValueError, match="the block's own"), Deadline(5):
            raise ValueError("the block's own")

    asyncio.run(scenario())
