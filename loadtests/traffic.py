"""One simulated user's traffic: its stable id, the digits it sends, and the checks on each answer.

Every answer is judged the same way whichever protocol carried it: the variant must be named,
every digit must be recognised (argmax == label), and a user's sticky requests must all land on
one variant. Each judged digit is counted in the accuracy book under the variant that served it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from loadtests.accuracy import AccuracyBook
from loadtests.endpoints import STICKY_HEADER, VARIANT_HEADER
from loadtests.options import Settings
from loadtests.payloads import Sample, draw
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


class Traffic:
    def __init__(
        self,
        settings: Settings,
        book: AccuracyBook,
        id_prefix: str = "",
        digits: DigitsSet = DIGITS,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.settings = settings
        self.user_id = f"{id_prefix}user-{next(_user_numbers)}"
        self._book = book
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

    def check(self, request: Request, probabilities: FloatArray, variant: str | None) -> str | None:
        """Why this answer is a failure, or None if it is right."""
        labels = request.sample.labels
        if not variant:
            return f"no {VARIANT_HEADER} on the answer"
        if probabilities.shape[0] != labels.shape[0]:
            return f"{probabilities.shape[0]} answers for {labels.shape[0]} digits"
        predicted = probabilities.argmax(axis=1)
        right = predicted == labels
        self._book.record(variant, int(labels.shape[0]), int(right.sum()))
        if request.sticky:
            if self._sticky_variant is None:
                self._sticky_variant = variant
            elif variant != self._sticky_variant:
                return (
                    f"sticky routing broke: {self.user_id} moved "
                    f"from {self._sticky_variant} to {variant}"
                )
        if not right.all():
            wrong = int(np.flatnonzero(~right)[0])
            return (
                f"wrong answer: predicted {predicted[wrong]}, label {labels[wrong]}, "
                f"variant {variant}"
            )
        return None
