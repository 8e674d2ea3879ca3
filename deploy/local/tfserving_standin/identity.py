"""How the stand-in names itself: as this project's stand-in, never as TensorFlow Serving."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

STANDIN_BANNER = "TF Serving stand-in (gateway project, not TensorFlow Serving)"
STANDIN_VERSION = "0.1.0"
# Every gRPC response carries this trailer, every REST response this header.
IDENTITY_METADATA = (("x-tfserving-standin", STANDIN_BANNER),)
SERVER_HEADER: Mapping[str, str] = MappingProxyType({"Server": STANDIN_BANNER})

log = logging.getLogger("tfserving_standin")

_announced = False


def announce() -> None:
    """Print the banner, once: it must be the log's first line, before anything TensorFlow says."""
    global _announced
    if not _announced:
        print(STANDIN_BANNER, flush=True)
        _announced = True
