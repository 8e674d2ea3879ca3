"""Hypothesis profiles for the codec fuzz tests (``test_fuzz_*.py``).

``ci``, the default, is derandomized (the same examples on every run and machine) and bounded so
that the whole fuzz layer takes well under a minute. ``HYPOTHESIS_PROFILE=explore`` draws fresh,
many more examples, for a developer hunting bugs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,  # a loaded machine must not fail an example for being slow
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "explore",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
