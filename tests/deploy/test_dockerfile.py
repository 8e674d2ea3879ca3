"""deploy/gateway/Dockerfile and the build context .dockerignore leaves it.

hadolint lints both Dockerfiles; the Docker SDK's own .dockerignore matcher lists the build
context; the image's pip steps run here in a scratch copy of that context (pip decides what the
image would install); the HEALTHCHECK command runs against real gateways.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path

from docker.utils.build import exclude_paths

from deploy.devtools import require_tool
from deploy.local.process import free_port
from deploy.local.stack import StackPorts
from gateway.app import Gateway
from gateway.config import load_config, parse_config
from tests.deploy.helpers import DEPLOY, REPO, run
from tests.support.stack import backends_config, gateway_config, running_gateway
from tests.support.tls import self_signed

DOCKERFILE = DEPLOY / "gateway" / "Dockerfile"
DOCKERFILES = (DOCKERFILE, DEPLOY / "model-store" / "Dockerfile")
# Packages that must never end up in the gateway's image.
RUNTIME_ONLY = {"tensorflow", "torch", "tensorflow-serving-api", "torchserve", "keras", "jax"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_hadolint_finds_nothing():
    hadolint = require_tool("hadolint")
    for path in DOCKERFILES:
        result = run([hadolint, "--format", "json", str(path)])
        assert json.loads(result.stdout or "[]") == [], result.stdout
        assert result.returncode == 0, result.stderr


def test_hadolint_really_lints(tmp_path):
    """The same call flags pip's cache kept in a layer, and an unpinned package."""
    bad = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text()
    assert "--no-cache-dir " in text
    bad.write_text(text.replace("--no-cache-dir ", "") + "RUN pip install requests\n")
    result = run([require_tool("hadolint"), "--format", "json", str(bad)])
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3042", "DL3013"} <= codes, codes
    assert result.returncode != 0


def test_no_hadolint_rule_is_ignored_without_a_reason():
    for path in DOCKERFILES:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if "hadolint ignore" in line:
                reason = lines[number - 1].strip() if number else ""
                where = f"{path}:{number + 1}: say on the line above why the rule does not apply"
                assert reason.startswith("#"), where
                assert "hadolint" not in reason, where
    assert not (REPO / ".hadolint.yaml").exists()
    assert not (REPO / ".hadolint.yml").exists()


def test_image_is_multi_stage_slim_non_root_and_health_checked():
    steps = instructions(DOCKERFILE)
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) >= 2
    assert all(re.fullmatch(r"\$\{PYTHON_IMAGE\} AS \w+", stage) for stage in stages)
    (base,) = [args for word, args in steps if word == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", base)
    final = dict(final_stage(DOCKERFILE))
    assert re.fullmatch(r"[1-9]\d*:\d+", final["USER"]), "a numeric, non-root USER"
    assert final["EXPOSE"].split() == ["8000", "8001"]
    assert final["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(final["ENTRYPOINT"]) == ["gateway"]
    assert json.loads(final["CMD"]) == ["serve", "--config", "/etc/gateway/gateway.yaml"]
    assert "/v2/health/ready" in final["HEALTHCHECK"]
    # The worker count comes from GATEWAY_SERVER__WORKERS at run time, not from the image.
    assert "GATEWAY_SERVER__WORKERS" not in final.get("ENV", "")


def test_build_context_holds_only_what_the_image_needs():
    context = set(exclude_paths(str(REPO), dockerignore_patterns(), "deploy/gateway/Dockerfile"))
    for left_out in (".venv", ".run", "model_store", "tests", ".git", "deploy/local", "build"):
        assert not any(p == left_out or p.startswith(left_out + "/") for p in context), left_out
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in context)
    for word, args in instructions(DOCKERFILE):
        if word == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                assert source in context, f"COPY {source}: not in the build context"
    assert "gateway/py.typed" in context
    size = sum((REPO / p).stat().st_size for p in context if (REPO / p).is_file())
    assert size < 2 * 1024 * 1024, f"build context is {size} bytes"


def test_image_installs_the_gateway_and_only_its_pinned_runtime_dependencies(tmp_path):
    """The build stage's two pip steps, run on a copy of the build context."""
    context = tmp_path / "context"
    for path in exclude_paths(str(REPO), dockerignore_patterns(), "deploy/gateway/Dockerfile"):
        source = REPO / path
        if source.is_file():
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / path)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = run(
        [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), "."], cwd=context
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("gateway-*.whl")
    report = tmp_path / "report.json"
    resolved = run(
        [
            *pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--constraint",
            str(context / "requirements.lock"),
            str(wheel),
        ]
    )
    assert resolved.returncode == 0, resolved.stderr
    installs = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert "gateway" in installs
    assert not RUNTIME_ONLY & set(installs), RUNTIME_ONLY & set(installs)
    assert not {"pytest", "mypy", "ruff", "locust", "tritonclient"} & set(installs)
    locked = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            locked[name.lower().replace("_", "-")] = version
    for name, version in installs.items():
        if name != "gateway":
            assert locked.get(name) == version.split("+")[0], f"{name} {version} is not locked"


def test_healthcheck_passes_only_when_the_gateway_is_ready(gateway_url, backends, tmp_path):
    (command,) = [args for word, args in final_stage(DOCKERFILE) if word == "HEALTHCHECK"]
    argv = json.loads(command[command.index("CMD") + 3 :].strip())
    assert argv[0] == "python"
    argv[0] = sys.executable

    def check(port: int) -> int:
        env = {"GATEWAY_SERVER__HTTP__PORT": str(port), "PATH": "/usr/bin:/bin"}
        return run(argv, env=env).returncode

    assert check(int(gateway_url.rsplit(":", 1)[1])) == 0
    assert check(free_port()) != 0
    # Live but not ready: its only backend is a closed port.
    closed = f"http://127.0.0.1:{free_port()}"
    backends_down = backends_config(
        backends,
        torchserve={"inference": closed, "management": closed},
    )
    models = {
        "digits": {
            "variants": [{"name": "torch-v1", "backend": "torchserve", "version": 1, "weight": 1}]
        }
    }
    config = gateway_config(backends, models=models, backends=backends_down)
    with running_gateway(tmp_path, config, ready_path="/v2/health/live") as url:
        assert check(int(url.rsplit(":", 1)[1])) == 1


def test_healthcheck_speaks_tls_when_the_gateway_does(backends, tmp_path):
    """With GATEWAY_SERVER__TLS__CERT_FILE set (docker-compose.tls.yml sets it), the image's
    check asks over HTTPS; plaintext against a TLS port fails, as it should."""
    (command,) = [args for word, args in final_stage(DOCKERFILE) if word == "HEALTHCHECK"]
    argv = [sys.executable, *json.loads(command[command.index("CMD") + 3 :].strip())[1:]]
    cert, key = self_signed(tmp_path)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    config = parse_config(gateway_config(backends, tls=tls))

    async def scenario() -> tuple[int, int]:
        gateway = Gateway(config)
        await gateway.start()
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while not gateway.readiness.server_ready():
                assert asyncio.get_running_loop().time() < deadline, "gateway never ready"
                await asyncio.sleep(0.1)
            env = {"GATEWAY_SERVER__HTTP__PORT": str(gateway.http_port), "PATH": "/usr/bin:/bin"}
            codes = []
            for extra in ({"GATEWAY_SERVER__TLS__CERT_FILE": str(cert)}, {}):
                process = await asyncio.create_subprocess_exec(*argv, env={**env, **extra})
                codes.append(await asyncio.wait_for(process.wait(), 30))
            return codes[0], codes[1]
        finally:
            await gateway.stop()

    over_tls, plaintext = asyncio.run(scenario())
    assert over_tls == 0
    assert plaintext != 0


def test_default_port_is_the_compose_config_port(backends: StackPorts):
    """Without GATEWAY_SERVER__HTTP__PORT the check asks port 8000: the image's config's port."""
    assert load_config(DEPLOY / "compose" / "gateway.yaml").server.http.port == 8000
    (command,) = [args for word, args in final_stage(DOCKERFILE) if word == "HEALTHCHECK"]
    assert "'GATEWAY_SERVER__HTTP__PORT', '8000'" in command
