"""The chart's KEDA scalers read the consumers the workers read (named from config.topology, so
they cannot drift), fall back and pause as the values say, and the retention values reach the
worker configuration unchanged, with the worker's own defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from gitstore_agents.config import Config, Topology, load_config
from gitstore_agents.consumers import role_consumer

from .chart_support import (
    CHART_DIR,
    RELEASE,
    ROLES,
    ChartError,
    Rendered,
    kubernetes_schema_problems,
    lint,
    render,
)

# Every JetStream name other than the defaults, as an install sharing NATS with another would.
RENAMED = {
    "prefix": "catalog",
    "events_stream": "CATALOG_EVENTS",
    "tasks_stream": "CATALOG_TASKS",
    "validation_stream": "CATALOG_VALIDATION",
    "failures_stream": "CATALOG_FAILURES",
    "advisories_stream": "CATALOG_ADVISORIES",
    "audit_stream": "CATALOG_AUDIT",
    "modules_bucket": "catalog-modules",
    "content_bucket": "catalog-content",
}
KEDA = {"enabled": True, "natsServerMonitoringEndpoint": "nats-headless.messaging.svc:8222"}


def _worker_config(rendered: Rendered, role: str, tmp_path: Path) -> Config:
    """The configuration the role's pods load (the file their ConfigMap mounts)."""
    spec = rendered.deployment(role)["spec"]["template"]["spec"]
    path = tmp_path / f"{role}.yaml"
    path.write_text(yaml.safe_dump(rendered.config_of(spec)))
    return load_config(path, env={})


def _scalers(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """ScaledObject per role."""
    prefix = f"{RELEASE}-gitstore-agents-"
    return {o["metadata"]["name"].removeprefix(prefix): o for o in rendered.of_kind("ScaledObject")}


def test_each_scaler_reads_the_consumer_its_workers_read(tmp_path: Path) -> None:
    rendered = render({"config": {"topology": RENAMED}, "keda": KEDA})
    scalers = _scalers(rendered)
    assert sorted(scalers) == sorted(ROLES)
    for role in ROLES:
        worker = role_consumer(_worker_config(rendered, role, tmp_path), role)
        meta = scalers[role]["spec"]["triggers"][0]["metadata"]
        assert (meta["stream"], meta["consumer"]) == (worker.stream, worker.durable), role
    assert scalers["planner"]["spec"]["triggers"][0]["metadata"]["stream"] == "CATALOG_EVENTS"
    assert scalers["enricher"]["spec"]["triggers"][0]["metadata"]["stream"] == "CATALOG_TASKS"


def test_no_default_jetstream_name_is_left_once_the_topology_is_renamed() -> None:
    # The NATS permissions of the bundled server, the provisioning Job's config, the scalers:
    # every name comes from config.topology.
    rendered = render({"config": {"topology": RENAMED}, "keda": KEDA, "nats": {"enabled": True}})
    text = "\n".join(rendered.sources.values())
    assert "CONSUMER.MSG.NEXT.CATALOG_TASKS.enricher" in text
    assert "OBJ_catalog-modules" in text
    defaults = Topology()
    for key in RENAMED:
        pattern = re.escape(getattr(defaults, key))
        if key == "prefix":  # in subjects: gitstore.tasks.<kind>.* ...
            pattern += r"\.(events|tasks|validation|failures|dlq|audit|status)\."
        assert re.search(rf"(?<![\w-]){pattern}(?![\w-])", text) is None, key


def test_a_scaler_falls_back_to_the_roles_replicas_or_the_given_count() -> None:
    rendered = render(
        {
            "keda": KEDA,
            "roles": {"enricher": {"replicas": 5}, "planner": {"replicas": 1}},
        }
    )
    scalers = _scalers(rendered)
    assert scalers["enricher"]["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 5}
    assert scalers["planner"]["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 1}

    fixed = {"failureThreshold": 6, "replicas": 2, "behavior": "currentReplicasIfHigher"}
    scalers = _scalers(render({"keda": {**KEDA, "fallback": fixed}}))
    assert {s["spec"]["fallback"]["replicas"] for s in scalers.values()} == {2}
    assert scalers["planner"]["spec"]["fallback"] == fixed

    scalers = _scalers(render({"keda": {**KEDA, "fallback": {"enabled": False}}}))
    assert all("fallback" not in s["spec"] for s in scalers.values())


def test_scaling_pauses_for_every_role_or_one() -> None:
    def annotations(values: dict[str, Any]) -> dict[str, dict[str, str]]:
        return {
            role: obj["metadata"].get("annotations", {})
            for role, obj in _scalers(render(values)).items()
        }

    assert annotations({"keda": KEDA}) == {role: {} for role in ROLES}
    assert annotations({"keda": {**KEDA, "pause": True}}) == {
        role: {"autoscaling.keda.sh/paused": "true"} for role in ROLES
    }
    # 0 is a replica count (scale to zero and hold), not "off".
    assert annotations({"keda": {**KEDA, "pause": 0}}) == {
        role: {"autoscaling.keda.sh/paused-replicas": "0"} for role in ROLES
    }
    one = annotations({"keda": KEDA, "roles": {"planner": {"keda": {"pause": 3}}}})
    assert one["planner"] == {"autoscaling.keda.sh/paused-replicas": "3"}
    assert all(one[role] == {} for role in ROLES if role != "planner")
    # A role can also be let out of a pause of all the others.
    out = annotations(
        {"keda": {**KEDA, "pause": True}, "roles": {"enricher": {"keda": {"pause": False}}}}
    )
    assert out["enricher"] == {}
    assert out["planner"] == {"autoscaling.keda.sh/paused": "true"}


def test_values_of_a_release_before_fallback_pause_and_names_still_render(tmp_path: Path) -> None:
    # `helm upgrade --reuse-values` keeps the previous chart's values: no fallback or pause,
    # no names under config.topology, keda.streams as that chart had it.
    previous = {
        "keda": {
            **KEDA,
            "fallback": None,
            "pause": None,
            "streams": {"events": "GITSTORE_EVENTS", "tasks": "GITSTORE_TASKS"},
        },
        "config": {"topology": {key: None for key in RENAMED if key != "prefix"}},
    }
    rendered = render(previous)
    scalers = _scalers(rendered)
    for role in ROLES:
        spec = scalers[role]["spec"]
        assert "fallback" not in spec
        assert "annotations" not in scalers[role]["metadata"]
        worker = role_consumer(_worker_config(rendered, role, tmp_path), role)
        meta = spec["triggers"][0]["metadata"]
        assert (meta["stream"], meta["consumer"]) == (worker.stream, worker.durable)


def test_keda_streams_that_disagree_with_the_topology_are_refused() -> None:
    with pytest.raises(ChartError, match=r"keda.streams is no longer used.*CATALOG_EVENTS"):
        render(
            {
                "config": {"topology": RENAMED},
                "keda": {**KEDA, "streams": {"events": "GITSTORE_EVENTS", "tasks": "X"}},
            }
        )


@pytest.mark.parametrize(
    "values",
    [
        {"keda": {"pause": "yes"}},
        {"keda": {"pause": -1}},
        {"keda": {"fallback": {"enabled": True, "failureThreshold": 0}}},
        {"keda": {"fallback": {"behavior": "sometimes"}}},
        {"roles": {"planner": {"keda": {"pause": "later"}}}},
        {"config": {"topology": {"events_max_age_s": -1}}},
        {"config": {"topology": {"validation_max_bytes": 1.5}}},
        {"config": {"topology": {"tasks_stream": "GITSTORE.TASKS"}}},
        {"config": {"topology": {"content_max_msgs": 10}}},
    ],
    ids=[
        "pause-string",
        "pause-negative",
        "fallback-threshold-zero",
        "fallback-behavior",
        "role-pause-string",
        "negative-age",
        "fractional-bytes",
        "stream-name-with-dot",
        "content-has-no-msg-limit",
    ],
)
def test_schema_refuses_bad_scaling_and_retention_values(values: dict[str, Any]) -> None:
    with pytest.raises(ChartError):
        render(values)


def test_chart_retention_defaults_are_the_workers_defaults() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    chart = values["config"]["topology"]
    worker = msgspec.to_builtins(Topology())
    limits = [k for k in worker if k.endswith(("_max_age_s", "_max_bytes", "_max_msgs"))]
    names = [k for k in worker if k.endswith(("_stream", "_bucket"))]
    assert limits
    assert names
    for key in [*limits, *names]:
        if key == "advisories_max_age_s":
            continue  # not a value the chart lists: the worker's default applies
        assert chart[key] == worker[key], key


def test_retention_values_reach_every_config_file_as_the_worker_reads_them(
    tmp_path: Path,
) -> None:
    retention = {
        "events_max_age_s": 2592000,
        "events_max_bytes": 10737418240,
        "tasks_max_age_s": 2592000,
        "tasks_max_msgs": 5000000,
        "validation_max_bytes": 21474836480,
        "audit_max_age_s": 15552000,
        "content_max_bytes": 53687091200,
    }
    rendered = render({"config": {"topology": retention}})
    provision = rendered.named("ConfigMap", f"{RELEASE}-gitstore-agents-provision")
    path = tmp_path / "provisioner.yaml"
    path.write_text(provision["data"]["provisioner.yaml"])
    topology = load_config(path, env={}).topology
    assert {k: getattr(topology, k) for k in retention} == retention
    for role in ROLES:
        assert _worker_config(rendered, role, tmp_path).topology == topology


def test_helm_lint_passes_with_scaling_and_retention_values() -> None:
    values = {
        "config": {"topology": {**RENAMED, "events_max_age_s": 2592000}},
        "keda": {**KEDA, "pause": 2, "fallback": {"enabled": True, "failureThreshold": 5}},
        "roles": {"planner": {"keda": {"pause": True}}},
    }
    assert kubernetes_schema_problems(render(values).objects) == []
    report = lint(values)
    assert report["errors"] == []
    # The only warning allowed: the optional NATS subchart is not vendored (no network here).
    warnings = [m for m in report["messages"] if m["severity"] >= 2]
    assert all("missing these dependencies: nats" in m["error"] for m in warnings), warnings
