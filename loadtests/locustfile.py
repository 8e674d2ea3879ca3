"""Load test of the gateway's six ways in, with real digits: ``locust -f loadtests/locustfile.py``.

Run it from the repository root (``loadtests`` and ``model_store`` are imported from there):

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000            # web UI
    python -m loadtests.run                                                   # headless + SLOs

User classes (pick some by name on the command line, or in the web UI with --class-picker):
OipRestJsonUser, OipRestBinaryUser, OipGrpcUser, TFServingRestUser, TFServingGrpcUser,
TorchServeRestUser. The load shape is ``--load-shape constant|ramp|spike``; this load test's
options (``--grpc-target``, ``--batch-size``, ...) are in ``locust -f loadtests/locustfile.py
--help`` and in the web UI's start form, under "Custom parameters".
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from locust import events
from locust.env import Environment

from loadtests import report
from loadtests.grpc_users import OipGrpcUser, TFServingGrpcUser
from loadtests.options import Settings, add_options
from loadtests.shapes import DigitsShape
from loadtests.users import (
    OipRestBinaryUser,
    OipRestJsonUser,
    TFServingRestUser,
    TorchServeRestUser,
)


def _check_options(environment: Environment, **_: Any) -> None:
    try:
        Settings.of(environment)
    except ValueError as error:
        logging.getLogger(__name__).error("%s", error)
        sys.exit(2)


report.listen(events.init_command_line_parser, add_options)
report.listen(events.init, _check_options)
report.register()


__all__ = [
    "DigitsShape",
    "OipGrpcUser",
    "OipRestBinaryUser",
    "OipRestJsonUser",
    "TFServingGrpcUser",
    "TFServingRestUser",
    "TorchServeRestUser",
]
