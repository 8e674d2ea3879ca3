"""The admin API's ready and ejected, from every worker's own view."""

from __future__ import annotations

from gateway.control.workers import merge


def test_ready_needs_every_worker_and_one_ejection_shows() -> None:
    first = {"digits": {"tf-v1": (True, False), "tf-v2": (True, False), "tf-v3": (False, False)}}
    second = {"digits": {"tf-v1": (True, False), "tf-v2": (False, False), "tf-v3": (True, True)}}
    assert merge([first, second]) == {
        "digits": {"tf-v1": (True, False), "tf-v2": (False, False), "tf-v3": (False, True)}
    }
    assert merge([first]) == first
    assert merge([]) == {}
