"""The programs the benchmark tools run that `make bench` installs (Debian's wrk, nginx,
valgrind): a tool that finds one missing says so in a line and exits 2."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable


def report_missing(tools: Iterable[str]) -> bool:
    """Whether any of ``tools`` is not on PATH; each one missing is named on standard error."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    for tool in missing:
        print(f"{tool} is missing: `make bench` installs it", file=sys.stderr)
    return bool(missing)
