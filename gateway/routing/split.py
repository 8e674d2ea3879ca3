"""Weighted traffic splits, random or sticky.

Random picks are exact: a uniform draw over the cumulative weights, as Envoy's weighted clusters do.

Sticky picks hash (model, key) into one of ``BUCKETS`` buckets; each bucket belongs to the variant
with the highest weighted rendezvous score ``w / -ln(u)``, ``u`` a uniform hash of (model, variant,
bucket). The table depends only on names and weights, so every process and replica agrees without
shared state, and raising one variant's weight can only move buckets *to* that variant.

Both picks take a health predicate. Random picks then draw over the healthy members' weights
only (the same exact semantics among them). A sticky key whose owner is unhealthy goes to its
next rendezvous choice, the healthy member with the highest score in its bucket; every other key
keeps its owner, and the key returns to its owner once that is healthy again. When no member
with weight is healthy, both picks use every member (Envoy's panic routing).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

BUCKETS = 10_000

T = TypeVar("T")

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def stable_hash(*parts: str) -> int:
    """A 64-bit hash that is the same in every process, unlike ``hash()``."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def sticky_bucket(model: str, key: str) -> int:
    return stable_hash(model, key) % BUCKETS


def _splitmix64(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    z = values.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    mixed: np.ndarray[Any, Any] = z ^ (z >> np.uint64(31))
    return mixed


def rendezvous_table(
    model: str, names: Sequence[str], weights: Sequence[int]
) -> np.ndarray[Any, Any]:
    """Owner index of every bucket under weighted rendezvous hashing."""
    owners: np.ndarray[Any, Any] = np.argmax(
        rendezvous_scores(model, names, weights), axis=0
    ).astype(np.int32)
    return owners


def rendezvous_scores(
    model: str, names: Sequence[str], weights: Sequence[int]
) -> np.ndarray[Any, Any]:
    """Score of every (member, bucket): a bucket's owner is its member of highest score."""
    buckets = np.arange(BUCKETS, dtype=np.uint64)
    scores = np.empty((len(names), BUCKETS), dtype=np.float64)
    for row, (name, weight) in enumerate(zip(names, weights, strict=True)):
        with np.errstate(over="ignore"):
            mixed = _splitmix64(buckets ^ np.uint64(stable_hash(model, name)))
        # 53 high bits -> u in (0, 1); never 0, so -log(u) > 0.
        u = ((mixed >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
        scores[row] = weight / -np.log(u)
    return scores


class Split(Generic[T]):
    """Pick among ``choices`` in proportion to ``weights`` (relative; 0 = drained).

    When every weight is 0 the choices share equally: a split that exists must still answer
    requests that asked for it explicitly (a pinned version whose variants are all drained).
    """

    __slots__ = (
        "_choices",
        "_cumulative",
        "_model",
        "_names",
        "_scores",
        "_table",
        "_total",
        "_weights",
    )

    def __init__(
        self, model: str, choices: Sequence[T], names: Sequence[str], weights: Sequence[int]
    ) -> None:
        if not choices or len(choices) != len(names) or len(names) != len(weights):
            raise ValueError("a split needs one name and one weight per choice")
        if not any(weights):
            weights = [1] * len(weights)
        self._model = model
        self._choices = tuple(choices)
        self._names = tuple(names)
        self._weights = tuple(weights)
        cumulative, total = [], 0
        for weight in weights:
            total += weight
            cumulative.append(total)
        self._cumulative = cumulative
        self._total = total
        self._table: np.ndarray[Any, Any] | None = None
        self._scores: np.ndarray[Any, Any] | None = None

    @property
    def choices(self) -> tuple[T, ...]:
        return self._choices

    def pick(self, healthy: Callable[[T], bool] | None = None) -> T:
        """A weighted draw; with ``healthy``, among the healthy members (panic: among all)."""
        if len(self._choices) == 1:
            return self._choices[0]
        if healthy is not None:
            chosen = self.pick_among(healthy)
            if chosen is not None:
                return chosen
        point = random.random() * self._total
        return self._choices[bisect.bisect_right(self._cumulative, point)]

    def pick_sticky(self, key: str, healthy: Callable[[T], bool] | None = None) -> T:
        """The key's owner; with ``healthy``, its first healthy choice (panic: its owner)."""
        if len(self._choices) == 1:
            return self._choices[0]
        if healthy is not None:
            chosen = self.pick_among(healthy, key)
            if chosen is not None:
                return chosen
        return self._choices[int(self._owners()[sticky_bucket(self._model, key)])]

    def pick_among(self, allowed: Callable[[T], bool], key: str | None = None) -> T | None:
        """A draw (or, with ``key``, the key's first choice) among the allowed members with
        weight; None when there is none."""
        choices, weights = self._choices, self._weights
        if key is not None:
            bucket = sticky_bucket(self._model, key)
            owner = int(self._owners()[bucket])
            if allowed(choices[owner]):
                return choices[owner]
            if self._scores is None:  # only splits that lost a sticky owner pay for these
                self._scores = rendezvous_scores(self._model, self._names, weights)
            column = self._scores[:, bucket]
            best, best_score = None, 0.0
            for index, choice in enumerate(choices):
                score = float(column[index])
                if weights[index] > 0 and score > best_score and allowed(choice):
                    best, best_score = choice, score
            return best
        members = [(c, w) for c, w in zip(choices, weights, strict=True) if w > 0 and allowed(c)]
        if not members:
            return None
        point = random.random() * sum(w for _, w in members)
        for choice, weight in members:
            point -= weight
            if point < 0:
                return choice
        return members[-1][0]

    def _owners(self) -> np.ndarray[Any, Any]:
        if self._table is None:
            # Built on first use: configs with thousands of models pay only for those used sticky.
            self._table = rendezvous_table(self._model, self._names, self._weights)
        return self._table
