"""A real Open Inference Protocol REST server with the wrong model behind the name: it says it
serves ``digits`` version 1 but answers with version 2's outputs (the "wrong artifact deployed"
fault). Both versions read digits about equally well, so labels alone cannot tell; only a check
against version 1's own outputs can.

It finds each input row in the test split (every test digit is distinct) and answers that
digit's reference probabilities of ``answers_as``; a row outside the test split is a 400.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from model_store.digits import load_reference, load_test_set

MODEL, SERVES, ANSWERS_AS = "digits", "1", "2"
PREFIX = f"/v2/models/{MODEL}/versions/{SERVES}"
HEADER_LENGTH = "inference-header-content-length"


class _Handler(BaseHTTPRequestHandler):
    rows: dict[bytes, int] = {}
    outputs = np.zeros((0, 10), np.float32)

    def log_message(self, *_: object) -> None:  # quiet under pytest
        pass

    def _send(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == f"{PREFIX}/ready":
            self._send(200, {"ready": True})
        elif self.path == PREFIX:
            tensor = {"datatype": "FP32"}
            self._send(200, {
                "name": MODEL, "versions": [SERVES], "platform": "swapped",
                "inputs": [{"name": "input", "shape": [-1, 64], **tensor}],
                "outputs": [{"name": "probabilities", "shape": [-1, 10], **tensor}],
            })  # fmt: skip
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != f"{PREFIX}/infer":
            self._send(404, {"error": f"no route {self.path}"})
            return
        length = self.headers.get(HEADER_LENGTH)
        doc = json.loads(body[: int(length)] if length else body)
        tensor = doc["inputs"][0]
        if length:
            pixels = np.frombuffer(body, "<f4", offset=int(length)).reshape(tensor["shape"])
        else:
            pixels = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
        try:
            picks = [self.rows[row.astype("<f4").tobytes()] for row in pixels]
        except KeyError:
            self._send(400, {"error": "not a digit of the test split"})
            return
        answer = self.outputs[picks]
        self._send(200, {
            "model_name": MODEL, "model_version": SERVES,
            "outputs": [{"name": "probabilities", "datatype": "FP32",
                         "shape": list(answer.shape), "data": answer.ravel().tolist()}],
        })  # fmt: skip


@contextlib.contextmanager
def swapped_model_server() -> Iterator[str]:
    """The server on a free port of 127.0.0.1; yields its base URL."""
    inputs = load_test_set().inputs
    _Handler.rows = {row.astype("<f4").tobytes(): index for index, row in enumerate(inputs)}
    _Handler.outputs = load_reference(ANSWERS_AS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
