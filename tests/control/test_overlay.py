"""The overlay laid over the config file's document, and validated as the file is."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError
from gateway.control import overlay
from gateway.control.plane import compose_config, describe
from gateway.errors import InvalidInput

BASE: dict[str, Any] = {
    "backends": {"ts": {"kind": "torchserve"}, "tf": {"kind": "tfserving"}},
    "models": {
        "digits": {
            "variants": [
                {"name": "torch-v1", "backend": "ts", "version": 1, "weight": 90},
                {"name": "tf-v2", "backend": "tf", "version": 2, "weight": 10},
            ]
        }
    },
}


def test_patches_lay_over_variants_by_name_and_leave_the_base_alone() -> None:
    base = copy.deepcopy(BASE)
    document: dict[str, Any] = {"models": {}}
    overlay.patch_variant(document, "digits", "tf-v2", {"weight": 0})
    overlay.patch_variant(document, "digits", "tf-v2", {"enabled": False})
    overlay.patch_variant(document, "digits", "gone", {"weight": 3})
    composed = overlay.compose(base, document)
    assert base == BASE
    variants = composed["models"]["digits"]["variants"]
    assert variants[1] == {**BASE["models"]["digits"]["variants"][1], "weight": 0, "enabled": False}
    assert [v["name"] for v in variants] == ["torch-v1", "tf-v2"]  # no variant from a stale patch


def test_a_replacement_list_drops_earlier_patches_and_other_keys_replace() -> None:
    document: dict = {"models": {}}
    overlay.patch_variant(document, "digits", "tf-v2", {"weight": 7})
    replacement = [{"name": "torch-v3", "backend": "ts", "version": 3, "weight": 1}]
    overlay.replace_variants(document, "digits", replacement)
    overlay.set_model_key(document, "digits", "shadow", {"variants": ["x"], "percent": 5})
    composed = overlay.compose(BASE, document)["models"]["digits"]
    assert composed == {"variants": replacement, "shadow": {"variants": ["x"], "percent": 5}}
    overlay.set_model_key(document, "digits", "shadow", None)
    assert "shadow" not in overlay.compose(BASE, document)["models"]["digits"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "a patch is an object"),
        ({"weight": 1, "backend": "x"}, "backend: not a field a patch may change"),
        ([1], "a patch is an object"),
    ],
)
def test_a_patch_names_only_what_it_may_change(changes: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        overlay.patch_variant({"models": {}}, "digits", "tf-v2", changes)


def test_a_composed_config_is_refused_with_the_file_s_key_paths(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(BASE))
    document: dict = {"models": {}}
    overlay.patch_variant(document, "digits", "tf-v2", {"weight": -1})
    with pytest.raises(ConfigError) as caught:
        compose_config(path, document, overlay_path=tmp_path / "overlay.json")
    # The same problem, at the same key path, as the file itself with weight -1 gets.
    assert caught.value.problems == [
        ("models.digits.variants[1].weight", "Input should be greater than or equal to 0")
    ]
    assert f"{path} with overlay {tmp_path / 'overlay.json'}" in str(caught.value)


def test_describe_names_each_changed_field_old_to_new(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(BASE))
    before = compose_config(path, {"models": {}})
    document: dict = {"models": {}}
    overlay.patch_variant(document, "digits", "tf-v2", {"weight": 30, "labels": ["canary"]})
    after = compose_config(path, document)
    assert describe(before, after) == [
        "digits/tf-v2 weight 10 -> 30",
        "digits/tf-v2 labels [] -> [canary]",
    ]
    assert describe(after, after) == []
