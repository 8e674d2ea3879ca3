"""A TorchServe and a TF Serving (or its stand-in) of their own for the deploy tests: they load and
unload versions, which the session's shared backends must never see."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.local.stack import StackPorts
from tests.support.stack import running_backends


@pytest.fixture(scope="package")
def runtimes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPorts]:
    with running_backends(tmp_path_factory.mktemp("runtimes")) as ports:
        yield ports
