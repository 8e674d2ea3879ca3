"""Our ModelServerConfig and reload messages against the official tensorflow-serving-api package.

Byte for byte both ways, field by field from the descriptors, and through text format: a config
file written for tensorflow_model_server means the same in both.
"""

from pathlib import Path

import pytest
from google.protobuf import descriptor, text_format
from tensorflow_serving.apis import model_management_pb2 as official_management
from tensorflow_serving.config import model_server_config_pb2 as official_config

from gateway.runtimes.model_server_config import (
    ModelConfigError,
    parse_model_server_config,
    parse_monitoring_config,
    with_version,
)
from gateway.wire import tensorflow_serving_config_pb2 as ours

REPO = Path(__file__).resolve().parents[2]
CONFIG_TEXT = """
model_config_list {
  config {
    name: "digits"
    base_path: "/models/digits"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 3 } } }
  config { name: "b" base_path: "/m/b" model_platform: "tensorflow"
           model_version_policy { all {} } }
}
"""

# Our copies leave out these fields of the official messages (see the .proto).
LEFT_OUT = {"tensorflow.serving.ModelConfig": {"model_type", "logging_config"}}


def test_text_config_serializes_to_the_same_bytes():
    theirs = text_format.Parse(CONFIG_TEXT, official_config.ModelServerConfig())
    mine = parse_model_server_config(CONFIG_TEXT)
    assert mine.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    back = official_config.ModelServerConfig.FromString(mine.SerializeToString())
    assert back == theirs


def test_reload_request_and_response_cross_both_ways():
    mine = ours.ReloadConfigRequest(metric_names=[":tensorflow:serving:x"])
    mine.config.CopyFrom(parse_model_server_config(CONFIG_TEXT))
    theirs = official_management.ReloadConfigRequest.FromString(mine.SerializeToString())
    assert theirs.metric_names == [":tensorflow:serving:x"]
    assert [c.name for c in theirs.config.model_config_list.config] == ["digits", "a", "b"]
    assert theirs.SerializeToString(deterministic=True) == mine.SerializeToString(
        deterministic=True
    )

    answer = official_management.ReloadConfigResponse()
    answer.status.error_code = 9  # FAILED_PRECONDITION
    answer.status.error_message = "Request to assign label to version 3 of model digits"
    answer.metric.add(name="m", int64_value_increase=2)
    read = ours.ReloadConfigResponse.FromString(answer.SerializeToString())
    assert (read.status.error_code, read.status.error_message) == (9, answer.status.error_message)
    assert (read.metric[0].name, read.metric[0].int64_value_increase) == ("m", 2)
    assert read.SerializeToString(deterministic=True) == answer.SerializeToString(
        deterministic=True
    )


def _official(message: descriptor.Descriptor) -> descriptor.Descriptor:
    pool = official_management.DESCRIPTOR.pool
    return pool.FindMessageTypeByName(_public(message.full_name))


def _public(name: str) -> str:
    return name.removeprefix("gateway.wire.")


def _fields(message: descriptor.Descriptor) -> dict[str, tuple[int, int, bool, str]]:
    return {
        field.name: (
            field.number,
            field.type,
            field.is_repeated,
            _public(field.message_type.full_name) if field.message_type else "",
        )
        for field in message.fields
    }


@pytest.mark.parametrize(
    "message",
    [
        ours.ModelServerConfig,
        ours.ModelConfigList,
        ours.ModelConfig,
        ours.FileSystemStoragePathSourceConfig.ServableVersionPolicy,
        ours.FileSystemStoragePathSourceConfig.ServableVersionPolicy.Latest,
        ours.FileSystemStoragePathSourceConfig.ServableVersionPolicy.Specific,
        ours.ReloadConfigRequest,
        ours.ReloadConfigResponse,
        ours.Metric,
    ],
    ids=lambda m: m.DESCRIPTOR.name,
)
def test_every_field_is_the_official_one(message):
    mine = _fields(message.DESCRIPTOR)
    theirs = _fields(_official(message.DESCRIPTOR))
    left_out = LEFT_OUT.get(_official(message.DESCRIPTOR).full_name, set())
    assert set(theirs) - set(mine) == left_out
    for name, shape in mine.items():
        number, kind, repeated, type_name = theirs[name]
        if name == "error_code":  # an enum there (tensorflow.error.Code), an int32 here
            assert number == shape[0]
            continue
        assert (number, kind, repeated, type_name) == shape, name


def test_the_status_code_is_an_int32_on_the_wire():
    code = ours.ReloadConfigResponse().status.DESCRIPTOR.fields_by_name["error_code"]
    assert code.type == descriptor.FieldDescriptor.TYPE_INT32


def test_fields_left_out_are_refused_not_dropped():
    with pytest.raises(ModelConfigError, match="logging_config"):
        parse_model_server_config(
            'model_config_list { config { name: "m" logging_config { } } }', "models.config"
        )


def test_the_deploy_files_parse():
    config = parse_model_server_config((REPO / "deploy/tfserving/models.config").read_text())
    (entry,) = config.model_config_list.config
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    monitoring = parse_monitoring_config((REPO / "deploy/tfserving/monitoring.config").read_text())
    assert monitoring.prometheus_config.enable


def test_a_new_version_pins_latest_and_all_policies_to_what_is_served():
    config = parse_model_server_config(CONFIG_TEXT)
    pinned = with_version(config, "a", 7, serving=[5, 6])
    assert list(pinned.model_config_list.config[1].model_version_policy.specific.versions) == [
        5,
        6,
        7,
    ]
    assert config.model_config_list.config[1].model_version_policy.WhichOneof("policy_choice") == (
        "latest"
    )
    with pytest.raises(ModelConfigError, match="one base path per model"):
        with_version(config, "digits", 3, base_path="/elsewhere/digits")
    added = with_version(config, "new", 1, base_path="/models/new")
    assert added.model_config_list.config[-1].model_platform == "tensorflow"
