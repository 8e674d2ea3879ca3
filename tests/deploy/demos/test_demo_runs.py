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
from deploy.local.process import free_port
from deploy.local.stack import StackPorts
from gateway.rollout.admin_client import AdminClient
from gateway.rollout.plan import parse_plan
from gateway.rollout.state import VariantState
from tests.deploy.demos.conftest import Gateway
from tests.rollout.fake_admin_server import TOKEN
from tests.rollout.fake_admin_server import admin_server as fake_admin_server
from tests.rollout.live import live_world
from tests.rollout.test_controller_process import controller
from tests.rollout.world import Behaviour, FakeAdmin, World
from tests.support.admin import admin_server, running_admin_gateway
from tests.support.stack import gateway_config

BACKENDS = {"tf": "tfserving", "torch": "torchserve", "mlserver": "mlserver"}


def _variant(name: str, weight: int) -> VariantState:
    kind, version = name.rsplit("-v", 1)
    return VariantState(name=name, backend=BACKENDS[kind], version=version, weight=weight)


LOCAL_VARIANTS = [
    {"name": "tf-v1", "backend": "tfserving", "version": 1, "weight": 40, "labels": ["stable"]},
    {"name": "torch-v1", "backend": "torchserve", "version": 1, "weight": 40, "labels": ["stable"]},
    {"name": "tf-v2", "backend": "tfserving", "version": 2, "weight": 10, "labels": ["canary"]},
    {"name": "torch-v2", "backend": "torchserve", "version": 2, "weight": 10, "labels": ["canary"]},
    {"name": "mlserver-v1", "backend": "mlserver", "version": 1, "weight": 0, "labels": ["stable"]},
    {"name": "mlserver-v2", "backend": "mlserver", "version": 2, "weight": 0, "labels": ["canary"]},
]


def local_variants() -> dict[str, VariantState]:
    """deploy/local/gateway.yaml's digits."""
    return {
        str(v["name"]): VariantState.model_validate({**v, "version": str(v["version"])})
        for v in LOCAL_VARIANTS
    }


def quick(plan_file: str, skip_shadow: bool = False) -> dict[str, Any]:
    """The demo's plan with 1 s steps."""
    plan = copy.deepcopy(load_plan(plan_file, skip_shadow))
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
        fake_admin_server(world.admin) as (admin_url, _),
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
        "gates: divergence fail", "gates: error_rate pass", "latency pass ", "x (limit 1.500x)",
        "deploy      gateway deploy",
    ):  # fmt: skip
        assert seen in text, seen
    # Put back as it was: v3 and v4 deployed but disabled.
    now = world.admin.variants_now
    assert {n: (v.weight, v.enabled) for n, v in now.items() if n in local_variants()} == {
        n: (v.weight, True) for n, v in local_variants().items()
    }
    assert not any(
        now[n].enabled or now[n].labels for n in ("tf-v3", "torch-v3", "tf-v4", "torch-v4")
    )


def test_migrate_demo_on_the_real_control_plane(backends: StackPorts, tmp_path: Path):
    """Nothing stood in: the gateway with its admin API and shadow traffic over the real
    backends, the controller process acting on it and scraping it, the clients of three
    protocols."""
    grpc_port = free_port()
    admin = admin_server(tmp_path / "gw", token=TOKEN)  # the controller's helper sends that one
    server = {"grpc": {"host": "127.0.0.1", "port": grpc_port}, **admin}
    config = gateway_config(backends, {"digits": {"variants": LOCAL_VARIANTS}}, **server)
    plan = quick(migrate_demo.PLAN)
    # Fewer requests per gate than the demo's own (the gates' arithmetic has its own tests):
    # the whole run in about half the time, at the same 15 requests/s per protocol.
    plan["gates"] |= {"min_requests": 20, "min_comparisons": 60, "max_error_rate_increase": 0.1}
    plan["steps"][0]["requests"] = 80
    lines: list[str] = []
    port = config["server"]["http"]["port"]
    with (
        running_admin_gateway(tmp_path / "gw", config) as (url, admin_url),
        controller(tmp_path, admin_url, f"{url}/metrics") as running,
    ):
        stack = Stack("127.0.0.1", port, grpc_port, running.url, admin_url, TOKEN)
        demo = Demo(stack, write=lines.append, deployer=None)
        code = migrate_demo.run(demo, rate=15, keep=False, plan=plan)
        after = {v.name: v.weight for v in AdminClient(admin_url, TOKEN).variants("digits")[0]}
    text = "\n".join(lines)
    print(text)  # the timeline, shown by pytest -s or on failure
    assert code == 0, text
    assert "  PASS  torch-v1 (TorchServe) ends disabled (enabled=False, weight 0)" in text
    assert "  PASS  TorchServe REST clients answered by mlserver-v1 after the move" in text
    assert "split: tf-v1 50.0%  mlserver-v1 50.0%" in text
    assert "gates: divergence pass +0.0000 (limit +0.0200)" in text  # MLServer agrees
    assert after == {v["name"]: v["weight"] for v in LOCAL_VARIANTS}  # put back as it was


def test_the_exit_code_says_what_went_wrong():
    fine = {"OIP REST": WayStats(requests=10)}
    assert verdict(client_checks(fine)) == (0, ["  PASS  OIP REST clients: no failed request "
                                               "(10 requests, 0 failed)"])  # fmt: skip
    assert verdict(client_checks({"OIP REST": WayStats(requests=10, failed=1)}))[0] == 1
    assert verdict(client_checks({"OIP REST": WayStats()}))[0] == 1  # no requests: no proof
    assert verdict([])[0] == 1
    code, lines = verdict(rollout_checks([(rollout_demo.STEPS[1], None)]))
    assert (code, lines) == (1, ["  FAIL  version 4 rolled back (the rollout never started)"])
