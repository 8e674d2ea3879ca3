"""A simulated gateway's /metrics on a real socket, its traffic still or flowing in real time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.rollout.world import World


@contextmanager
def serve_metrics(world: World, lock: threading.Lock | None = None) -> Iterator[str]:
    """The world's metrics in the text format, at the URL yielded."""
    guard = lock or threading.Lock()

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with guard:
                body = world.metrics_text(self.path, 1.0)
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def live_world(world: World) -> Iterator[str]:
    """The world's traffic flows in real time (0.1 s at a time); its metrics are served."""
    lock = threading.Lock()
    stop = threading.Event()

    def flow() -> None:
        while not stop.wait(0.1):
            with lock:
                world.advance(0.1)

    threading.Thread(target=flow, daemon=True).start()
    try:
        with serve_metrics(world, lock) as url:
            yield url
    finally:
        stop.set()
