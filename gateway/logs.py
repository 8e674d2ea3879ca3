"""The process log: the gateway's own loggers at ``--log-level``, libraries at
``logging.third_party_level`` (default warning), so that grpc's "Loaded running loop" and the
like never drown the gateway's lines, even at ``--log-level debug``."""

from __future__ import annotations

import logging

OURS = "gateway"
LIBRARIES = (
    "asyncio",
    "fastapi",
    "grpc",
    "h11",
    "httpcore",
    "httptools",
    "httpx",
    "multipart",
    "opentelemetry",
    "python_multipart",
    "starlette",
    "urllib3",
    "uvicorn",
    "watchfiles",
)
"""Set to the third-party level outright: their records below it are never even made."""


class _Libraries(logging.Filter):
    """On the root's handlers: any other library's records below the third-party level go too."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        ours = name == OURS or name.startswith("gateway.") or name == "__main__"
        return ours or record.levelno >= self.level


def quiet_libraries(level: str) -> None:
    """Apply ``logging.third_party_level`` (``debug``/``info``/``warning``/``error``)."""
    threshold = logging.getLevelNamesMapping()[level.upper()]
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(threshold)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, _Libraries)]:
            handler.removeFilter(old)
        handler.addFilter(_Libraries(threshold))
