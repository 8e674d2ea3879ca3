"""What both demos do with the running stack: check it is up, deploy a version, walk a rollout
to its end while printing the timeline, and put the model back as it was.

The demos drive only the stack's public interfaces: the gateway's admin API (``AdminClient``),
``gateway deploy`` (a subprocess, as a user types it), the rollout controller's HTTP API, and the
gateway's client ports (``load``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.local.demos.controller_api import ControllerApi, ControllerError
from deploy.local.demos.load import BackgroundLoad, Catalog
from deploy.local.demos.outcome import Check, verdict
from deploy.local.demos.timeline import Timeline
from deploy.local.demos.ways import all_ways
from deploy.local.process import http_ok
from gateway.config import load_config
from gateway.rollout import actuator
from gateway.rollout.admin_client import AdminClient, AdminError
from gateway.rollout.state import Action, Rollout, ShadowTarget, Target, VariantState

REPO = Path(__file__).resolve().parents[3]
PLANS = Path(__file__).resolve().parent
MODEL = "digits"
POLL_S = 0.5


@dataclass(frozen=True)
class Stack:
    host: str
    http_port: int
    grpc_port: int
    controller_url: str
    admin_url: str
    token: str | None

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


def read_token(token_file: Path | None) -> str | None:
    """GATEWAY_ADMIN_TOKEN, else the local stack's token file."""
    token = os.environ.get("GATEWAY_ADMIN_TOKEN", "").strip()
    if not token and token_file is not None and token_file.exists():
        token = token_file.read_text().strip()
    return token or None


def local_stack(config_path: Path, controller_url: str, admin_url: str, token: str | None) -> Stack:
    server = load_config(config_path).server
    if server.grpc is None:
        raise SystemExit(f"{config_path}: the demos need the gateway's gRPC port (server.grpc)")
    return Stack(
        server.http.host, server.http.port, server.grpc.port, controller_url, admin_url, token
    )


def load_plan(name: str, skip_shadow: bool = False) -> dict[str, Any]:
    """A demo plan file of this directory, as the controller's API takes it; ``skip_shadow``
    leaves its shadow steps out (``gateway rollout start --skip-shadow``), for a gateway
    without shadow traffic."""
    doc = yaml.safe_load((PLANS / name).read_text())
    assert isinstance(doc, dict)
    if skip_shadow:
        doc["steps"] = [step for step in doc["steps"] if step.get("kind") != "shadow"]
    return doc


Deployer = Callable[[str, str], tuple[bool, str]]


def gateway_deploy(stack: Stack) -> Deployer:
    """``gateway deploy MODEL --version V`` as a user runs it (the admin token in its env)."""

    def deploy(model: str, version: str) -> tuple[bool, str]:
        env = {**os.environ, **({"GATEWAY_ADMIN_TOKEN": stack.token} if stack.token else {})}
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "deploy", model, "--version", version],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        return done.returncode == 0, (done.stdout + done.stderr).strip()

    return deploy


class Demo:
    def __init__(
        self,
        stack: Stack,
        write: Callable[[str], None] = print,
        deployer: Deployer | None = None,
        rollout_timeout_s: float = 240.0,
    ) -> None:
        self.stack = stack
        self.admin = AdminClient(stack.admin_url, stack.token)
        self.controller = ControllerApi(stack.controller_url, stack.token)
        self.timeline = Timeline(time.time(), write)
        self.write = write
        self._deploy = deployer or gateway_deploy(stack)
        self._rollout_timeout_s = rollout_timeout_s

    def preflight(self) -> list[str]:
        """What is missing for the demo to run (empty: nothing)."""
        missing = []
        if not http_ok(f"{self.stack.gateway_url}/v2/health/ready"):
            missing.append(f"the gateway is not ready at {self.stack.gateway_url} (make up)")
        if not self.controller.healthy():
            missing.append(f"no rollout controller at {self.stack.controller_url} (make up)")
        try:
            self.admin.variants(MODEL)
        except AdminError as error:
            missing.append(f"the gateway's admin API at {self.stack.admin_url}: {error}")
        if not self.stack.token:
            missing.append("no admin token: set GATEWAY_ADMIN_TOKEN (make up writes one)")
        return missing

    def load(self, rate: float, max_seconds: float) -> BackgroundLoad:
        stack = self.stack
        ways = all_ways(stack.host, stack.http_port, stack.grpc_port)
        catalog = Catalog.of_gateway(stack.gateway_url, MODEL)
        return BackgroundLoad(
            ways, catalog, rate=rate, max_seconds=max_seconds, started=self.timeline.started
        )

    def say(self, text: str) -> None:
        self.timeline.say(time.time(), text)

    def deploy(self, version: str) -> list[str]:
        """Deploy ``version`` (both runtimes, weight 0); its variants' names."""
        self.say(f"deploy      gateway deploy {MODEL} --version {version}")
        ok, output = self._deploy(MODEL, version)
        for line in output.splitlines()[-6:]:
            self.write(f"{'':>20}{line}")
        if not ok:
            raise DemoError(f"gateway deploy {MODEL} --version {version} failed")
        try:
            variants, _ = self.admin.variants(MODEL)
        except AdminError as error:
            raise DemoError(str(error)) from None
        names = [v.name for v in variants if v.version == version]
        if not names:
            raise DemoError(f"after the deploy, {MODEL} has no variant of version {version}")
        shown = ", ".join(f"{v.name} ({v.backend}, weight {v.weight})" for v in variants
                          if v.version == version)  # fmt: skip
        self.say(f"deployed    {shown}")
        return names

    def finish_leftover(self) -> None:
        """Abort a rollout of the model left under way (a demo interrupted earlier)."""
        try:
            rollout = self.controller.get(MODEL)
        except ControllerError:
            return  # none yet
        if not rollout.finished:
            self.say(f"abort       a rollout left under way ({rollout.phase})")
            try:
                self.wait(self.controller.command(MODEL, "abort"))
            except ControllerError as error:
                raise DemoError(str(error)) from None

    def rollout(self, candidates: list[str], plan: dict[str, Any]) -> Rollout:
        """Start a rollout of ``candidates`` and print its timeline until it ends (aborted
        after ``rollout_timeout_s``)."""
        self.say(f"rollout     gateway rollout start {MODEL} --candidate {' '.join(candidates)}")
        try:
            rollout = self.wait(self.controller.start(MODEL, candidates, plan))
            if not rollout.finished:
                self.say(f"timeout     not over after {self._rollout_timeout_s:g}s: abort")
                rollout = self.wait(self.controller.command(MODEL, "abort"))
        except ControllerError as error:
            raise DemoError(str(error)) from None
        return rollout

    def wait(self, rollout: Rollout) -> Rollout:
        """The rollout once it is over, or as it is after ``rollout_timeout_s``."""
        deadline = time.monotonic() + self._rollout_timeout_s
        while True:
            self.timeline.update(rollout)
            if rollout.finished or time.monotonic() > deadline:
                return rollout
            time.sleep(POLL_S)
            rollout = self.controller.get(MODEL)

    def conclude(
        self, name: str, checks: list[Check], original: list[VariantState], keep: bool
    ) -> int:
        """Put the model back (unless ``keep``), print the verdict, return the exit code."""
        if not keep:
            try:
                self.restore(original)
            except DemoError as error:
                checks.append(Check(f"{MODEL} put back as it was", False, str(error)))
        code, lines = verdict(checks)
        self.write(f"\n{name}: " + ("PASSED" if code == 0 else "FAILED"))
        for line in lines:
            self.write(line)
        return code

    def restore(self, original: list[VariantState]) -> None:
        """Every variant as it was before the demo; the ones it deployed disabled at weight 0,
        without labels (as deployed)."""
        try:
            current, _ = self.admin.variants(MODEL)
        except AdminError as error:
            raise DemoError(f"could not put {MODEL} back as it was: {error}") from None
        before = {v.name: v for v in original}
        targets = {
            v.name: (
                Target(weight=before[v.name].weight, enabled=before[v.name].enabled,
                       labels=before[v.name].labels)
                if v.name in before
                else Target(weight=0, enabled=False, labels=())
            )
            for v in current
        }  # fmt: skip
        added = [v.name for v in current if v.name not in before]
        with contextlib.suppress(AdminError):  # a gateway without shadow traffic has none
            self.admin.set_shadow(MODEL, ShadowTarget())
        result = actuator.apply(self.admin, MODEL, Action(kind="rollback", targets=targets), added)
        if not result.ok:
            raise DemoError(f"could not put {MODEL} back as it was: {result.error}")
        self.say(f"restored    {MODEL} as it was before the demo ({len(result.applied)} changes)")


class DemoError(Exception):
    pass
