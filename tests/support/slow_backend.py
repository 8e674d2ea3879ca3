"""A real Open Inference Protocol REST server that is slow on purpose: every inference takes
``delay_s`` and at most ``concurrency`` run at once (the rest queue, FIFO), as in a model server
with a fixed number of workers. It counts what it did, and what was done for nobody: a reply
whose client (the gateway) had already closed the connection.

It runs its own event loop in a thread; HTTP/1.1 keep-alive, Content-Length bodies only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

REPLY = (
    b'{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"FP32",'
    b'"shape":[1,1],"data":[1.0]}]}'
)
METADATA = (
    b'{"name":"m","versions":["1"],"platform":"slow","inputs":[{"name":"x","datatype":"FP32",'
    b'"shape":[-1,1]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,1]}]}'
)


@dataclass
class Counts:
    received: int = 0
    """Inference requests read."""
    served: int = 0
    """Inferences run to the end whose reply was written to an open connection."""
    wasted: int = 0
    """Inferences run to the end for a connection already closed (nobody read them)."""
    abandoned: int = 0
    """Requests whose connection closed while they queued or ran, counted when the close is
    seen (the backend saw the cancellation)."""
    running: int = 0
    """Inferences running right now."""


class SlowBackend:
    def __init__(self, delay_s: float, concurrency: int, reply: bytes = REPLY) -> None:
        self.delay_s = delay_s
        self.reply = reply
        self.concurrency = concurrency
        self.counts = Counts()
        self.port = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(**vars(self.counts))

    async def _serve(self, started: threading.Event, stop: asyncio.Event) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await stop.wait()
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if method == "POST" and path.endswith("/infer"):
                    body = await self._infer(reader, writer)
                    if body is None:
                        return
                elif path.endswith("/ready"):
                    body = b""
                else:
                    body = METADATA
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _infer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes | None:
        """Queue, run for ``delay_s``, and count; ``None`` if the client went away meanwhile."""
        assert self._slots is not None
        with self._lock:
            self.counts.received += 1
        # The connection closing (EOF) is how the gateway abandons a call.
        closed = asyncio.ensure_future(reader.read(1))
        closed.add_done_callback(self._seen_closed)
        async with self._slots:
            with self._lock:
                self.counts.running += 1
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                with self._lock:
                    self.counts.running -= 1
        gone = _eof(closed) or writer.is_closing()
        closed.remove_done_callback(self._seen_closed)
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await closed  # the next request's read must not race this one
        with self._lock:
            if gone:
                self.counts.wasted += 1
            else:
                self.counts.served += 1
        return None if gone else self.reply

    def _seen_closed(self, closed: asyncio.Future[bytes]) -> None:
        if _eof(closed):
            with self._lock:
                self.counts.abandoned += 1


def _eof(read: asyncio.Future[bytes]) -> bool:
    if not read.done() or read.cancelled():
        return False
    return read.exception() is not None or read.result() == b""


@contextlib.contextmanager
def slow_backend(delay_s: float, concurrency: int, reply: bytes = REPLY) -> Iterator[SlowBackend]:
    """A :class:`SlowBackend` on a free loopback port until the block ends."""
    backend = SlowBackend(delay_s, concurrency, reply)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(backend._serve(started, stop)), daemon=True
    )
    thread.start()
    assert started.wait(10), "the slow backend did not start"
    try:
        yield backend
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
