"""The plane's watcher: a change made through the plane is not reloaded a second time, however
the watcher's look falls against the overlay's write; a change made by someone else is."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig, load_config
from gateway.control import overlay
from gateway.control.plane import Actor, ControlPlane
from gateway.control.store import OverlayStore
from gateway.control.workers import Health

CONFIG: dict[str, Any] = {
    "backends": {"ts": {"kind": "torchserve"}},
    "models": {
        "digits": {"variants": [{"name": "torch-v1", "backend": "ts", "version": 1, "weight": 1}]}
    },
}
ACTOR = Actor("test", "127.0.0.1")


class Recorded:
    """Workers that apply at once and keep the numbers they were given."""

    def __init__(self) -> None:
        self.numbers: list[int] = []

    async def apply(self, config: GatewayConfig, number: int) -> int:
        self.numbers.append(number)
        return 1

    async def health(self) -> Health:
        return {}

    async def shadow_examples(self, model: str) -> list[list[dict[str, Any]]]:
        return []


def plane_in(tmp_path: Path) -> tuple[ControlPlane, Recorded]:
    path = tmp_path / "gateway.yaml"
    document = {**CONFIG, "server": {"state_dir": str(tmp_path / "state"), "admin": None}}
    path.write_text(yaml.safe_dump(document))
    workers = Recorded()
    return ControlPlane(path, load_config(path), workers), workers


def weight_of(value: int) -> Any:
    def edit(document: dict[str, Any], _: GatewayConfig) -> None:
        overlay.patch_variant(document, "digits", "torch-v1", {"weight": value})

    return edit


def test_a_change_the_watcher_sees_mid_write_is_applied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plane, workers = plane_in(tmp_path)
    write = OverlayStore.write

    def slow_write(store: OverlayStore, document: dict[str, Any]) -> None:
        write(store, document)
        time.sleep(0.1)  # the new overlay is on disk; the plane has not noted its stamp yet

    monkeypatch.setattr(OverlayStore, "write", slow_write)
    asyncio.run(changes_and_a_replica(plane, workers, tmp_path, write))


async def changes_and_a_replica(
    plane: ControlPlane, workers: Recorded, tmp_path: Path, write: Any
) -> None:
    watcher = asyncio.create_task(plane.watch(0.01))
    try:
        for value in (2, 3, 4):
            version = await plane.change(weight_of(value), ACTOR, f"weight {value}")
        await asyncio.sleep(0.2)  # many looks after the last change
        assert workers.numbers == [2, 3, 4]
        assert version.number == plane.version.number == 4
        # Another replica writes the shared overlay: that is a change, and the watcher applies it.
        other = OverlayStore(tmp_path / "state")
        document = other.read()
        overlay.patch_variant(document, "digits", "torch-v1", {"weight": 9})
        write(other, document)
        deadline = time.monotonic() + 2
        while workers.numbers == [2, 3, 4]:
            assert time.monotonic() < deadline, "the other replica's change was not reloaded"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert workers.numbers == [2, 3, 4, 5]
        assert plane.config.models["digits"].variants[0].weight == 9
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
