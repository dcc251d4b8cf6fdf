"""The chart's Grafana dashboard and PrometheusRule: off by default, well formed when on.

``tests/data/chart/monitoring.yaml`` turns both on, so every check of
``test_chart_render.py`` (lint, Kubernetes schemas, labels) covers them too.
The PrometheusRule is a CRD that kubernetes-validate has no schema for: its
shape is checked here instead, against what the Prometheus operator reads
(``spec.groups[].rules[]`` with ``alert``, ``expr``, ``for``, ``labels``,
``annotations``). That every metric they name exists is
``test_telemetry_monitoring.py``'s live scrape.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .chart_support import (
    NAMESPACE,
    RELEASE,
    ChartError,
    kubernetes_schema_problems,
    lint,
    load_value_set,
    render,
)
from .monitoring_support import DASHBOARD, dashboard, dashboard_exprs, metric_names, rule_exprs

FULLNAME = f"{RELEASE}-gitstore-agents"
SELECTOR = f'job="{FULLNAME}-metrics",namespace="{NAMESPACE}"'
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d)$")


def _monitoring(values: dict[str, Any] | None = None) -> dict[str, Any]:
    merged = load_value_set("monitoring")
    for key, value in (values or {}).items():
        merged["monitoring"][key] = {**merged["monitoring"].get(key, {}), **value}
    return merged


def _dashboard_map(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{FULLNAME}-dashboard"
    ]


def _balanced(expr: str) -> bool:
    depth: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        if char in "([{":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            return False
    return not depth


def test_monitoring_is_off_by_default() -> None:
    rendered = render()
    assert rendered.of_kind("PrometheusRule") == []
    assert _dashboard_map(rendered.ours()) == []
    for template in ("dashboard.yaml", "prometheusrule.yaml"):
        assert not rendered.sources.get(f"gitstore-agents/templates/{template}", "").strip()


def test_the_dashboard_reaches_the_grafana_sidecar_as_shipped() -> None:
    rendered = render(_monitoring())
    (configmap,) = _dashboard_map(rendered.ours())
    labels, annotations = configmap["metadata"]["labels"], configmap["metadata"]["annotations"]
    assert labels["grafana_dashboard"] == "1", "the sidecar's default label"
    assert labels["app.kubernetes.io/component"] == "dashboard"
    assert annotations == {"grafana_folder": "GitStore"}
    assert json.loads(configmap["data"]["gitstore-agents.json"]) == dashboard()
    assert kubernetes_schema_problems([configmap]) == []

    # A sidecar that selects by another label (null drops the default, as Helm merges maps).
    labels = {"grafana_dashboard": None, "dashboards": "gitstore"}
    relabelled = render(_monitoring({"dashboard": {"labels": labels}}))
    (configmap,) = _dashboard_map(relabelled.ours())
    assert configmap["metadata"]["labels"]["dashboards"] == "gitstore"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]


def test_the_dashboard_is_a_well_formed_grafana_dashboard() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "gitstore-agents"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert _balanced(target["expr"]), target["expr"]
            assert 'namespace=~"$namespace"' in target["expr"], target["expr"]
    names: set[str] = set()
    for expr in dashboard_exprs(board):
        names |= metric_names(expr)
    assert names, "the dashboard queries metrics"
    assert all(n.startswith(("gitstore_", "messaging_")) for n in names), names


def test_the_prometheus_rule_has_the_shape_the_operator_reads() -> None:
    rendered = render(_monitoring())
    (rule,) = rendered.of_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == FULLNAME
    assert rule["metadata"]["labels"]["release"] == "prometheus", "for the ruleSelector"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    (group,) = rule["spec"]["groups"]
    assert set(group) == {"name", "rules"}
    assert group["name"] == "gitstore-agents"
    for alert in group["rules"]:
        assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}, alert
        assert re.fullmatch(r"GitStoreAgents[A-Za-z]+", alert["alert"])
        assert _DURATION.fullmatch(alert["for"]), alert
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert set(alert["annotations"]) == {"summary", "description"}
        expr = alert["expr"]
        assert _balanced(expr), expr
        # Every selector picks this release's series (the job the ServiceMonitor scrapes).
        selectors = re.findall(r"\{[^{}]*\}", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr))
        assert selectors, expr
        assert expr.count(SELECTOR) == len(selectors), expr
        assert metric_names(expr), expr
        # Prometheus templates in annotations survive Helm's templating.
        assert "{{ $labels." in alert["annotations"]["summary"]
    monitor = rendered.named("ServiceMonitor", FULLNAME)
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    rendered.named("Service", f"{FULLNAME}-metrics")


def test_alerts_follow_their_values() -> None:
    values = _monitoring(
        {
            "prometheusRule": {
                "selector": 'job="workers"',
                "alerts": {
                    "consumerLag": {"threshold": 5, "for": "2m", "severity": "critical"},
                    "sandboxOutcomes": {"outcomes": ["trap"], "window": "1h"},
                    "reconnects": {"enabled": False},
                },
            }
        }
    )
    rules = {
        r["alert"]: r
        for r in render(values).of_kind("PrometheusRule")[0]["spec"]["groups"][0]["rules"]
    }
    exprs = {name: rule["expr"] for name, rule in rules.items()}
    assert "GitStoreAgentsNatsReconnects" not in rules
    lag = rules["GitStoreAgentsConsumerLag"]
    assert lag["expr"].endswith("> 5")
    assert (lag["for"], lag["labels"]["severity"]) == ("2m", "critical")
    assert 'outcome=~"trap"' in exprs["GitStoreAgentsSandboxFailures"]
    assert "[1h]" in exprs["GitStoreAgentsSandboxFailures"]
    assert all('{job="workers"' in expr for expr in exprs.values()), exprs
    assert all(SELECTOR not in expr for expr in exprs.values())


def test_lint_passes_with_monitoring_on() -> None:
    report = lint(_monitoring())
    assert report["errors"] == []
    warnings = [m for m in report["messages"] if m["severity"] >= 2]
    assert all("missing these dependencies: nats" in m["error"] for m in warnings), warnings
    assert set(rule_exprs(render(_monitoring()))) >= {
        "GitStoreAgentsConsumerLag",
        "GitStoreAgentsDeadLetters",
    }


@pytest.mark.parametrize(
    ("values", "field"),
    [
        pytest.param(
            {"monitoring": {"prometheusRule": {"alerts": {"notReady": {"for": "ten minutes"}}}}},
            "/monitoring/prometheusRule/alerts/notReady/for",
            id="duration",
        ),
        pytest.param(
            {"monitoring": {"dashboard": {"folder": "x"}}},
            "additional properties 'folder'",
            id="unknown-key",
        ),
        pytest.param(
            {"monitoring": {"prometheusRule": {"alerts": {"failureRate": {"threshold": -1}}}}},
            "/monitoring/prometheusRule/alerts/failureRate/threshold",
            id="negative-threshold",
        ),
    ],
)
def test_schema_rejects_bad_monitoring_values(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ChartError, match=re.escape(field)):
        render(values)


def test_rules_with_every_alert_off_are_refused() -> None:
    alerts = load_value_set("monitoring")["monitoring"]["prometheusRule"]
    names = (
        "consumerLag",
        "deadLetters",
        "failureRate",
        "processingLatency",
        "sandboxOutcomes",
        "reconnects",
        "notReady",
    )
    alerts["alerts"] = {name: {"enabled": False} for name in names}
    with pytest.raises(ChartError, match="needs at least one alert enabled"):
        render({"monitoring": {"prometheusRule": alerts}})
