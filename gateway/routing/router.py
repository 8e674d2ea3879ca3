"""Model -> variant decisions: version pins, variant pins, sticky and random weighted splits.

Every lookup is a dict access or a table index: the cost does not grow with the number of models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gateway.backends.base import Backend, BackendModel
from gateway.config import AnyBackendConfig, GatewayConfig, ModelConfig
from gateway.config_resilience import DEFAULT_RESILIENCE, Resilience
from gateway.errors import ModelNotFound, UnknownVariant, VariantDisabled, VersionNotFound
from gateway.routing.split import Split


@dataclass(frozen=True, slots=True, eq=False)
class Variant:
    """One way to serve a public model: a model version on one backend, with a traffic weight."""

    model: str
    name: str
    backend: Backend
    target: BackendModel
    weight: int
    labels: tuple[str, ...] = ()
    enabled: bool = True
    """False: out of every split, and a pin to it is :class:`VariantDisabled`."""
    resilience: Resilience = DEFAULT_RESILIENCE

    @property
    def version(self) -> str:
        return self.target.version


class ModelRoute:
    """The variants of one public model, and the splits that choose among them."""

    __slots__ = ("by_label", "by_version", "disabled", "name", "split", "variants")

    def __init__(self, name: str, variants: Iterable[Variant]) -> None:
        self.name = name
        self.variants: dict[str, Variant] = {variant.name: variant for variant in variants}
        enabled = [v for v in self.variants.values() if v.enabled]
        # The config refuses a model without an enabled variant; a bare ModelRoute shares all.
        self.split = _split(name, enabled or list(self.variants.values()))
        versions: dict[str, list[Variant]] = {}
        labels: dict[str, list[Variant]] = {}
        for variant in enabled:
            versions.setdefault(variant.version, []).append(variant)
            for label in variant.labels:
                labels.setdefault(label, []).append(variant)
        self.by_version = {version: _split(name, group) for version, group in versions.items()}
        self.by_label = {label: _split(name, group) for label, group in labels.items()}
        self.disabled = {
            key
            for v in self.variants.values()
            if not v.enabled
            for key in (v.version, *v.labels)
            if key not in self.by_version and key not in self.by_label
        }
        """Versions and labels that only disabled variants serve."""

    @property
    def versions(self) -> list[str]:
        return sorted(self.by_version, key=version_order)

    def select(self, version: str | None, label: str | None) -> Selection:
        """Which variants may serve a request for this version or label (neither: all).

        A version that is not one may still be a label: the Open Inference Protocol and
        TorchServe have only a version field, and labels resolve through it.
        """
        if label is not None:
            if label in self.disabled:
                raise VariantDisabled(
                    f"model {self.name!r}: every variant with label {label!r} is disabled"
                )
            if label not in self.by_label:
                known = ", ".join(sorted(self.by_label)) or "none"
                raise VersionNotFound(
                    f"model {self.name!r} has no version label {label!r} (labels: {known})"
                )
            return Selection(self.by_label[label], None, label)
        if version is None:
            return Selection(self.split, None, None)
        if version in self.by_version:
            return Selection(self.by_version[version], version, None)
        if version in self.by_label:
            return Selection(self.by_label[version], None, version)
        if version in self.disabled:
            raise VariantDisabled(
                f"model {self.name!r}: every variant of version {version!r} is disabled"
            )
        known = ", ".join(self.versions)
        raise VersionNotFound(f"model {self.name!r} has no version {version!r} (versions: {known})")


@dataclass(frozen=True, slots=True)
class Selection:
    """The split a request draws from, and the version or label that narrowed it."""

    split: Split[Variant]
    version: str | None
    label: str | None

    def admits(self, variant: Variant) -> bool:
        if self.version is not None:
            return variant.version == self.version
        return self.label is None or self.label in variant.labels

    def variants(self, route: ModelRoute) -> list[Variant]:
        """The enabled variants it admits."""
        return [v for v in route.variants.values() if v.enabled and self.admits(v)]

    def describe(self) -> str:
        if self.version is not None:
            return f"version {self.version}"
        return f"label {self.label}" if self.label is not None else "any version"


def _split(model: str, variants: list[Variant]) -> Split[Variant]:
    return Split(model, variants, [v.name for v in variants], [v.weight for v in variants])


def _resilience(model: ModelConfig, backend: AnyBackendConfig) -> Resilience:
    return Resilience(
        retry_policy=model.retry_policy or backend.retry_policy,
        outlier_detection=model.outlier_detection or backend.outlier_detection,
        retry_budget=backend.retry_budget,
    )


def version_order(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)


class Router:
    def __init__(self, routes: Iterable[ModelRoute]) -> None:
        self._routes: dict[str, ModelRoute] = {route.name: route for route in routes}

    @classmethod
    def from_config(cls, config: GatewayConfig, backends: Mapping[str, Backend]) -> Router:
        routes = []
        for model_name, model in config.models.items():
            variants = [
                Variant(
                    model=model_name,
                    name=variant.name,
                    backend=backends[variant.backend],
                    target=BackendModel(variant.model or model_name, variant.version),
                    weight=variant.weight,
                    labels=variant.labels,
                    enabled=variant.enabled,
                    resilience=_resilience(model, config.backends[variant.backend]),
                )
                for variant in model.variants
            ]
            routes.append(ModelRoute(model_name, variants))
        return cls(routes)

    @property
    def models(self) -> list[ModelRoute]:
        return list(self._routes.values())

    def model(self, name: str) -> ModelRoute:
        route = self._routes.get(name)
        if route is None:
            raise ModelNotFound(f"unknown model {name!r}")
        return route

    def route(
        self,
        model: str,
        version: str | None,
        label: str | None,
        pin: str | None,
        sticky_key: str | None,
        healthy: Callable[[Variant], bool] | None = None,
    ) -> Variant:
        """Choose the variant that serves one request."""
        route = self.model(model)
        return choose(route, route.select(version, label), pin, sticky_key, healthy)


def choose(
    route: ModelRoute,
    selection: Selection,
    pin: str | None,
    sticky_key: str | None,
    healthy: Callable[[Variant], bool] | None = None,
) -> Variant:
    """The variant of ``selection`` for one request: the pinned one, else a sticky or random
    pick among the healthy (``healthy`` None: all are)."""
    model = route.name
    if pin:
        variant = route.variants.get(pin)
        if variant is None:
            known = ", ".join(route.variants)
            raise UnknownVariant(f"model {model!r} has no variant {pin!r} (variants: {known})")
        if not variant.enabled:
            raise VariantDisabled(f"variant {pin!r} of model {model!r} is disabled")
        if not selection.admits(variant):
            raise UnknownVariant(
                f"variant {pin!r} serves version {variant.version}, not {selection.describe()}"
            )
        return variant
    split = selection.split
    return split.pick_sticky(sticky_key, healthy) if sticky_key else split.pick(healthy)
