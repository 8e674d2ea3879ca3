"""The REST users: OIP JSON, OIP binary, TF Serving and TorchServe, one ``FastHttpUser`` each.

Each sends random digits as one stable user (``x-user-id``) and judges the answer with
``Traffic.check``: an error status, an unreadable body, a missing variant, a sticky user moved or
an answer that is not the served version's own output is a failure in Locust's statistics,
under the endpoint's name.
"""

from __future__ import annotations

from typing import ClassVar

from locust import FastHttpUser, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import rest_ways
from loadtests.endpoints import VARIANT_HEADER
from loadtests.expected import EXPECTED
from loadtests.options import Settings
from loadtests.payloads import BINARY_HEADER
from loadtests.traffic import Answer, Traffic
from loadtests.variant_stats import BOOK

# What a malformed answer raises while it is read.
UNREADABLE = (ValueError, KeyError, TypeError, IndexError)


def new_traffic(environment: Environment) -> Traffic:
    """A new user's traffic; workers prefix user ids with their index so that none repeats."""
    runner = environment.runner
    prefix = f"w{runner.worker_index}-" if isinstance(runner, WorkerRunner) else ""
    return Traffic(Settings.of(environment), BOOK, EXPECTED, prefix)


class DigitsRestUser(FastHttpUser):
    abstract = True
    way: ClassVar[rest_ways.RestWay]

    def __init__(self, environment: Environment) -> None:
        self.traffic = new_traffic(environment)
        self.network_timeout = self.traffic.settings.timeout_s  # read by FastHttpUser.__init__
        super().__init__(environment)

    def wait_time(self) -> float:
        return self.traffic.pause()

    @task
    def infer(self) -> None:
        request = self.traffic.next_request()
        body, headers = self.way.encode(request.sample.rows)
        with self.client.post(
            self.way.path(self.traffic.settings.model_version),
            data=body,  # type: ignore[arg-type]  # bytes go out as they are; Locust says str
            headers={**headers, **request.headers},
            name=self.way.endpoint.name,
            catch_response=True,
        ) as response:
            response_ms = float(response.request_meta["response_time"])
            variant = response.headers.get(VARIANT_HEADER) if response.headers else None
            if response.status_code != 200:
                self.traffic.failed(variant, response_ms)
                if response.error is not None and not response.status_code:
                    response.failure(response.error)  # no answer at all: refused, reset, timeout
                else:
                    response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                length = response.headers.get(BINARY_HEADER)
                header_length = int(length) if length is not None else None
                probabilities, version = self.way.decode(response.content or b"", header_length)
            except UNREADABLE as error:
                self.traffic.failed(variant, response_ms)
                response.failure(f"unreadable answer: {error!r}")
                return
            answer = Answer(probabilities, variant, version, response_ms)
            problem = self.traffic.check(request, answer)
            if problem is None:
                response.success()
            else:
                response.failure(problem)


class OipRestJsonUser(DigitsRestUser):
    """``POST /v2/models/digits/infer`` with JSON tensors."""

    way = rest_ways.OIP_JSON_WAY


class OipRestBinaryUser(DigitsRestUser):
    """``POST /v2/models/digits/infer`` with the binary tensor extension, both ways."""

    way = rest_ways.OIP_BINARY_WAY


class TFServingRestUser(DigitsRestUser):
    """``POST /v1/models/digits:predict`` with ``{"instances": [...]}``."""

    way = rest_ways.TFS_WAY


class TorchServeRestUser(DigitsRestUser):
    """``POST /predictions/digits`` with an OIP JSON body (TorchServe's kservev2 handler)."""

    way = rest_ways.TORCHSERVE_WAY
