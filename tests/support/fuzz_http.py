"""Hostile HTTP requests for the live fuzz, sent byte for byte over raw sockets.

Each :class:`HttpCase` is a whole request (request line, headers, body) that a careless or hostile
client could send: wrong JSON types in every field, invalid UTF-8, mutated bodies, path traversal
and 10 kB model names, injected and duplicated headers, a wrong Inference-Header-Content-Length,
Upgrade requests. :func:`send` writes it on a fresh connection and reads one response.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.http import DIGITS

PIXELS = [float(x) for x in DIGITS.inputs[0]]
OIP_DOC: dict[str, Any] = {
    "id": "fuzz",
    "inputs": [
        {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": PIXELS, "parameters": {}}
    ],
    "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}}],
    "parameters": {"timeout": 5_000_000},
}
TF_ROW: dict[str, Any] = {"signature_name": "serving_default", "instances": [PIXELS]}
TF_COLUMNAR: dict[str, Any] = {"inputs": {"input": [PIXELS]}}
TF_B64: dict[str, Any] = {"instances": [{"input": {"b64": base64.b64encode(b"\0" * 8).decode()}}]}
TF_CLASSIFY: dict[str, Any] = {"examples": [{"input": PIXELS}]}


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


WRONG_VALUES: list[Any] = [
    None, True, 0, -1, 2**64, 1.5, -1e308, "", "FP32", "x" * 10_000, [], [None], [[[]]],
    {}, {"a": 1}, [1, "a", None], {"b64": "!!"}, [2**63, -(2**63)], _nested(900),
]  # fmt: skip
"""Wrong for most fields; the last is nested 900 deep (orjson takes 1,024)."""
NAMES = [
    "digits", "", "a" * 10_000, "../../etc/passwd", "..%2f..%2fetc", "%2e%2e", "digits%00",
    "%ff%fe", "digits%2f..%2fdigits", "%F0%9F%92%A5", "digits;rm", "%0d%0aX-Injected:%201",
    "nope", "digits/../digits",
]  # fmt: skip
VERSIONS = ["1", "2", "0", "-1", "99999999999999999999", "abc", "1.0", "a" * 10_000, "%ff"]
PINS = [
    "tf_grpc-v1", "tf_rest-v1", "ts_rest-v1", "ts_grpc-v1", "ml_rest-v1", "ml_grpc-v2",
]  # fmt: skip
BAD_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]


@dataclass(frozen=True)
class HttpCase:
    what: str
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""
    malformed: bool = False
    """Not valid HTTP/1.1: the HTTP parser may refuse it before the gateway sees it."""

    def wire(self) -> bytes:
        lines = [self.method + b" " + self.target + b" HTTP/1.1", b"Host: 127.0.0.1"]
        lines += [name + b": " + value for name, value in self.headers]
        names = {name.lower() for name, _ in self.headers}
        if b"content-length" not in names and b"transfer-encoding" not in names:
            lines.append(b"Content-Length: %d" % len(self.body))
        if b"connection" not in names:
            lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    @property
    def torchserve(self) -> bool:
        """TorchServe's API, whose errors are ``{"code", "type", "message"}``."""
        return self.target.startswith((b"/predictions", b"/ping"))


@dataclass
class HttpReply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


JSON = (b"Content-Type", b"application/json")


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of a JSON document; of a long list only its first element."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list) and doc:
        yield from _paths(doc[0], (*prefix, 0))


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = _replaced(doc[path[0]], path[1:], value)
    return copy


def _deleted(doc: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        copy = dict(doc) if isinstance(doc, dict) else list(doc)
        del copy[path[0]]
        return copy
    return _replaced(doc, path[:1], _deleted(doc[path[0]], path[1:]))


def wrong_types(doc: Any) -> Iterator[tuple[str, bytes]]:
    """``doc`` with each field (and the document itself) replaced by each wrong value, and each
    field deleted."""
    for path in _paths(doc):
        where = "/".join(str(part) for part in path) or "<doc>"
        for value in WRONG_VALUES:
            yield f"{where}={str(value)[:12]}", _dumps(_replaced(doc, path, value))
        if path:
            yield f"{where} deleted", _dumps(_deleted(doc, path))


def _mutated(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        at = rng.randrange(len(data) + 1)
        if choice < 0.3 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif choice < 0.5:
            data[at:at] = rng.choice(BAD_UTF8)
        elif choice < 0.7:
            del data[at:]
        elif choice < 0.85:
            data[at:at] = rng.choice([b"[", b"{", b'"', b"]]]", b"1e999", b"-", b"NaN", b"\0"])
        else:
            data[at:at] = data[: rng.randrange(1, 64)]
    return bytes(data)


def _binary_body(rng: random.Random) -> tuple[bytes, int]:
    """An OIP body with the binary tensor extension: JSON header, then the raw FP32 values."""
    header = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [1, 64],
             "parameters": {"binary_data_size": 256}}
        ]
    }  # fmt: skip
    if rng.random() < 0.5:
        field = rng.choice(["binary_data_size", "shape", "datatype"])
        value = rng.choice(WRONG_VALUES)
        header["inputs"][0]["parameters" if field == "binary_data_size" else field] = (
            {"binary_data_size": value} if field == "binary_data_size" else value
        )
    text = _dumps(header)
    return text + struct.pack("<64f", *PIXELS), len(text)


INFER_TARGETS: list[tuple[str, bytes, list[dict[str, Any]]]] = [
    ("oip", b"/v2/models/{m}/infer", [OIP_DOC]),
    ("oip-version", b"/v2/models/{m}/versions/{v}/infer", [OIP_DOC]),
    ("tf", b"/v1/models/{m}:predict", [TF_ROW, TF_COLUMNAR, TF_B64]),
    ("tf-version", b"/v1/models/{m}/versions/{v}:predict", [TF_ROW, TF_COLUMNAR]),
    ("tf-label", b"/v1/models/{m}/labels/stable:predict", [TF_ROW]),
    ("tf-classify", b"/v1/models/{m}:classify", [TF_CLASSIFY]),
    ("tf-regress", b"/v1/models/{m}:regress", [TF_CLASSIFY]),
    ("ts", b"/predictions/{m}", [OIP_DOC, TF_ROW]),
    ("ts-version", b"/predictions/{m}/{v}", [OIP_DOC]),
]
READ_TARGETS = [
    b"/v2", b"/v2/health/live", b"/v2/health/ready", b"/v2/models/{m}", b"/v2/models/{m}/ready",
    b"/v2/models/{m}/versions/{v}", b"/v2/models/{m}/versions/{v}/ready", b"/v1/models/{m}",
    b"/v1/models/{m}/metadata", b"/v1/models/{m}/versions/{v}", b"/ping",
]  # fmt: skip


def _target(template: bytes, name: str = "digits", version: str = "1") -> bytes:
    return template.replace(b"{m}", name.encode()).replace(b"{v}", version.encode())


def _pin(rng: random.Random) -> tuple[bytes, bytes]:
    return (b"x-gateway-variant", rng.choice(PINS).encode())


def _body_cases(rng: random.Random, count: int) -> Iterator[HttpCase]:
    """Wrong JSON types in every field, and random mutations, on every inference endpoint."""
    pool: list[tuple[str, bytes, bytes]] = []
    for what, template, docs in INFER_TARGETS:
        for doc in docs:
            pool += [(f"{what} {where}", template, body) for where, body in wrong_types(doc)]
    for index in range(count):
        if index % 3 == 2:
            what, template, docs = rng.choice(INFER_TARGETS)
            label, body = f"{what} mutated", _mutated(rng, _dumps(rng.choice(docs)))
        else:
            label, template, body = rng.choice(pool)
        headers = (JSON, _pin(rng))
        yield HttpCase(label, b"POST", _target(template), headers, body)


def _binary_cases(rng: random.Random, count: int) -> Iterator[HttpCase]:
    """The binary tensor extension with right, wrong and absurd Inference-Header-Content-Length."""
    for _ in range(count):
        body, length = _binary_body(rng)
        declared = rng.choice(
            [str(length), "0", "-1", str(length + 1), str(length - 1), str(len(body)),
             str(len(body) + 1), "99999999999999999999", "abc", " 7", "0x10", "1e3", ""]
        )  # fmt: skip
        if rng.random() < 0.3:
            body = _mutated(rng, body)
        headers = (
            (b"Content-Type", b"application/octet-stream"),
            (b"Inference-Header-Content-Length", declared.encode()),
            _pin(rng),
        )
        template = rng.choice([b"/v2/models/{m}/infer", b"/v2/models/{m}/versions/2/infer"])
        yield HttpCase(f"binary ihcl={declared[:12]}", b"POST", _target(template), headers, body)


def _path_cases(rng: random.Random, count: int) -> Iterator[HttpCase]:
    """Path traversal, odd and 10 kB model names and versions, on every endpoint, any method."""
    templates = READ_TARGETS + [template for _, template, _ in INFER_TARGETS]
    for _ in range(count):
        template = rng.choice(templates)
        target = _target(template, rng.choice(NAMES), rng.choice(VERSIONS))
        method = rng.choice([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"PATCH"])
        if method == b"HEAD":
            method = b"GET"  # a HEAD response has no body to check
        body = _dumps(OIP_DOC) if method == b"POST" else b""
        yield HttpCase(f"path {method.decode()}", method, target, (JSON,), body)


def _header_cases(rng: random.Random) -> Iterator[HttpCase]:
    """Injected, duplicated, oversized and contradictory headers; Upgrade requests."""
    infer = b"/v2/models/digits/infer"
    body = _dumps(OIP_DOC)
    bad = HttpCase
    yield from (
        bad("crlf in value", b"POST", infer, (JSON, (b"X-A", b"a\r\nX-Injected: 1")), body),
        bad("bare cr in value", b"POST", infer, (JSON, (b"X-A", b"a\rb")), body, malformed=True),
        bad("bare lf in value", b"POST", infer, (JSON, (b"X-A", b"a\nb")), body, malformed=True),
        bad("nul in value", b"POST", infer, (JSON, (b"X-A", b"a\0b")), body, malformed=True),
        bad("space in name", b"POST", infer, (JSON, (b"X A", b"1")), body, malformed=True),
        bad("obs-fold", b"POST", infer, (JSON, (b"X-A", b"a\r\n b")), body, malformed=True),
        bad(
            "two content-lengths", b"POST", infer,
            (JSON, (b"Content-Length", b"%d" % len(body)), (b"Content-Length", b"3")), body,
            malformed=True,
        ),
        bad(
            "te and cl", b"POST", infer,
            (JSON, (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")),
            b"0\r\n\r\n", malformed=True,
        ),
        bad(
            "bad chunk size", b"POST", infer, (JSON, (b"Transfer-Encoding", b"chunked")),
            b"zz\r\nabc\r\n0\r\n\r\n", malformed=True,
        ),
        bad(
            "chunked gzip te", b"POST", infer, (JSON, (b"Transfer-Encoding", b"gzip, chunked")),
            b"0\r\n\r\n", malformed=True,
        ),
        bad("negative length", b"POST", infer, (JSON, (b"Content-Length", b"-1")), b"",
            malformed=True),
        bad("long target", b"GET", b"/v2/models/" + b"a" * 100_000, (), malformed=True),
        bad("64 kB header", b"GET", b"/v2/health/live", ((b"X-Big", b"a" * 65_536),)),
        bad("latin-1 pin", b"POST", infer, (JSON, (b"x-gateway-variant", b"\xff\xfe")), body),
        bad("10 kB pin", b"POST", infer, (JSON, (b"x-gateway-variant", b"v" * 10_000)), body),
        bad("10 kB sticky", b"POST", infer, (JSON, (b"x-user-id", b"u" * 10_000)), body),
        bad("content-type garbage", b"POST", infer, ((b"Content-Type", b"\xff;;=="),), body),
        bad("unknown encoding", b"POST", infer, (JSON, (b"Content-Encoding", b"br")), body),
        bad("gzip not gzip", b"POST", infer, (JSON, (b"Content-Encoding", b"gzip")), body),
        bad("expect continue", b"POST", infer, (JSON, (b"Expect", b"100-continue")), body),
        bad("bad method", b"FOO\0", infer, (JSON,), body, malformed=True),
    )  # fmt: skip
    for template in [b"/v2/health/live", b"/v2/models/digits/infer", b"/v1/models/digits:predict",
                     b"/predictions/digits", b"/metrics"]:  # fmt: skip
        method = b"GET" if template in (b"/v2/health/live", b"/metrics") else b"POST"
        for upgrade in (b"websocket", b"h2c"):
            for with_body in (True, False):
                headers: tuple[tuple[bytes, bytes], ...] = (
                    JSON,
                    (b"Upgrade", upgrade),
                    (b"Connection", b"keep-alive, Upgrade"),
                    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                    (b"Sec-WebSocket-Version", b"13"),
                    (b"HTTP2-Settings", b"AAMAAABkAAQAAP__"),
                )
                payload = body if with_body and method == b"POST" else b""
                yield HttpCase(f"upgrade {upgrade.decode()}", method, template, headers, payload)
    _ = rng


def http_cases(seed: int, count: int) -> list[HttpCase]:
    """About ``count`` cases, the same for the same seed."""
    rng = random.Random(seed)
    cases = list(_header_cases(rng))
    rest = count - len(cases)
    parts: list[tuple[Callable[[random.Random, int], Iterator[HttpCase]], float]] = [
        (_body_cases, 0.65),
        (_binary_cases, 0.15),
        (_path_cases, 0.20),
    ]
    for make, share in parts:
        cases += make(rng, int(rest * share))
    rng.shuffle(cases)
    return cases


def send(port: int, case: HttpCase, timeout: float) -> HttpReply:
    """``case`` on a new connection; its (final, non-1xx) response. Raises TimeoutError if the
    gateway does not answer within ``timeout``, ConnectionError if it closes without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # Answered (and closed) before the whole request was written: read the answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(case.wire())
        reader = _Reader(sock)
        while True:
            status, headers = reader.head()
            if status >= 200:
                return HttpReply(status, headers, reader.body(headers))


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._closed = False

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self._closed = True
            raise ConnectionError("closed without a (complete) response")
        self._buffer += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._fill()
        line, _, self._buffer = self._buffer.partition(marker)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def head(self) -> tuple[int, dict[bytes, bytes]]:
        lines = self._until(b"\r\n\r\n").split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def body(self, headers: dict[bytes, bytes]) -> bytes:
        if b"content-length" in headers:
            return self._exactly(int(headers[b"content-length"]))
        if headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while size := int(self._until(b"\r\n").split(b";")[0], 16):
                parts.append(self._exactly(size))
                self._exactly(2)
            return b"".join(parts)
        while not self._closed:
            try:
                self._fill()
            except ConnectionError:
                break
        return self._buffer


PARSER_REFUSAL = b"Invalid HTTP request received."
"""uvicorn's own answer to bytes its HTTP parser refuses (before any application code runs)."""


def error_shape_problem(case: HttpCase, reply: HttpReply) -> str | None:
    """What is wrong with a 4xx/5xx reply's body for the protocol of ``case``, if anything."""
    if case.malformed and reply.status == 400 and reply.body == PARSER_REFUSAL:
        return None
    if not reply.headers.get(b"content-type", b"").startswith(b"application/json"):
        return f"content-type {reply.headers.get(b'content-type')!r}"
    try:
        doc = json.loads(reply.body)
    except ValueError:
        return "not JSON"
    if not isinstance(doc, dict):
        return "not a JSON object"
    if case.torchserve:
        if doc.get("code") != reply.status or not isinstance(doc.get("type"), str):
            return f"not TorchServe's error shape: {sorted(doc)}"
        message = doc.get("message")
    else:
        message = doc.get("error")
    if not isinstance(message, str) or not message:
        return "no message"
    return None


def error_message(case: HttpCase, reply: HttpReply) -> str:
    try:
        doc = json.loads(reply.body)
    except ValueError:
        return reply.body[:200].decode(errors="replace")
    if not isinstance(doc, dict):
        return str(doc)[:200]
    return str(doc.get("message" if case.torchserve else "error", doc))
