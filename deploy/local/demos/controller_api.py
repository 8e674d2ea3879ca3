"""The rollout controller's HTTP API as the demos use it: start a rollout, read its state."""

from __future__ import annotations

import urllib.parse
from typing import Any

from deploy.local.process import http_ok
from gateway.api_call import ApiRefused, ApiUnreachable, json_call
from gateway.rollout.state import Rollout


class ControllerError(Exception):
    pass


class ControllerApi:
    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return json_call(self.url + path, method, body, self._token, self._timeout_s)
        except ApiRefused as error:
            raise ControllerError(f"{method} {path}: {error}") from None
        except ApiUnreachable as error:
            raise ControllerError(f"{method} {self.url}{path}: {error}") from None

    def start(self, model: str, candidates: list[str], plan: dict[str, Any]) -> Rollout:
        doc = self._call(
            "POST", f"/rollouts/{urllib.parse.quote(model, safe='')}",
            {"candidates": candidates, "plan": plan},
        )  # fmt: skip
        return Rollout.model_validate(doc)

    def get(self, model: str) -> Rollout:
        return Rollout.model_validate(
            self._call("GET", f"/rollouts/{urllib.parse.quote(model, safe='')}")
        )

    def command(self, model: str, name: str) -> Rollout:
        """``pause``, ``resume``, ``promote`` or ``abort``."""
        return Rollout.model_validate(
            self._call("POST", f"/rollouts/{urllib.parse.quote(model, safe='')}/{name}")
        )

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/healthz")
