"""What the admin API shows of shadowing: the settings, and several workers' examples merged."""

from gateway.config import parse_config
from gateway.shadow.admin import examples_doc, shadow_doc
from tests.shadow.test_shadow_config import DOC, with_shadow


def test_examples_of_several_workers_merge_newest_first_within_the_limit():
    first = [{"at": 5.0, "request_id": "a"}, {"at": 1.0, "request_id": "b"}]
    second = [{"at": 3.0, "request_id": "c"}]
    doc = examples_doc("digits", [first, second], limit=2)
    assert doc == {
        "model": "digits",
        "examples": [{"at": 5.0, "request_id": "a"}, {"at": 3.0, "request_id": "c"}],
    }


def test_the_settings_in_force():
    assert shadow_doc(parse_config(DOC), "digits") == {
        "model": "digits",
        "variants": [],
        "percent": 0.0,
    }
    doc = shadow_doc(parse_config(with_shadow({"variants": ["torch-v3"], "percent": 5})), "digits")
    assert doc["variants"] == ["torch-v3"]
    assert doc["percent"] == 5
    assert doc["max_queued"] == 64
