"""Shadow traffic over real processes: the same version on two runtimes agrees, the bad v4
diverges from v3, and a hung shadow never delays the primary while its overflow is dropped and
counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from deploy.local.mlserver import MLServerPorts, mlserver_process
from deploy.local.process import free_port
from deploy.local.stack import MODEL_STORE, start_all
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.rollout.observations import agreement, families
from gateway.rollout.textformat import select
from model_store.digits import load_reference
from tests.integration.test_faults_and_metrics import samples, value
from tests.support.faults import hung_server
from tests.support.http import DIGITS, call, infer, probabilities
from tests.support.stack import backends_config, gateway_config, running_gateway

pytestmark = pytest.mark.stack

SHADOW = "gateway_shadow_requests_total"
DIFF_COUNT = "gateway_shadow_max_abs_diff_count"


def variant(name: str, backend: str, version: int, weight: int) -> dict:
    return {"name": name, "backend": backend, "version": version, "weight": weight}


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def big_binary_body(rows: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An OIP request with its tensor in the binary extension."""
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(rows.shape),
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ]
        }
    ).encode()
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head)),
    }
    return head + rows.astype(np.float32).tobytes(), headers


def test_the_same_version_on_two_runtimes_agrees_large_tensors_included(backends, tmp_path):
    """torch-v2 answers; tf-v2 (the stand-in) and ml-v2 (MLServer) get every request as
    shadows: the same weights on three runtimes agree within 1e-5, a 1 MiB batch too."""
    models = {
        "digits": {
            "variants": [
                variant("torch-v2", "torchserve", 2, 1),
                variant("tf-v2", "tfserving", 2, 0),
                variant("ml-v2", "mlserver", 2, 0),
            ],
            "shadow": {"variants": ["tf-v2", "ml-v2"], "percent": 100},
        }
    }
    config = gateway_config(backends, models=models)
    batches = np.array_split(DIGITS.inputs, 45)  # every test digit, 10 to a request
    big = np.tile(DIGITS.inputs, (10, 1))[:4096]  # 4096 x 64 FP32: 1 MiB
    with running_gateway(tmp_path, config) as url:
        for rows in batches:
            reply = infer(url, rows)
            assert reply.status == 200
            assert reply.headers["x-gateway-variant"] == "torch-v2"
        body, headers = big_binary_body(big)
        reply = call(url + "/v2/models/digits/infer", body, headers)
        assert reply.status == 200, reply.body[:300]
        sent = len(batches) + 1

        def compared() -> bool:
            found = samples(url)
            return all(
                value(found, DIFF_COUNT, model="digits", primary="torch-v2", shadow=s) == sent
                for s in ("tf-v2", "ml-v2")
            )

        assert wait_for(compared)
        found = samples(url)
        report = subprocess.run(
            [sys.executable, "-m", "gateway", "report", "digits", "--scrape", url + "/metrics"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert report.returncode == 0, report.stderr
    # gateway report reads the same series: every pair compared, all of it agreeing
    pairs = {tuple(line.split()[:2]): line.split()[2:] for line in report.stdout.splitlines()}
    for shadow in ("tf-v2", "ml-v2"):
        assert pairs[("torch-v2", shadow)][:2] == [str(sent), "100.00%"], report.stdout
    for shadow in ("tf-v2", "ml-v2"):
        pair = {"model": "digits", "primary": "torch-v2", "shadow": shadow}
        assert value(found, SHADOW, **pair, result="agree") == sent
        for result in ("diverge", "error", "dropped"):
            assert value(found, SHADOW, **pair, result=result) == 0
        # every max abs difference is within the 1e-5 bucket
        assert value(found, "gateway_shadow_max_abs_diff_bucket", **pair, le="1e-05") == sent


@pytest.fixture(scope="module")
def mlserver_v3_v4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerPorts]:
    """A real MLServer of its own with digits 3 and the deliberately bad 4."""
    ports = MLServerPorts(free_port(), free_port(), free_port())
    run_dir = tmp_path_factory.mktemp("mlserver-v3-v4")
    process = mlserver_process(run_dir, MODEL_STORE, ports, versions=("3", "4"))
    start_all([process], timeout=120)
    try:
        yield ports
    finally:
        process.stop()


def test_the_bad_v4_diverges_from_v3_and_the_ring_keeps_examples(mlserver_v3_v4):
    """ml-v3 answers every test digit; ml-v4 shadows it. v4 changes the class of about 45% of
    the inputs: exactly the 10-row requests where a class changed diverge (nearly all), and the
    ring holds them with both sides' top classes, which are what each version itself answers."""
    ports = mlserver_v3_v4
    config = parse_config(
        {
            "server": {"http": {"host": "127.0.0.1", "port": 0}, "grpc": None},
            "backends": {
                "mlserver": {
                    "kind": "oip",
                    "runtime": "mlserver",
                    "url": f"http://127.0.0.1:{ports.http}",
                    "protocol": "rest",
                }
            },
            "models": {
                "digits": {
                    "variants": [
                        variant("ml-v3", "mlserver", 3, 1),
                        variant("ml-v4", "mlserver", 4, 0),
                    ],
                    "shadow": {"variants": ["ml-v4"], "max_queued": 100},
                }
            },
        }
    )
    v3, v4 = load_reference("3"), load_reference("4")
    batches = [np.arange(start, start + 10) for start in range(0, len(DIGITS), 10)]
    expected_divergent = sum(
        bool((v3[rows].argmax(1) != v4[rows].argmax(1)).any()) for rows in batches
    )

    async def scenario() -> tuple[dict[str, float], list, str]:
        gateway = Gateway(config)
        await gateway.start()
        try:
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                for number, rows in enumerate(batches):
                    doc = {
                        "id": f"req-{number}",
                        "inputs": [
                            {
                                "name": "input",
                                "datatype": "FP32",
                                "shape": [len(rows), 64],
                                "data": DIGITS.inputs[rows].ravel().tolist(),
                            }
                        ],
                    }
                    reply = await client.post("/v2/models/digits/infer", json=doc)
                    assert reply.status_code == 200
                    got = np.asarray(reply.json()["outputs"][0]["data"]).reshape(-1, 10)
                    np.testing.assert_allclose(got, v3[rows], atol=1e-5)
                for _ in range(600):
                    text = (await client.get("/metrics")).text
                    counts = _results(text)
                    if sum(counts.values()) >= len(batches):
                        break
                    await asyncio.sleep(0.05)
            return counts, gateway.mirror.ring.recent("digits"), text
        finally:
            await gateway.stop()

    counts, examples, text = asyncio.run(scenario())
    assert expected_divergent > 30  # the premise: v4 is bad on most batches
    assert set(counts) <= {"agree", "diverge"}  # no errors, nothing dropped
    # another version is judged on its classes: exactly the batches where one changed diverge
    assert counts["diverge"] == expected_divergent
    assert counts.get("agree", 0) == len(batches) - expected_divergent
    assert len(examples) == counts["diverge"]
    # what the rollout controller's divergence gate reads from this /metrics
    seen = agreement(select(text.splitlines(), families("upstream")), [("ml-v3", "ml-v4")])
    assert (seen.agree, seen.diverge, seen.error, seen.dropped) == (
        counts.get("agree", 0),
        counts["diverge"],
        0,
        0,
    )
    assert seen.max_abs_diff.total == len(batches)
    assert seen.max_abs_diff.quantile(0.5) > 0.1  # v4's answers are far from v3's
    newest = examples[0]
    number = int(newest.request_id.removeprefix("req-"))
    rows = batches[number]
    assert newest.primary == "ml-v3"
    assert newest.shadow == "ml-v4"
    assert newest.result == "diverge"
    assert newest.primary_top == [[int(c)] for c in v3[rows].argmax(1)[:8]]
    assert newest.shadow_top == [[int(c)] for c in v4[rows].argmax(1)[:8]]
    assert len(newest.inputs_digest) == 16
    assert newest.max_abs_diff is not None
    assert newest.mean_abs_diff is not None
    assert 0 < newest.mean_abs_diff <= newest.max_abs_diff
    assert newest.max_rel_diff is not None
    assert newest.max_rel_diff > 0
    assert len({e.inputs_digest for e in examples}) == len(examples)


def _results(text: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(SHADOW + "{"):
            labels, number = line.rsplit(" ", 1)
            result = labels.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = counts.get(result, 0.0) + float(number)
    return counts


def test_a_hung_shadow_never_delays_the_primary_and_its_overflow_is_dropped(backends, tmp_path):
    """The shadow accepts connections and never answers. Two shadow calls run, three wait; the
    other fifteen of twenty requests are dropped and counted, the primary's answers are as fast
    as ever, and each shadow call that ran ends as an error at its own 3 s deadline."""
    with hung_server() as port:
        hung = {"kind": "oip", "url": f"http://127.0.0.1:{port}", "protocol": "rest"}
        models = {
            "digits": {
                "variants": [
                    variant("torch-v2", "torchserve", 2, 1),
                    variant("hung-v2", "hung", 2, 0),
                ],
                "shadow": {
                    "variants": ["hung-v2"],
                    "max_concurrent": 2,
                    "max_queued": 3,
                    "timeout_s": 3,
                },
            }
        }
        config = gateway_config(
            backends, models=models, backends={**backends_config(backends), "hung": hung}
        )
        with running_gateway(tmp_path, config) as url:
            pair = {"model": "digits", "primary": "torch-v2", "shadow": "hung-v2"}
            started = time.monotonic()
            latencies = []
            for index in range(20):
                sent = time.monotonic()
                reply = infer(url, DIGITS.inputs[index : index + 1])
                latencies.append(time.monotonic() - sent)
                assert reply.status == 200
                np.testing.assert_allclose(
                    probabilities(reply), load_reference("2")[index : index + 1], atol=1e-5
                )
            elapsed = time.monotonic() - started
            assert elapsed < 3, "the premise: all twenty were sent within one shadow deadline"
            assert max(latencies) < 1.0, latencies
            # The shadow process reports its drops within REPORT_S.
            assert wait_for(
                lambda: value(samples(url), SHADOW, **pair, result="dropped") == 15, seconds=5
            )
            assert wait_for(
                lambda: value(samples(url), SHADOW, **pair, result="error") == 5, seconds=30
            )
            found = samples(url)
            assert value(found, SHADOW, **pair, result="agree") == 0
            assert value(found, SHADOW, **pair, result="dropped") == 15


def test_a_primary_that_fails_on_its_side_is_an_error_of_every_pair(backends, tmp_path):
    """The primary's backend is down (503): the client gets the primary's 503, and each sampled
    request counts ``error`` for every shadow pair, with nothing compared."""
    dead = {"kind": "oip", "url": f"http://127.0.0.1:{free_port()}", "protocol": "rest"}
    models = {
        "digits": {
            "variants": [variant("dead-v2", "dead", 2, 1), variant("torch-v2", "torchserve", 2, 0)],
            "shadow": {"variants": ["torch-v2"]},
        }
    }
    config = gateway_config(
        backends, models=models, backends={**backends_config(backends), "dead": dead}
    )
    with running_gateway(tmp_path, config, ready_path="/v2/health/live") as url:
        for _ in range(3):
            assert infer(url, DIGITS.inputs[:1]).status == 503
        found = samples(url)
    pair = {"model": "digits", "primary": "dead-v2", "shadow": "torch-v2"}
    assert value(found, SHADOW, **pair, result="error") == 3
    assert value(found, DIFF_COUNT, **pair) == 0


def test_requests_of_every_front_end_are_shadowed_to_every_backend_protocol(backends, tmp_path):
    """A request in any client protocol, answered by TorchServe over gRPC, is copied to TF
    Serving over gRPC, TorchServe over REST and MLServer over gRPC (each needing the request in
    another form than the client sent), and every copy agrees."""
    from tests.integration.test_translation_matrix import FRONT_ENDS
    from tests.integration.test_translation_matrix import Gateway as Listeners
    from tests.support.stack import every_protocol_config

    config = every_protocol_config(backends)
    shadows = ["tf_grpc-v2", "ts_rest-v2", "ml_grpc-v2"]
    config["models"]["digits"]["shadow"] = {"variants": shadows}
    with running_gateway(tmp_path, config) as url:
        listeners = Listeners(url, f"127.0.0.1:{config['server']['grpc']['port']}")
        # TorchServe takes its bodies untouched, and its handler reads OIP JSON only
        front_ends = [f for name, f in FRONT_ENDS.items() if name != "torchserve_rest_tfjson"]
        for send in front_ends:
            send(listeners, "ts_grpc-v2", "2")

        def counted() -> bool:
            found = samples(url)
            return all(
                sum(
                    value(found, SHADOW, model="digits", primary="ts_grpc-v2", shadow=s, result=r)
                    for r in ("agree", "diverge", "error", "dropped")
                )
                == len(front_ends)
                for s in shadows
            )

        assert wait_for(counted)
        found = samples(url)
    for shadow in shadows:
        pair = {"model": "digits", "primary": "ts_grpc-v2", "shadow": shadow}
        assert value(found, SHADOW, **pair, result="agree") == len(front_ends), shadow


def test_the_admin_api_turns_shadowing_on_and_off_and_serves_every_workers_examples(
    backends, tmp_path
):
    """Two workers, no shadow in the file. The rollout controller's own admin client turns
    shadowing on (torch-v1 copies of torch-v2's requests, values compared: they diverge),
    the examples of both workers come back as one list, a refused change names the key path,
    and no variants turns it off."""
    from gateway.rollout.admin_client import AdminClient, AdminError
    from gateway.rollout.state import ShadowTarget
    from tests.support.admin import TOKEN, admin, admin_server, running_admin_gateway

    models = {
        "digits": {
            "variants": [
                variant("torch-v2", "torchserve", 2, 1),
                variant("torch-v1", "torchserve", 1, 0),
            ]
        }
    }
    config = gateway_config(backends, models=models, **admin_server(tmp_path, workers=2))
    with running_admin_gateway(tmp_path, config) as (url, admin_api):
        # values compared for this other version too, so that nearly every copy diverges; the
        # controller's PUT below names variants and percent only, and keeps this setting
        body = {"compare_values": "always"}
        assert admin(admin_api, "PUT", "/admin/models/digits/shadow", body).status == 200
        client = AdminClient(admin_api, TOKEN)
        number = client.set_shadow("digits", ShadowTarget(variants=("torch-v1",), percent=100))
        assert int(number) >= 2
        settings = admin(admin_api, "GET", "/admin/models/digits/shadow").json()["shadow"]
        assert settings["variants"] == ["torch-v1"]
        assert settings["percent"] == 100
        assert settings["compare_values"] == "always"
        sent = 30
        for index in range(sent):
            reply = call(url + "/v2/models/digits/infer", infer_body_of(index))
            assert reply.status == 200
        pair = {"model": "digits", "primary": "torch-v2", "shadow": "torch-v1"}

        def all_compared() -> bool:
            found = samples(url)
            return sum(value(found, SHADOW, **pair, result=r) for r in ("agree", "diverge")) == sent

        assert wait_for(all_compared)
        diverged = value(samples(url), SHADOW, **pair, result="diverge")
        assert diverged > sent / 2  # another version's probabilities differ beyond 1e-5
        reply = admin(admin_api, "GET", "/admin/models/digits/shadow/examples")
        assert reply.status == 200
        examples = reply.json()["examples"]
        assert len(examples) == diverged  # both workers' rings, merged
        assert [e["at"] for e in examples] == sorted((e["at"] for e in examples), reverse=True)
        assert {e["request_id"] for e in examples} <= {f"r-{i}" for i in range(sent)}
        assert all(e["primary"] == "torch-v2" and e["shadow"] == "torch-v1" for e in examples)

        refused = admin(admin_api, "PUT", "/admin/models/digits/shadow", {"percent": 150})
        assert refused.status == 400
        assert [p["where"] for p in refused.json()["problems"]] == ["models.digits.shadow.percent"]
        with pytest.raises(AdminError, match=r"unknown variant 'nope'"):
            client.set_shadow("digits", ShadowTarget(variants=("nope",), percent=5))
        assert admin(admin_api, "GET", "/admin/models/other/shadow/examples").status == 404

        client.set_shadow("digits", ShadowTarget())  # off
        before = samples(url)
        for index in range(5):
            assert call(url + "/v2/models/digits/infer", infer_body_of(index)).status == 200
        time.sleep(0.5)  # a copy would be counted within this (the ones above took ~10 ms)
        after = samples(url)
        for result in ("agree", "diverge", "error", "dropped"):
            assert value(after, SHADOW, **pair, result=result) == value(
                before, SHADOW, **pair, result=result
            )


def infer_body_of(index: int) -> bytes:
    """One test digit as OIP JSON, with the request id ``r-<index>``."""
    row = DIGITS.inputs[index : index + 1]
    return json.dumps(
        {
            "id": f"r-{index}",
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 64],
                    "data": row.ravel().tolist(),
                }
            ],
        }
    ).encode()


@contextlib.contextmanager
def digits_load(url: str, pause_s: float = 0.02) -> Iterator[list[str]]:
    """One client sending the test digits in turn, one a request; yields its failures."""
    failures: list[str] = []
    stop = threading.Event()

    def send() -> None:
        index = 0
        while not stop.is_set():
            reply = call(url + "/v2/models/digits/infer", infer_body_of(index % len(DIGITS)))
            if reply.status != 200:
                failures.append(f"{reply.status} {reply.body[:200]!r}")
            index += 1
            time.sleep(pause_s)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        stop.set()
        thread.join(30)


def test_the_rollout_controller_rolls_back_the_bad_v4_on_its_divergence_and_passes_v3(
    backends, mlserver_v3_v4, tmp_path
):
    """End to end: a real gateway (admin API, state dir), the real backends, the rollout
    controller as a process scraping the gateway's /metrics. The shadow step turns shadowing on
    through the admin API; v4 (45% of its classes changed) fails the divergence gate against
    the noise pair (v2 on TorchServe and on the stand-in) and is rolled back, shadowing off;
    v3 (0.9% changed) passes the same step. No client request fails."""
    import yaml

    from tests.rollout.fake_admin_server import TOKEN as CONTROLLER_TOKEN
    from tests.rollout.test_controller_process import cli, controller, status, wait_for
    from tests.support.admin import admin, admin_server, running_admin_gateway

    ml = {
        "kind": "oip",
        "runtime": "mlserver",
        "url": f"http://127.0.0.1:{mlserver_v3_v4.http}",
        "protocol": "rest",
    }
    models = {
        "digits": {
            "variants": [
                variant("torch-v2", "torchserve", 2, 50),
                variant("tf-v2", "tfserving", 2, 50),
                variant("ml-v3", "ml34", 3, 0),
                variant("ml-v4", "ml34", 4, 0),
            ]
        }
    }
    config = gateway_config(
        backends,
        models=models,
        backends={**backends_config(backends), "ml34": ml},
        **admin_server(tmp_path / "gateway", token=CONTROLLER_TOKEN),
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "interval": "0.5s",
                "settle": "0.2s",
                "baseline": ["torch-v2", "tf-v2"],
                "noise": [{"primary": "torch-v2", "shadow": "tf-v2"}],
                "gates": {"min_comparisons": 40},
                "steps": [
                    {"kind": "shadow", "percent": 100, "requests": 60, "duration": "1s"},
                    {"kind": "canary", "weight": 5, "duration": "10m"},
                ],
            }
        )
    )
    with (
        running_admin_gateway(tmp_path / "gateway", config) as (url, admin_api),
        digits_load(url) as failures,
        controller(tmp_path, admin_api, url + "/metrics") as running,
    ):
        started = cli(running.url, "start", "digits", "--candidate", "ml-v4", "--plan", str(plan))
        assert started.returncode == 0, started.stderr
        done = wait_for(running.url, "rolled_back", timeout=120)
        rollback = next(e for e in done["history"] if e["event"] == "rolling back")
        failed = [g for g in rollback["gates"] if g["verdict"] == "fail"]
        assert [g["gate"] for g in failed] == ["divergence"], rollback
        assert failed[0]["value"] > 0.2, failed  # v4 changes 45% of the classes, the noise ~0
        shadow = admin(admin_api, "GET", "/admin/models/digits/shadow", token=CONTROLLER_TOKEN)
        assert shadow.json()["shadow"]["variants"] == []
        view = admin(admin_api, "GET", "/admin/models/digits", token=CONTROLLER_TOKEN).json()
        assert {v["name"]: v["enabled"] for v in view["variants"]}["ml-v4"] is False
        examples = admin(
            admin_api, "GET", "/admin/models/digits/shadow/examples", token=CONTROLLER_TOKEN
        ).json()["examples"]
        assert any(e["shadow"] == "ml-v4" and e["result"] == "diverge" for e in examples)

        started = cli(running.url, "start", "digits", "--candidate", "ml-v3", "--plan", str(plan))
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 120
        while (doc := status(running.url))["step"] < 1:
            assert doc["phase"] in ("progressing", "waiting"), doc
            assert time.monotonic() < deadline, doc
            time.sleep(0.3)
        passed = next(e for e in doc["history"] if e["event"] == "passed")
        assert passed["step"] == 0
        assert [(g["gate"], g["verdict"]) for g in passed["gates"]] == [("divergence", "pass")]
        assert doc["history"][-1]["event"] == "action done: entered canary 5%"
        assert cli(running.url, "abort", "digits").returncode == 0
        wait_for(running.url, "rolled_back", timeout=60)
    assert failures == []
