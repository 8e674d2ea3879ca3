"""Rollouts on disk: one JSON file per model in the state directory, replaced atomically (write,
fsync, rename), and a lock so that only one controller acts on a directory at a time."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from gateway.config import NAME_PATTERN
from gateway.rollout.state import Rollout

SUFFIX = ".rollout.json"


class StoreError(Exception):
    """The state directory cannot be used (locked by another controller, unreadable file)."""


def _file_name(model: str) -> str:
    if not re.match(NAME_PATTERN, model):
        raise StoreError(f"{model!r} is not a model name")
    return model + SUFFIX


class StateStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock: IO[bytes] | None = None

    def lock(self) -> None:
        """Take the directory for this process; StoreError if another controller holds it."""
        handle = (self.directory / ".controller.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreError(
                f"another rollout controller holds {self.directory} (one acts at a time)"
            ) from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def path(self, model: str) -> Path:
        return self.directory / _file_name(model)

    def load(self, model: str) -> Rollout | None:
        path = self.path(model)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read {path}: {error}") from None
        try:
            return Rollout.model_validate_json(text)
        except ValidationError as error:
            raise StoreError(f"{path} is not a rollout state: {error}") from None

    def save(self, rollout: Rollout) -> None:
        path = self.path(rollout.model)
        scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with scratch.open("wb") as handle:
            handle.write(rollout.model_dump_json(indent=1).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def models(self) -> list[str]:
        return sorted(p.name.removesuffix(SUFFIX) for p in self.directory.glob("*" + SUFFIX))
