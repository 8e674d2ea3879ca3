"""A page in a real headless browser (Debian's chromium-headless-shell, as `make
webui-screenshot` and `make browser` install it), driven through the DevTools protocol."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from deploy.local.process import free_port, http_ok
from loadtests.webui_screenshot import BROWSER, DevTools
from loadtests.webui_screenshot import _process as process
from loadtests.webui_screenshot import _wait as wait


@dataclass(frozen=True)
class Rendered:
    png: bytes
    facts: Any
    """What ``expression`` evaluated to in the loaded page."""


def render(url: str, expression: str, width: int = 1280, height: int = 2400) -> Rendered:
    """Load ``url``, wait for it to finish loading, evaluate ``expression``, screenshot it."""
    browser = shutil.which(BROWSER)
    assert browser is not None, f"{BROWSER} is missing: `make browser` installs it"
    port = free_port()
    # The browser's own children may still write to its profile as the directory goes.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as scratch:
        argv = [browser, "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--remote-debugging-port={port}", f"--user-data-dir={scratch}",
                f"--window-size={width},{height}", "about:blank"]  # fmt: skip
        with process(argv, Path(scratch) / "browser.log"):
            targets = f"http://127.0.0.1:{port}/json/list"
            wait(lambda: http_ok(targets), BROWSER)
            with urllib.request.urlopen(targets, timeout=5) as response:
                page = next(t for t in json.loads(response.read()) if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
                tools = DevTools(socket)
                tools.call("Page.enable")
                tools.call("Page.navigate", url=url)
                done = "document.readyState === 'complete'"
                wait(lambda: _evaluate(tools, done) is True, "the page")
                time.sleep(0.3)  # the first paint after load
                facts = _evaluate(tools, expression)
                shot = tools.call("Page.captureScreenshot", format="png")
    return Rendered(base64.b64decode(shot["data"]), facts)


def _evaluate(tools: DevTools, expression: str) -> Any:
    answer = tools.call("Runtime.evaluate", expression=expression, returnByValue=True)
    return answer["result"].get("value")
