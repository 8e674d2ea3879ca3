"""Session-wide real backends: TorchServe and TF Serving (or its stand-in) on free ports.

Started once, on first use, and stopped at the end; readiness is polled, never slept on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.local.stack import StackPorts, backend_processes, start_all, with_files
from tests.support.stack import free_stack_ports, gateway_config, running_gateway


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPorts]:
    run_dir = tmp_path_factory.mktemp("backends")
    ports = free_stack_ports()
    processes = backend_processes(run_dir, ports)
    start_all(processes, timeout=180)
    try:
        yield with_files(run_dir, ports)
    finally:
        for process in processes:
            process.stop()


@pytest.fixture(scope="session")
def gateway_url(backends: StackPorts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gateway with the demo's four-way split, shared by tests that only send traffic."""
    with running_gateway(tmp_path_factory.mktemp("gateway"), gateway_config(backends)) as url:
        yield url
