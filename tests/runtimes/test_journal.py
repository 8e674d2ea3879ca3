"""The state directory: one operation at a time across processes, and a journal that survives."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from gateway.errors import Conflict
from gateway.runtimes.journal import Entry, Journal, Step


def test_the_journal_round_trips_and_lists_what_never_finished(tmp_path):
    journal = Journal(tmp_path)
    entry = Entry("deploy", "digits", "3", {"model": "digits", "version": "3", "targets": []})
    entry.steps["torchserve"] = Step("done", {"registered": False}, "registered digits_v3.mar", 2.5)
    journal.save(entry)
    journal.save(Entry("deploy", "other/x", "1", {}, status="done"))
    (again,) = journal.in_progress()
    assert again == entry
    assert journal.load("digits", "3") == entry
    assert journal.load("digits", "4") is None
    assert sorted(p.name for p in (tmp_path / "journal").iterdir()) == [
        "digits@3.json",
        "other_x@1.json",
    ]


def _hold_lock(
    state_dir: Path,
    held: multiprocessing.synchronize.Event,
    done: multiprocessing.synchronize.Event,
) -> None:
    async def hold() -> None:
        async with Journal(state_dir).locked(1.0):
            held.set()
            done.wait(10)

    asyncio.run(hold())


def test_a_second_process_waits_for_the_lock_then_gives_up(tmp_path):
    context = multiprocessing.get_context("spawn")
    held, done = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(tmp_path, held, done))
    holder.start()
    try:
        assert held.wait(30)

        async def try_lock() -> None:
            async with Journal(tmp_path).locked(0.3):
                pass

        with pytest.raises(Conflict, match="another deploy or undeploy holds"):
            asyncio.run(try_lock())
    finally:
        done.set()
        holder.join(10)
    asyncio.run(try_lock())  # free again once the holder is gone
