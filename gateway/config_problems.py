"""What was wrong with a configuration, said once per problem and blamed on where it came from.

pydantic's errors are turned into ``(where, reason)`` pairs: ``where`` is the key path the user
wrote (``backends.tfserving.timeout_s``) or, when a ``GATEWAY_*`` environment variable set that
key, the variable (``environment variable GATEWAY_SERVER__WORKERS (server.workers)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

ENV_PREFIX = "GATEWAY_"
ENV_DELIMITER = "__"
FROM_ENVIRONMENT = "environment variable "

Problem = tuple[str, str]  # (where, reason)
Location = tuple[int | str, ...]


def key_path(loc: Location) -> str:
    """``('models', 'digits', 'variants', 1, 'weight')`` -> ``models.digits.variants[1].weight``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


def validation_problems(
    error: ValidationError, backend_kinds: Iterable[str], environ: Mapping[str, str]
) -> list[Problem]:
    """One ``(where, reason)`` per problem in ``error``, in pydantic's order."""
    kinds = frozenset(backend_kinds)
    items = [
        (_written_location(tuple(item["loc"]), kinds), item["type"], _reason(item["msg"]))
        for item in error.errors(include_url=False)
    ]
    locations = [loc for loc, _, _ in items]
    problems = []
    for loc, kind, reason in items:
        # A tuple with a bad item is also "too short" (it counts only the valid ones): that is
        # the same problem said twice.
        if kind == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locations):
            continue
        problems.append((where(loc, environ), reason))
    return unique(problems)


def environment_section_problems(
    field: str, cause: BaseException | None, environ: Mapping[str, str]
) -> list[Problem]:
    """pydantic-settings could not decode the JSON of a variable that sets the section ``field``."""
    prefix = f"{ENV_PREFIX}{field}".upper()
    candidates = sorted(name for name in environ if name.upper().startswith(prefix))
    broken = [name for name in candidates if not _is_json(environ[name])]
    reason = f"not valid JSON: {cause}" if cause is not None else "cannot be read"
    return [(f"{FROM_ENVIRONMENT}{name}", reason) for name in broken or candidates] or [
        (f"{FROM_ENVIRONMENT}{prefix}", reason)
    ]


def where(loc: Location, environ: Mapping[str, str]) -> str:
    """The key path, or the environment variable that set it (or a section holding it)."""
    path = key_path(loc)
    found = _setting_variable(loc, environ)
    if found is None:
        return path
    name, whole = found
    shown = f"{name}={environ[name]!r}" if whole else name
    return f"{FROM_ENVIRONMENT}{shown} ({path})"


def unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _written_location(loc: Location, kinds: frozenset[str]) -> Location:
    # A tagged union puts the tag after the backend's name (backends.<name>.<kind>.timeout_s);
    # the user never wrote it. Only that position is dropped: a backend may be *named* tfserving.
    if len(loc) > 2 and loc[0] == "backends" and loc[2] in kinds:
        return loc[:2] + loc[3:]
    return loc


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")


def _setting_variable(loc: Location, environ: Mapping[str, str]) -> tuple[str, bool] | None:
    """The ``GATEWAY_*`` variable whose value holds the key at ``loc``, if one is set, and
    whether it sets exactly that key (rather than a JSON section holding it)."""
    names = []
    for part in loc:
        if isinstance(part, int):
            break
        names.append(part)
    by_upper = {name.upper(): name for name in environ}
    for length in range(len(names), 0, -1):
        wanted = (ENV_PREFIX + ENV_DELIMITER.join(names[:length])).upper()
        variable = by_upper.get(wanted)
        if variable is None:
            continue
        if length == len(loc):
            return variable, True
        if _holds(environ[variable], loc[length:]):
            return variable, False
    return None


def _holds(value: str, rest: Location) -> bool:
    """Whether a JSON section value sets the key ``rest`` inside it."""
    try:
        node: Any = json.loads(value)
    except ValueError:
        return False
    for part in rest:
        in_list = isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node)
        in_dict = isinstance(part, str) and isinstance(node, dict) and part in node
        if not (in_list or in_dict):
            return False
        node = node[part]
    return True


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True
