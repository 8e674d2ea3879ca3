"""Whether one answer the demo's load got is right: the served version's own output.

A "failed request" is the gateway's or a runtime's failure, never the model's mistake: an error
status, an unreadable answer, an answer naming no variant, or probabilities further than a float
tolerance from what the served version itself outputs for those digits
(``model_store.digits.load_reference``). A digit the model gets wrong but that matches its
reference is only counted (accuracy), not failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from model_store.digits import FloatArray, IntArray

TOLERANCE = 1e-4  # absolute, per probability (the exports agree within 1e-6)


@dataclass(frozen=True)
class Verdict:
    problem: str | None
    """Why the request failed; None: it did not."""
    version: str = ""
    correct: int = 0
    """Digits of the batch the model got right (its accuracy, not a failure)."""

    @property
    def ok(self) -> bool:
        return self.problem is None


def judge(
    probabilities: FloatArray,
    indices: IntArray,
    labels: IntArray,
    variant: str | None,
    version: str | None,
    reference: Callable[[str], FloatArray],
    tolerance: float = TOLERANCE,
) -> Verdict:
    """The answer for test digits ``indices`` against version ``version``'s reference outputs
    (``reference(version)``: ``[N, 10]`` over the test split; KeyError for an unknown one)."""
    if not variant:
        return Verdict("the answer names no variant (x-gateway-variant)")
    if not version:
        return Verdict(f"variant {variant}: no version known for it")
    try:
        outputs = reference(version)
    except KeyError:
        return Verdict(f"variant {variant}: no reference outputs for version {version}")
    if probabilities.shape != (indices.shape[0], outputs.shape[1]):
        return Verdict(
            f"variant {variant}: probabilities of shape {list(probabilities.shape)} "
            f"for {indices.shape[0]} digits"
        )
    expected = outputs[indices]
    distance = float(np.abs(probabilities - expected).max())
    if not distance <= tolerance:
        return Verdict(
            f"variant {variant}: answer differs from version {version}'s own output by "
            f"{distance:.3g} (> {tolerance:g})",
            version,
        )
    correct = int((probabilities.argmax(axis=1) == labels).sum())
    return Verdict(None, version, correct)
