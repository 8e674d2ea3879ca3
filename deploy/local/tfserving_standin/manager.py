"""Every version the server has been asked to serve, and where each one is in its lifecycle.

Like TF Serving's AspiredVersionsManager and ServableStateMonitor: a version that is aspired goes
START -> LOADING -> AVAILABLE (or END with the load's error, after the configured retries), one
that stops being aspired goes UNLOADING -> END. Loads run on a thread of their own, so a reload
answers before a new version of an existing model is up, as TF Serving's does. Versions that
ended stay listed (as END), which is what GetModelStatus shows after an unload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tensorflow_serving.apis import get_model_status_pb2

from deploy.local.tfserving_standin.errors import ServingError
from deploy.local.tfserving_standin.identity import log
from deploy.local.tfserving_standin.servables import Servable

State = get_model_status_pb2.ModelVersionStatus
Loader = Callable[[str, int, Path], Servable]


@dataclass(frozen=True)
class VersionState:
    state: int  # a ModelVersionStatus.State
    error: ServingError | None = None
    servable: Servable | None = None


@dataclass(frozen=True)
class LoadRetries:
    """``--max_num_load_retries`` and ``--load_retry_interval_micros``."""

    retries: int = 5
    interval_s: float = 60.0


class ServableManager:
    def __init__(self, loader: Loader, retries: LoadRetries, threads: int = 2) -> None:
        self._loader = loader
        self._retries = retries
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._states: dict[str, dict[int, VersionState]] = {}
        self._generations: dict[tuple[str, int], int] = {}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="load")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def versions(self, model: str) -> dict[int, VersionState]:
        """Every version of ``model`` the server knows of, highest first."""
        with self._lock:
            known = self._states.get(model, {})
            return {version: known[version] for version in sorted(known, reverse=True)}

    def available(self, model: str) -> dict[int, Servable]:
        return {
            version: entry.servable
            for version, entry in self.versions(model).items()
            if entry.state == State.AVAILABLE and entry.servable is not None
        }

    def aspire(self, aspired: Mapping[str, Mapping[int, Path]]) -> None:
        """Make exactly these versions (by model) the ones to serve: load new, unload the rest."""
        with self._lock:
            for model in set(self._states) | set(aspired):
                wanted = aspired.get(model, {})
                known = self._states.setdefault(model, {})
                for version, path in wanted.items():
                    current = known.get(version)
                    if current is None or current.state in (State.UNLOADING, State.END):
                        generation = self._bump(model, version)
                        known[version] = VersionState(State.START)
                        self._pool.submit(self._load, model, version, path, generation)
                for version, current in list(known.items()):
                    if version not in wanted and current.state not in (State.UNLOADING, State.END):
                        generation = self._bump(model, version)
                        known[version] = VersionState(State.UNLOADING)
                        self._pool.submit(self._unload, model, version, generation)
            self._changed.notify_all()

    def _bump(self, model: str, version: int) -> int:
        generation = self._generations.get((model, version), 0) + 1
        self._generations[(model, version)] = generation
        return generation

    def wait_settled(self, models: set[str], timeout_s: float | None) -> dict[str, list[int]]:
        """Wait until every aspired version of these models is AVAILABLE or END.

        Returns the versions (by model) that ended without becoming available.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while not self._settled(models):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
            return {
                model: [v for v, s in self._states.get(model, {}).items() if s.error is not None]
                for model in models
            }

    def _settled(self, models: set[str]) -> bool:
        busy = (State.START, State.LOADING, State.UNLOADING)
        return all(
            state.state not in busy
            for model in models
            for state in self._states.get(model, {}).values()
        )

    def _set(self, model: str, version: int, state: VersionState, generation: int) -> bool:
        """Record a state reached by the load or unload of this generation, if still current."""
        with self._lock:
            if self._generations.get((model, version)) != generation:
                return False
            self._states[model][version] = state
            self._changed.notify_all()
            return True

    def _load(self, model: str, version: int, path: Path, generation: int) -> None:
        attempts = 1 + max(self._retries.retries, 0)
        for attempt in range(attempts):
            if not self._set(model, version, VersionState(State.LOADING), generation):
                return
            try:
                servable = self._loader(model, version, path)
            except ServingError as error:
                log.error("Loading servable %s version %d failed: %s", model, version, error)
                if attempt + 1 < attempts:
                    time.sleep(self._retries.interval_s)
                    continue
                self._set(model, version, VersionState(State.END, error), generation)
                return
            self._set(model, version, VersionState(State.AVAILABLE, None, servable), generation)
            return

    def _unload(self, model: str, version: int, generation: int) -> None:
        log.info("Unloading servable %s version %d", model, version)
        self._set(model, version, VersionState(State.END), generation)
