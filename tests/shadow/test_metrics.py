"""The shadow series: forgotten with the variants a new config removes."""

from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics


def test_the_shadow_series_of_a_removed_variant_are_forgotten():
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.shadow_result("digits", "torch-v2", "torch-v3", "agree")
    metrics.shadow_diff("digits", "torch-v2", "torch-v3", 1e-6)
    metrics.shadow_result("digits", "torch-v2", "tf-v2", "agree")
    gone = metrics.forget({("digits", "3", "torch-v3", "torchserve", "torchserve")}, set())
    assert gone == 2
    left = {
        (s.labels["primary"], s.labels["shadow"])
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "gateway_shadow_requests_total"
    }
    assert left == {("torch-v2", "tf-v2")}
