"""What a deploy is asked to do, and what it did: plain values, ready for JSON either way."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

TORCHSERVE = "torchserve"
TFSERVING = "tfserving"
VARIANT_PREFIX = {TORCHSERVE: "torch", TFSERVING: "tf"}

Action = Literal[
    "deployed",  # this call made the version servable there
    "already-there",  # it was servable before: nothing done
    "failed",  # this runtime's step failed (the detail says why)
    "rolled-back",  # done by this deploy, then undone because another runtime failed
    "rollback-failed",  # done, and undoing it failed too: the detail says what is left
    "not-attempted",  # an earlier runtime failed first
    "undeployed",
    "absent",  # undeploy: the version was not there
]


class StepFailed(Exception):
    """A runtime refused or did not finish a step; the message says what happened there."""


@dataclass(frozen=True)
class TorchServeTarget:
    """Register a model archive with a TorchServe backend."""

    backend: str
    archive: str
    """``url`` of TorchServe's register call: an archive name in its model store (or a URL its
    ``allowed_urls`` admits). The version is the one in the archive's manifest."""
    model: str | None = None
    """The model name at TorchServe (default: the public model name)."""
    initial_workers: int = 1
    set_default: bool = False
    """Make this TorchServe's default version of the model (what ``/predictions/{m}`` runs)."""
    variant: str | None = None
    runtime: Literal["torchserve"] = "torchserve"


@dataclass(frozen=True)
class TFServingTarget:
    """Add the version to a TF Serving backend's ModelServerConfig and reload it."""

    backend: str
    base_path: str | None = None
    """Base path of the model's versions, as TF Serving sees it; needed only for a model not in
    its config yet (TF Serving has one base path per model: version ``V`` is ``base_path/V``)."""
    model: str | None = None
    labels: tuple[str, ...] = ()
    """TF Serving version labels to point at this version, once it is loaded."""
    variant: str | None = None
    runtime: Literal["tfserving"] = "tfserving"


Target = TorchServeTarget | TFServingTarget


@dataclass(frozen=True)
class DeployRequest:
    model: str
    """The public model name (the gateway's ``models`` key)."""
    version: str
    targets: tuple[Target, ...]

    def backend_model(self, target: Target) -> str:
        return target.model or self.model

    def variant_name(self, target: Target) -> str:
        if target.variant:
            return target.variant
        kinds = [t.runtime for t in self.targets]
        prefix = (
            target.backend if kinds.count(target.runtime) > 1 else VARIANT_PREFIX[target.runtime]
        )
        return f"{prefix}-v{self.version}"

    def variants(self) -> list[dict[str, Any]]:
        """The gateway variants that serve the version: weight 0, for the caller to add."""
        variants = []
        for target in self.targets:
            variant: dict[str, Any] = {
                "name": self.variant_name(target),
                "backend": target.backend,
                "version": self.version,
                "weight": 0,
            }
            if target.model and target.model != self.model:
                variant["model"] = target.model
            variants.append(variant)
        return variants

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists, not tuples), as the journal stores it."""
        plain: dict[str, Any] = orjson.loads(orjson.dumps(asdict(self)))
        return plain


@dataclass(frozen=True)
class RuntimeOutcome:
    backend: str
    runtime: str
    action: Action
    seconds: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class DeployResult:
    operation: Literal["deploy", "undeploy"]
    model: str
    version: str
    ok: bool
    outcomes: tuple[RuntimeOutcome, ...]
    variants: tuple[dict[str, Any], ...] = ()
    """For a deploy that succeeded: the variants to add at weight 0."""
    resumed: bool = False
    """A deploy interrupted earlier (its journal said so) was finished by this call."""
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
