"""The controller's HTTP API (``gateway rollout controller``, 127.0.0.1:8003 by default).

- ``GET /healthz``, ``GET /metrics`` (``gateway_rollout_*``);
- ``GET /rollouts``, ``GET /rollouts/{model}``: state and history;
- ``POST /rollouts/{model}`` with ``{"candidates": [...], "plan": {...}}``, and
  ``POST /rollouts/{model}/{pause|resume|promote|abort}`` — these need ``Authorization: Bearer``
  with the admin token (GATEWAY_ADMIN_TOKEN), compared in constant time;
- ``GET|POST /analysis/{model}``: the gates as one JSON document, for Argo Rollouts' ``web``
  provider (always 200; ``verdict`` is pass, fail or nodata) and Flagger's webhooks (the
  status code says it: ``?hook=rollout`` answers 412 on fail, else 200; ``?hook=confirm`` 200
  only on pass, 425 while there is no data; ``?hook=rollback`` 200 only on fail). Candidates,
  baseline and window come from the query (``candidate=``, ``baseline=``, ``window=5m``), from
  Flagger's ``metadata`` in a POST body, or from the rollout under way.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.rollout.admin_client import AdminError
from gateway.rollout.controller import Controller
from gateway.rollout.decide import RolloutRefused
from gateway.rollout.plan import PlanError, parse_duration, parse_plan
from gateway.rollout.store import StoreError

log = logging.getLogger("gateway.rollout.server")

MAX_BODY = 1024 * 1024
COMMANDS = ("pause", "resume", "promote", "abort")
HOOK_STATUS = {
    "rollout": {"pass": 200, "nodata": 200, "fail": 412},
    "confirm": {"pass": 200, "nodata": 425, "fail": 412},
    "rollback": {"pass": 412, "nodata": 412, "fail": 200},
}
NO_TOKEN = (
    "no admin token is configured: set GATEWAY_ADMIN_TOKEN (or --token-file) for the "
    "controller, and send it as 'Authorization: Bearer <token>'"
)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    server: RolloutServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # --- plumbing ------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc, indent=1).encode() + b"\n")

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, f"body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ApiError(400, "the body is not JSON") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "the body must be a JSON object")
        return doc

    def _authorize(self) -> str:
        token = self.server.token
        if not token:
            raise ApiError(503, NO_TOKEN)
        sent = self.headers.get("authorization", "")
        scheme, _, given = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise ApiError(401, "missing or wrong bearer token")
        return f"token from {self.client_address[0]}"

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
        query = urllib.parse.parse_qs(url.query)
        try:
            self._dispatch(method, parts, query)
        except ApiError as error:
            self._json(error.status, {"error": str(error)})
        except LookupError as error:
            self._json(404, {"error": str(error.args[0]) if error.args else "not found"})
        except (RolloutRefused, PlanError, ValueError) as error:
            self._json(400, {"error": str(error)})
        except (AdminError, StoreError) as error:
            self._json(502, {"error": str(error)})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    # --- the API -------------------------------------------------------------------------------

    def _dispatch(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        controller = self.server.controller
        if parts == ["healthz"]:
            self._send(200, b"ok\n", "text/plain")
        elif parts == ["metrics"]:
            self._send(200, generate_latest(controller.metrics.registry), CONTENT_TYPE_LATEST)
        elif parts == ["rollouts"] and method == "GET":
            self._json(
                200, {"rollouts": [r.model_dump(mode="json") for r in controller.rollouts()]}
            )
        elif len(parts) == 2 and parts[0] == "rollouts" and method == "GET":
            rollout = controller.status(parts[1])
            if rollout is None:
                raise LookupError(f"no rollout of {parts[1]}")
            self._json(200, rollout.model_dump(mode="json"))
        elif len(parts) == 2 and parts[0] == "rollouts" and method == "POST":
            who = self._authorize()
            body = self._body()
            candidates = body.get("candidates")
            if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
                raise ApiError(400, "candidates: a list of variant names is required")
            plan = parse_plan(body.get("plan") or {}, "in the request")
            log.info("rollout %s: start requested by %s", parts[1], who)
            rollout = controller.start(parts[1], candidates, plan)
            self._json(201, rollout.model_dump(mode="json"))
        elif len(parts) == 3 and parts[0] == "rollouts" and parts[2] in COMMANDS:
            if method != "POST":
                raise ApiError(405, f"POST to {parts[2]}")
            who = self._authorize()
            rollout = controller.command(parts[1], parts[2], who)
            self._json(200, rollout.model_dump(mode="json"))
        elif len(parts) == 2 and parts[0] == "analysis":
            self._analysis(parts[1], query, self._body() if method == "POST" else {})
        else:
            raise ApiError(404, f"no such endpoint: {method} {self.path}")

    def _analysis(self, model: str, query: dict[str, list[str]], body: dict[str, Any]) -> None:
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        assert isinstance(metadata, dict)

        def names(key: str) -> list[str]:
            given = query.get(key, []) + query.get(f"{key}s", [])
            text = metadata.get(key) or metadata.get(f"{key}s") or ""
            given += [str(text)] if text else []
            return [name for item in given for name in item.split(",") if name]

        window_text = (query.get("window") or [metadata.get("window", "")])[0]
        window = float(parse_duration(window_text)) if window_text else None
        hook = (query.get("hook") or [metadata.get("hook", "")])[0] or None
        if hook is not None and hook not in HOOK_STATUS:
            raise ApiError(400, f"hook must be one of {', '.join(HOOK_STATUS)}")
        doc = self.server.controller.analysis(model, names("candidate"), names("baseline"), window)
        status = HOOK_STATUS[hook][doc["verdict"]] if hook else 200
        self._json(status, doc)


class RolloutServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], controller: Controller, token: str | None):
        super().__init__(address, Handler)
        self.controller = controller
        self.token = token

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="rollout-api", daemon=True)
        thread.start()
        return thread
