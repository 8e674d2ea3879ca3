"""What each answer should be: the served version's own output for those digits.

The gateway's catalog (``GET /v2/models/{model}``) says which version and runtime each variant
serves; ``model_store.digits.load_reference`` holds each version's probabilities on the test
split (TF Serving's and TorchServe's exports of a version agree with them within 1e-6). An
answer further than ``tolerance`` from them was corrupted on the way, by the gateway or a
runtime: a failure. A wrong digit that matches them is the model's own mistake: accuracy.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from loadtests.endpoints import MODEL
from model_store.digits import FloatArray, load_reference

DEFAULT_TOLERANCE = 1e-4  # absolute, per probability
MISMATCH = "answer differs from the model"  # how such failures start: the judge counts them


@dataclass(frozen=True)
class Served:
    """What one variant serves, as the gateway's catalog says."""

    version: str
    runtime: str


def fetch_catalog(host: str, model: str = MODEL, timeout_s: float = 5.0) -> dict[str, Served]:
    """Each variant of ``model`` and what it serves, from the gateway's model metadata."""
    url = f"{host.rstrip('/')}/v2/models/{model}"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        doc = json.loads(response.read())
    return {
        str(v["name"]): Served(str(v["version"]), str(v.get("runtime", "")))
        for v in doc.get("variants", [])
    }


class Expected:
    """The catalog of one run and each version's reference outputs (read once, when needed)."""

    def __init__(
        self,
        catalog: dict[str, Served] | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        loader: Callable[[str], FloatArray] = load_reference,
    ) -> None:
        self.catalog = dict(catalog or {})
        self.tolerance = tolerance
        self._loader = loader
        self._outputs: dict[str, FloatArray] = {}

    def outputs(self, version: str) -> FloatArray:
        """Version ``version``'s probabilities ``[N, 10]`` on the test split; KeyError if none."""
        if version not in self._outputs:
            self._outputs[version] = self._loader(version)
        return self._outputs[version]


EXPECTED = Expected()
