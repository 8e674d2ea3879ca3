"""The gateway's admin API, as the rollout controller uses it — the only module that knows its
URLs and JSON, so that following a change of the API is a change here.

From the control-plane issue's wording (``Authorization: Bearer $GATEWAY_ADMIN_TOKEN``):

- ``GET /admin/models/{model}``: the variants with weight, enabled, labels, ready, ejected,
  backend, and the config version;
- ``PATCH /admin/models/{model}/variants/{variant}`` with ``{"weight": N}`` and/or
  ``{"enabled": bool}`` and/or ``{"labels": [...]}``, answered once every worker applied it,
  with the new config version;
- shadowing: ``PUT /admin/models/{model}/shadow`` with ``{"variants": [...], "percent": P}``
  and the step's comparison knobs (``atol``, ``rtol``, ``top_k``, as in ``models.<m>.shadow``);
  no variants turns it off.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gateway.rollout.state import ShadowTarget, VariantState

MAX_REPLY_BYTES = 16 * 1024 * 1024


class AdminError(Exception):
    """A call failed: unreachable, refused (``status``), or an answer that makes no sense."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AdminClient:
    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("accept", "application/json")
        if data is not None:
            request.add_header("content-type", "application/json")
        if self._token:
            request.add_header("authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                reply = response.read(MAX_REPLY_BYTES)
        except urllib.error.HTTPError as error:
            text = error.read(4096).decode(errors="replace").strip()
            raise AdminError(
                f"{method} {path}: {error.code} {_message(text)}", error.code
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            raise AdminError(f"{method} {self.url}{path}: {error}") from None
        try:
            return json.loads(reply) if reply else {}
        except ValueError:
            raise AdminError(f"{method} {path}: the answer is not JSON") from None

    @staticmethod
    def _model_path(model: str) -> str:
        return f"/admin/models/{urllib.parse.quote(model, safe='')}"

    def variants(self, model: str) -> tuple[list[VariantState], str]:
        """The model's variants and the config version they are from."""
        doc = self._call("GET", self._model_path(model))
        try:
            variants = [
                VariantState(
                    name=str(v["name"]),
                    backend=str(v.get("backend", "")),
                    version=str(v.get("version", "")),
                    weight=int(v["weight"]),
                    enabled=bool(v.get("enabled", True)),
                    labels=tuple(v.get("labels", ())),
                )
                for v in doc["variants"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise AdminError(
                f"GET {self._model_path(model)}: unexpected answer ({error})"
            ) from None
        return variants, config_version(doc)

    def patch_variant(self, model: str, variant: str, changes: dict[str, Any]) -> str:
        path = f"{self._model_path(model)}/variants/{urllib.parse.quote(variant, safe='')}"
        return config_version(self._call("PATCH", path, changes))

    def set_shadow(self, model: str, shadow: ShadowTarget) -> str:
        body: dict[str, Any] = {"variants": list(shadow.variants), "percent": shadow.percent}
        body.update(shadow.compare)
        return config_version(self._call("PUT", f"{self._model_path(model)}/shadow", body))


def config_version(doc: Any) -> str:
    """``config_version`` as a number, or ``{"version": N, "hash": H}``; "" when absent."""
    if not isinstance(doc, dict):
        return ""
    version = doc.get("config_version", "")
    if isinstance(version, dict):
        version = version.get("version", "")
    return str(version)


def _message(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(doc, dict):
        return str(doc.get("error") or doc.get("message") or doc)[:300]
    return text[:300]
