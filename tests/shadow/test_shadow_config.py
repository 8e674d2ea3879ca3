"""``models.<m>.shadow``: defaults, and refusals that name the key path."""

import copy
from typing import Any

import pytest

from gateway.config import ConfigError, parse_config

DOC: dict[str, Any] = {
    "backends": {
        "tfs": {"kind": "tfserving", "grpc": "127.0.0.1:8500"},
        "ts": {"kind": "torchserve", "inference": "http://127.0.0.1:8080"},
    },
    "models": {
        "digits": {
            "variants": [
                {"name": "tf-v2", "backend": "tfs", "version": 2, "weight": 1},
                {"name": "torch-v2", "backend": "ts", "version": 2, "weight": 1},
                {"name": "torch-v3", "backend": "ts", "version": 3, "weight": 0},
            ],
        }
    },
}


def with_shadow(shadow):
    doc = copy.deepcopy(DOC)
    doc["models"]["digits"]["shadow"] = shadow
    return doc


def problems(doc):
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    return dict(caught.value.problems)


def test_defaults():
    shadow = parse_config(with_shadow({"variants": ["torch-v3"]})).models["digits"].shadow
    assert shadow is not None
    assert shadow.percent == 100
    assert shadow.timeout_s == 5
    assert (shadow.max_concurrent, shadow.max_queued) == (8, 64)
    assert (shadow.atol, shadow.rtol, shadow.top_k) == (1e-5, 1e-5, 1)
    assert shadow.compare_values == "same_version"
    assert parse_config(DOC).models["digits"].shadow is None


def test_an_unknown_shadow_variant_names_the_key_path_and_the_known_ones():
    assert problems(with_shadow({"variants": ["torch-v3", "tf-v9"]})) == {
        "models.digits.shadow.variants[1]": (
            "unknown variant 'tf-v9' (variants: tf-v2, torch-v2, torch-v3)"
        )
    }


@pytest.mark.parametrize(
    ("shadow", "where"),
    [
        ({"variants": ["torch-v3"], "percent": 101}, "models.digits.shadow.percent"),
        ({"variants": ["torch-v3"], "max_concurrent": 0}, "models.digits.shadow.max_concurrent"),
        ({"variants": ["torch-v3"], "max_queued": -1}, "models.digits.shadow.max_queued"),
        ({"variants": ["torch-v3"], "timeout_s": 0}, "models.digits.shadow.timeout_s"),
        ({"variants": ["torch-v3"], "atol": -1}, "models.digits.shadow.atol"),
        ({"variants": ["torch-v3"], "top_k": -1}, "models.digits.shadow.top_k"),
        ({"variants": ["torch-v3"], "sample": 5}, "models.digits.shadow.sample"),
        ({"variants": ["torch-v3"], "compare_values": "x"}, "models.digits.shadow.compare_values"),
        ({"variants": ["torch-v3", "torch-v3"]}, "models.digits.shadow.variants"),
    ],
)
def test_refusals_name_the_key(shadow, where):
    assert list(problems(with_shadow(shadow))) == [where]
