"""TorchServe container health: every named model version has a worker in state READY.

    python healthcheck.py [--key-file KEY_FILE] http://127.0.0.1:8081 digits/1 digits/2

Exits 0 when TorchServe's management API describes each ``model/version`` with a READY worker and
1 otherwise, printing why. With token authorization on (TorchServe's default), ``--key-file``
names the ``key_file.json`` TorchServe writes in its working directory: the management key goes
with each call, and a key that has expired (TorchServe never renews keys by itself) is renewed
once through the token API with the file's API key. Runs inside the official
``pytorch/torchserve`` image (docker compose healthcheck, Kubernetes probes), which has Python but
no curl: standard library only, and nothing newer than the image's Python (3.9).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 2.0
REFUSED = "InvalidKeyException"


def read_keys(key_file: str) -> dict[str, Any]:
    """The key file's JSON ({} without one); TorchServe rewrites it in place, so a read that
    finds it half written is tried again."""
    if not key_file:
        return {}
    for _ in range(20):
        try:
            with open(key_file, "rb") as handle:
                keys = json.loads(handle.read())
            return keys if isinstance(keys, dict) else {}
        except OSError:
            return {}
        except ValueError:
            time.sleep(0.05)
    return {}


def key_of(keys: dict[str, Any], role: str) -> str:
    """The key of ``role`` in the key file, or "" (none: no Authorization header)."""
    entry = keys.get(role)
    key = entry.get("key") if isinstance(entry, dict) else None
    return key if isinstance(key, str) else ""


def get(url: str, key: str) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def refused(status: int, body: bytes) -> bool:
    return status in (400, 401, 403) and REFUSED.encode() in body


def describe(management_url: str, model_version: str, key_file: str) -> Any:
    """``GET /models/<name>/<version>``, renewing an expired management key once; None on error."""
    url = f"{management_url.rstrip('/')}/models/{model_version}"
    keys = read_keys(key_file)
    status, body = get(url, key_of(keys, "management"))
    api_key = key_of(keys, "API")
    if refused(status, body) and api_key:
        get(f"{management_url.rstrip('/')}/token?type=management", api_key)
        status, body = get(url, key_of(read_keys(key_file), "management"))
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def ready_workers(management_url: str, model_version: str, key_file: str = "") -> int:
    """How many READY workers ``GET /models/<name>/<version>`` lists (0 if it cannot be asked)."""
    described = describe(management_url, model_version, key_file)
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
    key_file = ""
    if argv[:1] == ["--key-file"] and len(argv) > 1:
        key_file, argv = argv[1], argv[2:]
    if len(argv) < 2 or any(arg.count("/") != 1 for arg in argv[1:]):
        print(
            "usage: healthcheck.py [--key-file FILE] MANAGEMENT_URL MODEL/VERSION...",
            file=sys.stderr,
        )
        return 2
    management_url, models = argv[0], argv[1:]
    missing = [model for model in models if ready_workers(management_url, model, key_file) == 0]
    if missing:
        print(f"no READY worker for {', '.join(missing)} at {management_url}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
