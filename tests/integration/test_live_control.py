"""The live control plane over real processes in front of the real backends: weight changes and
reloads under load on two workers, state that survives a restart, two replicas converging."""

from __future__ import annotations

import functools
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.admin import (
    Load,
    admin,
    admin_server,
    load,
    running_admin_gateway,
    weights,
    worker_versions,
)
from tests.support.http import DIGITS, infer
from tests.support.stack import VARIANTS, gateway_config

pytestmark = pytest.mark.stack

SHIFTED = {
    "tf-v1": {"weight": 1},
    "torch-v1": {"weight": 3},
    "tf-v2": {"weight": 0},
    "torch-v2": {"weight": 0},
}
PATCH_MANY = "/admin/models/digits/variants"


def config_for(backends: Any, run_dir: Path, **server: Any) -> dict[str, Any]:
    return gateway_config(backends, **admin_server(run_dir, **server))


def wait_until(check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout_s``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s}s"
        time.sleep(0.01)
    return time.monotonic() - started


def weight(variant: dict[str, Any], flip: bool) -> int:
    """The variant's weight in the shared config, or 50 minus it (the split turned around)."""
    value = int(variant["weight"])
    return 50 - value if flip else value


def more_sent(traffic: Load, count: int) -> bool:
    return traffic.sent >= count


def converged_past(url: str, number: int) -> bool:
    """Both workers on one version, newer than ``number``."""
    versions = set(worker_versions(url).values())
    return len(versions) == 1 and min(versions)[0] > number


def test_a_weight_change_under_load_reaches_both_workers_with_no_failed_request(backends, tmp_path):
    config = config_for(backends, tmp_path, workers=2)
    with running_admin_gateway(tmp_path, config) as (url, admin_api):
        wait_until(lambda: len(worker_versions(url)) == 2, 5)
        with load(url) as before:
            wait_until(lambda: before.sent >= 20, 30)
            started = time.monotonic()
            reply = admin(admin_api, "PATCH", PATCH_MANY, SHIFTED)
            answered = time.monotonic() - started
            assert reply.status == 200, reply.body
            version = reply.json()["config_version"]
            # Answered once every worker applied it: the next scrape shows both on it.
            versions = worker_versions(url)
            assert list(versions.values()) == [(version["version"], version["hash"])] * 2
            assert answered < 1.0
            sent = before.sent
            wait_until(lambda: before.sent >= sent + 20, 30)
        assert before.failures == []
        with load(url) as after:
            wait_until(lambda: after.sent >= 400, 60)
        assert after.failures == []
        served = after.variants
        assert served["tf-v2"] == served["torch-v2"] == 0
        share = served["torch-v1"] / after.sent
        assert abs(share - 0.75) < 4 * (0.75 * 0.25 / after.sent) ** 0.5, served
        # 100 changes under load: from the call to its answer (= every worker applied it).
        seconds = []
        with load(url, threads=2) as during:
            for i in range(100):
                change = {"tf-v1": {"weight": 1 + i % 2}}
                started = time.monotonic()
                reply = admin(admin_api, "PATCH", PATCH_MANY, change)
                seconds.append(time.monotonic() - started)
                assert reply.status == 200, reply.body
        assert during.failures == []
        assert {n for n, _ in worker_versions(url).values()} == {version["version"] + 100}
        p50, worst = statistics.median(seconds) * 1000, max(seconds) * 1000
        print(f"\n100 changes, 2 workers, under load: p50 {p50:.1f} ms, max {worst:.1f} ms")
        print(f"{during.sent} requests meanwhile, 0 failed")
        assert worst < 1000


def test_twenty_reloads_under_load_fail_no_request_the_file_is_watched_and_sighup_reloads(
    backends, tmp_path
):
    config = config_for(backends, tmp_path, workers=2, watch_interval_s=0.2)
    path = tmp_path / "gateway.yaml"
    with running_admin_gateway(tmp_path, config) as (url, admin_api), load(url) as traffic:
        for i in range(20):
            variants = [dict(v, weight=weight(v, flip=i % 2 == 0)) for v in VARIANTS]
            document = yaml.safe_load(path.read_text())
            document["models"]["digits"]["variants"] = variants
            path.write_text(yaml.safe_dump(document))
            reply = admin(admin_api, "POST", "/admin/reload")
            assert reply.status == 200, reply.body
            assert weights(admin_api) == {v["name"]: v["weight"] for v in variants}
            wait_until(functools.partial(more_sent, traffic, traffic.sent + 3), 30)
        last = reply.json()["config_version"]["version"]
        # The watcher: the file changes, nobody calls, both workers follow.
        document["models"]["digits"]["variants"][0]["weight"] = 7
        path.write_text(yaml.safe_dump(document))
        seconds = wait_until(lambda: weights(admin_api)["tf-v1"] == 7, 2.0)
        wait_until(lambda: converged_past(url, last), 2.0)
        # SIGHUP to the supervisor: both workers reload (a new table, the same routes).
        now = next(iter(worker_versions(url).values()))[0]
        os.kill(int((tmp_path / "gateway.pid").read_text()), signal.SIGHUP)
        wait_until(lambda: converged_past(url, now), 2.0)
    failed = len(traffic.failures)
    print(f"\n20 reloads, 2 workers, under load: {traffic.sent} requests, {failed} failed")
    print(f"the watched file applied after {seconds:.2f}s")
    assert traffic.failures == []
    assert traffic.sent >= 60


def test_changes_survive_a_restart_and_a_replica_sharing_the_state_dir_converges(
    backends, tmp_path
):
    a_config = config_for(backends, tmp_path / "a")
    b_config = config_for(backends, tmp_path / "b")
    for config in (a_config, b_config):
        config["server"]["state_dir"] = str(tmp_path / "state")
    base = tmp_path / "a" / "gateway.yaml"
    with (
        running_admin_gateway(tmp_path / "a", a_config) as (_, a_admin),
        running_admin_gateway(tmp_path / "b", b_config) as (_, b_admin),
    ):
        written = base.read_text()
        change = {"weight": 33, "enabled": False}
        reply = admin(a_admin, "PATCH", "/admin/models/digits/variants/tf-v2", change)
        assert reply.status == 200, reply.body
        seconds = wait_until(lambda: weights(b_admin)["tf-v2"] == 33, 2.0)
        print(f"\na replica sharing the state dir converged after {seconds:.2f}s")
        b_view = admin(b_admin, "GET", "/admin/models/digits").json()
        assert next(v for v in b_view["variants"] if v["name"] == "tf-v2")["enabled"] is False
        assert b_view["config_version"]["hash"] == reply.json()["config_version"]["hash"]
    # The base file is never rewritten; the restarted gateway starts with the change.
    assert base.read_text() == written
    with running_admin_gateway(tmp_path / "a", a_config) as (url, a_admin):
        assert weights(a_admin)["tf-v2"] == 33
        pinned = infer(url, DIGITS.inputs[:1], **{"x-gateway-variant": "tf-v2"})
        assert pinned.status == 404, pinned.body
        assert pinned.json() == {"error": "variant 'tf-v2' of model 'digits' is disabled"}
