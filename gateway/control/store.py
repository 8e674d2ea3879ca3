"""The overlay file in ``server.state_dir``: written whole and renamed into place (a reader sees
the old or the new document, never part of one), changed under an exclusive lock on a file
beside it, so that replicas sharing the directory never lose each other's changes."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

OVERLAY = "overlay.json"
LOCK = "overlay.lock"

Stamp = tuple[int, int, int]
"""What tells a changed file apart: (mtime ns, size, inode), following symlinks (a Kubernetes
ConfigMap volume swaps a symlink)."""


class StoreError(Exception):
    """The overlay file cannot be read or written; the message says which and why."""


def stamp(path: Path) -> Stamp | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


class OverlayStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / OVERLAY

    def read(self) -> dict[str, Any]:
        """The overlay; empty when there is none yet."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return {"revision": 0, "models": {}}
        except OSError as error:
            raise StoreError(f"cannot read {self.path}: {error.strerror or error}") from None
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise StoreError(f"{self.path} is not valid JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("models", {}), dict):
            raise StoreError(f"{self.path} does not hold an overlay (an object with models)")
        return document

    def write(self, document: dict[str, Any]) -> None:
        partial = self.path.with_name(f".{OVERLAY}.{os.getpid()}")
        try:
            with partial.open("wb") as file:
                file.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            partial.replace(self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise StoreError(f"cannot write {self.path}: {error.strerror or error}") from None

    def stamp(self) -> Stamp | None:
        return stamp(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's overlay lock (blocking; held only for a read-modify-write)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot lock {self.dir / LOCK}: {error.strerror or error}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)
