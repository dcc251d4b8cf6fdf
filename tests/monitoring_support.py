"""Helpers for the monitoring tests: the metric names a dashboard, the alert rules and the docs use.

Names are read out of PromQL without a PromQL parser: string literals, label
matchers, range selectors and label lists (``by (...)``, ``on (...)``...) are
removed, and what is left that is neither a function call, a keyword, a
number nor a Grafana variable is a metric name. That is enough for the
expressions we ship, and errs on the side of finding too many names (an
unknown word fails the test instead of passing unseen).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .chart_support import CHART_DIR, Rendered
from .conftest import REPO_ROOT

DASHBOARD = CHART_DIR / "dashboards" / "gitstore-agents.json"
OBSERVABILITY_DOC = REPO_ROOT / "docs" / "observability.md"

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_WORD = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "inf",
        "nan",
    }
)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", re.MULTILINE)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    return {word for word in _WORD.findall(text) if word.lower() not in _KEYWORDS}


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard the chart ships."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs(board: dict[str, Any] | None = None) -> list[str]:
    """Every query of the dashboard's panels and template variables."""
    board = board or dashboard()
    exprs = [
        target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(_label_values_metric(query["query"]))
    return exprs


def _label_values_metric(query: str) -> str:
    # label_values(metric, label): the metric is what must exist.
    found = re.fullmatch(r"label_values\((\w+)\s*,\s*\w+\)", query)
    assert found is not None, f"unexpected variable query {query!r}"
    return found.group(1)


def rule_exprs(rendered: Rendered) -> dict[str, str]:
    """Alert name -> expression of every rule in the rendered PrometheusRule."""
    (rule,) = rendered.of_kind("PrometheusRule")
    return {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}


def documented_metrics(doc: Path = OBSERVABILITY_DOC) -> dict[str, str]:
    """Prometheus name -> type of every row of the docs' metrics table."""
    found: dict[str, str] = {}
    for line in doc.read_text().splitlines():
        row = re.match(r"^\| `((?:gitstore|messaging)_[a-z0-9_]+)` \| (\w+) \|", line)
        if row:
            found[row.group(1)] = row.group(2)
    return found


def histogram_series(name: str) -> set[str]:
    """What a histogram's Prometheus name stands for in a scrape (buckets, sum, count)."""
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


def scraped_names(text: str) -> set[str]:
    """The sample names of a Prometheus text exposition."""
    return set(_SAMPLE.findall(text))
