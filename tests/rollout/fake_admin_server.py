"""A tiny HTTP server with the admin API's shape (from the control-plane issue's wording), over
a FakeAdmin: to test the client's and the controller's HTTP, not the real control plane (the
end-to-end run against issue 10's admin listener belongs to the integration)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from gateway.rollout.admin_client import AdminError
from gateway.rollout.state import ShadowTarget
from tests.rollout.world import FakeAdmin

TOKEN = "s3cret-admin-token"


@dataclass
class Seen:
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)


def _handler(admin: FakeAdmin, seen: Seen, with_shadow: bool) -> type[BaseHTTPRequestHandler]:
    class Admin(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body: Any = json.loads(self.rfile.read(length)) if length else {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.requests.append((method, self.path, headers, body))
            if headers.get("authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"error": "missing or wrong bearer token"})
                return
            parts = [unquote(p) for p in self.path.strip("/").split("/")]
            try:
                if method == "GET" and parts[:2] == ["admin", "models"] and len(parts) == 3:
                    variants, version = admin.variants(parts[2])
                    doc = [v.model_dump(mode="json") | {"ready": True, "ejected": False}
                           for v in variants]  # fmt: skip
                    self._reply(200, {"model": parts[2], "config_version": int(version),
                                      "variants": doc})  # fmt: skip
                elif method == "PATCH" and len(parts) == 5 and parts[3] == "variants":
                    version = admin.patch_variant(parts[2], parts[4], body)
                    self._reply(200, {"config_version": {"version": int(version), "hash": "ab"}})
                elif method == "PUT" and len(parts) == 4 and parts[3] == "shadow" and with_shadow:
                    compare = {k: v for k, v in body.items() if k in ("atol", "rtol", "top_k")}
                    shadow = ShadowTarget(
                        variants=tuple(body["variants"]), percent=body["percent"], compare=compare
                    )
                    self._reply(200, {"config_version": int(admin.set_shadow(parts[2], shadow))})
                else:
                    # The real admin API's words for a path it does not serve.
                    self._reply(404, {"error": f"no such endpoint: {method} {self.path}"})
            except AdminError as error:
                self._reply(error.status or 500, {"error": str(error)})
            except KeyError as error:
                self._reply(404, {"error": f"unknown variant {error}"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Admin


@contextmanager
def admin_server(admin: FakeAdmin, shadow: bool = True) -> Iterator[tuple[str, Seen]]:
    """``shadow=False``: a gateway without shadow traffic (no ``/shadow`` endpoint)."""
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(admin, seen, with_shadow=shadow))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
