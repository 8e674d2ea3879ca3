"""``gateway_config_version``: the routing table each worker runs, one series per worker.

The value is the table's number (it only grows), the ``digest`` label hashes the routes: when
every worker of every replica shows one digest, they all converged. prometheus_client's
multiprocess gauges would keep the series of every digest a worker ever had, so each worker
writes its current version to ``config_version_<pid>`` in the multiprocess directory (a rename:
readers see the old or the new one) and the worker that answers a scrape reads those of live
processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from gateway.exposition.text import header, labels_text, value_text

NAME = "gateway_config_version"
HELP = "Routing table each worker runs: a number that only grows, and a hash of the routes."
PREFIX = "config_version_"


class ConfigVersionCollector:
    def __init__(self, multiprocess_dir: str | None) -> None:
        self._dir = Path(multiprocess_dir) if multiprocess_dir else None
        self._current: tuple[int, str] = (0, "")

    def set(self, number: int, digest: str) -> None:
        self._current = (number, digest)
        if self._dir is not None:
            path = self._dir / f"{PREFIX}{os.getpid()}"
            partial = path.with_suffix(".tmp")
            partial.write_text(f"{number} {digest}\n")
            partial.replace(path)

    def versions(self) -> list[tuple[int | None, int, str]]:
        """(pid or None, number, digest) of every live worker."""
        if self._dir is None:
            return [(None, *self._current)]
        found: list[tuple[int | None, int, str]] = []
        for path in sorted(self._dir.glob(f"{PREFIX}*[0-9]")):
            pid = int(path.name.removeprefix(PREFIX))
            if not _alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            with contextlib.suppress(OSError, ValueError):
                number, digest = path.read_text().split()
                found.append((pid, int(number), digest))
        return found

    def pieces(self) -> Iterator[str]:
        versions = self.versions()
        if not versions:
            return
        yield header(NAME, "gauge", HELP)
        for pid, number, digest in versions:
            if pid is None:
                labels = labels_text(("digest",), (digest,))
            else:
                labels = labels_text(("digest", "pid"), (digest, str(pid)))
            yield f"{NAME}{{{labels}}} {value_text(float(number))}\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
