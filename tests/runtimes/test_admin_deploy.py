"""``gateway deploy`` / ``gateway undeploy`` through a real gateway's admin API into the real
TorchServe and TF Serving (or its stand-in) of this package: version 3 becomes servable in both,
its variants join the routes at weight 0 (and none when one runtime fails: the other is rolled
back), an undeploy is refused while they take traffic, then
takes them out and unloads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from deploy.local.stack import StackPorts
from tests.support.admin import TOKEN, admin, admin_server, running_admin_gateway
from tests.support.http import DIGITS, infer
from tests.support.stack import gateway_config


def gateway(admin_api: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--admin", admin_api],
        env={**os.environ, "GATEWAY_ADMIN_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=300,
    )


def routes(admin_api: str) -> dict[str, Any]:
    done = gateway(admin_api, "routes", "digits", "--json")
    assert done.returncode == 0, done.stderr
    return {v["name"]: v for v in json.loads(done.stdout)["variants"]}


def test_deploy_and_undeploy_version_3_through_the_admin_api(runtimes: StackPorts, tmp_path):
    config = gateway_config(runtimes, **admin_server(tmp_path))
    with running_admin_gateway(tmp_path, config) as (url, admin_api):
        before = routes(admin_api)
        # Half-failed: TF Serving refuses the base path after TorchServe took the version.
        targets = [
            {"backend": "torchserve", "archive": "digits_v3.mar"},
            {"backend": "tfserving", "model": "digits-elsewhere", "base_path": "models/digits"},
        ]
        body = {"version": 3, "targets": targets}
        reply = admin(admin_api, "POST", "/admin/models/digits/deploy", body)
        assert reply.status == 502, reply.body
        outcomes = {o["backend"]: o["action"] for o in reply.json()["result"]["outcomes"]}
        assert outcomes == {"torchserve": "rolled-back", "tfserving": "failed"}
        assert routes(admin_api) == before  # no variant added, nothing left in the runtimes

        done = gateway(admin_api, "deploy", "digits", "--version", "3", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)["result"]
        assert result["ok"]
        seconds = {o["runtime"]: o["seconds"] for o in result["outcomes"]}
        assert {o["action"] for o in result["outcomes"]} == {"deployed"}
        print(f"\ndeploy of digits version 3: {seconds}")
        variants = routes(admin_api)
        for name, backend in (("torch-v3", "torchserve"), ("tf-v3", "tfserving")):
            assert variants[name]["backend"] == backend
            assert (variants[name]["version"], variants[name]["weight"]) == ("3", 0)
            reply = infer(url, DIGITS.inputs[:2], **{"x-gateway-variant": name})
            assert reply.status == 200, reply.body
            assert reply.json()["model_version"] == "3"
        # Deploying again changes nothing.
        again = gateway(admin_api, "deploy", "digits", "--version", "3", "--json")
        assert again.returncode == 0, again.stderr
        assert {o["action"] for o in json.loads(again.stdout)["result"]["outcomes"]} == {
            "already-there"
        }
        assert routes(admin_api).keys() == variants.keys()

        assert gateway(admin_api, "weights", "digits", "torch-v3=5").returncode == 0
        refused = gateway(admin_api, "undeploy", "digits", "--version", "3")
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1
        assert "torch-v3 still take traffic" in refused.stderr
        assert "torch-v3" in routes(admin_api)

        assert gateway(admin_api, "weights", "digits", "torch-v3=0").returncode == 0
        done = gateway(admin_api, "undeploy", "digits", "--version", "3")
        assert done.returncode == 0, done.stderr
        assert "undeploy digits version 3: " in done.stdout
        assert not {"torch-v3", "tf-v3"} & routes(admin_api).keys()
        reply = infer(url, DIGITS.inputs[:1], **{"x-gateway-variant": "torch-v3"})
        assert reply.status == 400
