"""The stack on the official images under a real Docker engine: TF Serving, TorchServe, Triton and
the gateway.

The runtime containers are made from docker-compose.yml + docker-compose.cpu.yml as Docker Compose
resolves them (image, entrypoint, command, read-only mounts, healthcheck), on a private network
where they answer to their service names, with their ports published on 127.0.0.1 only. Then:

- a gateway process here, in front of the published ports, gets the same answers from every
  runtime for both versions, resolves the version labels, and every runtime exports the metrics
  the dashboard reads;
- the gateway image, built from deploy/gateway/Dockerfile and run with deploy/compose/gateway.yaml
  on that network, turns healthy, serves every variant and stops cleanly on SIGTERM.

Without a reachable Docker engine these tests skip; ``make test-docker`` sets
GATEWAY_DOCKER_TESTS=required, which makes that a failure instead.
"""

from __future__ import annotations

import gc
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import numpy as np
import pytest
from docker.errors import DockerException
from docker.models.containers import Container
from docker.models.networks import Network
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.helpers import (
    COMPOSE_CPU,
    DEPLOY,
    REPO,
    by_kind,
    compose_config,
    container,
    dashboard,
    dashboard_queries,
    kustomize,
    metric_names,
    nanoseconds,
    unescape_compose,
)
from tests.support.http import DIGITS, call, infer, probabilities
from tests.support.stack import VARIANTS, gateway_config, running_gateway

REQUIRED = os.environ.get("GATEWAY_DOCKER_TESTS") == "required"
HEALTHY_WITHIN_S = 600.0  # first runs pull several GB of images
STANDIN_MARK = "stand-in"
RUNTIMES = ("tfserving", "torchserve", "triton")
# The local stack's split, plus Triton's two variants as the deployed configs have them.
DOCKER_VARIANTS = [
    *VARIANTS,
    {"name": "triton-v1", "backend": "triton", "version": 1, "weight": 0, "labels": ["stable"]},
    {"name": "triton-v2", "backend": "triton", "version": 2, "weight": 0, "labels": ["canary"]},
]
# Metric names of each runtime's own exporter, as the dashboard queries them.
RUNTIME_METRIC_PREFIXES = ("ts_", ":tensorflow:", "nv_")


def container_spec(service: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``containers.create`` for a service of the resolved compose model."""
    spec: dict[str, Any] = {
        "image": service["image"],
        "entrypoint": service.get("entrypoint"),
        "command": service.get("command"),
        "environment": service.get("environment") or {},
        "init": bool(service.get("init")),
        "volumes": {
            mount["source"]: {"bind": mount["target"], "mode": "ro" if mount["read_only"] else "rw"}
            for mount in service.get("volumes", [])
            if mount["type"] == "bind"
        },
        # Published on loopback, on ports the engine picks.
        "ports": {f"{port['target']}/tcp": ("127.0.0.1", None) for port in service["ports"]},
        "detach": True,
    }
    check = service.get("healthcheck") or {}
    if "test" in check:
        spec["healthcheck"] = {
            "test": [unescape_compose(arg) for arg in check["test"]],
            "interval": nanoseconds(check.get("start_interval", check["interval"])),
            "timeout": nanoseconds(check["timeout"]),
            "retries": check["retries"],
            "start_period": nanoseconds(check["start_period"]),
        }
    return spec


def test_compose_services_translate_to_containers():
    """Runs everywhere: the translation the engine tests rely on."""
    services = compose_config(COMPOSE_CPU)["services"]
    tfserving = container_spec(services["tfserving"])
    assert tfserving["entrypoint"] == ["tensorflow_model_server"]
    assert tfserving["volumes"][str(REPO / "model_store" / "tfserving")] == {
        "bind": "/models",
        "mode": "ro",
    }
    assert tfserving["healthcheck"]["test"][3].startswith('exec 3<>"/dev/tcp/127.0.0.1/$1"')
    assert tfserving["healthcheck"]["start_period"] == 120 * 10**9
    torchserve = container_spec(services["torchserve"])
    assert torchserve["init"] is True
    assert set(torchserve["ports"]) == {"8080/tcp", "8081/tcp", "8082/tcp", "7070/tcp"}
    assert nanoseconds("2m0s") == nanoseconds("120s") == 120 * 10**9


def published_port(container: Container, target: int) -> int:
    """The loopback port the engine published the container's ``target`` port on."""
    container.reload()
    bindings = container.ports[f"{target}/tcp"]
    assert bindings, f"{container.name}: port {target} is not published"
    return int(bindings[0]["HostPort"])


@dataclass
class Runtime:
    container: Container

    def port(self, target: int) -> int:
        return published_port(self.container, target)


def connect() -> docker.DockerClient | str:
    """A client of a Docker engine that answers, or why there is none."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return f"no Docker engine: there is no socket at {host.removeprefix('unix://')}"
    with warnings.catch_warnings():
        # docker-py leaves the socket of a refused connection open; collect it here, quietly.
        warnings.simplefilter("ignore", ResourceWarning)
        client: docker.DockerClient | None = None
        try:
            client = docker.from_env(timeout=600)
            client.ping()
            return client
        except DockerException as error:
            reason = f"no Docker engine answers at {host} ({error})"
        if client is not None:
            client.close()
        gc.collect()
    return reason


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = connect()
    if isinstance(client, str):
        if REQUIRED:
            pytest.fail(client)
        pytest.skip(f"{client}; `make test-docker` runs these tests where an engine is")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def network(engine: docker.DockerClient) -> Iterator[Network]:
    created = engine.networks.create(f"gateway-test-{uuid.uuid4().hex[:8]}", driver="bridge")
    try:
        yield created
    finally:
        created.remove()


def start(engine: docker.DockerClient, network: Network, name: str, spec: dict[str, Any]) -> Any:
    image = spec["image"]
    if ":" in image and not engine.images.list(name=image):
        repository, tag = image.rsplit(":", 1)
        engine.images.pull(repository, tag=tag)
    container = engine.containers.create(name=f"{network.name}-{name}", **spec)
    network.connect(container, aliases=[name])
    container.start()
    return container


def wait_healthy(container: Container) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while True:
        container.reload()
        state = container.attrs["State"]
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return
        if health == "unhealthy" or state["Status"] == "exited" or time.monotonic() > deadline:
            logs = container.logs(tail=60).decode(errors="replace")
            raise AssertionError(f"{container.name}: {state['Status']}, health {health}\n{logs}")
        time.sleep(1)


@pytest.fixture(scope="module")
def runtimes(engine: docker.DockerClient, network: Network) -> Iterator[dict[str, Runtime]]:
    services = compose_config(COMPOSE_CPU)["services"]
    started: dict[str, Runtime] = {}
    try:
        for name in RUNTIMES:
            started[name] = Runtime(start(engine, network, name, container_spec(services[name])))
        for runtime in started.values():
            wait_healthy(runtime.container)
        yield started
    finally:
        for runtime in started.values():
            runtime.container.remove(force=True)


def gateway_backends(runtimes: dict[str, Runtime]) -> dict[str, Any]:
    tf, ts, triton = runtimes["tfserving"], runtimes["torchserve"], runtimes["triton"]
    return {
        "tfserving": {
            "kind": "tfserving",
            "grpc": f"127.0.0.1:{tf.port(8500)}",
            "rest": f"http://127.0.0.1:{tf.port(8501)}",
            "protocol": "grpc",
            "timeout_s": 10,
        },
        "torchserve": {
            "kind": "torchserve",
            "inference": f"http://127.0.0.1:{ts.port(8080)}",
            "management": f"http://127.0.0.1:{ts.port(8081)}",
            "metrics": f"http://127.0.0.1:{ts.port(8082)}",
            "grpc": f"127.0.0.1:{ts.port(7070)}",
            "protocol": "rest",
            "timeout_s": 10,
        },
        # As deploy/compose/gateway.yaml has it (OIP over REST).
        "triton": {
            "kind": "oip",
            "url": f"http://127.0.0.1:{triton.port(8000)}",
            "protocol": "rest",
            "timeout_s": 10,
        },
    }


def sample_names(url: str) -> set[str]:
    reply = call(url)
    assert reply.status == 200, url
    names = set()
    for line in reply.body.decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def test_gateway_over_the_official_runtime_images(runtimes, tmp_path):
    rows = DIGITS.inputs[:16]
    config = gateway_config(
        None,  # type: ignore[arg-type]
        models={"digits": {"variants": DOCKER_VARIANTS}},
        backends=gateway_backends(runtimes),
    )
    with running_gateway(tmp_path, config) as url:
        answers = {}
        for variant in DOCKER_VARIANTS:
            reply = infer(url, rows, **{"x-gateway-variant": str(variant["name"])})
            assert reply.status == 200, (variant["name"], reply.body)
            assert reply.json()["model_version"] == str(variant["version"])
            answers[variant["name"]] = probabilities(reply)
        for version in (1, 2):
            tf, torch = answers[f"tf-v{version}"], answers[f"torch-v{version}"]
            np.testing.assert_allclose(tf, torch, atol=1e-5)
            np.testing.assert_allclose(answers[f"triton-v{version}"], torch, atol=1e-5)
            assert (tf.argmax(axis=1) == DIGITS.labels[:16]).mean() >= 0.9
        assert not np.allclose(answers["tf-v1"], answers["tf-v2"], atol=1e-3)

        for label, labelled in (("stable", "1"), ("canary", "2")):
            reply = infer(url, rows[:1], f"/v2/models/digits/versions/{label}/infer")
            assert reply.status == 200, reply.body
            assert reply.json()["model_version"] == labelled
        # TF Serving itself took the labels from deploy/tfserving/models.config.
        rest = f"http://127.0.0.1:{runtimes['tfserving'].port(8501)}"
        status = call(f"{rest}/v1/models/digits/labels/canary")
        assert status.status == 200, status.body
        assert STANDIN_MARK not in status.headers.get("server", "").lower()
        (entry,) = status.json()["model_version_status"]
        assert (entry["version"], entry["state"]) == ("2", "AVAILABLE")

        metrics = {
            family.name: family
            for family in text_string_to_metric_families(call(url + "/metrics").body.decode())
        }
        ok = [
            sample
            for sample in metrics["gateway_requests"].samples
            if sample.name == "gateway_requests_total" and sample.labels["code"] == "200"
        ]
        assert sum(sample.value for sample in ok) == len(DOCKER_VARIANTS) + 2

        # Triton itself serves exactly the configured versions, 3 and 4 staying on disk.
        triton = f"http://127.0.0.1:{runtimes['triton'].port(8000)}"
        for on_disk, ready in (("1", True), ("2", True), ("3", False), ("4", False)):
            reply = call(f"{triton}/v2/models/digits/versions/{on_disk}/ready")
            assert (reply.status == 200) == ready, (on_disk, reply.status)

    exported = sample_names(f"{rest}/monitoring/prometheus/metrics")
    exported |= sample_names(f"http://127.0.0.1:{runtimes['torchserve'].port(8082)}/metrics")
    exported |= sample_names(f"http://127.0.0.1:{runtimes['triton'].port(8002)}/metrics")
    for title, expr in dashboard_queries(dashboard()):
        for name in metric_names(expr):
            if name.startswith(RUNTIME_METRIC_PREFIXES):
                assert name in exported, f"{title}: the runtimes export no {name}"


def test_gateway_image_serves_and_stops_cleanly(engine, network, runtimes):
    tag = f"gateway:test-{uuid.uuid4().hex[:8]}"
    image, _ = engine.images.build(
        path=str(REPO), dockerfile="deploy/gateway/Dockerfile", tag=tag, rm=True
    )
    try:
        assert image.attrs["Config"]["User"] == "10001:10001"
        # Nothing of the runtimes made it into the image.
        probe = engine.containers.run(
            tag,
            entrypoint=["python", "-c"],
            command=[
                "import importlib.util, sys; "
                "sys.exit(any(importlib.util.find_spec(m) for m in ('tensorflow', 'torch')))"
            ],
            remove=True,
        )
        assert probe == b""
        services = compose_config(COMPOSE_CPU)["services"]
        spec = container_spec(services["gateway"])
        spec.update(image=tag, read_only=True, tmpfs={"/tmp": ""})
        gateway = start(engine, network, "gateway", spec)
        try:
            wait_healthy(gateway)  # the image's own HEALTHCHECK
            url = f"http://127.0.0.1:{published_port(gateway, 8000)}"
            for variant in DOCKER_VARIANTS:
                reply = infer(url, DIGITS.inputs[:1], **{"x-gateway-variant": str(variant["name"])})
                assert reply.status == 200, (variant["name"], reply.body)
            text = call(url + "/metrics").body.decode()
            starts = [line for line in text.splitlines() if line.startswith("gateway_worker_start")]
            assert len(starts) == 2  # GATEWAY_SERVER__WORKERS=2 from the compose file
            gateway.stop(timeout=15)  # SIGTERM, the image's STOPSIGNAL
            gateway.reload()
            assert gateway.attrs["State"]["ExitCode"] == 0
        finally:
            gateway.remove(force=True)
    finally:
        engine.images.remove(tag, force=True)


# --- The Kubernetes pods' settings on the same images ------------------------------------------
# Nothing here runs Kubernetes; these run each runtime's rendered container (overlays/cpu) the
# way its pod does: same command, environment, uid and gid, working directory, a read-only root
# with a tmpfs wherever the pod has an emptyDir, no capabilities, no privilege escalation, and an
# init as PID 1 (the pod's shared process namespace puts the pause container there). The
# config and model volumes are the directories the ConfigMaps and the init container copy.

POD_VOLUMES = {
    "tfserving": {"config": DEPLOY / "tfserving", "models": REPO / "model_store" / "tfserving"},
    "torchserve": {"config": DEPLOY / "torchserve", "models": REPO / "model_store" / "torchserve"},
    "triton": {"models": REPO / "model_store" / "triton"},
}
STOPPED_WITHIN_S = {"tfserving": 10.0, "torchserve": 70.0, "triton": 40.0}


def pod_container_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``containers.create`` for a rendered runtime Deployment."""
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    context = pod["securityContext"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    binds, tmpfs = {}, {}
    for mount in main["volumeMounts"]:
        volume = volumes[mount["name"]]
        if mount["name"] in POD_VOLUMES[name]:
            binds[str(POD_VOLUMES[name][mount["name"]])] = {
                "bind": mount["mountPath"],
                "mode": "ro",
            }
        else:
            assert "emptyDir" in volume, mount
            tmpfs[mount["mountPath"]] = "exec"  # an emptyDir is not noexec, Docker's tmpfs is
    probe = main["readinessProbe"]["exec"]["command"]
    return {
        "image": main["image"],
        "entrypoint": main["command"],
        "command": main["args"],
        "environment": {item["name"]: item["value"] for item in main.get("env", [])},
        "user": f"{context['runAsUser']}:{context['runAsGroup']}",
        "working_dir": main.get("workingDir"),
        "read_only": main["securityContext"]["readOnlyRootFilesystem"],
        "tmpfs": tmpfs,
        "volumes": binds,
        "cap_drop": main["securityContext"]["capabilities"]["drop"],
        "security_opt": ["no-new-privileges"],
        "init": pod["shareProcessNamespace"],
        "healthcheck": {
            "test": ["CMD", *probe],
            "interval": 2 * 10**9,
            "timeout": 10 * 10**9,
            "retries": 3,
            "start_period": int(HEALTHY_WITHIN_S) * 10**9,
        },
        "detach": True,
    }


def test_kubernetes_pods_translate_to_containers():
    """Runs everywhere: the translation the engine test below relies on."""
    deployments = by_kind(kustomize("cpu"), "Deployment")
    torchserve = pod_container_spec(deployments["torchserve"])
    assert torchserve["user"] == "1000:1000"
    assert torchserve["read_only"] is True
    assert torchserve["init"] is True
    assert {"/tmp", "/home/model-server/tmp", "/home/model-server/logs"} <= set(torchserve["tmpfs"])
    assert torchserve["working_dir"] in torchserve["tmpfs"]
    assert torchserve["volumes"][str(DEPLOY / "torchserve")]["bind"] == "/etc/torchserve"
    tfserving = pod_container_spec(deployments["tfserving"])
    assert tfserving["user"] == "65534:65534"
    assert tfserving["environment"]["CUDA_CACHE_PATH"] in tfserving["tmpfs"]
    assert tfserving["healthcheck"]["test"][:3] == ["CMD", "bash", "-c"]
    triton = pod_container_spec(deployments["triton"])
    assert triton["user"] == "1000:1000"
    repository = triton["volumes"][str(REPO / "model_store" / "triton")]
    assert repository == {"bind": "/models", "mode": "ro"}
    assert "/tmp" in triton["tmpfs"]


@pytest.mark.parametrize("name", RUNTIMES)
def test_runtime_pods_run_locked_down_and_stop_on_their_own(engine, network, name):
    deployment = by_kind(kustomize("cpu"), "Deployment")[name]
    runtime = start(engine, network, f"pod-{name}", pod_container_spec(deployment))
    try:
        wait_healthy(runtime)  # its readiness probe: both versions of digits served
        started = time.monotonic()
        if name == "torchserve":
            # The preStop hook, without its pause for endpoint removal.
            (hook,) = container(deployment)["lifecycle"]["preStop"]["exec"]["command"][2:]
            stop = hook.split(";", 1)[1].strip().removeprefix("exec ")
            result = runtime.exec_run(["sh", "-c", stop])
            assert result.exit_code == 0, result.output.decode(errors="replace")
        else:
            runtime.kill(signal="SIGTERM")  # what the kubelet sends after the preStop pause
        while True:
            runtime.reload()
            if runtime.attrs["State"]["Status"] == "exited":
                break
            assert time.monotonic() - started < STOPPED_WITHIN_S[name], "still running"
            time.sleep(0.5)
    finally:
        runtime.remove(force=True)
