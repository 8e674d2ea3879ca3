"""Service-level objectives: latency and failures per endpoint, accuracy per variant.

Read from a small YAML file (``loadtests/slo.yaml``); ``Slo.overridden`` applies the runner's
flags on top. Every key is checked: a typo names itself and the keys that would do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtests.endpoints import ENDPOINTS

DEFAULT_PATH = Path(__file__).resolve().parent / "slo.yaml"
DEFAULT = "default"


class SloError(ValueError):
    """The SLO file is malformed; the message names the offending key."""


@dataclass(frozen=True)
class EndpointSlo:
    p50_ms: float  # Locust's median response time, at most
    p99_ms: float  # Locust's 99th percentile, at most
    max_failure_ratio: float  # failures (errors and wrong answers) / requests, at most


@dataclass(frozen=True)
class Slo:
    endpoints: dict[str, EndpointSlo]  # by endpoint key: every key of ``ENDPOINTS``
    min_accuracy: dict[str, float]  # by variant; DEFAULT for any variant not named

    def accuracy_for(self, variant: str) -> float:
        return self.min_accuracy.get(variant, self.min_accuracy[DEFAULT])

    def overridden(
        self,
        p50_ms: float | None = None,
        p99_ms: float | None = None,
        max_failure_ratio: float | None = None,
        min_accuracy: float | None = None,
    ) -> Slo:
        """The same objectives with each given one set for every endpoint (or variant)."""
        changes = {
            name: value
            for name, value in (
                ("p50_ms", p50_ms),
                ("p99_ms", p99_ms),
                ("max_failure_ratio", max_failure_ratio),
            )
            if value is not None
        }
        endpoints = {key: dataclasses.replace(e, **changes) for key, e in self.endpoints.items()}
        accuracy = dict(self.min_accuracy)
        if min_accuracy is not None:
            accuracy = dict.fromkeys(accuracy, min_accuracy)
        return Slo(endpoints, accuracy)


def load_slo(path: Path = DEFAULT_PATH) -> Slo:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SloError(f"{path}: {error}") from None
    _known(doc, {"endpoints", "min_accuracy"}, f"{path}")
    endpoints_doc = doc.get("endpoints") or {}
    _known(endpoints_doc, {DEFAULT, *ENDPOINTS}, "endpoints")
    fields = [field.name for field in dataclasses.fields(EndpointSlo)]
    default = _numbers(endpoints_doc.get(DEFAULT), fields, f"endpoints.{DEFAULT}")
    missing = [name for name in fields if name not in default]
    if missing:
        raise SloError(f"endpoints.{DEFAULT}: needs {', '.join(missing)}")
    endpoints = {
        key: EndpointSlo(
            **{**default, **_numbers(endpoints_doc.get(key), fields, f"endpoints.{key}")}
        )
        for key in ENDPOINTS
    }
    accuracy_doc = doc.get("min_accuracy") or {}
    if not isinstance(accuracy_doc, dict) or DEFAULT not in accuracy_doc:
        raise SloError(f"min_accuracy: needs a {DEFAULT!r} entry")
    accuracy = {
        str(variant): _number(value, f"min_accuracy.{variant}")
        for variant, value in accuracy_doc.items()
    }
    return Slo(endpoints, accuracy)


def _known(doc: Any, allowed: set[str], where: str) -> None:
    if not isinstance(doc, dict):
        raise SloError(f"{where}: expected a mapping, got {type(doc).__name__}")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise SloError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _numbers(doc: Any, fields: list[str], where: str) -> dict[str, float]:
    doc = doc or {}
    _known(doc, set(fields), where)
    return {name: _number(value, f"{where}.{name}") for name, value in doc.items()}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SloError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)
