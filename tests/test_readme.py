"""The README's examples run as written, against a gateway in front of the real backends.

Every fenced block says what it is in its info string, and nothing is skipped silently:

- ``sh`` blocks run with bash (``-e -o pipefail``), ``python`` blocks with this venv's python;
- ``yaml`` blocks are gateway configs, and must validate;
- ``text`` blocks (sample output, diagrams) are not run, nor are blocks marked ``no-run: why``;
- any other info string, or none, fails ``test_every_block_says_what_it_is``.

Each block runs in a scratch directory holding a link to every top-level entry of the repository
(so "from the repository root" holds, and files an example writes stay out of the checkout),
with ``.venv/bin`` first on ``PATH``, as ``source .venv/bin/activate`` leaves it. What is
rewritten, and nothing else: the documented gateway ports, ``localhost:8000`` /
``127.0.0.1:8000`` (HTTP) and ``:8001`` (gRPC), become the test gateway's free ports. And
``curl`` runs as ``curl --fail-with-body`` (a bash function before the block), so an HTTP error
fails the block instead of printing an error body.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deploy.local.process import free_port
from deploy.local.stack import StackPorts
from gateway.config import parse_config
from tests.support.stack import gateway_config, running_gateway

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RUN = {"sh", "python"}
KINDS = RUN | {"yaml", "text"}
NO_RUN = "no-run"
FENCE = re.compile(r"^```(.*)$")
CURL_FAILS_ON_HTTP_ERRORS = 'curl() { command curl --fail-with-body "$@"; }\n'


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, from 1
    info: str
    code: str

    @property
    def kind(self) -> str:
        return self.info.split(maxsplit=1)[0] if self.info else ""

    @property
    def runs(self) -> bool:
        return self.kind in RUN and not self.info.removeprefix(self.kind).strip().startswith(NO_RUN)


def blocks(text: str) -> list[Block]:
    found, opened, lines = [], None, text.splitlines()
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if fence is None:
            continue
        if opened is None:
            opened = (number, fence.group(1).strip())
        else:
            start, info = opened
            found.append(Block(start, info, "\n".join(lines[start : number - 1]) + "\n"))
            opened = None
    assert opened is None, f"README.md:{opened[0]}: a fence is never closed"
    return found


BLOCKS = blocks(README.read_text())


def test_every_block_says_what_it_is():
    unknown = [f"README.md:{b.line}: {b.info!r}" for b in BLOCKS if b.kind not in KINDS]
    assert not unknown, f"mark each block sh, python, yaml, text, or `{NO_RUN}: why`: {unknown}"
    assert sum(b.runs for b in BLOCKS) >= 4  # the venv, curl, tritonclient, TF Serving's stub


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.kind == "yaml"], ids=lambda b: f"line {b.line}"
)
def test_yaml_blocks_are_configs_the_gateway_accepts(block):
    config = parse_config(yaml.safe_load(block.code))
    assert config.models


def test_the_configuration_example_is_the_demos_split():
    section = README.read_text().split("## Configuration", 1)[1]
    block = next(b for b in blocks(section) if b.kind == "yaml")
    config = parse_config(yaml.safe_load(block.code))
    assert {"tfserving", "torchserve", "triton"} <= set(config.backends)
    assert [v.weight for v in config.models["digits"].variants] == [40, 40, 10, 10]


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int


@pytest.fixture(scope="module")
def readme_gateway(
    backends: StackPorts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ports]:
    """The demo's split (labels stable and canary) with both front ends, on free ports."""
    grpc_port = free_port()
    config = gateway_config(backends, grpc={"host": "127.0.0.1", "port": grpc_port})
    with running_gateway(tmp_path_factory.mktemp("readme-gateway"), config):
        yield Ports(config["server"]["http"]["port"], grpc_port)


def with_test_ports(code: str, ports: Ports) -> str:
    code = re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", rf"\g<1>:{ports.http}", code)
    return re.sub(r"\b(localhost|127\.0\.0\.1):8001\b", rf"\g<1>:{ports.grpc}", code)


def scratch_root(path: Path) -> Path:
    """A directory that looks like the repository root but keeps what is written in it."""
    path.mkdir()
    for entry in REPO.iterdir():
        if entry.name != ".git":
            (path / entry.name).symlink_to(entry)
    return path


@pytest.mark.stack
@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.runs], ids=lambda b: f"{b.kind} line {b.line}"
)
def test_readme_examples_run_as_written(block, readme_gateway, tmp_path):
    code = with_test_ports(block.code, readme_gateway)
    if block.kind == "sh":
        command = ["bash", "-e", "-o", "pipefail", "-c", CURL_FAILS_ON_HTTP_ERRORS + code]
    else:
        command = [sys.executable, "-c", code]
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        command, cwd=scratch_root(tmp_path / "root"), env=env,
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, (
        f"README.md:{block.line}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    )
    if block.kind == "python":
        assert run.stdout.strip().endswith("[9]"), run.stdout  # the digit the README sends
