import json
import textwrap
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import ConfigError, OipBackendConfig, load_config, parse_config

VALID: dict[str, Any] = {
    "backends": {
        "tfs": {"kind": "tfserving", "grpc": "127.0.0.1:8500"},
        "ts": {"kind": "torchserve", "inference": "http://127.0.0.1:8080"},
    },
    "models": {
        "digits": {
            "variants": [
                {"name": "tf-v1", "backend": "tfs", "version": 1, "weight": 9},
                {"name": "torch-v2", "backend": "ts", "version": "2", "weight": 1},
            ]
        }
    },
}


def problems(doc):
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    return dict(caught.value.problems)


def with_variant(**changes):
    doc = {
        **VALID,
        "models": {"digits": {"variants": [dict(VALID["models"]["digits"]["variants"][0])]}},
    }
    doc["models"]["digits"]["variants"][0].update(changes)
    return doc


def test_valid_config_parses_with_defaults():
    config = parse_config(VALID)
    assert config.server.http.port == 8000
    assert config.server.sticky_header == "x-user-id"
    assert config.models["digits"].variants[0].version == "1"
    assert config.backends["tfs"].protocol == "grpc"
    assert config.backends["ts"].protocol == "rest"


def test_negative_weight_names_the_key_path():
    found = problems(with_variant(weight=-1))
    assert "models.digits.variants[0].weight" in found
    assert "greater than or equal to 0" in found["models.digits.variants[0].weight"]


def test_unknown_backend_names_known_ones():
    found = problems(with_variant(backend="nope"))
    assert found["models.digits.variants[0].backend"] == "unknown backend 'nope' (known: tfs, ts)"


def test_tf_serving_version_must_be_an_integer():
    found = problems(with_variant(version="v1"))
    assert "integers" in found["models.digits.variants[0].version"]


def test_all_drained_model_is_refused():
    found = problems(with_variant(weight=0))
    assert "at least one must take traffic" in found["models.digits.variants"]


def test_duplicate_variant_names_are_refused():
    doc = with_variant()
    doc["models"]["digits"]["variants"].append(dict(doc["models"]["digits"]["variants"][0]))
    assert "duplicate variant name" in problems(doc)["models.digits.variants[1].name"]


def test_unknown_keys_and_bad_addresses_are_refused():
    doc = {
        **VALID,
        "backends": {
            **VALID["backends"],
            "tfs": {"kind": "tfserving", "grpc": "nohost", "colour": 1},
        },
    }
    found = problems(doc)
    assert "not host:port" in found["backends.tfs.grpc"]
    assert "Extra inputs" in found["backends.tfs.colour"]


def test_unknown_backend_kind():
    doc = {**VALID, "backends": {"x": {"kind": "triton"}}}
    assert "backends.x" in problems(doc)


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("GATEWAY_SERVER__WORKERS", "3")
    monkeypatch.setenv("GATEWAY_SERVER__HTTP__PORT", "9000")
    config = parse_config(VALID)
    assert config.server.workers == 3
    assert config.server.http.port == 9000


def test_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  digits: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0][0].startswith("line ")


def test_cli_validate(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(
        textwrap.dedent(
            """
            backends:
              ts: {kind: torchserve}
            models:
              digits:
                variants:
                  - {name: a, backend: ts, version: 1, weight: 1}
            """
        )
    )
    assert main(["validate", str(good)]) == 0
    assert "ok (1 models, 1 variants, 1 backends)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("weight: 1", "weight: -3"))
    assert main(["validate", str(bad)]) == 1
    assert "models.digits.variants[0].weight" in capsys.readouterr().err


def test_shipped_configs_validate():
    for path in ["deploy/local/gateway.yaml"]:
        load_config(path)


def test_json_configs_load_with_the_same_checks(tmp_path):
    good = tmp_path / "generated.json"
    good.write_text(json.dumps(VALID))
    assert load_config(good).models["digits"].variants[1].version == "2"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(with_variant(weight=-1)))
    with pytest.raises(ConfigError, match=r"models\.digits\.variants\[0\]\.weight"):
        load_config(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken)


def test_key_paths_keep_backend_names_even_when_a_name_is_a_kind():
    doc = {
        **VALID,
        "backends": {
            "tfserving": {"kind": "tfserving", "protocol": "http", "timeout_s": -5},
            "oip": {"kind": "torchserve", "timeout_s": -5},
        },
    }
    assert problems(doc) == {
        "backends.tfserving.protocol": "Input should be 'grpc' or 'rest'",
        "backends.tfserving.timeout_s": "Input should be greater than 0",
        "backends.oip.timeout_s": "Input should be greater than 0",
    }


def test_each_problem_is_reported_once(tmp_path):
    doc = with_variant(labels=["not a label"])
    doc["backends"] = {**VALID["backends"], "tfs": {"kind": "tfserving", "timeout_s": -5}}
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    assert caught.value.problems == [
        ("backends.tfs.timeout_s", "Input should be greater than 0"),
        ("models.digits.variants[0].labels[0]", "String should match pattern '^[A-Za-z0-9_]+$'"),
    ]  # and no "variants: should have at least 1 item" for the variant refused above
    assert str(caught.value).count("timeout_s") == 1
    found = problems({**VALID, "backends": {**VALID["backends"], "x": {"kind": "oip", "url": 1}}})
    assert found == {"backends.x.url": "Input should be a valid string"}


def test_a_bad_environment_override_is_blamed_on_its_variable(tmp_path, monkeypatch, capsys):
    path = tmp_path / "gateway.yaml"
    path.write_text(json.dumps(VALID))
    monkeypatch.setenv("GATEWAY_SERVER__WORKERS", "abc")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"invalid gateway environment overrides (GATEWAY_*) of {path}:",
        "  environment variable GATEWAY_SERVER__WORKERS='abc' (server.workers): "
        "Input should be a valid integer, unable to parse string as an integer",
    ]
    # A problem in the file and one in the environment: each blamed on its own source.
    path.write_text(json.dumps(with_variant(weight=-1)))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"invalid gateway config {path} and its environment overrides")
    assert "\n  models.digits.variants[0].weight: " in err
    assert "\n  environment variable GATEWAY_SERVER__WORKERS='abc' (server.workers): " in err


def test_environment_sections_and_cross_checks_name_the_variable(monkeypatch):
    monkeypatch.setenv("GATEWAY_SERVER__HTTP", '{"port": "x"}')
    assert problems(VALID) == {
        "environment variable GATEWAY_SERVER__HTTP (server.http.port)": (
            "Input should be a valid integer, unable to parse string as an integer"
        )
    }
    monkeypatch.setenv("GATEWAY_SERVER__HTTP", "{not json")
    found = problems(VALID)  # pydantic-settings raises its own error here, not a traceback
    assert list(found) == ["environment variable GATEWAY_SERVER__HTTP"]
    assert found["environment variable GATEWAY_SERVER__HTTP"].startswith("not valid JSON: ")
    monkeypatch.delenv("GATEWAY_SERVER__HTTP")
    monkeypatch.setenv("GATEWAY_BACKENDS__TFS__PROTOCOL", "rest")
    doc = {**VALID, "backends": {**VALID["backends"], "tfs": {"kind": "tfserving", "rest": None}}}
    assert problems(doc) == {
        "environment variable GATEWAY_BACKENDS__TFS__PROTOCOL='rest' (backends.tfs.protocol)": (
            "protocol is 'rest' but no such address is set"
        )
    }


def oip(**fields):
    doc = {**VALID, "backends": {**VALID["backends"], "ml": {"kind": "oip", **fields}}}
    doc["models"] = {"digits": {"variants": [
        {"name": "ml-v1", "backend": "ml", "version": 1, "weight": 1}]}}  # fmt: skip
    return doc


def test_runtime_defaults_to_the_kind_and_names_oip_servers():
    config = parse_config(oip(url="http://127.0.0.1:9000"))
    assert [config.backends[name].runtime for name in ("tfs", "ts", "ml")] == [
        "tfserving",
        "torchserve",
        "oip",
    ]
    named = parse_config(oip(url="http://127.0.0.1:9000", runtime="triton")).backends["ml"]
    assert named.runtime == "triton"
    assert (
        "should match pattern"
        in problems(oip(url="http://h:1", runtime="Tri ton"))["backends.ml.runtime"]
    )


def test_oip_over_grpc_needs_its_address():
    config = parse_config(oip(grpc="127.0.0.1:9001", protocol="grpc", runtime="mlserver"))
    backend = config.backends["ml"]
    assert isinstance(backend, OipBackendConfig)
    assert (backend.protocol, backend.grpc, backend.url) == ("grpc", "127.0.0.1:9001", None)
    found = problems(oip(url="http://127.0.0.1:9000", protocol="grpc"))
    assert found == {"backends.ml.grpc": "protocol is 'grpc' but no such address is set"}
    assert "backends.ml.url" in problems(oip(grpc="127.0.0.1:9001"))


def test_mlserver_gets_json_tensors_unless_told_otherwise():
    def binary(**fields) -> bool:
        backend = parse_config(oip(url="http://127.0.0.1:9000", **fields)).backends["ml"]
        assert isinstance(backend, OipBackendConfig)
        return backend.rest_binary

    assert binary() is True
    assert binary(runtime="triton") is True
    assert binary(runtime="mlserver") is False
    assert binary(runtime="mlserver", binary_tensors=True) is True
    assert binary(binary_tensors=False) is False


def test_tls_ca_file_must_load(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    for path in (tmp_path / "missing.pem", not_pem):
        doc = {**VALID, "backends": {**VALID["backends"]}}
        doc["backends"]["ts"] = {**VALID["backends"]["ts"], "tls_ca_file": str(path)}
        reason = problems(doc)["backends.ts.tls_ca_file"]
        assert f"cannot load CA file {str(path)!r}" in reason
    default = parse_config(VALID).backends["ts"]
    assert (default.tls_ca_file, default.tls_verify) == (None, True)
