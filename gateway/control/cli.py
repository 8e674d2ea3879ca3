"""``gateway routes|weights|enable|disable|reload|deploy|undeploy``: the admin API from a
terminal. ``--admin URL`` (default ``http://127.0.0.1:8002``), the token from
``GATEWAY_ADMIN_TOKEN``, ``--json`` prints the API's own objects; an error is one line on stderr
and exit 1.

``register(commands)`` adds the commands to the gateway's command line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.api_call import ApiRefused, ApiUnreachable, json_call

DEFAULT_ADMIN = "http://127.0.0.1:8002"
DEPLOY_TIMEOUT_S = 300.0


class CommandError(Exception):
    """One line for the terminal, and exit 1."""


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    token = os.environ.get("GATEWAY_ADMIN_TOKEN", "").strip() or None
    try:
        return json_call(args.admin.rstrip("/") + path, method, body, token, args.timeout)
    except ApiRefused as error:
        doc, message = error.doc, error.message
        if isinstance(doc, dict) and doc.get("problems"):
            message = "; ".join(f"{p['where']}: {p['reason']}" for p in doc["problems"])
        if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
            message += " (" + _outcomes(doc["result"]) + ")"
        hint = " (set GATEWAY_ADMIN_TOKEN)" if error.status == 401 and not token else ""
        raise CommandError(f"{method} {path}: {error.status} {message}{hint}".rstrip()) from None
    except ApiUnreachable as error:
        raise CommandError(
            f"cannot reach the gateway's admin API at {args.admin}: {error.reason} "
            "(server.admin in its config; --admin URL)"
        ) from None


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _version(doc: dict[str, Any]) -> str:
    version = doc.get("config_version") or {}
    return f"config version {version.get('version')} ({version.get('hash')})"


def routes_table(doc: dict[str, Any]) -> str:
    """One model's variants as a table a person reads."""
    header = ("VARIANT", "RUNTIME", "VERSION", "WEIGHT", "SHARE", "ENABLED", "READY", "LABELS")
    rows = [header]
    for v in doc["variants"]:
        rows.append(
            (
                v["name"],
                v["runtime"],
                v["version"],
                str(v["weight"]),
                f"{100 * v['share']:.1f}%",
                "yes" if v["enabled"] else "no",
                ("ejected" if v.get("ejected") else "yes") if v["ready"] else "no",
                ",".join(v["labels"]) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{doc['model']} ({_version(doc)})"]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _print(args: argparse.Namespace, doc: Any, text: Callable[[Any], str]) -> None:
    print(json.dumps(doc, indent=1) if args.json else text(doc))


def _routes(args: argparse.Namespace) -> int:
    if args.model:
        doc = call(args, "GET", f"/admin/models/{_quoted(args.model)}")
        _print(args, doc, routes_table)
    else:
        doc = call(args, "GET", "/admin/models")
        _print(args, doc, lambda d: "\n\n".join(routes_table(m) for m in d["models"]))
    return 0


def _weights(args: argparse.Namespace) -> int:
    changes: dict[str, dict[str, int]] = {}
    for item in args.weights:
        name, sep, weight = item.partition("=")
        if not sep or not name or not weight.isdigit():
            raise CommandError(f"{item!r}: give VARIANT=WEIGHT (a whole number, 0 drains it)")
        changes[name] = {"weight": int(weight)}
    doc = call(args, "PATCH", f"/admin/models/{_quoted(args.model)}/variants", changes)
    _print(args, doc, lambda d: _changed(args.model, d))
    return 0


def _changed(model: str, doc: dict[str, Any]) -> str:
    parts = [
        f"{v['name']}={v['weight']} ({100 * v['share']:.1f}%{'' if v['enabled'] else ', disabled'})"
        for v in doc["variants"]
    ]
    return f"{model}: {', '.join(parts)}; {_version(doc)}, applied on every worker"


def _switch(args: argparse.Namespace, enabled: bool) -> int:
    path = f"/admin/models/{_quoted(args.model)}/variants/{_quoted(args.variant)}"
    doc = call(args, "PATCH", path, {"enabled": enabled})
    doc["variants"] = [doc.pop("variant")]
    _print(args, doc, lambda d: _changed(args.model, d))
    return 0


def _reload(args: argparse.Namespace) -> int:
    doc = call(args, "POST", "/admin/reload")
    _print(args, doc, lambda d: f"reloaded: {_version(d)}, applied on every worker")
    return 0


def _targets(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The deploy's targets: ``--mar`` -> every TorchServe backend, ``--savedmodel`` -> every TF
    Serving backend (neither: both, with the archive named after the model and version)."""
    backends: dict[str, Any] = call(args, "GET", "/admin/config")["config"]["backends"]
    kinds = {name: b["kind"] for name, b in backends.items()}
    want = {"torchserve": args.mar is not None, "tfserving": args.savedmodel is not None}
    if not any(want.values()):
        want = {"torchserve": True, "tfserving": True}
    names = dict(item.partition("=")[::2] for item in args.variants or [])
    targets: list[dict[str, Any]] = []
    for name, kind in kinds.items():
        if not want.get(kind):
            continue
        target: dict[str, Any] = {"backend": name}
        if kind == "torchserve":
            target["archive"] = (
                Path(args.mar).name if args.mar else f"{args.model}_v{args.version}.mar"
            )
        elif args.savedmodel:
            path = Path(args.savedmodel)
            target["base_path"] = str(path.parent if path.name == str(args.version) else path)
        if name in names:
            target["variant"] = names.pop(name)
        targets.append(target)
    if names:
        raise CommandError(f"--variants names backends the deploy does not use: {', '.join(names)}")
    if not targets:
        raise CommandError("the gateway has no TorchServe or TF Serving backend to deploy into")
    return targets


def _outcomes(result: dict[str, Any]) -> str:
    parts = []
    for o in result.get("outcomes", []):
        part = f"{o['backend']}: {o['action']}"
        if o.get("seconds"):
            part += f" in {o['seconds']:.1f}s"
        if o.get("detail") and o["action"] != "deployed":
            part += f" ({o['detail']})"
        parts.append(part)
    return ", ".join(parts)


def _operate(args: argparse.Namespace, operation: str) -> int:
    body = {"version": args.version, "targets": _targets(args)}
    doc = call(args, "POST", f"/admin/models/{_quoted(args.model)}/{operation}", body)

    def text(d: dict[str, Any]) -> str:
        result = d["result"]
        added = ", ".join(v["name"] for v in result.get("variants", []))
        line = f"{operation} {args.model} version {args.version}: {_outcomes(result)}"
        if operation == "deploy" and added:
            line += f"; variants {added} at weight 0"
        return f"{line}; {_version(d)}"

    _print(args, doc, text)
    return 0


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CommandError as error:
            print(f"gateway {args.command}: {error}", file=sys.stderr)
            return 1

    return run


def _common(parser: argparse.ArgumentParser, timeout: float = 30.0) -> None:
    parser.add_argument(
        "--admin", default=DEFAULT_ADMIN, metavar="URL", help="admin API (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.add_argument("--timeout", type=float, default=timeout, help=argparse.SUPPRESS)


def register(commands: Any) -> None:
    routes = commands.add_parser(
        "routes",
        help="show a model's variants, weights and readiness",
        description="Show the variants of MODEL (default: every model): runtime, version, "
        "weight and share of traffic, enabled, ready, labels. Token: GATEWAY_ADMIN_TOKEN.",
    )
    routes.add_argument("model", nargs="?", metavar="MODEL")
    _common(routes)
    routes.set_defaults(handler=_run(_routes))

    weights = commands.add_parser(
        "weights",
        help="set the weights of a model's variants (one change)",
        description="Set weights, e.g. `gateway weights digits torch-v1=90 torch-v3=10`: one "
        "change, answered once every worker applied it.",
    )
    weights.add_argument("model", metavar="MODEL")
    weights.add_argument("weights", nargs="+", metavar="VARIANT=WEIGHT")
    _common(weights)
    weights.set_defaults(handler=_run(_weights))

    for name, enabled in (("enable", True), ("disable", False)):
        command = commands.add_parser(
            name,
            help=f"{name} a variant" + ("" if enabled else " (out of all traffic, pins too)"),
            description=f"{name.capitalize()} VARIANT of MODEL: "
            + (
                "it takes traffic again, by its weight."
                if enabled
                else "it takes no traffic at all, pins included, until enabled again."
            ),
        )
        command.add_argument("model", metavar="MODEL")
        command.add_argument("variant", metavar="VARIANT")
        _common(command)
        command.set_defaults(handler=_run(functools.partial(_switch, enabled=enabled)))

    reload = commands.add_parser(
        "reload",
        help="re-read the config file (and the overlay)",
        description="Re-read the gateway's config file and state overlay and apply them.",
    )
    _common(reload)
    reload.set_defaults(handler=_run(_reload))

    for name, what in (
        (
            "deploy",
            "load a version into TorchServe and TF Serving and add its variants at weight 0",
        ),
        ("undeploy", "take a version's variants out and unload it from the runtimes"),
    ):
        command = commands.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        command.add_argument("model", metavar="MODEL")
        command.add_argument("--version", required=True, metavar="V")
        command.add_argument(
            "--mar",
            metavar="FILE",
            help="TorchServe archive (its name in TorchServe's model store)",
        )
        command.add_argument(
            "--savedmodel",
            metavar="DIR",
            help="TF Serving SavedModel (the version's directory, or the model's base path, as "
            "TF Serving sees it; only for a model new to TF Serving)",
        )
        command.add_argument(
            "--variants",
            nargs="+",
            metavar="BACKEND=NAME",
            help="names of the new variants (default: torch-vV, tf-vV)",
        )
        _common(command, DEPLOY_TIMEOUT_S)
        command.set_defaults(handler=_run(functools.partial(_operate, operation=name)))
