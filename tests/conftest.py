"""Session-wide real backends: TorchServe, TF Serving (or its stand-in) and MLServer on free ports.

Started once, on first use, and stopped at the end; readiness is polled, never slept on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.local.stack import StackPorts
from tests.support.stack import gateway_config, running_backends, running_gateway


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPorts]:
    with running_backends(tmp_path_factory.mktemp("backends")) as ports:
        yield ports


@pytest.fixture(scope="session")
def gateway_url(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gateway with the demo's four-way split, shared by tests that only send traffic."""
    with running_gateway(tmp_path_factory.mktemp("gateway"), gateway_config(backends)) as url:
        yield url
