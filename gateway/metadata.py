"""Model metadata as the backends report it, cached per (backend, model version).

One cache with one lifetime serves every reader: front ends typing JSON tensors with the routed
variant's signature, the metadata endpoints, and backends typing their own JSON replies. A lookup
is single-flight (one fetch per key at a time, however many ask), bounded by ``FETCH_TIMEOUT_S``,
kept for ``TTL_S``; a failure is remembered for ``FAILURE_TTL_S``, so a dead or hung backend costs
at most one timeout per that window, and only to the requests that need its metadata.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.errors import BackendError, BackendTimeout, GatewayError
from gateway.inference import ModelMetadata

if TYPE_CHECKING:  # backends take the cache, the cache calls backends
    from gateway.backends.base import BackendModel

TTL_S = 60.0
"""How long a backend's answer is used before it is asked again."""
FAILURE_TTL_S = 2.0
"""How long a failed lookup is answered with its error instead of asking again."""
FETCH_TIMEOUT_S = 2.0
"""How long one lookup may take; a request's shorter deadline bounds its own wait."""

_Key = tuple[str, "BackendModel"]


class Describes(Protocol):
    """What the cache needs of a backend (every :class:`~gateway.backends.base.Backend`)."""

    @property
    def name(self) -> str: ...

    async def metadata(self, target: BackendModel) -> ModelMetadata: ...


@dataclass(slots=True, frozen=True)
class _Entry:
    metadata: ModelMetadata | None
    error: GatewayError | None
    expires: float


class MetadataCache:
    def __init__(
        self,
        ttl_s: float = TTL_S,
        failure_ttl_s: float = FAILURE_TTL_S,
        timeout_s: float = FETCH_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._failure_ttl_s = failure_ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._entries: dict[_Key, _Entry] = {}
        self._inflight: dict[_Key, asyncio.Task[ModelMetadata]] = {}

    async def get(
        self, backend: Describes, target: BackendModel, within: float | None = None
    ) -> ModelMetadata:
        """The metadata of ``target`` on ``backend``; ``within`` bounds this caller's wait."""
        key = (backend.name, target)
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.expires:
            if entry.error is not None:
                raise _copy(entry.error)
            assert entry.metadata is not None
            return entry.metadata
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key, backend, target))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        try:
            if within is None or within >= self._timeout_s:
                return await asyncio.shield(task)
            async with asyncio.timeout(within):
                return await asyncio.shield(task)
        except TimeoutError:  # the fetch goes on for the callers with more time
            raise BackendTimeout(
                f"backend {backend.name!r} did not describe {_named(target)} within {within:g}s"
            ) from None
        except GatewayError as error:  # shared by every caller: each raises its own copy
            raise _copy(error) from None

    def forget(self, backend: str) -> None:
        """Drop what is known of one backend name (its config changed: a new client)."""
        for key in [key for key in self._entries if key[0] == backend]:
            del self._entries[key]

    async def _fetch(self, key: _Key, backend: Describes, target: BackendModel) -> ModelMetadata:
        try:
            try:
                async with asyncio.timeout(self._timeout_s):
                    metadata = await backend.metadata(target)
            except TimeoutError:
                raise BackendTimeout(
                    f"backend {backend.name!r} did not describe {_named(target)} within "
                    f"{self._timeout_s:g}s"
                ) from None
            if not metadata.inputs and not metadata.outputs:
                raise BackendError(
                    f"backend {backend.name!r} reported no tensors for {_named(target)}"
                )
            self._entries[key] = _Entry(metadata, None, self._clock() + self._ttl_s)
            return metadata
        except GatewayError as error:
            self._entries[key] = _Entry(None, error, self._clock() + self._failure_ttl_s)
            raise
        finally:
            del self._inflight[key]


def _named(target: BackendModel) -> str:
    return f"model {target.name!r} version {target.version}"


def _copy(error: GatewayError) -> GatewayError:
    """A fresh exception: re-raising one instance would grow its traceback every time."""
    return type(error)(error.message)


def _retrieve(task: asyncio.Task[ModelMetadata]) -> None:
    """Mark a failure as seen: every caller may have stopped waiting for it."""
    if not task.cancelled():
        task.exception()
