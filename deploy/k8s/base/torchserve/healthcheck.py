"""TorchServe container health: every named model version has a worker in state READY.

    python healthcheck.py http://127.0.0.1:8081 digits/1 digits/2

Exits 0 when TorchServe's management API describes each ``model/version`` with a READY worker and
1 otherwise, printing why. Runs inside the official ``pytorch/torchserve`` image (docker compose
healthcheck, Kubernetes probes), which has Python but no curl: standard library only, and nothing
newer than the image's Python.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 2.0


def ready_workers(management_url: str, model_version: str) -> int:
    """How many READY workers ``GET /models/<name>/<version>`` lists (0 if it cannot be asked)."""
    url = f"{management_url.rstrip('/')}/models/{model_version}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            described = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return 0
    if not isinstance(described, list):
        return 0
    version = model_version.partition("/")[2]
    return sum(
        1
        for entry in described
        if isinstance(entry, dict) and str(entry.get("modelVersion")) == version
        for worker in entry.get("workers") or []
        if isinstance(worker, dict) and worker.get("status") == "READY"
    )


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any(arg.count("/") != 1 for arg in argv[1:]):
        print("usage: healthcheck.py MANAGEMENT_URL MODEL/VERSION...", file=sys.stderr)
        return 2
    management_url, models = argv[0], argv[1:]
    missing = [model for model in models if ready_workers(management_url, model) == 0]
    if missing:
        print(f"no READY worker for {', '.join(missing)} at {management_url}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
