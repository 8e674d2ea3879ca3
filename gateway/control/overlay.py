"""The overlay: changes made through the admin API, kept apart from the config file.

A JSON document ``{"revision": N, "models": {MODEL: ENTRY}}``; each ENTRY may hold

- ``variants``: the model's whole variant list (``PUT /admin/models/{m}``, a deploy), replacing
  the file's;
- ``patch``: ``{VARIANT: {"weight": N, "enabled": B, "labels": [...]}}``, laid over the variants
  (the file's, or the replacement) by name;
- any other key of a model (``shadow``...): replaces the file's value.

Composing is a pure function of (file document, overlay), so every process composing the same
two gets the same config, and a change to the file keeps the patches of variants it still has.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.errors import InvalidInput

PATCHABLE = ("weight", "enabled", "labels")


def compose(base: Any, overlay: dict[str, Any]) -> Any:
    """The file's document with the overlay laid over it (a new document; neither is changed).
    A patch of a variant the model no longer has is left out."""
    if not isinstance(base, dict):
        return base
    document = copy.deepcopy(base)
    models = document.get("models")
    if not isinstance(models, dict):
        models = document["models"] = {}
    for name, entry in overlay.get("models", {}).items():
        model = models.get(name)
        model = dict(model) if isinstance(model, dict) else {}
        for key, value in entry.items():
            if key not in ("variants", "patch"):
                model[key] = copy.deepcopy(value)
        if "variants" in entry:
            model["variants"] = copy.deepcopy(entry["variants"])
        patches = entry.get("patch", {})
        variants = model.get("variants")
        if patches and isinstance(variants, list):
            model["variants"] = [
                {**v, **patches.get(v.get("name"), {})} if isinstance(v, dict) else v
                for v in variants
            ]
        if model:
            models[name] = model
    return document


def _entry(overlay: dict[str, Any], model: str) -> dict[str, Any]:
    entry: dict[str, Any] = overlay.setdefault("models", {}).setdefault(model, {})
    return entry


def patch_variant(overlay: dict[str, Any], model: str, variant: str, changes: Any) -> None:
    """Lay ``changes`` (weight, enabled, labels) over one variant."""
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput(f"a patch is an object with any of {', '.join(PATCHABLE)}")
    unknown = sorted(set(changes) - set(PATCHABLE))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a field a patch may change ({', '.join(PATCHABLE)})")
    patch = _entry(overlay, model).setdefault("patch", {}).setdefault(variant, {})
    patch.update(copy.deepcopy(changes))


def replace_variants(overlay: dict[str, Any], model: str, variants: Any) -> None:
    """Replace the model's variant list (and drop the patches: the new list says it all)."""
    if not isinstance(variants, list):
        raise InvalidInput("variants: a list of variants is required")
    entry = _entry(overlay, model)
    entry["variants"] = copy.deepcopy(variants)
    entry.pop("patch", None)


def set_model_key(overlay: dict[str, Any], model: str, key: str, value: Any) -> None:
    """Set another key of a model (``shadow``, say); ``None`` removes it from the overlay."""
    if key in ("variants", "patch"):
        raise ValueError(f"{key} has its own edit")
    entry = _entry(overlay, model)
    if value is None:
        entry.pop(key, None)
    else:
        entry[key] = copy.deepcopy(value)
