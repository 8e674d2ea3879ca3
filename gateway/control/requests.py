"""What every admin route needs of a request: who sent it, and its JSON body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request

from gateway.errors import InvalidInput

if TYPE_CHECKING:
    from gateway.control.plane import Actor


def actor(request: Request) -> Actor:
    """Who made the request (set by the token check in front of the routes)."""
    found: Actor = request.state.actor
    return found


async def json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the body is not JSON: {error}") from None
