"""The admin API client's HTTP shape, against a tiny fake of the admin listener."""

from __future__ import annotations

import pytest

from gateway.rollout import actuator
from gateway.rollout.admin_client import AdminClient, AdminError
from gateway.rollout.decide import begin
from gateway.rollout.plan import parse_plan
from gateway.rollout.state import Action, ShadowTarget, Target
from tests.rollout.fake_admin_server import TOKEN, admin_server
from tests.rollout.world import FakeAdmin, starting_variants


def test_reads_variants_and_patches_with_the_bearer_token():
    admin = FakeAdmin(starting_variants())
    with admin_server(admin) as (url, seen):
        client = AdminClient(url, TOKEN)
        variants, version = client.variants("digits")
        assert {v.name: v.weight for v in variants} == {
            "tf-v1": 40, "torch-v1": 40, "tf-v3": 0, "torch-v3": 0
        }  # fmt: skip
        assert version == "1"
        assert client.patch_variant("digits", "tf-v3", {"weight": 5, "labels": ["canary"]}) == "2"
        assert client.set_shadow("digits", ShadowTarget(variants=("tf-v3",), percent=25)) == "3"
    method, path, headers, body = seen.requests[1]
    assert (method, path) == ("PATCH", "/admin/models/digits/variants/tf-v3")
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"
    assert body == {"weight": 5, "labels": ["canary"]}
    assert seen.requests[2][1:4:2] == ("/admin/models/digits/shadow",
                                       {"variants": ["tf-v3"], "percent": 25})  # fmt: skip
    assert admin.variants_now["tf-v3"].labels == ("canary",)


def test_a_shadow_step_sends_its_comparison_knobs():
    plan = parse_plan({"steps": [{"kind": "shadow", "compare": {"atol": 1, "top_k": 1}}]})
    rollout = begin("digits", ["tf-v3"], plan, list(starting_variants().values()), 0.0)
    assert rollout.action is not None
    shadow = rollout.action.shadow
    assert shadow is not None
    assert shadow.compare == {"atol": 1, "top_k": 1}
    admin = FakeAdmin(starting_variants())
    with admin_server(admin) as (url, seen):
        AdminClient(url, TOKEN).set_shadow("digits", shadow)
    assert seen.requests[0][3] == {
        "variants": ["tf-v3", "torch-v1"], "percent": 100, "atol": 1, "top_k": 1
    }  # fmt: skip
    assert admin.shadow.compare == {"atol": 1, "top_k": 1}


def test_refusals_and_unreachable_servers_are_one_admin_error():
    admin = FakeAdmin(starting_variants())
    with admin_server(admin) as (url, _):
        with pytest.raises(AdminError, match="401 missing or wrong bearer token") as refused:
            AdminClient(url, "wrong").variants("digits")
        assert refused.value.status == 401
        client = AdminClient(url, TOKEN)
        client.patch_variant("digits", "tf-v1", {"weight": 0})
        with pytest.raises(AdminError, match="at least one must take traffic") as invalid:
            client.patch_variant("digits", "torch-v1", {"weight": 0})
        assert invalid.value.status == 400
    with pytest.raises(AdminError, match="Connection refused"):
        AdminClient(url, TOKEN, timeout=2).variants("digits")


def test_a_rollback_finishes_on_a_gateway_without_shadow_traffic():
    """Turning shadowing off where there is no shadow endpoint is done (there is none to turn
    off), or the rollback would be retried for ever; turning it on there fails, so a shadow
    step is never taken for passed."""
    admin = FakeAdmin(starting_variants())
    targets = {
        "tf-v1": Target(weight=40, enabled=True, labels=("stable",)),
        "tf-v3": Target(weight=0, enabled=False, labels=()),
    }
    off = Action(kind="rollback", targets=targets, shadow=ShadowTarget())
    on = off.model_copy(update={"shadow": ShadowTarget(variants=("tf-v3",), percent=100)})
    with admin_server(admin, shadow=False) as (url, _):
        client = AdminClient(url, TOKEN)
        done = actuator.apply(client, "digits", off, ["tf-v3"])
        assert done.ok, done.error
        assert done.applied == (
            "shadow off (the gateway has no shadow traffic)", "tf-v3: enabled True -> False"
        )  # fmt: skip
        failed = actuator.apply(client, "digits", on, ["tf-v3"])
        assert not failed.ok
        assert failed.error is not None
        assert "404 no such endpoint: PUT /admin/models/digits/shadow" in failed.error
    with admin_server(admin) as (url, _), pytest.raises(AdminError, match="404") as unknown:
        AdminClient(url, TOKEN).set_shadow("nope", ShadowTarget())
    assert "no such endpoint" not in str(unknown.value)  # an unknown model is not "no shadow"


def test_an_action_over_http_in_a_safe_order():
    """Rolling back from 100%: the baseline gets its traffic back before the candidates lose
    theirs (the gateway refuses a model that nothing serves); a rollback from a canary step
    disables the candidates first."""
    admin = FakeAdmin(starting_variants())
    admin.variants_now = {
        name: v.model_copy(update={"weight": 0 if name.endswith("v1") else 500})
        for name, v in admin.variants_now.items()
    }
    targets = {
        "tf-v1": Target(weight=40, enabled=True, labels=("stable",)),
        "torch-v1": Target(weight=40, enabled=True, labels=("stable",)),
        "tf-v3": Target(weight=0, enabled=False, labels=()),
        "torch-v3": Target(weight=0, enabled=False, labels=()),
    }
    action = Action(kind="rollback", targets=targets, shadow=ShadowTarget())
    with admin_server(admin) as (url, seen):
        result = actuator.apply(AdminClient(url, TOKEN), "digits", action, ("tf-v3", "torch-v3"))
    assert result.ok, result.error
    order = [path.rsplit("/", 1)[1] for method, path, _, _ in seen.requests if method == "PATCH"]
    assert order == ["tf-v1", "torch-v1", "tf-v3", "torch-v3"]
    assert result.applied[0] == "shadow off"
    # From canary 25% the candidates lose their traffic with the first calls.
    current = [
        v.model_copy(update={"weight": 390 if v.name.endswith("v1") else 130, "enabled": True})
        for v in admin.variants_now.values()
    ]
    changes = actuator.plan_changes(current, targets, ("tf-v3", "torch-v3"))
    assert [name for name, _, _ in changes][:2] == ["tf-v3", "torch-v3"]


def test_a_controller_without_metrics_refuses_to_start(tmp_path):
    from gateway.rollout.controller import Controller
    from gateway.rollout.plan import Metrics, Plan
    from gateway.rollout.store import StateStore

    controller = Controller(StateStore(tmp_path), FakeAdmin(starting_variants()), Metrics())
    with pytest.raises(ValueError, match="no metrics: give a Prometheus URL"):
        controller.start("digits", ["tf-v3"], Plan())
    assert controller.status("digits") is None
