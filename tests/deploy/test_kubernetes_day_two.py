"""deploy/k8s on day two: rollouts, drains, high availability, autoscaling on the gateway's own
metrics, TLS and alerting, read from kustomize's renderings (the general rules, for every
rendering, are in test_policy.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from gateway.config import load_config
from tests.deploy.helpers import (
    COMPONENTS,
    DEPLOY,
    alertmanager_target,
    by_kind,
    configmap_file,
    container,
    kustomize,
    kustomize_composition,
    metric_names,
    run,
    volume_for,
)

RUNTIMES = ("tfserving", "torchserve", "triton")
# The runtimes the gateway calls over gRPC (Triton over REST until the OIP gRPC backend).
GRPC_RUNTIMES = ("tfserving", "torchserve")
K8S = DEPLOY / "k8s"
SLEEP = re.compile(r"\bsleep (\d+)")


@pytest.fixture(scope="module")
def renderings() -> dict[str, list[dict[str, Any]]]:
    found = {overlay: kustomize(overlay) for overlay in ("gpu", "cpu", "ha")}
    found["all"] = kustomize_composition("ha", COMPONENTS[1:])
    return found


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return by_kind(docs, "Deployment")


def prestop_pause_s(deployment: dict[str, Any]) -> int:
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    (seconds,) = SLEEP.findall(" ".join(command))
    return int(seconds)


def test_runtimes_surge_on_cpu_nodes_and_never_on_gpu_nodes(renderings):
    for overlay, surge, unavailable in (("cpu", 1, 0), ("gpu", 0, 1), ("ha", 0, 1)):
        for runtime in RUNTIMES:
            strategy = deployments(renderings[overlay])[runtime]["spec"]["strategy"]
            assert strategy["type"] == "RollingUpdate"
            assert strategy["rollingUpdate"] == {"maxSurge": surge, "maxUnavailable": unavailable}


def test_gpu_runtimes_get_gpu_sized_memory_and_a_cuda_cache(renderings):
    for runtime in RUNTIMES:
        gpu, cpu = (container(deployments(renderings[o])[runtime]) for o in ("gpu", "cpu"))
        assert gpu["resources"]["limits"]["memory"] == "8Gi"
        assert cpu["resources"]["limits"]["memory"] in ("2Gi", "4Gi")
        env = {item["name"]: item["value"] for item in gpu["env"]}
        cache = volume_for(deployments(renderings["gpu"])[runtime], env["CUDA_CACHE_PATH"])
        assert "emptyDir" in cache
        assert int(env["CUDA_CACHE_MAXSIZE"]) <= _bytes(cache["emptyDir"]["sizeLimit"])
    kustomization = (K8S / "overlays" / "gpu" / "kustomization.yaml").read_text()
    assert "driver 580 or newer" in kustomization  # Triton 26.08: CUDA 13


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** (2 if unit == "Mi" else 3)


def test_tfserving_connections_age_out_before_its_prestop_pause_ends(renderings):
    tfserving = deployments(renderings["gpu"])["tfserving"]
    (arguments,) = [
        arg.split("=", 1)[1]
        for arg in container(tfserving)["args"]
        if arg.startswith("--grpc_channel_arguments=")
    ]
    options = dict(item.split("=") for item in arguments.split(","))
    age_s = int(options["grpc.max_connection_age_ms"]) / 1000
    grace_s = int(options["grpc.max_connection_age_grace_ms"]) / 1000
    # gRPC jitters the age by up to 10%; the gateway re-resolves within 5 s of a GOAWAY
    # (grpc.dns_min_time_between_resolutions_ms in its channel options).
    from gateway.backends.tfserving_grpc import channel_options

    resolve_s = dict(channel_options(1024))["grpc.dns_min_time_between_resolutions_ms"] / 1000
    pause = prestop_pause_s(tfserving)
    assert age_s * 1.1 + grace_s + resolve_s <= pause
    assert tfserving["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pause


def test_torchserve_stops_gracefully_and_runs_read_only_as_its_image_user(renderings):
    torchserve = deployments(renderings["gpu"])["torchserve"]
    pod = torchserve["spec"]["template"]["spec"]
    main = container(torchserve)
    assert pod["shareProcessNamespace"] is True
    assert pod["securityContext"]["runAsUser"] == 1000  # model-server in pytorch/torchserve
    (hook,) = main["lifecycle"]["preStop"]["exec"]["command"][2:]
    assert hook.endswith("torchserve --stop --foreground")
    # The launcher's own stop waits up to 60 s for the Java frontend.
    assert pod["terminationGracePeriodSeconds"] >= prestop_pause_s(torchserve) + 60
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    env = {item["name"]: item["value"] for item in main["env"]}
    # Everything TorchServe writes lands on an emptyDir: $TEMP (the image's), /tmp, its logs,
    # its working directory (key_file.json once token authorization is on).
    for path in ("/home/model-server/tmp", "/tmp", env["LOG_LOCATION"], main["workingDir"]):
        assert "emptyDir" in volume_for(torchserve, path), path
    assert env["METRICS_LOCATION"] == env["LOG_LOCATION"]


def test_triton_drains_within_its_grace_period_as_its_image_user(renderings):
    triton = deployments(renderings["gpu"])["triton"]
    pod = triton["spec"]["template"]["spec"]
    main = container(triton)
    (exit_timeout,) = [
        int(arg.split("=", 1)[1]) for arg in main["args"] if arg.startswith("--exit-timeout-secs=")
    ]
    # The endpoint removal pause, then Triton's own drain of the requests in flight.
    assert pod["terminationGracePeriodSeconds"] > prestop_pause_s(triton) + exit_timeout
    assert pod["securityContext"]["runAsUser"] == 1000  # triton-server in tritonserver images
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volume_for(triton, "/tmp")


def test_ha_runs_two_spread_replicas_of_each_runtime_with_budgets(renderings):
    docs = renderings["ha"]
    budgets = by_kind(docs, "PodDisruptionBudget")
    for runtime in RUNTIMES:
        deployment = deployments(docs)[runtime]
        assert deployment["spec"]["replicas"] == 2
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        for constraint in spread:
            assert constraint["matchLabelKeys"] == ["app.kubernetes.io/name"]
        assert budgets[runtime]["spec"] == {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": runtime}},
        }
    for overlay in ("gpu", "cpu"):
        for runtime in RUNTIMES:
            assert deployments(renderings[overlay])[runtime]["spec"]["replicas"] == 1


def test_ha_gateway_balances_grpc_over_headless_services(renderings, monkeypatch):
    docs = renderings["ha"]
    gateway = deployments(docs)["gateway"]
    for item in container(gateway)["env"]:
        monkeypatch.setenv(item["name"], item["value"])
    text = configmap_file(docs, volume_for(gateway, "/etc/gateway"), "gateway.yaml")
    path = K8S / "base" / "gateway" / "gateway.yaml"
    assert text == path.read_text()
    config = load_config(path)  # the file, with the pod's environment on top
    services = by_kind(docs, "Service")
    for name in GRPC_RUNTIMES:
        backend = config.backends[name]
        assert backend.grpc_load_balancing == "round_robin"
        host, port = backend.grpc.split(":")  # type: ignore[union-attr]
        headless = services[host]
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["selector"] == {"app.kubernetes.io/name": name}
        assert int(port) in {p["port"] for p in headless["spec"]["ports"]}
    # Without the component: one ClusterIP Service each, pick_first.
    for overlay in ("gpu", "cpu"):
        assert not [s for s in by_kind(renderings[overlay], "Service") if "headless" in s]


def test_autoscaling_on_requests_keeps_cpu_as_the_fallback(renderings):
    hpa = by_kind(renderings["all"], "HorizontalPodAutoscaler")["gateway"]
    kinds = {metric["type"]: metric for metric in hpa["spec"]["metrics"]}
    assert set(kinds) == {"Pods", "Resource"}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    pods = kinds["Pods"]["pods"]
    assert pods["target"]["type"] == "AverageValue"
    (rule,) = adapter_rules()
    assert pods["metric"]["name"] == rule["name"]["as"]
    for overlay in ("gpu", "cpu", "ha"):
        (metric,) = by_kind(renderings[overlay], "HorizontalPodAutoscaler")["gateway"]["spec"][
            "metrics"
        ]
        assert metric["type"] == "Resource", "without prometheus-adapter, CPU alone"


def adapter_rules() -> list[dict[str, Any]]:
    path = K8S / "components" / "autoscale-on-requests" / "prometheus-adapter-values.yaml"
    rules: list[dict[str, Any]] = yaml.safe_load(path.read_text())["rules"]["custom"]
    return rules


def test_prometheus_adapter_rule_gives_each_pods_request_rate(tmp_path):
    """The rule's metricsQuery, filled in as prometheus-adapter fills it for a pods query,
    evaluated by promtool against known counters: requests per second per gateway pod."""
    from deploy.devtools import require_tool

    (rule,) = adapter_rules()
    assert metric_names(rule["seriesQuery"]) == {"gateway_requests_total"}
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    query = (
        rule["metricsQuery"]
        .replace("<<.Series>>", "gateway_requests_total")
        .replace("<<.LabelMatchers>>", 'namespace="gateway",pod=~"gateway-a|gateway-b"')
        .replace("<<.GroupBy>>", "pod")
    )
    assert "<<" not in query
    series = 'gateway_requests_total{{namespace="{ns}",pod="{pod}",code="{code}"}}'
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # 10 + 1 req/s on pod a (a 4xx counts: it cost the gateway the same).
                    {
                        "series": series.format(ns="gateway", pod="gateway-a", code="200"),
                        "values": "0+600x10",
                    },
                    {
                        "series": series.format(ns="gateway", pod="gateway-a", code="400"),
                        "values": "0+60x10",
                    },
                    {
                        "series": series.format(ns="gateway", pod="gateway-b", code="200"),
                        "values": "0+1200x10",
                    },
                    # Another namespace's pod of the same name is not ours.
                    {
                        "series": series.format(ns="other", pod="gateway-a", code="200"),
                        "values": "0+6000x10",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": query,
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": '{pod="gateway-a"}', "value": 11},
                            {"labels": '{pod="gateway-b"}', "value": 20},
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "adapter.test.yml").write_text(yaml.safe_dump(test))
    result = run([require_tool("promtool"), "test", "rules", "adapter.test.yml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tls_component_serves_the_secret_and_probes_over_https(renderings):
    docs = renderings["all"]
    gateway = deployments(docs)["gateway"]
    main = container(gateway)
    env = {item["name"]: item["value"] for item in main["env"]}
    for key in ("GATEWAY_SERVER__TLS__CERT_FILE", "GATEWAY_SERVER__TLS__KEY_FILE"):
        volume = volume_for(gateway, env[key].rsplit("/", 1)[0])
        assert volume["secret"]["secretName"] == "gateway-tls"
        assert volume["readOnly"]
    assert env["GATEWAY_SERVER__TLS__CERT_FILE"].endswith("/tls.crt")  # kubernetes.io/tls keys
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert main[probe]["httpGet"]["scheme"] == "HTTPS"
    annotations = gateway["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scheme"] == "https"
    (grpc_port,) = [
        p for p in by_kind(docs, "Service")["gateway"]["spec"]["ports"] if p["name"] == "grpc"
    ]
    assert "appProtocol" not in grpc_port
    plain = container(deployments(renderings["gpu"])["gateway"])
    assert "scheme" not in plain["readinessProbe"]["httpGet"]


def test_prometheus_in_the_cluster_sends_alerts_to_the_alertmanager(renderings):
    docs = renderings["gpu"]
    host, port = alertmanager_target("kubernetes.yml")
    service, namespace, suffix = host.split(".")
    assert (namespace, suffix) == ("gateway", "svc")
    assert port in {p["port"] for p in by_kind(docs, "Service")[service]["spec"]["ports"]}
    alertmanager = deployments(docs)["alertmanager"]
    args = container(alertmanager)["args"]
    (config_file,) = [a.split("=", 1)[1] for a in args if a.startswith("--config.file=")]
    directory, filename = config_file.rsplit("/", 1)
    text = configmap_file(docs, volume_for(alertmanager, directory), filename)
    assert text == (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    # Its data directory is writable (an emptyDir) under a read-only root.
    (storage,) = [a.split("=", 1)[1] for a in args if a.startswith("--storage.path=")]
    assert "emptyDir" in volume_for(alertmanager, storage)


def test_every_component_renders_to_valid_manifests(renderings):
    """The schema check of test_kubernetes.py, on the ha overlay with every component."""
    import kubernetes_validate  # type: ignore[import-untyped]

    from tests.deploy.test_kubernetes import KUBERNETES_VERSIONS

    for version in KUBERNETES_VERSIONS:
        for doc in renderings["all"]:
            kubernetes_validate.validate(doc, version, strict=True)
