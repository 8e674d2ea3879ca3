"""The gateway in front of a TorchServe with token authorization on (its own default).

A TorchServe of this module's own, whose keys expire after 6 seconds: a wrong or missing key is
a 502 that names the problem, at once; under steady traffic over REST and gRPC the keys expire
and are renewed (by the gateway itself, and once by "another replica" renewing on its own), and
not one request fails.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.image_python import TORCHSERVE
from deploy.local.process import free_port
from deploy.local.torchserve import TorchServePorts, key_file, torchserve_process
from gateway.backends.torchserve_keys import INFERENCE, MANAGEMENT, bearer, parse_key_file
from tests.support.http import DIGITS, call, infer
from tests.support.stack import running_gateway

REPO = Path(__file__).resolve().parents[2]
EXPIRY_MIN = 0.1
TRAFFIC_S = 20.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ts-tokens")


@pytest.fixture(scope="module")
def torchserve(run_dir: Path) -> Iterator[TorchServePorts]:
    ports = TorchServePorts(*(free_port() for _ in range(5)))
    process = torchserve_process(
        run_dir,
        REPO / "model_store" / "torchserve",
        ports,
        models=("digits_v1.mar",),
        token_expiration_min=EXPIRY_MIN,
    )
    process.start()
    try:
        process.wait_ready(120)
        yield ports
    finally:
        process.stop()


@pytest.fixture(scope="module")
def keys(torchserve: TorchServePorts, run_dir: Path) -> Path:
    path = key_file(run_dir)
    assert path.is_file()
    return path


def config(ports: TorchServePorts, key_file: str | None) -> dict[str, Any]:
    def backend(protocol: str) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "kind": "torchserve",
            "inference": f"http://127.0.0.1:{ports.inference}",
            "management": f"http://127.0.0.1:{ports.management}",
            "grpc": f"127.0.0.1:{ports.grpc_inference}",
            "protocol": protocol,
            "timeout_s": 10,
        }
        if key_file is not None:
            settings["key_file"] = key_file
        return settings

    variants = [
        {"name": "rest", "backend": "ts-rest", "model": "digits", "version": 1, "weight": 1},
        {"name": "grpc", "backend": "ts-grpc", "model": "digits", "version": 1, "weight": 1},
    ]
    return {
        "server": {
            "http": {"host": "127.0.0.1", "port": free_port()},
            "grpc": None,
            "admin": None,
        },
        "backends": {"ts-rest": backend("rest"), "ts-grpc": backend("grpc")},
        "models": {"digits": {"variants": variants}},
    }


@pytest.mark.parametrize("variant", ["rest", "grpc"])
def test_a_wrong_key_is_a_502_naming_the_key_file(torchserve, tmp_path, variant):
    wrong = tmp_path / "key_file.json"
    wrong.write_text(json.dumps({"inference": {"key": "nope"}, "management": {"key": "nope"}}))
    with running_gateway(tmp_path / "gw", config(torchserve, str(wrong)), "/v2/health/live") as url:
        started = time.monotonic()
        reply = infer(url, DIGITS.inputs[:1], **{"x-gateway-variant": variant})
        assert time.monotonic() - started < 5
    assert reply.status == 502
    message = reply.json()["error"]
    assert "refused the gateway's inference key" in message
    assert str(wrong) in message


def test_no_key_file_is_a_502_saying_which_knob_to_set(torchserve, tmp_path):
    with running_gateway(tmp_path, config(torchserve, None), "/v2/health/live") as url:
        reply = infer(url, DIGITS.inputs[:1], **{"x-gateway-variant": "rest"})
        ready = call(url + "/v2/health/ready")
    assert reply.status == 502
    assert "set backends.ts-rest.key_file" in reply.json()["error"]
    assert ready.status == 503  # readiness needs the management key too


def test_keys_expire_and_are_renewed_under_traffic_without_a_failed_request(
    torchserve, keys, tmp_path
):
    seen_keys: list[str] = []
    answers: Counter[int] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def current_key() -> str:
        while True:  # TorchServe rewrites the file in place: a read may find it half written
            try:
                return parse_key_file(keys.read_bytes(), 0.0).keys[INFERENCE].value
            except ValueError:
                time.sleep(0.01)

    def traffic(url: str, variant: str) -> None:
        while not stop.is_set():
            reply = infer(url, DIGITS.inputs[:2], **{"x-gateway-variant": variant})
            answers[reply.status] += 1
            if reply.status != 200:
                failures.append(f"{variant}: {reply.status} {reply.body[:200]!r}")
            time.sleep(0.02)

    with running_gateway(tmp_path, config(torchserve, str(keys))) as url:
        senders = [threading.Thread(target=traffic, args=(url, v)) for v in ("rest", "grpc")]
        for sender in senders:
            sender.start()
        started = time.monotonic()
        renewed_elsewhere = False
        try:
            while time.monotonic() - started < TRAFFIC_S:
                key = current_key()
                if not seen_keys or seen_keys[-1] != key:
                    seen_keys.append(key)
                if not renewed_elsewhere and time.monotonic() - started > TRAFFIC_S / 2:
                    # Another replica renews the key: the gateway's in hand is now refused.
                    api = parse_key_file(keys.read_bytes(), 0.0).api_key
                    assert api is not None
                    management = f"http://127.0.0.1:{torchserve.management}"
                    renewed = call(f"{management}/token?type=inference", headers=bearer(api))
                    assert renewed.status == 200
                    renewed_elsewhere = True
                time.sleep(0.2)
        finally:
            stop.set()
            for sender in senders:
                sender.join()
    print(f"\n{sum(answers.values())} requests {dict(answers)}, {len(seen_keys)} inference keys")
    assert failures == []
    assert answers[200] > 200
    # 20 s of 6-second keys, each renewed 5 s before it expires (the least margin): the gateway
    # renews about every second, and once a key comes from outside.
    assert len(seen_keys) >= 4


def test_the_healthcheck_renews_an_expired_management_key(torchserve, keys):
    healthcheck = REPO / "deploy" / "torchserve" / "healthcheck.py"
    management = f"http://127.0.0.1:{torchserve.management}"
    expires = parse_key_file(keys.read_bytes(), 0.0).keys[MANAGEMENT].expires_at
    assert expires is not None
    time.sleep(max(expires - time.time() + 0.5, 0))  # nobody renews it meanwhile
    stale = parse_key_file(keys.read_bytes(), 0.0).keys[MANAGEMENT].value
    assert call(f"{management}/models/digits/1", headers=bearer(stale)).status == 400
    done = subprocess.run(
        [
            str(TORCHSERVE.interpreter),
            str(healthcheck),
            "--key-file",
            str(keys),
            management,
            "digits/1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert parse_key_file(keys.read_bytes(), 0.0).keys[MANAGEMENT].value != stale
