"""A simulated gateway whose traffic flows in real time, its /metrics on a real socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.rollout.world import World


@contextmanager
def live_world(world: World) -> Iterator[str]:
    """The world's traffic flows in real time; its metrics are served over HTTP."""
    lock = threading.Lock()
    stop = threading.Event()

    def flow() -> None:
        while not stop.wait(0.1):
            with lock:
                world.advance(0.1)

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                body = world.metrics_text(self.path, 1.0)
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threads = [threading.Thread(target=t, daemon=True) for t in (flow, server.serve_forever)]
    for thread in threads:
        thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
