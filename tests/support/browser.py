"""A page in a real headless browser (Debian's chromium-headless-shell, which `make browser`
installs), driven through the DevTools protocol as `make webui-screenshot` drives it."""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.process import free_port
from loadtests.webui_screenshot import BROWSER, browser_argv, evaluate, page_tools
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
        argv = browser_argv(browser, port, scratch, width, height)
        with process(argv, Path(scratch) / "browser.log"), page_tools(port) as tools:
            tools.call("Page.navigate", url=url)
            done = "document.readyState === 'complete'"
            wait(lambda: evaluate(tools, done) is True, "the page")
            time.sleep(0.3)  # the first paint after load
            facts = evaluate(tools, expression)
            shot = tools.call("Page.captureScreenshot", format="png")
    return Rendered(base64.b64decode(shot["data"]), facts)
