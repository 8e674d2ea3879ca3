"""A screenshot of Locust's start form with the suite's options open: ``make webui-screenshot``.

Starts the web UI (``locust -f loadtests/locustfile.py``, on a free port of 127.0.0.1) and
Debian's ``chromium-headless-shell``, opens the form's "Custom parameters" through the DevTools
protocol, and writes a PNG. No load is sent: the form needs no gateway. Not part of ``make
test`` (the browser is a large install); ``tests/loadtests`` checks the same options in the page.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from itertools import count
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from deploy.local.process import free_port, http_ok

REPO = Path(__file__).resolve().parents[1]
BROWSER = "chromium-headless-shell"
OPEN_OPTIONS = """(() => {
  const summary = [...document.querySelectorAll('[role=button], button')]
    .find(el => el.textContent.trim() === 'Custom parameters');
  if (summary) { summary.click(); }
  return !!summary;
})()"""


def _wait(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:g}s")
        time.sleep(0.2)


@contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child in a process group of its own, stopped with all of it (Debian's browser command
    is a shell script that starts the real browser as its own child)."""
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # the whole group: the browser too
            process.wait(timeout=30)


class DevTools:
    """Just enough of the Chrome DevTools protocol: send a command, wait for its answer."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result


def browser_argv(
    browser: str, devtools_port: int, profile: str, width: int, height: int
) -> list[str]:
    """The headless browser with its DevTools on ``devtools_port`` and a blank page."""
    return [browser, "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--remote-debugging-port={devtools_port}", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "about:blank"]  # fmt: skip


@contextmanager
def page_tools(devtools_port: int) -> Iterator[DevTools]:
    """DevTools on the browser's page, once the browser answers (Page events enabled)."""
    targets = f"http://127.0.0.1:{devtools_port}/json/list"
    _wait(lambda: http_ok(targets), BROWSER)
    with urllib.request.urlopen(targets, timeout=5) as response:
        page = next(t for t in json.loads(response.read()) if t["type"] == "page")
    with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
        tools = DevTools(socket)
        tools.call("Page.enable")
        yield tools


def screenshot(out: Path, width: int = 1280, height: int = 1700) -> None:
    browser = shutil.which(BROWSER)
    if browser is None:
        raise SystemExit(f"{BROWSER} is missing: `make webui-screenshot` installs it")
    ui_port, devtools_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}/"
    with tempfile.TemporaryDirectory() as scratch:
        logs = Path(scratch)
        locust = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py",
                  "--web-host", "127.0.0.1", "--web-port", str(ui_port),
                  "--host", "http://127.0.0.1:8000"]  # fmt: skip
        chromium = browser_argv(browser, devtools_port, scratch, width, height)
        with _process(locust, logs / "locust.log"), _process(chromium, logs / "chromium.log"):
            _wait(lambda: http_ok(ui), "Locust's web UI")
            with page_tools(devtools_port) as tools:
                tools.call("Page.navigate", url=ui)
                _wait(lambda: evaluate(tools, OPEN_OPTIONS) is True, "the Custom parameters")
                time.sleep(1.0)  # the accordion's animation
                shot = tools.call("Page.captureScreenshot", format="png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))


def evaluate(tools: DevTools, expression: str) -> Any:
    """The value of a JavaScript expression in the page (objects as JSON values)."""
    answer = tools.call("Runtime.evaluate", expression=expression, returnByValue=True)
    return answer["result"].get("value")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.webui_screenshot")
    parser.add_argument("--out", type=Path, default=REPO / "loadtests/reports/webui.png")
    args = parser.parse_args(argv)
    screenshot(args.out)
    print(f"web UI start form with the suite's options: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
