"""Policy checks over rendered Kubernetes manifests: what kube-score or kube-linter would say,
plus this project's own rules (neither tool installs here: no PyPI, Debian or npm package).

``violations(docs)`` runs every rule over one rendering (the documents ``kustomize build``
prints) and returns what breaks them; each rule is a function of the documents alone, so a test
can break one manifest and see exactly its rule fire. The rules:

- Pod Security "restricted" for every pod, init containers included, and a namespace that
  enforces it; read-only root filesystems and no service account token on top;
- resources: CPU and memory requests and a memory limit on every container;
- probes: readiness and liveness on every long-running container;
- an HPA owns its Deployment's replica count (no ``replicas`` beside it);
- disruption budgets: every replicated Deployment has one, as ``maxUnavailable`` (a
  ``minAvailable`` fixed in pods stops meaning anything once an HPA scales), and none blocks a
  drain for good;
- NetworkPolicy: a default deny, every pod admitted by a policy, every Service port reachable
  by someone, and runtimes reachable only from the gateway and from Prometheus, Prometheus only
  on the port it scrapes;
- GPU runtimes roll without a surge pod, keep CUDA's JIT cache on an emptyDir and have a
  GPU-sized memory limit (8 Gi at least, deploy/README.md's starting point);
- runtimes drain: a preStop hook, an init that is not the server itself, and a grace period
  longer than the hook's pause;
- images carry a pinned tag.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]

GPU = "nvidia.com/gpu"
RUNTIME = {"app.kubernetes.io/component": "runtime"}
GATEWAY = {"app.kubernetes.io/name": "gateway"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
# Pod Security Standards, "restricted" profile (Kubernetes 1.25 and later).
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
VOLUME_META = {"name"}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}
SLEEP = re.compile(r"\bsleep\s+(\d+)")
GPU_MEMORY_GI = 8
MEMORY = re.compile(r"^(\d+)(Mi|Gi)$")


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.message}"


Rule = Callable[[list[Doc]], Iterator[Violation]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(check: Rule) -> Rule:
        RULES[name] = check
        return check

    return register


def violations(docs: list[Doc]) -> list[Violation]:
    return [found for check in RULES.values() for found in check(docs)]


# --- Reading manifests -------------------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def name(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: Doc, init: bool = True) -> list[Doc]:
    pod = pod_spec(workload)
    found: list[Doc] = list(pod.get("containers", []))
    return [*pod.get("initContainers", []), *found] if init else found


def matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label set."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def gpu_limit(workload: Doc) -> bool:
    return any(GPU in c.get("resources", {}).get("limits", {}) for c in containers(workload))


def hpa_targets(docs: list[Doc]) -> dict[str, Doc]:
    return {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa
        for hpa in of_kind(docs, "HorizontalPodAutoscaler")
    }


def container_ports(workload: Doc) -> dict[str, int]:
    return {
        port["name"]: port["containerPort"]
        for c in containers(workload, init=False)
        for port in c.get("ports", [])
        if "name" in port
    }


# --- Pod Security "restricted", and then some --------------------------------------------------


@rule("pod-security-namespace")
def namespace_enforces_restricted(docs: list[Doc]) -> Iterator[Violation]:
    for namespace in of_kind(docs, "Namespace"):
        labels = namespace["metadata"].get("labels", {})
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            yield Violation(
                "pod-security-namespace", name(namespace), "does not enforce restricted"
            )


@rule("pod-security-restricted")
def restricted(docs: list[Doc]) -> Iterator[Violation]:
    for workload in of_kind(docs, "Deployment"):
        pod = pod_spec(workload)
        subject = name(workload)
        pod_context = pod.get("securityContext", {})
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(host):
                yield Violation("pod-security-restricted", subject, f"{host} is on")
        for volume in pod.get("volumes", []):
            kinds = set(volume) - VOLUME_META
            if not kinds <= ALLOWED_VOLUMES:
                yield Violation(
                    "pod-security-restricted", subject, f"volume {volume['name']}: {kinds}"
                )
        for c in containers(workload):
            where = f"{subject} container {c['name']}"
            context = c.get("securityContext", {})
            non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
            if non_root is not True:
                yield Violation("pod-security-restricted", where, "runAsNonRoot is not true")
            if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
                yield Violation("pod-security-restricted", where, "runs as uid 0")
            seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
            if seccomp.get("type") not in SECCOMP_OK:
                yield Violation("pod-security-restricted", where, "no RuntimeDefault seccomp")
            if context.get("allowPrivilegeEscalation") is not False:
                yield Violation("pod-security-restricted", where, "may escalate privileges")
            if context.get("privileged"):
                yield Violation("pod-security-restricted", where, "is privileged")
            capabilities = context.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []):
                yield Violation("pod-security-restricted", where, "does not drop ALL capabilities")
            if not set(capabilities.get("add", [])) <= {"NET_BIND_SERVICE"}:
                yield Violation("pod-security-restricted", where, "adds capabilities")
            if any("hostPort" in port for port in c.get("ports", [])):
                yield Violation("pod-security-restricted", where, "binds a host port")


@rule("read-only-root")
def read_only_root(docs: list[Doc]) -> Iterator[Violation]:
    for workload in of_kind(docs, "Deployment"):
        if pod_spec(workload).get("automountServiceAccountToken") is not False:
            yield Violation("read-only-root", name(workload), "mounts a service account token")
        for c in containers(workload):
            if c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
                yield Violation(
                    "read-only-root", f"{name(workload)} container {c['name']}", "root is writable"
                )


@rule("resources")
def resources(docs: list[Doc]) -> Iterator[Violation]:
    for workload in of_kind(docs, "Deployment"):
        for c in containers(workload):
            wanted = c.get("resources", {})
            missing = [
                f"{section}.{key}"
                for section, key in (
                    ("requests", "cpu"),
                    ("requests", "memory"),
                    ("limits", "memory"),
                )
                if key not in wanted.get(section, {})
            ]
            if missing:
                yield Violation(
                    "resources",
                    f"{name(workload)} container {c['name']}",
                    f"no {', '.join(missing)}",
                )


@rule("probes")
def probes(docs: list[Doc]) -> Iterator[Violation]:
    for workload in of_kind(docs, "Deployment"):
        for c in containers(workload, init=False):
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    yield Violation(
                        "probes", f"{name(workload)} container {c['name']}", f"no {probe}"
                    )


@rule("images")
def images(docs: list[Doc]) -> Iterator[Violation]:
    for workload in of_kind(docs, "Deployment"):
        for c in containers(workload):
            image = c["image"]
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if not tag or tag == "latest":
                yield Violation(
                    "images", f"{name(workload)} container {c['name']}", f"{image} is not pinned"
                )


# --- Replicas, autoscaling, disruption budgets -------------------------------------------------


@rule("hpa-owns-replicas")
def hpa_owns_replicas(docs: list[Doc]) -> Iterator[Violation]:
    targets = hpa_targets(docs)
    for workload in of_kind(docs, "Deployment"):
        if workload["metadata"]["name"] in targets and "replicas" in workload["spec"]:
            yield Violation(
                "hpa-owns-replicas",
                name(workload),
                "sets replicas beside its HorizontalPodAutoscaler: every apply resets the scale",
            )
    names = {workload["metadata"]["name"] for workload in of_kind(docs, "Deployment")}
    for target, hpa in targets.items():
        if target not in names:
            yield Violation("hpa-owns-replicas", name(hpa), f"scales {target}, which is not here")


@rule("disruption-budget")
def disruption_budget(docs: list[Doc]) -> Iterator[Violation]:
    targets = hpa_targets(docs)
    budgets = of_kind(docs, "PodDisruptionBudget")
    workloads = of_kind(docs, "Deployment")
    for workload in workloads:
        hpa = targets.get(workload["metadata"]["name"])
        replicas = hpa["spec"].get("minReplicas", 1) if hpa else workload["spec"].get("replicas", 1)
        covering = [b for b in budgets if matches(b["spec"]["selector"], pod_labels(workload))]
        if replicas >= 2 and not covering:
            yield Violation("disruption-budget", name(workload), f"{replicas} replicas, no PDB")
        for budget in covering:
            spec = budget["spec"]
            if "minAvailable" in spec:
                yield Violation(
                    "disruption-budget",
                    name(budget),
                    "minAvailable: use maxUnavailable, which holds at any scale",
                )
            elif spec.get("maxUnavailable") in (0, "0%"):
                yield Violation("disruption-budget", name(budget), "maxUnavailable 0 blocks drains")
    for budget in budgets:
        if not any(matches(budget["spec"]["selector"], pod_labels(w)) for w in workloads):
            yield Violation("disruption-budget", name(budget), "selects no pods")


# --- NetworkPolicy -----------------------------------------------------------------------------


def policy_port_allows(rule_ports: list[Doc] | None, port_name: str, number: int) -> bool:
    """Whether an ingress rule's ``ports`` admit a container port (by name or number)."""
    if not rule_ports:
        return True  # no `ports`: every port
    return any(p.get("port") in (port_name, number) for p in rule_ports)


def ingress_rules(docs: list[Doc], labels: dict[str, str]) -> list[Doc]:
    found: list[Doc] = []
    for policy in of_kind(docs, "NetworkPolicy"):
        spec = policy["spec"]
        if "Ingress" in spec.get("policyTypes", ["Ingress"]) and matches(
            spec["podSelector"], labels
        ):
            found.extend(spec.get("ingress", []))
    return found


def is_prometheus(peer: Doc) -> bool:
    return peer.get("podSelector") == {"matchLabels": PROMETHEUS} and "namespaceSelector" in peer


def is_gateway(peer: Doc) -> bool:
    return peer == {"podSelector": {"matchLabels": GATEWAY}}


@rule("network-policy")
def network_policy(docs: list[Doc]) -> Iterator[Violation]:
    policies = of_kind(docs, "NetworkPolicy")
    default_deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("ingress")
    ]
    if not default_deny:
        yield Violation("network-policy", "namespace", "no default-deny ingress policy")
    workloads = of_kind(docs, "Deployment")
    for workload in workloads:
        labels = pod_labels(workload)
        rules = ingress_rules(docs, labels)
        if not rules:
            yield Violation("network-policy", name(workload), "no policy admits any traffic")
        if labels.items() >= RUNTIME.items():
            yield from _runtime_peers(workload, rules)
    for service in of_kind(docs, "Service"):
        selected = [
            w
            for w in workloads
            if service["spec"].get("selector", {}).items() <= pod_labels(w).items()
        ]
        for workload in selected:
            ports = container_ports(workload)
            rules = ingress_rules(docs, pod_labels(workload))
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                port_name = target if isinstance(target, str) else ""
                number = ports.get(port_name, -1) if port_name else int(target)
                if not any(policy_port_allows(r.get("ports"), port_name, number) for r in rules):
                    yield Violation(
                        "network-policy", name(service), f"port {port['name']}: no policy admits it"
                    )


def _runtime_peers(workload: Doc, rules: list[Doc]) -> Iterator[Violation]:
    scraped = (
        workload["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/port")
    )
    ports = container_ports(workload)
    for ingress in rules:
        peers = ingress.get("from")
        if not peers:
            yield Violation("network-policy", name(workload), "a runtime admits every client")
            continue
        for peer in peers:
            if is_gateway(peer):
                continue
            if not is_prometheus(peer):
                yield Violation("network-policy", name(workload), f"a runtime admits {peer}")
                continue
            opened = {
                ports.get(p["port"], p["port"]) for p in ingress.get("ports") or [{"port": "*"}]
            }
            if scraped is None or opened != {int(scraped)}:
                yield Violation(
                    "network-policy",
                    name(workload),
                    f"Prometheus reaches ports {sorted(map(str, opened))}, not only {scraped}",
                )


# --- Rollouts and drains -----------------------------------------------------------------------


@rule("gpu-rollout")
def gpu_rollout(docs: list[Doc]) -> Iterator[Violation]:
    for workload in of_kind(docs, "Deployment"):
        if not gpu_limit(workload):
            continue
        strategy = workload["spec"].get("strategy", {})
        surge = strategy.get("rollingUpdate", {}).get("maxSurge", "25%")
        if strategy.get("type") != "Recreate" and surge not in (0, "0%"):
            yield Violation(
                "gpu-rollout", name(workload), f"maxSurge {surge}: the surge pod needs a spare GPU"
            )
        for c in containers(workload, init=False):
            if GPU not in c.get("resources", {}).get("limits", {}):
                continue
            env = {item["name"]: item.get("value") for item in c.get("env", [])}
            cache = env.get("CUDA_CACHE_PATH")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
            if cache is None or "emptyDir" not in volumes.get(mounts.get(cache, ""), {}):
                yield Violation(
                    "gpu-rollout", name(workload), "CUDA_CACHE_PATH is not on an emptyDir"
                )
            limit = MEMORY.match(str(c["resources"].get("limits", {}).get("memory", "")))
            gib = int(limit[1]) / (1024 if limit[2] == "Mi" else 1) if limit else 0
            if gib < GPU_MEMORY_GI:
                yield Violation(
                    "gpu-rollout", name(workload), f"memory limit {gib:g} Gi is sized for a CPU pod"
                )


@rule("runtime-drain")
def runtime_drain(docs: list[Doc]) -> Iterator[Violation]:
    for workload in of_kind(docs, "Deployment"):
        if not pod_labels(workload).items() >= RUNTIME.items():
            continue
        pod = pod_spec(workload)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for c in containers(workload, init=False):
            command = c.get("command", [])
            under_init = bool(command) and command[0].rsplit("/", 1)[-1] in ("tini", "dumb-init")
            if not (pod.get("shareProcessNamespace") or under_init):
                yield Violation(
                    "runtime-drain",
                    name(workload),
                    "the server is PID 1 (ignores SIGTERM): shareProcessNamespace or an init",
                )
            hook = c.get("lifecycle", {}).get("preStop", {})
            if not hook:
                yield Violation("runtime-drain", name(workload), "no preStop hook")
                continue
            pause = sum(
                int(n) for n in SLEEP.findall(" ".join(hook.get("exec", {}).get("command", [])))
            )
            pause += hook.get("sleep", {}).get("seconds", 0)
            if grace <= pause:
                yield Violation(
                    "runtime-drain",
                    name(workload),
                    f"terminationGracePeriodSeconds {grace} does not outlast the {pause} s preStop",
                )
