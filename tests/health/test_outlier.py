"""Outlier ejection on simulated time, as Envoy's outlier detector tests run it."""

import logging

import pytest

from gateway.backends.base import BackendModel
from gateway.config_resilience import OutlierDetection
from gateway.health.outlier import EjectionListener, Key, OutlierDetector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Events(EjectionListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Key, object]] = []

    def ejected(self, key: Key, times: int, duration_s: float) -> None:
        self.seen.append(("ejected", key, duration_s))

    def returned(self, key: Key, reason: str) -> None:
        self.seen.append(("returned", key, reason))


A: Key = ("tfserving", BackendModel("digits", "1"))
B: Key = ("torchserve", BackendModel("digits", "1"))
C: Key = ("mlserver", BackendModel("digits", "1"))
POLICY = OutlierDetection()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def detector(clock: Clock, events: Events) -> OutlierDetector:
    return OutlierDetector(clock, events)


def fail(detector: OutlierDetector, key: Key, times: int, siblings=(A, B), policy=POLICY) -> bool:
    ejected = False
    for _ in range(times):
        ejected = detector.failed(key, policy, list(siblings), lambda k: True) or ejected
    return ejected


def test_five_in_a_row_eject_for_thirty_seconds(detector, clock, events):
    assert not fail(detector, A, 4)
    assert not detector.is_ejected(A)
    assert fail(detector, A, 1)
    assert detector.is_ejected(A)
    clock.advance(29.999)
    assert detector.is_ejected(A)
    clock.advance(0.002)
    assert not detector.is_ejected(A)
    assert events.seen == [("ejected", A, 30.0), ("returned", A, "timer")]


def test_a_success_resets_the_count(detector):
    fail(detector, A, 4)
    detector.succeeded(A)
    assert not fail(detector, A, 4)
    assert fail(detector, A, 1)


def test_ejections_in_a_row_last_longer_up_to_the_cap(detector, clock, events):
    durations = []
    for _ in range(12):
        fail(detector, A, 5)
        durations.append(events.seen[-1][2])
        clock.advance(durations[-1])
        detector.expire()
    assert durations[:4] == [30.0, 60.0, 90.0, 120.0]
    assert durations[-1] == 300.0
    assert max(durations) == 300.0


def test_the_multiplier_decays_while_the_target_stays_in(detector, clock, events):
    fail(detector, A, 5)
    clock.advance(30)
    detector.expire()
    fail(detector, A, 5)
    assert events.seen[-1][2] == 60.0
    clock.advance(60)
    detector.expire()
    clock.advance(60)  # two base ejection times back in: 2 -> 0
    fail(detector, A, 5)
    assert events.seen[-1][2] == 30.0


def test_a_passing_readiness_probe_ends_an_ejection(detector, events):
    fail(detector, A, 5)
    detector.readiness_passed(A)
    assert not detector.is_ejected(A)
    assert events.seen[-1] == ("returned", A, "readiness")


def test_max_ejection_percent_allows_at_least_one(detector):
    siblings = (A, B, C)
    assert fail(detector, A, 5, siblings)
    assert not fail(detector, B, 10, siblings)  # 10% of 3 variants: one at a time
    wide = OutlierDetection(max_ejection_percent=70)
    assert fail(detector, B, 5, siblings, wide)  # 70% of 3: two


def test_never_the_last_healthy_one(detector):
    wide = OutlierDetection(max_ejection_percent=100)
    ejected = [
        detector.failed(A, wide, [A, B], lambda k: k == A) for _ in range(10)
    ]  # B is not ready: A is the only one left
    assert not any(ejected)
    assert not detector.is_ejected(A)


def test_disabled_never_ejects(detector):
    assert not fail(detector, A, 50, policy=OutlierDetection(enabled=False))


def test_ejections_are_logged(detector, clock, caplog):
    with caplog.at_level(logging.INFO, logger="gateway.health.outlier"):
        fail(detector, A, 5)
        clock.advance(31)
        detector.expire()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "outlier ejection: tfserving digits/1 out for 30s "
        "(5 failures in a row, ejection 1 in a row)",
        "outlier ejection over (timer): tfserving digits/1",
    ]
