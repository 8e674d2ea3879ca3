"""The control plane of one replica: compose (config file + overlay), validate, persist, apply
on every worker, and say what changed.

Every change goes the same way: under the plane's lock (and, with a state directory, the
directory's overlay lock), read the overlay, edit it, compose it with the config file, validate
the result exactly as the file is validated (same messages, same key paths), write the overlay,
then apply the config on every worker and answer with the new version. Persist, then act: a
process that dies in between starts with the change. A reload (SIGHUP, ``POST
/admin/reload``, the watched files changing) re-reads both files and applies them the same way.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import (
    ConfigError,
    GatewayConfig,
    ServerConfig,
    parse_config,
    read_config_data,
)
from gateway.control.overlay import compose
from gateway.control.store import OverlayStore, Stamp, StoreError, stamp
from gateway.control.workers import Health, Workers
from gateway.routing.table import ConfigVersion, config_digest

log = logging.getLogger(__name__)
audit_log = logging.getLogger("gateway.audit")

Edit = Callable[[dict[str, Any], GatewayConfig], None]
"""Changes an overlay document in place, given the config in force; raises a GatewayError to
refuse (nothing is then written)."""


@dataclass(frozen=True)
class Actor:
    """Who asked for a change: the token's id (a hash prefix, never the token) and the peer."""

    token_id: str
    peer: str

    def __str__(self) -> str:
        return f"token {self.token_id} from {self.peer}"


def empty_overlay() -> dict[str, Any]:
    return {"revision": 0, "models": {}}


def compose_config(
    path: Path, overlay: dict[str, Any], server: Any = None, overlay_path: Path | None = None
) -> GatewayConfig:
    """The config file with the overlay over it, validated as the file is."""
    source = str(path) if not overlay.get("models") else f"{path} with overlay {overlay_path}"
    config = parse_config(compose(read_config_data(path), overlay), source)
    if server is not None:
        config = config.model_copy(update={"server": server})
    return config


def startup_config(path: Path, config: GatewayConfig) -> GatewayConfig:
    """What a gateway starts with: the file (``config``, already loaded) and its overlay."""
    state_dir = config.server.state_dir
    if state_dir is None:
        return config
    store = OverlayStore(Path(state_dir))
    try:
        overlay = store.read()
    except StoreError as error:
        raise ConfigError(str(store.path), [("<file>", str(error))]) from None
    if not overlay.get("models"):
        return config
    return compose_config(path, overlay, config.server, store.path)


class ControlPlane:
    def __init__(
        self,
        path: Path,
        config: GatewayConfig,
        workers: Workers,
        number: int = 1,
        file_server: ServerConfig | None = None,
    ) -> None:
        """``file_server``: ``server`` as the file gave it, when ``config``'s was changed
        after (ports the supervisor resolved): what a reload compares the file's with."""
        self.path = path
        self.config = config
        self.version = ConfigVersion(number, config_digest(config))
        self._numbers = itertools.count(number + 1)  # never reused, even by a failed apply
        self.workers = workers
        self._server = config.server
        self._file_server = file_server or config.server
        state_dir = config.server.state_dir
        self.store = OverlayStore(Path(state_dir)) if state_dir is not None else None
        self._overlay = empty_overlay()  # without a state directory
        self._lock = asyncio.Lock()
        self._stamps = self._read_stamps()

    def _read_stamps(self) -> tuple[Stamp | None, Stamp | None]:
        return stamp(self.path), self.store.stamp() if self.store is not None else None

    async def health(self) -> Health:
        return await self.workers.health()

    def overlay(self) -> dict[str, Any]:
        return self.store.read() if self.store is not None else copy.deepcopy(self._overlay)

    async def change(self, edit: Edit, actor: Actor, what: str) -> ConfigVersion:
        """Edit the overlay, validate, persist, apply everywhere; the version once applied."""
        async with self._lock:
            before = self.config
            config, written = await asyncio.to_thread(self._transact, edit, before)
            if self.store is not None:  # our own write: not a change for the watcher
                self._stamps = (self._stamps[0], written)
            version = await self._apply(config)
            _audit(actor, what, before, config, version)
            return version

    def _transact(self, edit: Edit, current: GatewayConfig) -> tuple[GatewayConfig, Stamp | None]:
        """The edited config, and the overlay's stamp as this wrote it (taken under the
        directory's lock, so a replica's write just after ours still counts as a change)."""
        if self.store is None:
            overlay = copy.deepcopy(self._overlay)
            edit(overlay, current)
            config = self._compose(overlay)
            self._overlay = overlay
            return config, None
        with self.store.locked():
            overlay = self.store.read()
            edit(overlay, current)
            overlay["revision"] = int(overlay.get("revision", 0)) + 1
            config = self._compose(overlay)
            self.store.write(overlay)
            return config, self.store.stamp()

    def _compose(self, overlay: dict[str, Any]) -> GatewayConfig:
        config = compose_config(
            self.path, overlay, None, self.store.path if self.store is not None else None
        )
        differs = {
            key
            for key in type(self._server).model_fields
            if key != "workers" and getattr(config.server, key) != getattr(self._file_server, key)
        }
        if differs:
            log.warning(
                "server settings changed (%s): they apply at restart", ", ".join(sorted(differs))
            )
        return config.model_copy(update={"server": self._server})

    async def _apply(self, config: GatewayConfig) -> ConfigVersion:
        number = next(self._numbers)
        await self.workers.apply(config, number)
        self.config = config
        self.version = ConfigVersion(number, config_digest(config))
        return self.version

    async def reload(self, reason: str, actor: Actor | None = None) -> ConfigVersion:
        """Re-read the config file and the overlay and apply them (ConfigError: nothing
        changes, the gateway goes on with what it has)."""
        async with self._lock:
            return await self._reload(reason, actor)

    async def _reload(self, reason: str, actor: Actor | None) -> ConfigVersion:
        self._stamps = self._read_stamps()
        before = self.config
        config = await asyncio.to_thread(self._compose, self.overlay())
        version = await self._apply(config)
        _audit(actor, f"reload ({reason})", before, config, version)
        return version

    async def _reload_if_changed(self, reason: str) -> None:
        """A reload for the watcher: the files are compared again under the lock, since a
        change through this plane may have written the overlay while the watcher looked (its
        stamp is then ours, and nothing is to be reloaded)."""
        async with self._lock:
            if self._read_stamps() != self._stamps:
                await self._reload(reason, None)

    async def watch(self, interval_s: float) -> None:
        """Reload whenever the config file or the overlay changes (checked every interval).

        A changed config file is read once it has kept the same size and time for one more
        check: an editor that writes in place would otherwise be caught half-way. The overlay
        is always replaced whole (a rename), so it is read at once."""
        failed: tuple[Stamp | None, Stamp | None] | None = None
        pending: Stamp | None = None
        while True:
            await asyncio.sleep(interval_s)
            stamps = self._read_stamps()
            if stamps == self._stamps or stamps == failed:
                pending = None
                continue
            file_changed = stamps[0] != self._stamps[0]
            if file_changed and stamps[0] != pending:
                pending = stamps[0]
                continue
            pending = None
            which = "config file" if file_changed else "overlay"
            try:
                await self._reload_if_changed(f"{which} changed")
                failed = None
            except (ConfigError, StoreError) as error:
                failed = stamps
                log.error("not reloaded, the %s changed but is refused: %s", which, error)
            except Exception:
                failed = stamps
                log.exception("reload after the %s changed failed", which)


def describe(before: GatewayConfig, after: GatewayConfig) -> list[str]:
    """What changed in the routes, one phrase per variant field: ``digits/tf-v2 weight 10 -> 5``."""
    changes: list[str] = []
    for name in sorted(set(before.models) | set(after.models)):
        old = {v.name: v for v in before.models[name].variants} if name in before.models else {}
        new = {v.name: v for v in after.models[name].variants} if name in after.models else {}
        if not old:
            changes.append(f"model {name} added")
        elif not new:
            changes.append(f"model {name} removed")
        for variant in sorted(set(old) | set(new)):
            if variant not in old:
                changes.append(f"{name}/{variant} added ({_brief(new[variant])})")
            elif variant not in new:
                changes.append(f"{name}/{variant} removed")
            else:
                a, b = old[variant].model_dump(), new[variant].model_dump()
                changes.extend(
                    f"{name}/{variant} {key} {_value(a[key])} -> {_value(b[key])}"
                    for key in a
                    if a[key] != b[key]
                )
        extra_old = before.models[name].model_dump(exclude={"variants"}) if old else {}
        extra_new = after.models[name].model_dump(exclude={"variants"}) if new else {}
        for key in sorted(set(extra_old) | set(extra_new)):
            if extra_old.get(key) != extra_new.get(key):
                changes.append(f"{name} {key} {extra_old.get(key)} -> {extra_new.get(key)}")
    for name in sorted(set(before.backends) | set(after.backends)):
        if before.backends.get(name) != after.backends.get(name):
            state = "added" if name not in before.backends else "changed"
            changes.append(f"backend {name} {'removed' if name not in after.backends else state}")
    return changes


def _brief(variant: Any) -> str:
    return f"{variant.backend} version {variant.version}, weight {variant.weight}"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def _audit(
    actor: Actor | None,
    what: str,
    before: GatewayConfig,
    after: GatewayConfig,
    version: ConfigVersion,
) -> None:
    changes = describe(before, after)
    audit_log.info(
        "%s by %s: %s; config version %d (%s)",
        what,
        actor or "the gateway",
        "; ".join(changes) or "no change",
        version.number,
        version.digest,
    )
