"""The admin API's token over real sockets, on a real ``gateway serve``: no token configured
refuses everything and says how to set one; a missing or wrong token is 401 and changes
nothing; every change is one audit line naming the token's id, never the token."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml

from deploy.local.process import StartError, free_port
from deploy.local.stack import gateway_process
from gateway.control.auth import token_id
from gateway.rollout.admin_client import AdminClient, AdminError
from tests.support.admin import (
    TOKEN,
    admin,
    admin_server,
    running_admin_gateway,
    weights,
    worker_versions,
)
from tests.support.http import call
from tests.support.stack import gateway_config

LIVE = "/v2/health/live"


def offline(run_dir: Path, token: str | None = TOKEN) -> dict:
    closed = f"http://127.0.0.1:{free_port()}"
    backends = {"ts": {"kind": "torchserve", "inference": closed, "management": closed}}
    models = {
        "digits": {
            "variants": [
                {"name": "torch-v1", "backend": "ts", "version": 1, "weight": 90},
                {"name": "torch-v2", "backend": "ts", "version": 2, "weight": 10},
            ]
        }
    }
    return gateway_config(None, models, backends, **admin_server(run_dir, token))


def test_without_a_token_every_admin_request_is_refused_with_how_to_set_one(tmp_path):
    config = offline(tmp_path, token=None)
    with running_admin_gateway(tmp_path, config, ready_path="/v2/health/live") as (_, url):
        for method, path, body in [
            ("GET", "/admin/models", None),
            ("PATCH", "/admin/models/digits/variants/torch-v2", {"weight": 50}),
            ("GET", "/no/such/path", None),
        ]:
            reply = admin(url, method, path, body, token="anything")
            assert reply.status == 503, reply.body
            assert "GATEWAY_ADMIN_TOKEN" in reply.json()["error"]
            assert "server.admin.token_file" in reply.json()["error"]
    assert not (tmp_path / "state" / "overlay.json").exists()


WRONG = [
    None,
    "Bearer wrong-token",
    f"Basic {TOKEN}",
    "Bearer",
    f"Bearer {TOKEN}x",
    "Bearer " + TOKEN[:-1],
]
CHANGES = [
    ("PATCH", "/admin/models/digits/variants/torch-v2", {"weight": 50}),
    ("PATCH", "/admin/models/digits/variants", {"torch-v1": {"enabled": False}}),
    ("PUT", "/admin/models/digits", {"variants": []}),
    ("POST", "/admin/reload", None),
    ("GET", "/admin/config", None),
]


def test_a_missing_or_wrong_token_is_401_and_changes_nothing(tmp_path):
    config = offline(tmp_path)
    with running_admin_gateway(tmp_path, config, ready_path="/v2/health/live") as (_, url):
        before = admin(url, "GET", "/admin/models/digits").json()
        for authorization in WRONG:
            for method, path, body in CHANGES:
                headers = {"content-type": "application/json"}
                if authorization is not None:
                    headers["authorization"] = authorization
                data = None if body is None else json.dumps(body).encode()
                reply = call(url + path, data, headers, method)
                assert reply.status == 401, (authorization, method, path, reply.body)
                assert reply.headers.get("www-authenticate") == "Bearer"
        after = admin(url, "GET", "/admin/models/digits").json()
        assert after == before
        assert after["config_version"]["version"] == 1
        assert not (tmp_path / "state" / "overlay.json").exists()


def test_a_change_is_one_audit_line_with_the_token_id_old_and_new(tmp_path):
    """Made through the rollout controller's client: the real API keeps its contract."""
    config = offline(tmp_path)
    with running_admin_gateway(tmp_path, config, ready_path="/v2/health/live") as (_, url):
        client = AdminClient(url, TOKEN)
        assert client.patch_variant("digits", "torch-v2", {"weight": 30}) == "2"
        variants, version = client.variants("digits")
        assert version == "2"
        assert [(v.name, v.weight, v.enabled) for v in variants] == [
            ("torch-v1", 90, True),
            ("torch-v2", 30, True),
        ]
        assert weights(url) == {"torch-v1": 90, "torch-v2": 30}
        with pytest.raises(AdminError, match="401"):
            AdminClient(url, "wrong").patch_variant("digits", "torch-v2", {"weight": 1})
    log = (tmp_path / "gateway.log").read_text()
    lines = [line for line in log.splitlines() if "gateway.audit" in line]
    assert len(lines) == 1, log
    assert f"by token {token_id(TOKEN)} from 127.0.0.1:" in lines[0]
    assert "digits/torch-v2 weight 10 -> 30; config version 2" in lines[0]
    assert TOKEN not in log


def test_an_admin_port_in_use_fails_the_start_only_when_there_is_a_token(tmp_path):
    """Without a token the admin API could only refuse: the gateway starts without it (several
    gateways with the default config on one host); with one, the start fails and says why."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        for token in (None, TOKEN):
            run_dir = tmp_path / ("with-token" if token else "without")
            config = offline(run_dir, token)
            config["server"]["admin"]["port"] = taken.getsockname()[1]
            path = run_dir / "gateway.yaml"
            path.write_text(yaml.safe_dump(config))
            process = gateway_process(run_dir, path, config["server"]["http"]["port"], LIVE)
            try:
                if token is None:
                    process.start()
                    process.wait_ready(30)
                    log = process.log_path.read_text()
                    assert "cannot listen for admin on 127.0.0.1:" in log
                    assert "no admin API (it has no token either)" in log
                else:
                    process.start()
                    with pytest.raises(StartError, match="exited with 1 before it was ready"):
                        process.wait_ready(30)
                    assert "cannot listen for admin on 127.0.0.1:" in process.log_path.read_text()
            finally:
                process.stop()
    finally:
        taken.close()


def test_a_replaced_worker_starts_with_the_current_routes(tmp_path):
    """A worker that dies is replaced by one started with the admin API's latest change."""
    config = offline(tmp_path)
    config["server"]["workers"] = 2
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    process = gateway_process(tmp_path, path, config["server"]["http"]["port"], LIVE)
    url = f"http://127.0.0.1:{config['server']['http']['port']}"
    admin_api = f"http://127.0.0.1:{config['server']['admin']['port']}"
    process.start()
    try:
        process.wait_ready(30)
        reply = admin(admin_api, "PATCH", "/admin/models/digits/variants/torch-v2", {"weight": 5})
        assert reply.status == 200, reply.body
        current = (
            reply.json()["config_version"]["version"],
            reply.json()["config_version"]["hash"],
        )
        versions = worker_versions(url)
        assert set(versions.values()) == {current}
        victim = next(iter(versions))
        os.kill(int(victim), signal.SIGKILL)
        deadline = time.monotonic() + 30
        versions = {}
        while victim in versions or len(versions) < 2:
            assert time.monotonic() < deadline, versions
            time.sleep(0.05)
            try:
                versions = worker_versions(url)
            except ConnectionError:  # accepted by the killed worker's socket: reset
                versions = {}
        assert set(versions.values()) == {current}
        assert weights(admin_api) == {"torch-v1": 90, "torch-v2": 5}
    finally:
        process.stop()


def test_put_replaces_a_model_and_a_bad_change_is_refused_as_the_file_would_be(tmp_path):
    config = offline(tmp_path)
    with running_admin_gateway(tmp_path, config, ready_path=LIVE) as (_, url):
        variants = [
            {"name": "torch-v2", "backend": "ts", "version": 2, "weight": 1},
            {"name": "torch-v3", "backend": "ts", "version": 3, "weight": 0, "enabled": False},
        ]
        reply = admin(url, "PUT", "/admin/models/digits", {"variants": variants})
        assert reply.status == 200, reply.body
        assert weights(url) == {"torch-v2": 1, "torch-v3": 0}
        overlay_before = (tmp_path / "state" / "overlay.json").read_text()

        refused = admin(url, "PATCH", "/admin/models/digits/variants/torch-v3", {"weight": -2})
        assert refused.status == 400
        assert refused.json()["problems"] == [
            {
                "where": "models.digits.variants[1].weight",
                "reason": "Input should be greater than or equal to 0",
            }
        ]
        refused = admin(url, "PATCH", "/admin/models/digits/variants/torch-v2", {"enabled": False})
        assert refused.status == 400
        assert "every variant with a weight above 0 is disabled" in refused.json()["error"]
        assert (tmp_path / "state" / "overlay.json").read_text() == overlay_before

        effective = admin(url, "GET", "/admin/config").json()
        assert [v["name"] for v in effective["config"]["models"]["digits"]["variants"]] == [
            "torch-v2",
            "torch-v3",
        ]
        reloaded = admin(url, "POST", "/admin/reload")
        assert reloaded.status == 200
        assert reloaded.json()["config_version"]["version"] == 3  # PUT, then the reload
        assert weights(url) == {"torch-v2": 1, "torch-v3": 0}  # the overlay outlives a reload
