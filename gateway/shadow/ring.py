"""The most recent diverging examples of each model: a bounded ring per worker."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Example:
    """One request whose shadow answer diverged from the primary's (or failed)."""

    at: float
    """Unix time of the comparison."""
    request_id: str
    """The client's request id when it sent one, else one the gateway made up."""
    inputs_digest: str
    """BLAKE2b (8 bytes, hex) of the input tensors (name, datatype, shape and bytes)."""
    primary: str
    shadow: str
    result: str
    """``diverge`` or ``error``."""
    reason: str
    max_abs_diff: float | None
    mean_abs_diff: float | None
    max_rel_diff: float | None
    """Over every numeric output compared (None: none was)."""
    primary_top: list[list[int]]
    """Top classes of the first floating output, per row (the first rows only)."""
    shadow_top: list[list[int]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ExampleRing:
    def __init__(self, size: int) -> None:
        self._size = size
        self._by_model: dict[str, deque[Example]] = {}

    def add(self, model: str, example: Example) -> None:
        ring = self._by_model.get(model)
        if ring is None:
            ring = self._by_model[model] = deque(maxlen=self._size)
        ring.append(example)

    def recent(self, model: str) -> list[Example]:
        """Newest first."""
        return list(reversed(self._by_model.get(model, ())))

    def forget(self, keep: set[str]) -> None:
        for model in [m for m in self._by_model if m not in keep]:
            del self._by_model[model]
