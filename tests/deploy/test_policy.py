"""Every rendering of deploy/k8s passes the policy checks of tests/deploy/policy.py, and each
check fires on a manifest broken the way the issue found them broken.

Renderings: each overlay (gpu, cpu, ha) and the ha overlay with every optional component
(autoscale-on-requests, tls), all by kustomize itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.helpers import COMPONENTS, OVERLAYS, kustomize, kustomize_composition
from tests.deploy.policy import RULES, Doc, violations

RENDERINGS = (*OVERLAYS, "ha+all-components")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    found = {overlay: kustomize(overlay) for overlay in OVERLAYS}
    found["ha+all-components"] = kustomize_composition("ha", COMPONENTS[1:])
    return found


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_every_rendering_passes_every_policy(rendered, rendering):
    found = violations(rendered[rendering])
    assert not found, "\n".join(map(str, found))


def find(docs: list[Doc], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod(docs: list[Doc], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def main_container(docs: list[Doc], name: str) -> dict[str, Any]:
    (container,) = [c for c in pod(docs, name)["containers"] if c["name"] == name]
    return container


def namespace_unlabelled(docs: list[Doc]) -> None:
    find(docs, "Namespace", "gateway")["metadata"]["labels"].clear()


def torchserve_as_image_user(docs: list[Doc]) -> None:
    """The issue's TorchServe pod: no runAsNonRoot, no uid."""
    context = pod(docs, "torchserve")["securityContext"]
    del context["runAsNonRoot"], context["runAsUser"]


def gateway_root_writable(docs: list[Doc]) -> None:
    main_container(docs, "gateway")["securityContext"]["readOnlyRootFilesystem"] = False


def init_container_unbounded(docs: list[Doc]) -> None:
    del pod(docs, "tfserving")["initContainers"][0]["resources"]


def gateway_without_liveness(docs: list[Doc]) -> None:
    del main_container(docs, "gateway")["livenessProbe"]


def runtime_on_latest(docs: list[Doc]) -> None:
    main_container(docs, "tfserving")["image"] = "tensorflow/serving:latest"


def replicas_beside_the_hpa(docs: list[Doc]) -> None:
    find(docs, "Deployment", "gateway")["spec"]["replicas"] = 2


def pdb_min_available(docs: list[Doc]) -> None:
    spec = find(docs, "PodDisruptionBudget", "gateway")["spec"]
    del spec["maxUnavailable"]
    spec["minAvailable"] = 1


def replicated_runtime_without_pdb(docs: list[Doc]) -> None:
    docs.remove(find(docs, "PodDisruptionBudget", "tfserving"))


def no_default_deny(docs: list[Doc]) -> None:
    docs.remove(find(docs, "NetworkPolicy", "default-deny-ingress"))


def management_port_open_to_all(docs: list[Doc]) -> None:
    """Any pod may call TorchServe's management API (PUT min_worker=0)."""
    rules = find(docs, "NetworkPolicy", "torchserve")["spec"]["ingress"]
    rules.append({"ports": [{"port": "management"}]})


def prometheus_reaches_management(docs: list[Doc]) -> None:
    rules = find(docs, "NetworkPolicy", "torchserve")["spec"]["ingress"]
    rules[1]["ports"].append({"port": "management"})


def gpu_runtime_with_surge(docs: list[Doc]) -> None:
    find(docs, "Deployment", "tfserving")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1


def no_cuda_cache(docs: list[Doc]) -> None:
    env = main_container(docs, "tfserving")["env"]
    env[:] = [item for item in env if item["name"] != "CUDA_CACHE_PATH"]


def gpu_runtime_cpu_memory(docs: list[Doc]) -> None:
    main_container(docs, "torchserve")["resources"]["limits"]["memory"] = "4Gi"


def runtime_as_pid_1(docs: list[Doc]) -> None:
    del pod(docs, "tfserving")["shareProcessNamespace"]


def runtime_without_prestop(docs: list[Doc]) -> None:
    del main_container(docs, "torchserve")["lifecycle"]


def grace_shorter_than_prestop(docs: list[Doc]) -> None:
    pod(docs, "tfserving")["terminationGracePeriodSeconds"] = 30


BREAKAGES: list[tuple[str, Callable[[list[Doc]], None], str]] = [
    ("pod-security-namespace", namespace_unlabelled, "does not enforce restricted"),
    ("pod-security-restricted", torchserve_as_image_user, "torchserve: runAsNonRoot"),
    ("read-only-root", gateway_root_writable, "gateway: root is writable"),
    ("resources", init_container_unbounded, "model-store: no requests.cpu"),
    ("probes", gateway_without_liveness, "no livenessProbe"),
    ("images", runtime_on_latest, "latest is not pinned"),
    ("hpa-owns-replicas", replicas_beside_the_hpa, "replicas beside"),
    ("disruption-budget", pdb_min_available, "use maxUnavailable"),
    ("disruption-budget", replicated_runtime_without_pdb, "tfserving: 2 replicas, no PDB"),
    ("network-policy", no_default_deny, "no default-deny"),
    ("network-policy", management_port_open_to_all, "torchserve: a runtime admits every client"),
    ("network-policy", prometheus_reaches_management, "Prometheus reaches ports"),
    ("gpu-rollout", gpu_runtime_with_surge, "tfserving: maxSurge 1"),
    ("gpu-rollout", no_cuda_cache, "tfserving: CUDA_CACHE_PATH"),
    ("gpu-rollout", gpu_runtime_cpu_memory, "torchserve: memory limit 4 Gi"),
    ("runtime-drain", runtime_as_pid_1, "tfserving: the server is PID 1"),
    ("runtime-drain", runtime_without_prestop, "torchserve: no preStop"),
    ("runtime-drain", grace_shorter_than_prestop, "does not outlast the 30 s preStop"),
]


@pytest.mark.parametrize(
    ("rule", "breakage", "message"), BREAKAGES, ids=[b[1].__name__ for b in BREAKAGES]
)
def test_each_policy_fires_on_the_breakage_it_guards_against(rendered, rule, breakage, message):
    docs = copy.deepcopy(rendered["ha"])
    breakage(docs)
    found = violations(docs)
    assert {v.rule for v in found} == {rule}, "\n".join(map(str, found))
    assert any(message in str(v) for v in found), "\n".join(map(str, found))


def test_every_policy_has_a_breakage_test():
    assert {rule for rule, _, _ in BREAKAGES} == set(RULES)
