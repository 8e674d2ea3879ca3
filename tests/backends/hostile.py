"""Small hostile HTTP servers on real sockets: each connection runs a script in its own thread.

A script reads requests with :meth:`Peer.request` and writes whatever bytes it likes (garbage,
lies about lengths, interim replies, nothing at all), so the client under test meets a backend
that misbehaves on the wire exactly as written.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """One accepted connection, as the script sees it."""

    sock: socket.socket
    server: HostileServer
    buffer: bytearray = field(default_factory=bytearray)
    sent: int = 0

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 18)
        self.buffer += data
        return bool(data)

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            if not self._fill():
                raise EOFError
        head = bytes(self.buffer[:end])
        del self.buffer[: end + len(marker)]
        return head

    def _read_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise EOFError
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def request(self) -> Request | None:
        """The next request on this connection (None once the client closed it)."""
        try:
            head = self._read_until(b"\r\n\r\n").decode("latin-1")
        except (EOFError, OSError):
            return None
        line, *fields = head.split("\r\n")
        method, path, _ = line.split(" ", 2)
        headers = {}
        for item in fields:
            name, _, value = item.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            parts = []
            while size := int(self._read_until(b"\r\n"), 16):
                parts.append(self._read_exactly(size))
                self._read_exactly(2)
            self._read_exactly(2)
            body = b"".join(parts)
        else:
            body = self._read_exactly(int(headers.get("content-length", "0")))
        request = Request(method, path, headers, body)
        self.server.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def reply(self, body: bytes = b"{}", status: str = "200 OK", **headers: str) -> None:
        extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
        self.send(
            f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body
        )

    def serve(self, body: bytes = b"{}", **headers: str) -> None:
        """Answer every request on this connection with the same 200."""
        while self.request() is not None:
            self.reply(body, **headers)


Script = Callable[[Peer], None]


@dataclass
class HostileServer:
    script: Script
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    """What the scripts raised other than a closed connection (a test may expect some)."""
    connections: int = 0

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server((self.host, 0), family=family)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def __enter__(self) -> HostileServer:
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._accepting.join()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self._socks.append(sock)
            self.script(Peer(sock, self))
        except (OSError, EOFError):
            pass  # the client went away (or never spoke TLS): what a hostile peer shrugs off
        except BaseException as error:
            self.errors.append(error)
        finally:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def serving(script: Script, **options: object) -> Iterator[HostileServer]:
    with HostileServer(script, **options) as server:  # type: ignore[arg-type]
        yield server


def self_signed_cert(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for ``name`` (and nothing else) and its key, made by the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
