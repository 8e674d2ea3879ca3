"""Runtime orchestration against a real TorchServe and a real TF Serving (or its stand-in).

Version 3 of digits (on disk in the model store, served by neither at start) goes into both
runtimes with one call, answers there as the model store's reference says, deploys again as a
no-op, and comes out again with one call. A deploy that one runtime refuses leaves the other as
it was, and an interrupted deploy is finished by calling it again. The time each runtime took is
printed (``pytest -s``) for the issue's closing note.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from deploy.local.stack import StackPorts
from gateway.config import GatewayConfig, parse_config
from gateway.errors import Conflict, InvalidInput
from gateway.runtimes.journal import Journal
from gateway.runtimes.orchestrator import Orchestrator
from gateway.runtimes.results import DeployResult, TFServingTarget
from gateway.runtimes.setup import deploy_request, orchestrator
from gateway.runtimes.tfserving import TFServingRuntime
from model_store.digits import load_reference, load_test_set
from tests.runtimes.direct import (
    dumps,
    tfserving_labels,
    tfserving_predict,
    tfserving_states,
    torchserve_default,
    torchserve_predict,
    torchserve_versions,
)
from tests.support.stack import gateway_config

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "model_store" / "tfserving" / "digits"
BOTH = [{"backend": "torchserve", "archive": "digits_v3.mar"}, {"backend": "tfserving"}]
T = TypeVar("T")


@pytest.fixture(scope="module")
def config(runtimes: StackPorts) -> GatewayConfig:
    return parse_config(gateway_config(runtimes))


def run(config: GatewayConfig, state_dir: Path, work: Callable[[Orchestrator], Awaitable[T]]) -> T:
    async def main() -> T:
        deployer = orchestrator(config, state_dir, timeout_s=60)
        try:
            return await work(deployer)
        finally:
            await deployer.close()

    return asyncio.run(main())


def deploy(config: GatewayConfig, state_dir: Path, targets: list[Any] = BOTH) -> DeployResult:
    request = deploy_request(config, "digits", 3, targets)
    return run(config, state_dir, lambda o: o.deploy(request))


def undeploy(config: GatewayConfig, state_dir: Path, **options: Any) -> DeployResult:
    request = deploy_request(config, "digits", 3, BOTH)
    return run(config, state_dir, lambda o: o.undeploy(request, **options))


def actions(result: DeployResult) -> dict[str, str]:
    return {outcome.backend: outcome.action for outcome in result.outcomes}


def report(title: str, result: DeployResult) -> None:
    print(f"\n{title}: ok={result.ok}")
    for outcome in result.outcomes:
        what = f"{outcome.runtime:<10} {outcome.action:<14} {outcome.seconds:6.2f}s"
        print(f"  {what}  {outcome.detail}")


def assert_untouched(ports: StackPorts) -> None:
    assert torchserve_versions(ports) == ["1", "2"]
    assert torchserve_default(ports) == "1"
    assert tfserving_states(ports).get(3) in (None, "END")
    assert {v for v, s in tfserving_states(ports).items() if s == "AVAILABLE"} == {1, 2}
    assert tfserving_labels(ports) == {"stable": 1, "canary": 2}


def test_deploy_version_3_into_both_then_again_then_undeploy(runtimes, config, tmp_path):
    assert_untouched(runtimes)
    result = deploy(config, tmp_path)
    report("deploy digits 3", result)
    assert result.ok, dumps(result.as_dict())
    assert actions(result) == {"torchserve": "deployed", "tfserving": "deployed"}
    assert result.variants == (
        {"name": "torch-v3", "backend": "torchserve", "version": "3", "weight": 0},
        {"name": "tf-v3", "backend": "tfserving", "version": "3", "weight": 0},
    )
    assert torchserve_versions(runtimes) == ["1", "2", "3"]
    assert torchserve_default(runtimes) == "1"  # set-default only when asked
    assert tfserving_states(runtimes)[3] == "AVAILABLE"
    assert tfserving_labels(runtimes) == {"stable": 1, "canary": 2}

    rows = load_test_set().inputs
    reference = load_reference("3")
    np.testing.assert_allclose(torchserve_predict(runtimes, "3", rows), reference, atol=1e-5)
    np.testing.assert_allclose(tfserving_predict(runtimes, 3, rows), reference, atol=1e-5)
    assert not np.allclose(reference, load_reference("2"), atol=1e-3)

    # The gateway keeps the whole config it sent, for the next deploy to start from.
    held = (tmp_path / "tfserving" / "tfserving.config").read_text()
    assert "versions: 3" in held

    again = deploy(config, tmp_path)
    report("deploy digits 3 again", again)
    assert again.ok
    assert actions(again) == {"torchserve": "already-there", "tfserving": "already-there"}
    assert torchserve_versions(runtimes) == ["1", "2", "3"]

    gone = undeploy(config, tmp_path)
    report("undeploy digits 3", gone)
    assert gone.ok, dumps(gone.as_dict())
    assert actions(gone) == {"torchserve": "undeployed", "tfserving": "undeployed"}
    assert_untouched(runtimes)
    assert actions(undeploy(config, tmp_path)) == {"torchserve": "absent", "tfserving": "absent"}


def test_tfserving_refusing_rolls_torchserve_back(runtimes, config, tmp_path):
    # A base path TF Serving refuses (not absolute): TorchServe had already taken version 3.
    new_model = [
        {"backend": "torchserve", "archive": "digits_v3.mar", "model": "digits"},
        {"backend": "tfserving", "model": "digits-elsewhere", "base_path": "models/digits"},
    ]
    result = deploy(config, tmp_path, new_model)
    report("half-failed deploy (bad base path)", result)
    assert not result.ok
    assert actions(result) == {"torchserve": "rolled-back", "tfserving": "failed"}
    torchserve, tfserving = result.outcomes
    assert "unregistered" in torchserve.detail
    assert "INVALID_ARGUMENT" in tfserving.detail
    assert "absolute path" in tfserving.detail
    assert "tfserving 'tfserving' failed" in result.message
    assert result.variants == ()
    assert_untouched(runtimes)
    held = (tmp_path / "tfserving" / "tfserving.config").read_text()  # the rollback's reload
    assert "digits-elsewhere" not in held


def test_a_version_that_fails_to_load_rolls_both_back(runtimes, config, tmp_path):
    # A model TF Serving serves from a copy of version 1, next to a broken version 3.
    base = tmp_path / "models" / "broken"
    shutil.copytree(DIGITS / "1", base / "1")
    (base / "3").mkdir()
    (base / "3" / "saved_model.pb").write_bytes(b"\xffnot a SavedModel")
    state = tmp_path / "state"
    tf_only = [{"backend": "tfserving", "model": "broken", "base_path": str(base)}]
    first = request_in(config, state, "1", tf_only)
    assert first.ok, dumps(first.as_dict())

    # TF Serving takes the config, then fails to load the version: both runtimes roll back.
    torchserve_3 = {"backend": "torchserve", "archive": "digits_v3.mar", "model": "digits"}
    targets = [{**torchserve_3, "set_default": True}, *tf_only]
    result = request_in(config, state, "3", targets)
    report("half-failed deploy (version fails to load)", result)
    assert not result.ok
    assert actions(result) == {"torchserve": "rolled-back", "tfserving": "failed"}
    torchserve, tfserving = result.outcomes
    assert torchserve.detail == "rolled back: default version back to 1, unregistered"
    assert "failed to load broken/3" in tfserving.detail
    assert "Can't parse" in tfserving.detail
    assert tfserving.detail.endswith("then rolled back: config restored")
    assert_untouched(runtimes)
    broken = tfserving_states(runtimes, "broken")
    assert (broken[1], broken[3]) == ("AVAILABLE", "END")

    request = deploy_request(config, "broken", 1, tf_only)
    assert run(config, state, lambda o: o.undeploy(request)).ok
    assert tfserving_states(runtimes, "broken").get(1) in ("UNLOADING", "END")


def request_in(
    config: GatewayConfig, state: Path, version: str, targets: list[Any]
) -> DeployResult:
    request = deploy_request(config, "broken", version, targets)
    return run(config, state, lambda o: o.deploy(request))


def test_an_interrupted_deploy_resumes_and_its_rollback_still_undoes_it(
    runtimes, config, tmp_path, monkeypatch
):
    real = TFServingRuntime.deploy

    async def crash(
        self: TFServingRuntime, target: TFServingTarget, model: str, version: str
    ) -> str:
        raise asyncio.CancelledError  # the process died (or the call was cancelled) here

    monkeypatch.setattr(TFServingRuntime, "deploy", crash)
    with pytest.raises(asyncio.CancelledError):
        deploy(config, tmp_path)
    assert torchserve_versions(runtimes) == ["1", "2", "3"]  # TorchServe's step was done
    journal = Journal(tmp_path).in_progress()
    assert [(e.model, e.version, e.steps["torchserve"].phase) for e in journal] == [
        ("digits", "3", "done")
    ]
    with pytest.raises(Conflict, match="with other arguments"):
        deploy(config, tmp_path, [BOTH[0], {"backend": "tfserving", "labels": ["canary"]}])

    monkeypatch.setattr(TFServingRuntime, "deploy", real)
    resumed = deploy(config, tmp_path)
    report("resumed deploy", resumed)
    assert resumed.ok
    assert resumed.resumed
    assert actions(resumed) == {"torchserve": "deployed", "tfserving": "deployed"}
    assert "interrupted call" in resumed.outcomes[0].detail
    assert tfserving_states(runtimes)[3] == "AVAILABLE"
    assert Journal(tmp_path).in_progress() == []

    assert undeploy(config, tmp_path).ok
    assert_untouched(runtimes)


def test_labels_move_only_once_the_version_is_loaded(runtimes, config, tmp_path):
    targets = [BOTH[0], {"backend": "tfserving", "labels": ["canary"]}]
    result = deploy(config, tmp_path, targets)
    report("deploy digits 3 with TF Serving's canary label", result)
    assert result.ok, dumps(result.as_dict())
    assert "labels canary moved to 3" in result.outcomes[1].detail
    assert tfserving_labels(runtimes) == {"stable": 1, "canary": 3}

    refused = undeploy(config, tmp_path)
    assert not refused.ok
    assert actions(refused) == {"torchserve": "not-attempted", "tfserving": "failed"}
    assert torchserve_versions(runtimes) == ["1", "2", "3"]
    assert "carries TF Serving labels canary" in refused.outcomes[1].detail
    gone = undeploy(config, tmp_path, drop_labels=True)
    assert gone.ok, dumps(gone.as_dict())
    assert tfserving_labels(runtimes) == {"stable": 1}
    # Put the stack's canary label back for the other tests.
    restore = [{"backend": "tfserving", "labels": ["canary"]}]
    back = run(
        config,
        tmp_path,
        lambda o: o.deploy(deploy_request(config, "digits", 2, restore)),
    )
    assert back.ok, dumps(back.as_dict())
    assert_untouched(runtimes)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([], "at least one runtime"),
        (
            [{"backend": "nope", "archive": "a.mar"}],
            "targets[0].backend: no runtime backend 'nope'",
        ),
        ([{"backend": "torchserve"}], "targets[0].archive: a non-empty string is required"),
        ([{"backend": "tfserving", "archive": "a.mar"}], "targets[0].archive: not a field"),
        ([BOTH[0], BOTH[0]], "each backend may appear once"),
    ],
)
def test_bad_requests_name_the_field(config, targets, message):
    with pytest.raises(InvalidInput) as raised:
        deploy_request(config, "digits", 3, targets)
    assert message in raised.value.message
