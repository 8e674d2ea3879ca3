"""deploy/k8s: each overlay rendered by kustomize, validated against Kubernetes' schemas, checked.

kustomize is kubectl's built-in one (``make tools``); kubernetes-validate holds the OpenAPI
schemas of every Kubernetes release and validates strictly (unknown fields are errors).
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from deploy.local.tfserving import read_monitoring_config
from gateway.config import parse_config
from tests.deploy.helpers import (
    COMPOSE_CPU,
    COMPOSE_GPU,
    DEPLOY,
    OVERLAYS,
    backend_addresses,
    by_kind,
    compose_config,
    configmap_file,
    container,
    kustomize,
    volume_for,
)

# The oldest Kubernetes release still maintained when this was written, and the newest schema.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
RUNTIMES = ("tfserving", "torchserve", "triton")
GPU = "nvidia.com/gpu"
GPU_OVERLAYS = ("gpu", "ha")
# Files kustomize needs inside deploy/k8s/base, and the originals docker compose mounts.
COPIES = {
    "tfserving/models.config": DEPLOY / "tfserving" / "models.config",
    "tfserving/monitoring.config": DEPLOY / "tfserving" / "monitoring.config",
    "torchserve/config.properties": DEPLOY / "torchserve" / "config.properties",
    "torchserve/healthcheck.py": DEPLOY / "torchserve" / "healthcheck.py",
    "alertmanager/alertmanager.yml": DEPLOY / "alertmanager" / "alertmanager.yml",
}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(name) for name in OVERLAYS}


@pytest.fixture(scope="module")
def docs(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> list[dict[str, Any]]:
    return rendered[overlay]


def test_every_manifest_validates_strictly_against_kubernetes_schemas(docs):
    assert {doc["kind"] for doc in docs} == {
        "Namespace",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    }
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_catches_a_misspelt_field(docs):
    deployment = copy.deepcopy(by_kind(docs, "Deployment")["gateway"])
    probe = deployment["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = probe
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_everything_lands_in_one_namespace(docs):
    namespaces = [doc for doc in docs if doc["kind"] == "Namespace"]
    assert [ns["metadata"]["name"] for ns in namespaces] == ["gateway"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "gateway", doc["metadata"]["name"]


def test_gateway_deployment_is_replicated_probed_bounded_and_unprivileged(docs):
    deployment = by_kind(docs, "Deployment")["gateway"]
    assert "replicas" not in deployment["spec"], "the HPA owns the gateway's replica count"
    pod = deployment["spec"]["template"]["spec"]
    gateway = container(deployment)
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert gateway["resources"]["requests"]["cpu"]
    assert gateway["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    assert gateway["securityContext"]["allowPrivilegeEscalation"] is False
    assert gateway["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert volume_for(deployment, "/tmp")["emptyDir"]  # merged-metrics files
    env = {item["name"]: item["value"] for item in gateway["env"]}
    assert int(env["GATEWAY_SERVER__WORKERS"]) >= 1
    assert gateway["image"] == "gateway:0.1.0"
    assert GPU not in gateway["resources"].get("limits", {})


def test_gateway_config_comes_from_the_generated_configmap_and_reaches_the_services(docs):
    deployment = by_kind(docs, "Deployment")["gateway"]
    volume = volume_for(deployment, "/etc/gateway")
    assert volume["readOnly"]
    # configMapGenerator adds a content hash, so that a config change rolls the pods.
    assert volume["configMap"]["name"].startswith("gateway-config-")
    text = configmap_file(docs, volume, "gateway.yaml")
    assert text == (DEPLOY / "k8s" / "base" / "gateway" / "gateway.yaml").read_text()
    config = parse_config(yaml.safe_load(text))
    assert config.server.http.host == "0.0.0.0"
    assert container(deployment)["args"][-1] == "/etc/gateway/gateway.yaml"
    services = by_kind(docs, "Service")
    for address in backend_addresses(config):
        host, port = address.removeprefix("http://").split(":")
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}, address
    graceful = config.server.graceful_shutdown_s
    assert graceful + 5 <= deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


def test_disruption_budget_and_autoscaler_keep_two_gateways(docs):
    deployment = by_kind(docs, "Deployment")["gateway"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = by_kind(docs, "PodDisruptionBudget")["gateway"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"] == {**pdb["spec"], "maxUnavailable": 1}
    assert "minAvailable" not in pdb["spec"]
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is relative to the request: there must be one.
    assert container(deployment)["resources"]["requests"]["cpu"]


def test_every_service_selects_pods_and_named_ports(docs):
    deployments = by_kind(docs, "Deployment")
    for name, service in by_kind(docs, "Service").items():
        selector = service["spec"]["selector"]
        matches = [
            d
            for d in deployments.values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, name
        ports = {p["name"]: p["containerPort"] for p in container(matches[0])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (name, port)
            assert ports[port["targetPort"]] == port["port"], (name, port)


def test_prometheus_annotations_point_at_real_metrics_endpoints(docs):
    expected_paths = {
        "gateway": "/metrics",
        "tfserving": read_monitoring_config(
            DEPLOY / "tfserving" / "monitoring.config"
        ).prometheus_config.path,
        "torchserve": "/metrics",
        "triton": "/metrics",
        "alertmanager": "/metrics",
    }
    for name, deployment in by_kind(docs, "Deployment").items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == expected_paths[name]
        ports = {p["containerPort"] for p in container(deployment)["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports
    torchserve = configmap_file(
        docs,
        volume_for(by_kind(docs, "Deployment")["torchserve"], "/etc/torchserve"),
        "config.properties",
    )
    port = by_kind(docs, "Deployment")["torchserve"]["spec"]["template"]["metadata"]["annotations"][
        "prometheus.io/port"
    ]
    assert f"metrics_address=http://0.0.0.0:{port}" in torchserve


def test_runtimes_get_the_model_store_from_an_init_container(docs):
    deployments = by_kind(docs, "Deployment")
    model_paths = {
        "tfserving": "/models",
        "torchserve": "/home/model-server/model-store",
        "triton": "/models",
    }
    for runtime in RUNTIMES:
        deployment = deployments[runtime]
        pod = deployment["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["image"] == "gateway-model-store:0.1.0"
        assert init["command"][:2] == ["cp", "-R"]
        assert init["command"][2] == f"/model-store/{runtime}/."
        volume = volume_for(deployment, model_paths[runtime])
        assert volume["readOnly"], "the runtime must not write to its model store"
        assert "emptyDir" in volume
        (init_mount,) = init["volumeMounts"]
        assert init_mount["name"] == volume["name"]
        assert init_mount["mountPath"].rstrip("/") == init["command"][3].rstrip("/")
    tf_config = configmap_file(
        docs, volume_for(deployments["tfserving"], "/etc/tfserving"), "models.config"
    )
    assert 'base_path: "/models/digits"' in tf_config
    ts_config = configmap_file(
        docs, volume_for(deployments["torchserve"], "/etc/torchserve"), "config.properties"
    )
    assert "model_store=/home/model-server/model-store" in ts_config
    triton = container(deployments["triton"])["args"]
    assert "--model-repository=/models" in triton
    # The image the init containers run: the committed model store, nothing else.
    dockerfile = (DEPLOY / "model-store" / "Dockerfile").read_text()
    for runtime in RUNTIMES:
        assert f"COPY {runtime} /model-store/{runtime}" in dockerfile


def test_runtime_probes_use_the_compose_healthchecks(docs):
    deployments = by_kind(docs, "Deployment")
    compose = compose_config(COMPOSE_GPU)["services"]
    for runtime in ("tfserving", "triton"):
        probe = container(deployments[runtime])["readinessProbe"]["exec"]["command"]
        assert probe == [
            arg.replace("$$", "$") for arg in compose[runtime]["healthcheck"]["test"][1:]
        ]
    # Triton's server flags too: the same repository layout, ports and drain.
    assert container(deployments["triton"])["args"] == compose["triton"]["command"]
    ts_probe = container(deployments["torchserve"])["readinessProbe"]["exec"]["command"]
    ts_compose = compose["torchserve"]["healthcheck"]["test"][1:]
    assert ts_probe[0] == ts_compose[0] == "python"
    assert ts_probe[2:] == ts_compose[2:]
    assert ts_probe[1] == "/etc/torchserve/healthcheck.py"


def test_gpu_overlay_gives_each_runtime_a_gpu_and_cpu_overlay_none(docs, overlay):
    deployments = by_kind(docs, "Deployment")
    gpu = overlay in GPU_OVERLAYS
    compose = compose_config(COMPOSE_GPU if gpu else COMPOSE_CPU)["services"]
    for runtime in RUNTIMES:
        deployment = deployments[runtime]
        runtime_container = container(deployment)
        limits = runtime_container["resources"]["limits"]
        tolerations = deployment["spec"]["template"]["spec"].get("tolerations", [])
        if gpu:
            assert limits[GPU] == 1
            assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in tolerations
        else:
            assert GPU not in limits
            assert tolerations == []
        # The same runtime images as docker compose's matching variant.
        assert runtime_container["image"] == compose[runtime]["image"]
    assert GPU not in str(deployments["gateway"])


def test_k8s_copies_of_runtime_files_match_the_compose_originals():
    for copy_path, original in COPIES.items():
        copied = DEPLOY / "k8s" / "base" / copy_path
        assert copied.read_bytes() == original.read_bytes(), f"{copied} differs from {original}"
