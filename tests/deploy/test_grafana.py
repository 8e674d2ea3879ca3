"""deploy/grafana: the provisioned data source and dashboard, and every query the dashboard runs.

Each PromQL expression is parsed (promql-parser) and checked by promtool as a recording rule.
Metric names must be ones the gateway defines or the recording rules record; the runtimes' names
and every query's results are checked against a live Prometheus in test_prometheus_live.py.
"""

from __future__ import annotations

from typing import Any

import promql_parser
import yaml
from prometheus_client import CollectorRegistry

from deploy.devtools import require_tool
from gateway.metrics import GatewayMetrics, VariantCollector
from tests.deploy.helpers import (
    COMPOSE_GPU,
    DEPLOY,
    RUNTIME_EXPORTERS,
    compose_config,
    dashboard,
    dashboard_queries,
    metric_names,
    panels,
    recorded_names,
    run,
    substitute,
)

GRAFANA = DEPLOY / "grafana"
RUNTIME_PREFIXES = tuple(RUNTIME_EXPORTERS)


def gateway_sample_names() -> set[str]:
    """Every sample name the gateway's metrics can expose, from their definitions."""
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.watch_variants(VariantCollector(lambda: (), lambda variant: True))
    names = set()
    for family in metrics.registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def test_dashboard_has_the_panels_operators_need():
    board = dashboard()
    assert board["uid"] == "gateway"
    titles = [panel["title"] for panel in panels(board) if panel["type"] != "row"]
    for needed in (
        "Traffic share per variant",
        "End-to-end latency p50 / p99 per variant",
        "Backend call latency p50 / p99 per variant and runtime",
        "Gateway overhead p50 / p99 per backend",
        "Error ratio (5xx) per variant",
        "In-flight backend calls",
        "Requests per second per runtime",
        "Error ratio (5xx) per runtime",
        "Backend call p99 per runtime",
    ):
        assert needed in titles
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel.get("description"), panel["title"]


def test_panels_do_not_overlap():
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard()):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_provisioning_matches_the_compose_stack():
    services = compose_config(COMPOSE_GPU)["services"]
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert 9090 in {port["target"] for port in services["prometheus"]["ports"]}
    variable = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == source["uid"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/gateway.yml").read_text())
    (provider,) = providers["providers"]
    mounts = {m["target"]: m["source"] for m in services["grafana"]["volumes"] if "source" in m}
    assert mounts[provider["options"]["path"]] == str(GRAFANA / "dashboards")
    assert mounts["/etc/grafana/provisioning"] == str(GRAFANA / "provisioning")
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/gateway.json"


def test_every_query_parses():
    queries = dashboard_queries(dashboard())
    assert len(queries) >= 12
    for title, expr in queries:
        assert "$" not in expr, (title, expr)  # every Grafana variable substituted
        promql_parser.parse(expr)


def test_promtool_accepts_every_query(tmp_path):
    """Each query as a recording rule: promtool parses it with Prometheus' own parser."""
    rules: list[dict[str, Any]] = [
        {"record": f"dashboard:query_{number}:check", "expr": expr}
        for number, (_, expr) in enumerate(dashboard_queries(dashboard()))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([require_tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promtool_would_reject_a_broken_query(tmp_path):
    path = tmp_path / "broken.yml"
    rule = {"record": "dashboard:broken", "expr": "sum by (variant (rate(x[1m]))"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    assert run([require_tool("promtool"), "check", "rules", str(path)]).returncode != 0


def test_queries_use_only_metrics_the_gateway_defines_or_the_rules_record():
    known = gateway_sample_names() | recorded_names()
    assert "gateway_requests_total" in known
    for title, expr in dashboard_queries(dashboard()):
        for name in metric_names(expr):
            if name.startswith(RUNTIME_PREFIXES):
                continue  # checked live, against what the runtimes export
            assert name in known, f"{title}: {name} is not a gateway metric or a recorded rule"
    template = next(v for v in dashboard()["templating"]["list"] if v["name"] == "model")
    assert template["query"]["query"] == "label_values(gateway_variant_weight, model)"


def test_runtimes_come_from_the_backend_label_in_any_number():
    """No panel names a runtime in a gateway query: the runtime variable lists whatever
    backends the gateway reports, and every gateway panel keeps one series per backend or
    variant, so a third and a fourth runtime appear without an edit."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    runtime = variables["backend"]
    query = 'label_values(gateway_variant_weight{model="$model"}, backend)'
    assert runtime["query"]["query"] == query
    assert runtime["multi"] is True
    assert runtime["includeAll"] is True
    assert runtime["allValue"] == ".*"
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            if any(name.startswith(RUNTIME_PREFIXES) for name in metric_names(substitute(expr))):
                continue
            for known in ("tfserving", "torchserve", "triton", "mlserver"):
                assert f'"{known}"' not in expr, (panel["title"], expr)
            assert 'backend=~"$backend"' in expr, (panel["title"], expr)
    # The runtimes' own exporters, one query each, named in the legend.
    runtime_panel = next(p for p in panels(dashboard()) if p["title"] == "Runtime-reported latency")
    seen = {
        RUNTIME_EXPORTERS[prefix]
        for target in runtime_panel["targets"]
        for name in metric_names(substitute(target["expr"]))
        for prefix in RUNTIME_EXPORTERS
        if name.startswith(prefix)
    }
    assert seen == set(RUNTIME_EXPORTERS.values())


def test_name_extraction_sees_every_selector():
    expr = (
        "sum by (v) (rate(a_total[5m])) / on (m) group_left max(b) "
        "+ histogram_quantile(0.9, rate(c_bucket[1m])) - scalar(:x:y) + -d offset 1m"
    )
    assert metric_names(expr) == {"a_total", "b", "c_bucket", ":x:y", "d"}
