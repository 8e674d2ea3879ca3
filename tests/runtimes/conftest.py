"""A TorchServe and a TF Serving (or its stand-in) of their own for the deploy tests: they load and
unload versions, which the session's shared backends must never see."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.local.stack import StackPorts, backend_processes, start_all, with_files
from tests.support.stack import free_stack_ports


@pytest.fixture(scope="package")
def runtimes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPorts]:
    run_dir = tmp_path_factory.mktemp("runtimes")
    ports = free_stack_ports()
    processes = backend_processes(run_dir, ports)
    start_all(processes, timeout=180)
    try:
        yield with_files(run_dir, ports)
    finally:
        for process in processes:
            process.stop()
