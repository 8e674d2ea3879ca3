"""Shared by the deploy checks: the repository's deploy files, the real tools that read them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from deploy.devtools import find_kubectl, require_tool
from gateway.config import (
    GatewayConfig,
    OipBackendConfig,
    TFServingBackendConfig,
    TorchServeBackendConfig,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_GPU = ("docker-compose.yml",)
COMPOSE_CPU = ("docker-compose.yml", "docker-compose.cpu.yml")
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gateway.json"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
OVERLAYS = ("gpu", "cpu", "ha")
COMPONENTS = ("ha", "autoscale-on-requests", "tls")

# Variables the compose files read; the checks use the defaults written in the files.
COMPOSE_VARIABLES = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
UNITS_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, **kwargs)


def compose_environment() -> dict[str, str]:
    """This process' environment minus every variable the compose files interpolate."""
    names: set[str] = set()
    for path in REPO.glob("docker-compose*.yml"):
        names.update(COMPOSE_VARIABLES.findall(path.read_text()))
    return {key: value for key, value in os.environ.items() if key not in names}


def nanoseconds(duration: str) -> int:
    """A Go duration as Docker Compose prints it (``2m0s``, ``10s``) in nanoseconds."""
    parts = DURATION.findall(duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(int(float(number) * UNITS_NS[unit]) for number, unit in parts)


def compose_config(files: Sequence[str], project_dir: Path = REPO) -> dict[str, Any]:
    """The model Docker Compose itself builds from these files (``docker-compose config``)."""
    argv = [require_tool("docker-compose"), "--project-directory", str(project_dir)]
    for name in files:
        argv += ["-f", str(project_dir / name)]
    result = run([*argv, "config", "--format", "json"], env=compose_environment())
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def unescape_compose(text: str) -> str:
    """Compose writes a literal ``$`` as ``$$``, in its files and in the config it prints."""
    return text.replace("$$", "$")


def kustomize(overlay: str) -> list[dict[str, Any]]:
    """The documents ``kubectl kustomize`` renders from an overlay's name, or a directory."""
    kubectl = find_kubectl()
    assert kubectl is not None, "no kubectl with kustomize v5: run `make tools`"
    directory = overlay if "/" in overlay else str(DEPLOY / "k8s" / "overlays" / overlay)
    result = run([kubectl, "kustomize", directory])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kustomize_composition(overlay: str, components: Sequence[str]) -> list[dict[str, Any]]:
    """An overlay with extra components, as a user's own kustomization would combine them."""
    k8s = DEPLOY / "k8s"
    with tempfile.TemporaryDirectory() as tmp:
        # kustomize takes relative paths only, and resolves them from the kustomization.
        up = os.path.relpath(k8s, tmp)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [f"{up}/overlays/{overlay}"],
            "components": [f"{up}/components/{name}" for name in components],
        }
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return kustomize(tmp)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container(deployment: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    name = name or deployment["metadata"]["name"]
    (found,) = [c for c in containers if c["name"] == name]
    return dict(found)


def volume_for(
    deployment: dict[str, Any], mount_path: str, of: str | None = None
) -> dict[str, Any]:
    pod = deployment["spec"]["template"]["spec"]
    (mount,) = [
        m for m in container(deployment, of)["volumeMounts"] if m["mountPath"] == mount_path
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return {**volume, "readOnly": mount.get("readOnly", False)}


def configmap_file(docs: list[dict[str, Any]], volume: dict[str, Any], key: str) -> str:
    configmaps = by_kind(docs, "ConfigMap")
    text: str = configmaps[volume["configMap"]["name"]]["data"][key]
    return text


def alertmanager_target(prometheus_config: str) -> tuple[str, int]:
    """``(host, port)`` of the one Alertmanager a Prometheus config in deploy/prometheus names."""
    config = yaml.safe_load((DEPLOY / "prometheus" / prometheus_config).read_text())
    ((target,),) = [
        static["targets"]
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
    ]
    host, port = target.split(":")
    return host, int(port)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


# Grafana fills these in before Prometheus sees a query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "${model}": "digits",
    "$model": "digits",
    # "All" of the multi-value backend (runtime) variable: its allValue.
    "${backend}": ".*",
    "$backend": ".*",
}
# Metric-name prefixes of the runtimes' own exporters, which the dashboard also queries.
RUNTIME_EXPORTERS = {
    ":tensorflow:serving:": "tfserving",
    "ts_": "torchserve",
    "nv_": "triton",
}


def dashboard_queries(board: dict[str, Any], **values: str) -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every target, with Grafana's variables substituted."""
    return [
        (panel["title"], substitute(target["expr"], **values))
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, **values: str) -> str:
    """A query as Grafana sends it: its variables filled in (``values`` overriding defaults)."""
    substitutions = {**GRAFANA_VARIABLES, **{f"${name}": value for name, value in values.items()}}
    for variable, value in sorted(substitutions.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    return expr


def recorded_names() -> set[str]:
    names: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def alert_names() -> set[str]:
    names: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["alert"] for rule in group["rules"] if "alert" in rule)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, from its syntax tree."""
    return _names(promql_parser.parse(expr))


def _names(node: Any) -> set[str]:
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            return {node.name}
        return {m.value for m in node.matchers.matchers if m.name == "__name__"}
    if isinstance(node, promql_parser.MatrixSelector):
        return _names(node.vector_selector)
    if isinstance(node, promql_parser.BinaryExpr):
        return _names(node.lhs) | _names(node.rhs)
    if isinstance(node, promql_parser.AggregateExpr):
        return _names(node.expr) | (_names(node.param) if node.param is not None else set())
    if isinstance(node, promql_parser.Call):
        return set().union(*(_names(arg) for arg in node.args))
    if isinstance(
        node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
    ):
        return _names(node.expr)
    return set()  # number and string literals


def backend_addresses(config: GatewayConfig) -> list[str]:
    """Every address a config's backends point at (for TF Serving and TorchServe, all must be
    set)."""
    addresses: list[str | None] = []
    for backend in config.backends.values():
        if isinstance(backend, TFServingBackendConfig):
            addresses += [backend.grpc, backend.rest]
        elif isinstance(backend, OipBackendConfig):
            addresses += [backend.url]
        else:
            assert isinstance(backend, TorchServeBackendConfig)
            addresses += [backend.inference, backend.management, backend.grpc]
    assert None not in addresses, addresses
    return [address for address in addresses if address is not None]
