"""``enabled: false``: out of every split, pins included; weight 0 stays reachable by pin."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gateway.backends.base import BackendModel
from gateway.config import ConfigError, parse_config
from gateway.errors import ErrorCode, VariantDisabled
from gateway.routing.router import ModelRoute, Router, Variant


class _Backend:
    name = "b"
    kind = "torchserve"
    runtime = "torchserve"
    timeout_s = 1.0


def variant(name: str, version: str, weight: int, enabled: bool = True, *labels: str) -> Variant:
    backend: Any = _Backend()
    return Variant(
        "digits", name, backend, BackendModel("digits", version), weight, labels, enabled
    )


ROUTER = Router(
    [
        ModelRoute(
            "digits",
            [
                variant("v1", "1", 90, True, "stable"),
                variant("v2", "2", 10, False, "canary"),
                variant("v1-drained", "1", 0, True),
                variant("v3", "3", 50, False),
                variant("v3-b", "3", 0, True),
            ],
        )
    ]
)


def test_a_disabled_variant_takes_no_unpinned_traffic() -> None:
    picks = Counter(ROUTER.route("digits", None, None, None, None).name for _ in range(2000))
    assert set(picks) == {"v1"}
    sticky = {ROUTER.route("digits", None, None, None, f"user-{i}").name for i in range(500)}
    assert sticky == {"v1"}


def test_a_pin_to_a_disabled_variant_is_refused_as_not_found() -> None:
    with pytest.raises(VariantDisabled, match="variant 'v2' of model 'digits' is disabled"):
        ROUTER.route("digits", None, None, "v2", None)
    assert VariantDisabled.code is ErrorCode.NOT_FOUND


def test_a_drained_variant_stays_reachable_by_pin() -> None:
    assert ROUTER.route("digits", None, None, "v1-drained", None).name == "v1-drained"


def test_a_version_or_label_served_only_by_disabled_variants_is_disabled() -> None:
    with pytest.raises(VariantDisabled, match="every variant of version '2' is disabled"):
        ROUTER.route("digits", "2", None, None, None)
    with pytest.raises(VariantDisabled, match="with label 'canary' is disabled"):
        ROUTER.route("digits", None, "canary", None, None)
    # Version 3 still has an enabled (drained) variant: it serves the explicit version.
    assert ROUTER.route("digits", "3", None, None, None).name == "v3-b"


def test_the_config_refuses_a_model_whose_weighted_variants_are_all_disabled() -> None:
    document = {
        "backends": {"ts": {"kind": "torchserve"}},
        "models": {
            "digits": {
                "variants": [
                    {"name": "a", "backend": "ts", "version": 1, "weight": 5, "enabled": False},
                    {"name": "b", "backend": "ts", "version": 2, "weight": 0},
                ]
            }
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert caught.value.problems == [
        (
            "models.digits.variants",
            "every variant with a weight above 0 is disabled: at least one must take traffic",
        )
    ]
