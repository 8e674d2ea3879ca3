"""A front end's per-worker limit on inference requests at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from gateway.errors import Overloaded


class ConcurrencyLimit:
    __slots__ = ("active", "front_end", "limit", "on_shed")

    def __init__(
        self, limit: int, front_end: str, on_shed: Callable[[str, str], None] | None = None
    ) -> None:
        self.limit = limit
        self.front_end = front_end
        self.active = 0
        self.on_shed = on_shed
        """Told ("", "max_concurrent_requests") of every request refused."""

    def enter(self) -> None:
        """Count one more request, or raise :class:`Overloaded` if the worker is at its limit.

        (The HTTP front end inlines it: ``if active >= limit: refuse()``, then ``active += 1``.)"""
        if self.active >= self.limit:
            self.refuse()
        self.active += 1

    def refuse(self) -> NoReturn:
        """Count the refusal and raise :class:`Overloaded`."""
        if self.on_shed is not None:
            self.on_shed("", "max_concurrent_requests")
        raise Overloaded(
            f"this gateway worker is serving {self.active} {self.front_end} inference "
            f"requests (server.limits.max_concurrent_requests: {self.limit}); retry shortly"
        )

    def leave(self) -> None:
        self.active -= 1
