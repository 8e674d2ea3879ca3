"""The stack on the official images under a real Docker engine: TF Serving, TorchServe, Triton and
the gateway.

The runtime containers are made from docker-compose.yml + docker-compose.cpu.yml as Docker Compose
resolves them (image, entrypoint, command, read-only mounts, healthcheck), on a private network
where they answer to their service names, with their ports published on 127.0.0.1 only. Then:

- a gateway process here, in front of the published ports, gets the same answers from every
  runtime for both versions, resolves the version labels, and every runtime exports the metrics
  the dashboard reads;
- the gateway image, built from deploy/gateway/Dockerfile and run with deploy/compose/gateway.yaml
  on that network (TorchServe's keys on the volume they share), turns healthy, serves every
  variant and stops cleanly on SIGTERM;
- the real TF Serving answers HandleReloadConfigRequest as the stand-in does (the assertions of
  tests/support/tfserving_reload.py), and version 3 deploys into both images and comes out again
  with the orchestration library.

Without a reachable Docker engine these tests skip; ``make test-docker`` sets
GATEWAY_DOCKER_TESTS=required, which makes that a failure instead.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import grpc
import numpy as np
import pytest
from docker.errors import DockerException
from docker.models.containers import Container
from docker.models.networks import Network
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.stack import StackPorts
from deploy.local.torchserve import TorchServePorts
from gateway.config import parse_config
from gateway.runtimes.results import DeployResult
from gateway.runtimes.setup import deploy_request, orchestrator
from model_store.digits import load_reference, load_test_set
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
from tests.runtimes.direct import (
    tfserving_predict,
    tfserving_states,
    torchserve_predict,
    torchserve_versions,
)
from tests.support.http import DIGITS, call, infer, probabilities
from tests.support.stack import VARIANTS, backends_config, gateway_config, running_gateway
from tests.support.tfserving_reload import assert_reload_semantics

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


def container_spec(
    service: dict[str, Any], volumes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments of ``containers.create`` for a service of the resolved compose model.

    ``volumes`` names the engine's volume for each of the compose file's named volumes.
    """
    named = volumes or {}
    spec: dict[str, Any] = {
        "image": service["image"],
        "entrypoint": service.get("entrypoint"),
        "command": service.get("command"),
        "environment": service.get("environment") or {},
        "init": bool(service.get("init")),
        "user": service.get("user"),
        "working_dir": service.get("working_dir"),
        "volumes": {
            (mount["source"] if mount["type"] == "bind" else named[mount["source"]]): {
                "bind": mount["target"],
                "mode": "ro" if mount.get("read_only") else "rw",
            }
            for mount in service.get("volumes", [])
            if mount["type"] == "bind" or mount["source"] in named
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
    torchserve = container_spec(services["torchserve"], {"torchserve-keys": "keys"})
    assert torchserve["init"] is True
    assert set(torchserve["ports"]) == {"8080/tcp", "8081/tcp", "8082/tcp", "7070/tcp"}
    assert torchserve["volumes"]["keys"] == {"bind": torchserve["working_dir"], "mode": "rw"}
    gateway = container_spec(services["gateway"], {"torchserve-keys": "keys"})
    assert gateway["volumes"]["keys"] == {"bind": "/run/torchserve", "mode": "ro"}
    assert gateway["user"] == "1000:1000"
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


@pytest.fixture(scope="module")
def volumes(engine: docker.DockerClient, network: Network) -> Iterator[dict[str, str]]:
    """The compose file's named volumes the runtimes share with the gateway (the key volume),
    made with the same driver options."""
    declared = compose_config(COMPOSE_CPU)["volumes"]
    made = {
        name: engine.volumes.create(
            f"{network.name}-{name}", driver_opts=declared[name].get("driver_opts") or {}
        )
        for name in ("torchserve-keys",)
    }
    try:
        yield {name: volume.name for name, volume in made.items()}
    finally:
        for volume in made.values():
            volume.remove(force=True)


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
def runtimes(
    engine: docker.DockerClient, network: Network, volumes: dict[str, str]
) -> Iterator[dict[str, Runtime]]:
    services = compose_config(COMPOSE_CPU)["services"]
    started: dict[str, Runtime] = {}
    try:
        for name in RUNTIMES:
            spec = container_spec(services[name], volumes)
            started[name] = Runtime(start(engine, network, name, spec))
        for runtime in started.values():
            wait_healthy(runtime.container)
        yield started
    finally:
        for runtime in started.values():
            runtime.container.remove(force=True)


def published(runtimes: dict[str, Runtime], tmp_path: Path) -> StackPorts:
    """The runtimes' published ports, TorchServe's keys (copied out of its container) and the
    model config TF Serving started with, as the local stack's tests know them."""
    tf, ts = runtimes["tfserving"], runtimes["torchserve"]
    service = compose_config(COMPOSE_CPU)["services"]["torchserve"]
    copied = ts.container.exec_run(["cat", f"{service['working_dir']}/key_file.json"])
    assert copied.exit_code == 0, copied.output
    assert isinstance(copied.output, bytes)
    keys = tmp_path / "key_file.json"
    keys.write_bytes(copied.output)
    return StackPorts(
        torchserve=TorchServePorts(ts.port(8080), ts.port(8081), ts.port(8082), ts.port(7070), 0),
        tfserving_grpc=tf.port(8500),
        tfserving_rest=tf.port(8501),
        torchserve_key_file=keys,
        tfserving_model_config=DEPLOY / "tfserving" / "models.config",
    )


def gateway_backends(runtimes: dict[str, Runtime], tmp_path: Path) -> dict[str, Any]:
    backends = backends_config(published(runtimes, tmp_path))
    # As deploy/compose/gateway.yaml has it (OIP over REST).
    backends["triton"] = {
        "kind": "oip",
        "url": f"http://127.0.0.1:{runtimes['triton'].port(8000)}",
        "protocol": "rest",
        "timeout_s": 10,
    }
    return backends


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
        None,
        models={"digits": {"variants": DOCKER_VARIANTS}},
        backends=gateway_backends(runtimes, tmp_path),
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


def test_gateway_image_serves_and_stops_cleanly(engine, network, volumes, runtimes):
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
        spec = container_spec(services["gateway"], volumes)
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


def test_tfserving_reloads_its_config_as_the_standin_does(runtimes):
    """tests/support/tfserving_reload.py's assertions, here on the real TF Serving."""
    with grpc.insecure_channel(f"127.0.0.1:{runtimes['tfserving'].port(8500)}") as channel:
        assert_reload_semantics(channel, "/models/digits")


def test_deploy_version_3_into_the_official_images(runtimes, tmp_path):
    ports = published(runtimes, tmp_path)
    config = parse_config(gateway_config(ports))
    targets = [{"backend": "torchserve", "archive": "digits_v3.mar"}, {"backend": "tfserving"}]
    request = deploy_request(config, "digits", 3, targets)

    async def deploy_then_undeploy() -> tuple[DeployResult, DeployResult, DeployResult]:
        deployer = orchestrator(config, tmp_path / "state", timeout_s=300)
        try:
            done = await deployer.deploy(request)
            rows = load_test_set().inputs
            for answer in (
                torchserve_predict(ports, "3", rows),
                tfserving_predict(ports, 3, rows),
            ):
                np.testing.assert_allclose(answer, load_reference("3"), atol=1e-5)
            return done, await deployer.deploy(request), await deployer.undeploy(request)
        finally:
            await deployer.close()

    deployed, again, undeployed = asyncio.run(deploy_then_undeploy())
    for outcome in deployed.outcomes:
        print(f"\n{outcome.runtime} (official image): {outcome.action} in {outcome.seconds:.2f}s")
    assert deployed.ok, deployed.as_dict()
    assert [o.action for o in again.outcomes] == ["already-there", "already-there"]
    assert undeployed.ok, undeployed.as_dict()
    assert torchserve_versions(ports) == ["1", "2"]
    assert tfserving_states(ports)[3] == "END"


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
