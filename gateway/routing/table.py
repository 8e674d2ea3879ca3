"""One immutable snapshot of everything a request reads to be routed, and how the next is built.

A request reads ``service.table`` once (at ``route()``) and keeps what it needs in its
``RouteDecision``; ``Gateway.apply`` builds the next table off the hot path and swaps that one
reference, so a request sees the old table or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from gateway.backends.base import Backend
from gateway.config import AnyBackendConfig, GatewayConfig
from gateway.routing.router import Router


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """``number`` counts the tables applied (1 at start; the control plane numbers them, so
    every worker of a replica has the same); ``digest`` is a hash of the routing config
    (backends and models), the same on every worker and replica that runs the same routes."""

    number: int
    digest: str

    def as_dict(self) -> dict[str, int | str]:
        return {"version": self.number, "hash": self.digest}


def config_digest(config: GatewayConfig) -> str:
    document = config.model_dump(mode="json", include={"backends", "models"})
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class RoutingTable:
    router: Router
    backends: Mapping[str, Backend]
    config: GatewayConfig
    version: ConfigVersion


@dataclass(frozen=True, slots=True)
class TableChange:
    """A new table, and the backends of the old one it no longer uses (to drain, then close)."""

    table: RoutingTable
    added: tuple[Backend, ...]
    removed: tuple[Backend, ...]


BackendFactory = Callable[[str, AnyBackendConfig], Backend]


def first_table(config: GatewayConfig, create: BackendFactory, number: int = 1) -> RoutingTable:
    backends = {name: create(name, backend) for name, backend in config.backends.items()}
    router = Router.from_config(config, backends)
    return RoutingTable(router, backends, config, ConfigVersion(number, config_digest(config)))


def next_table(
    old: RoutingTable, config: GatewayConfig, create: BackendFactory, number: int | None = None
) -> TableChange:
    """The table for ``config``: a backend whose config is unchanged is reused (its pools, its
    readiness and metadata stay); a changed one is replaced by a new client."""
    backends: dict[str, Backend] = {}
    added: list[Backend] = []
    for name, backend_config in config.backends.items():
        previous = old.backends.get(name)
        if previous is not None and old.config.backends.get(name) == backend_config:
            backends[name] = previous
        else:
            backends[name] = create(name, backend_config)
            added.append(backends[name])
    kept = {id(backend) for backend in backends.values()}
    removed = tuple(b for b in old.backends.values() if id(b) not in kept)
    router = Router.from_config(config, backends)
    number = old.version.number + 1 if number is None else number
    version = ConfigVersion(number, config_digest(config))
    return TableChange(RoutingTable(router, backends, config, version), tuple(added), removed)
