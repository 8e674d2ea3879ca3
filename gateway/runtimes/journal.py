"""The deploy journal: what each operation has done so far, on disk before and after each step.

One JSON file per model version in ``<state_dir>/journal/``, replaced atomically at every
transition ("persist, then act"): a deploy interrupted half-way (a crash, a cancelled call)
leaves a journal that says which runtimes it touched and what each held before, so the next call
for that version resumes it, and a rollback undoes only what the deploy itself did. A lock file
keeps two processes sharing the state directory from running operations at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from gateway.errors import Conflict
from gateway.runtimes.model_server_config import write_atomically

Phase = Literal["started", "done", "undone"]
Status = Literal["in-progress", "done", "rolled-back", "failed"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class Step:
    phase: Phase
    before: dict[str, Any]
    """What the runtime held before this operation touched it (for the rollback)."""
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Entry:
    operation: Literal["deploy", "undeploy"]
    model: str
    version: str
    request: dict[str, Any]
    status: Status = "in-progress"
    steps: dict[str, Step] = field(default_factory=dict)
    """By backend name."""

    def to_json(self) -> bytes:
        document = {
            "operation": self.operation,
            "model": self.model,
            "version": self.version,
            "request": self.request,
            "status": self.status,
            "steps": {name: vars(step) for name, step in self.steps.items()},
            "updated": time.time(),
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, body: bytes) -> Entry:
        document = orjson.loads(body)
        steps = {name: Step(**step) for name, step in document.get("steps", {}).items()}
        return cls(
            document["operation"],
            document["model"],
            document["version"],
            document["request"],
            document["status"],
            steps,
        )


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._dir = state_dir / "journal"

    def _path(self, model: str, version: str) -> Path:
        return self._dir / f"{_UNSAFE.sub('_', model)}@{_UNSAFE.sub('_', version)}.json"

    def load(self, model: str, version: str) -> Entry | None:
        try:
            return Entry.from_json(self._path(model, version).read_bytes())
        except FileNotFoundError:
            return None

    def save(self, entry: Entry) -> None:
        write_atomically(self._path(entry.model, entry.version), entry.to_json().decode())

    def in_progress(self) -> list[Entry]:
        """Operations that never finished (resume them by calling them again)."""
        entries = [Entry.from_json(path.read_bytes()) for path in sorted(self._dir.glob("*.json"))]
        return [entry for entry in entries if entry.status == "in-progress"]

    @asynccontextmanager
    async def locked(self, wait_s: float) -> AsyncIterator[None]:
        """Hold the state directory's lock (one operation at a time across processes)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.state_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise Conflict(
                            f"another deploy or undeploy holds {self.state_dir / '.lock'}; "
                            "try again when it has finished"
                        ) from None
                    await asyncio.sleep(0.1)
            yield
        finally:
            os.close(handle)  # releases the lock
