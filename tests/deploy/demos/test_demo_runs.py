"""The demos' whole runs, as `make rollout-demo` and `make migrate-demo` run them, with one
stand-in: the control plane. The clients load a real gateway over the real backends (three
protocols, judged); the rollout controller is the real process, driven over HTTP; the admin API
it acts on is the fake listener of the controller's tests, and the metrics it judges are those
of the simulated gateway that follows that admin's weights (tests/rollout/world.py), where
version 4 diverges from the others on 45% of digits as a shadow.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deploy.local.demos import migrate_demo, rollout_demo
from deploy.local.demos.flow import Demo, Stack, load_plan
from deploy.local.demos.load import WayStats
from deploy.local.demos.outcome import client_checks, rollout_checks, verdict
from gateway.rollout.plan import parse_plan
from gateway.rollout.state import VariantState
from tests.deploy.demos.conftest import Gateway
from tests.rollout.fake_admin_server import TOKEN, admin_server
from tests.rollout.live import live_world
from tests.rollout.test_controller_process import controller
from tests.rollout.world import Behaviour, FakeAdmin, World

BACKENDS = {"tf": "tfserving", "torch": "torchserve", "mlserver": "mlserver"}


def _variant(name: str, weight: int, labels: tuple[str, ...] = ()) -> VariantState:
    kind, version = name.rsplit("-v", 1)
    return VariantState(
        name=name, backend=BACKENDS[kind], version=version, weight=weight, labels=labels
    )


def local_variants() -> dict[str, VariantState]:
    """deploy/local/gateway.yaml's digits."""
    return {v.name: v for v in (
        _variant("tf-v1", 40, ("stable",)), _variant("torch-v1", 40, ("stable",)),
        _variant("tf-v2", 10, ("canary",)), _variant("torch-v2", 10, ("canary",)),
        _variant("mlserver-v1", 0, ("stable",)), _variant("mlserver-v2", 0, ("canary",)),
    )}  # fmt: skip


def quick(plan_file: str) -> dict[str, Any]:
    """The demo's plan with 1 s steps (the world's traffic is fast)."""
    plan = copy.deepcopy(load_plan(plan_file))
    for step in plan["steps"]:
        step["duration"] = "1s"
    return plan


@contextmanager
def demo_on(world: World, gateway: Gateway, tmp_path: Path, lines: list[str]) -> Iterator[Demo]:
    def deploy(model: str, version: str) -> tuple[bool, str]:
        added = {
            f"{kind}-v{version}": _variant(f"{kind}-v{version}", 0) for kind in ("tf", "torch")
        }
        world.admin.variants_now = {**world.admin.variants_now, **added}
        return True, f"deployed {model} version {version}: {', '.join(added)} at weight 0"

    with (
        admin_server(world.admin) as (admin_url, _),
        live_world(world) as metrics_url,
        controller(tmp_path, admin_url, metrics_url) as running,
    ):
        stack = Stack(
            "127.0.0.1", gateway.http_port, gateway.grpc_port, running.url, admin_url, TOKEN
        )
        yield Demo(stack, write=lines.append, deployer=deploy)


def test_the_plans_are_valid():
    for name in (rollout_demo.PLAN, migrate_demo.PLAN):
        plan = parse_plan(load_plan(name), name)
        assert sum(step.duration for step in plan.steps) <= 90


def test_rollout_demo_promotes_v3_and_rolls_v4_back(demo_gateway: Gateway, tmp_path: Path):
    bad = Behaviour(divergence=0.45)
    good = Behaviour(divergence=0.03)
    behaviour = {"tf-v3": good, "torch-v3": good, "tf-v4": bad, "torch-v4": bad}
    world = World(FakeAdmin(local_variants()), behaviour, rps=300)
    lines: list[str] = []
    with demo_on(world, demo_gateway, tmp_path, lines) as demo:
        code = rollout_demo.run(demo, rate=5, keep=False, plan=quick(rollout_demo.PLAN))
    text = "\n".join(lines)
    print(text)  # the timeline, shown by pytest -s or on failure
    assert code == 0, text
    assert "rollout-demo: PASSED" in text
    assert "  PASS  version 3 promoted (promoted: every step passed)" in text
    assert "  PASS  version 4 rolled back (rolled back: divergence failed: " in text
    for way in ("OIP REST", "TF Serving gRPC", "TorchServe REST"):
        assert f"  PASS  {way} clients: no failed request" in text
    for seen in (
        "entered shadow", "entered canary 25%", "entered canary 50%", "entered bake",
        "-> PROMOTE", "-> ROLL BACK", "split: tf-v1 ", "gates: divergence pass",
        "gates: divergence fail", "gates: error_rate pass", "latency pass 1.", "x (limit 1.500x)",
        "deploy      gateway deploy",
    ):  # fmt: skip
        assert seen in text, seen
    # Put back as it was: v3 and v4 deployed but disabled.
    now = world.admin.variants_now
    assert {n: (v.weight, v.enabled) for n, v in now.items() if n in local_variants()} == {
        n: (v.weight, True) for n, v in local_variants().items()
    }
    assert not any(now[n].enabled for n in ("tf-v3", "torch-v3", "tf-v4", "torch-v4"))


def test_migrate_demo_moves_torchserve_to_mlserver(demo_gateway: Gateway, tmp_path: Path):
    world = World(FakeAdmin(local_variants()), {}, rps=300, noise_divergence=0.0)
    lines: list[str] = []
    with demo_on(world, demo_gateway, tmp_path, lines) as demo:
        code = migrate_demo.run(demo, rate=5, keep=True, plan=quick(migrate_demo.PLAN))
    text = "\n".join(lines)
    print(text)  # the timeline, shown by pytest -s or on failure
    # The clients' gateway is not the one the fake admin steers: they are never answered by
    # mlserver-v1, which is the one check that fails here, and that makes the exit code 1.
    assert code == 1, text
    assert "  PASS  torch-v1 -> mlserver-v1 promoted (promoted: every step passed)" in text
    assert "  PASS  torch-v1 (TorchServe) ends disabled" in text
    assert "  PASS  mlserver-v1 (MLServer) took its weight and labels" in text
    assert "  FAIL  TorchServe REST clients answered by mlserver-v1 after the move" in text
    now = world.admin.variants_now
    assert (now["mlserver-v1"].weight, now["mlserver-v1"].labels) == (40, ("stable",))
    assert (now["tf-v2"].weight, now["torch-v2"].weight) == (0, 0)  # drained for the move


def test_the_exit_code_says_what_went_wrong():
    fine = {"OIP REST": WayStats(requests=10)}
    assert verdict(client_checks(fine)) == (0, ["  PASS  OIP REST clients: no failed request "
                                               "(10 requests, 0 failed)"])  # fmt: skip
    assert verdict(client_checks({"OIP REST": WayStats(requests=10, failed=1)}))[0] == 1
    assert verdict(client_checks({"OIP REST": WayStats()}))[0] == 1  # no requests: no proof
    assert verdict([])[0] == 1
    code, lines = verdict(rollout_checks([(rollout_demo.STEPS[1], None)]))
    assert (code, lines) == (1, ["  FAIL  version 4 rolled back (the rollout never started)"])
