"""One simulated user's traffic: its stable id, the digits it sends, and the checks on each answer.

Every answer is judged the same way whichever protocol carried it: the variant must be named,
its version known (named by the answer, else the gateway's catalog), and every probability must
match what that version itself outputs for those digits (``expected``): a difference is a
failure, a digit the model gets wrong is not, it only lowers the variant's accuracy. A user's
sticky requests must all land on one variant. Each request is counted in the variant book.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from loadtests.endpoints import STICKY_HEADER, VARIANT_HEADER
from loadtests.expected import MISMATCH, Expected
from loadtests.options import Settings
from loadtests.payloads import Sample, draw
from loadtests.variant_stats import NO_VARIANT, VariantBook
from model_store.digits import DigitsSet, FloatArray, load_test_set

DIGITS = load_test_set()
_user_numbers = itertools.count()


@dataclass(frozen=True)
class Request:
    sample: Sample
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def sticky(self) -> bool:
        return STICKY_HEADER in self.headers


@dataclass(frozen=True)
class Answer:
    probabilities: FloatArray  # [N, 10]
    variant: str | None  # its x-gateway-variant
    version: str | None  # the model version the answer names (None: the protocol names none)
    response_ms: float


class Traffic:
    def __init__(
        self,
        settings: Settings,
        book: VariantBook,
        expected: Expected,
        id_prefix: str = "",
        digits: DigitsSet = DIGITS,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.settings = settings
        self.user_id = f"{id_prefix}user-{next(_user_numbers)}"
        self._book = book
        self._expected = expected
        self._digits = digits
        self._rng = rng if rng is not None else np.random.default_rng()
        self._sticky_variant: str | None = None
        self._started = time.monotonic()

    def pause(self) -> float:
        """Seconds to wait so that this user sends at most ``user_rate`` requests a second."""
        if self.settings.user_rate <= 0:
            return 0.0
        return max(0.0, 1.0 / self.settings.user_rate - (time.monotonic() - self._started))

    def next_request(self) -> Request:
        """Random digits; sent as this user unless drawn into the anonymous share."""
        self._started = time.monotonic()
        sample = draw(self._digits, self._rng, self.settings.batch_size)
        if self._rng.random() < self.settings.anonymous_share:
            return Request(sample)
        return Request(sample, {STICKY_HEADER: self.user_id})

    def failed(self, variant: str | None, response_ms: float) -> None:
        """Count a request that got no answer to judge (an error status, an unreadable body)."""
        self._book.answered(variant or NO_VARIANT, response_ms, failed=True)

    def check(self, request: Request, answer: Answer) -> str | None:
        """Why this answer is a failure, or None if it is right; counted in the book either way."""
        variant = answer.variant
        if not variant:
            self.failed(None, answer.response_ms)
            return f"no {VARIANT_HEADER} on the answer"
        served = self._expected.catalog.get(variant)
        version = answer.version or (served.version if served else None)
        runtime = served.runtime if served else ""
        problem: str | None = None
        judged = correct = mismatched = 0  # digits read, of them right, of them not the model's
        labels = request.sample.labels
        probabilities = answer.probabilities
        if served is not None and answer.version and answer.version != served.version:
            problem = (
                f"variant {variant} serves version {served.version}, "
                f"but the answer names version {answer.version}"
            )
        elif version is None:
            problem = f"variant {variant} is not in the gateway's catalog; no version named"
        elif probabilities.shape[0] != labels.shape[0]:
            problem = f"{probabilities.shape[0]} answers for {labels.shape[0]} digits"
        else:
            judged = int(labels.shape[0])
            correct = int((probabilities.argmax(axis=1) == labels).sum())
            problem, mismatched = self._compare(request.sample, probabilities, version, variant)
        if problem is None and request.sticky:
            problem = self._stick(variant)
        self._book.answered(
            variant, answer.response_ms, runtime=runtime, version=version or "",
            digits=judged, correct=correct, mismatched=mismatched, failed=problem is not None,
        )  # fmt: skip
        return problem

    def _compare(
        self, sample: Sample, probabilities: FloatArray, version: str, variant: str
    ) -> tuple[str | None, int]:
        """(the failure, the number of digits) where the answer is not the model's own output."""
        try:
            reference = self._expected.outputs(version)[sample.indices]
        except KeyError as error:
            return f"no reference outputs for version {version} of the model: {error}", 0
        distance = np.abs(probabilities - reference).max(axis=1)
        off = distance > self._expected.tolerance
        if not off.any():
            return None, 0
        first = int(np.flatnonzero(off)[0])
        return (
            f"{MISMATCH}: {int(off.sum())} of {off.size} digits differ from version {version}'s "
            f"own output by up to {float(distance.max()):.3g} (> {self._expected.tolerance:g}), "
            f"variant {variant}; test digit {int(sample.indices[first])}: answered "
            f"{int(probabilities[first].argmax())}, the model says {int(reference[first].argmax())}"
        ), int(off.sum())

    def _stick(self, variant: str) -> str | None:
        if self._sticky_variant is None:
            self._sticky_variant = variant
        elif variant != self._sticky_variant:
            return (
                f"sticky routing broke: {self.user_id} moved "
                f"from {self._sticky_variant} to {variant}"
            )
        return None
