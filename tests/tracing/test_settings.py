import pytest

from gateway.config_observability import TracingConfig
from gateway.tracing.settings import TracingSettingsError, resolve

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}


def test_off_without_an_endpoint():
    assert resolve(TracingConfig(), {}) is None


def test_the_standard_variables_turn_it_on_with_otels_defaults():
    settings = resolve(TracingConfig(), ENDPOINT)
    assert settings is not None
    assert settings.endpoint == "http://collector:4317"
    assert settings.parent_based
    assert settings.ratio == 1.0
    assert settings.service_name == "gateway"


def test_the_traces_endpoint_wins_over_the_general_one():
    env = {**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317"}
    settings = resolve(TracingConfig(), env)
    assert settings is not None
    assert settings.endpoint == "http://traces:4317"


def test_the_section_wins_over_the_environment():
    env = {
        **ENDPOINT,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
        "OTEL_SERVICE_NAME": "from-env",
    }
    section = TracingConfig(
        endpoint="http://mine:4317", sampler="traceidratio", ratio=0.25, service_name="edge"
    )
    settings = resolve(section, env)
    assert settings is not None
    assert (settings.endpoint, settings.parent_based, settings.ratio, settings.service_name) == (
        "http://mine:4317",
        False,
        0.25,
        "edge",
    )


def test_sampler_variables_fill_in_what_the_section_leaves_out():
    env = {**ENDPOINT, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    settings = resolve(TracingConfig(), {**env, "OTEL_TRACES_SAMPLER_ARG": "0.1"})
    assert settings is not None
    assert settings.ratio == 0.1
    settings = resolve(
        TracingConfig(), {**ENDPOINT, "OTEL_TRACES_SAMPLER": "parentbased_always_off"}
    )
    assert settings is not None
    assert (settings.parent_based, settings.ratio) == (True, 0.0)


def test_disabled_by_the_sdk_switch_or_another_exporter():
    assert resolve(TracingConfig(), {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}) is None
    assert resolve(TracingConfig(), {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}) is None
    # An endpoint in the file is an explicit choice: OTEL_TRACES_EXPORTER does not undo it.
    section = TracingConfig(endpoint="http://mine:4317")
    assert resolve(section, {"OTEL_TRACES_EXPORTER": "none"}) is not None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ],
)
def test_unusable_variables_are_refused_by_name(env, named):
    with pytest.raises(TracingSettingsError, match=named):
        resolve(TracingConfig(), {**ENDPOINT, **env})
