"""values.schema.json and the chart's own checks refuse values that would deploy something broken
or unsafe, with a message naming the field."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from .chart_support import ChartError, lint, render


@pytest.mark.parametrize(
    ("values", "field"),
    [
        pytest.param(
            {"roles": {"planner": {"replicas": -1}}},
            "/roles/planner/replicas",
            id="negative-replicas",
        ),
        pytest.param(
            {"roles": {"reviewer": {"enabled": True}}},
            "additional properties 'reviewer'",
            id="unknown-role",
        ),
        pytest.param(
            {"config": {"health": {"port": 70000}}}, "/config/health/port", id="port-too-high"
        ),
        pytest.param({"config": {"health": {"port": 0}}}, "/config/health/port", id="port-zero"),
        pytest.param(
            {"config": {"health": {"port": "http"}}}, "/config/health/port", id="port-not-a-number"
        ),
        pytest.param({"image": {"repository": ""}}, "/image/repository", id="no-image"),
        pytest.param({"nats": {"url": ""}}, "/nats/url", id="no-nats-url"),
        pytest.param({"nats": {"url": "http://nats:4222"}}, "/nats/url", id="nats-url-not-nats"),
        pytest.param({"nats": {"auth": "token"}}, "/nats/auth", id="unknown-auth"),
        pytest.param(
            {"nats": {"credentials": {"planner": {"user": ""}}}},
            "/nats/credentials/planner/user",
            id="empty-user",
        ),
        pytest.param({"config": {"drain_grace_s": 0}}, "/config/drain_grace_s", id="no-drain"),
        pytest.param(
            {"terminationGraceMarginSeconds": 0}, "/terminationGraceMarginSeconds", id="no-margin"
        ),
        pytest.param(
            {"config": {"topology": {"replicas": 2}}},
            "/config/topology/replicas",
            id="even-replicas",
        ),
        pytest.param(
            {"config": {"topology": {"prefix": "git.store"}}},
            "/config/topology/prefix",
            id="dotted-prefix",
        ),
        pytest.param(
            {
                "roles": {
                    "enricher": {
                        "config": {"kinds": {"catalog.describe": {"module": "catalog-describe"}}}
                    }
                }
            },
            "/roles/enricher/config/kinds/catalog.describe",
            id="kind-without-limits",
        ),
        pytest.param(
            {"roles": {"enricher": {"config": {"kinds": {"Catalog Enrich": {}}}}}},
            "/roles/enricher/config/kinds",
            id="bad-kind-name",
        ),
        pytest.param(
            {"roles": {"planner": {"config": {"concurrency": 0}}}},
            "/roles/planner/config/concurrency",
            id="zero-concurrency",
        ),
        pytest.param(
            {"roles": {"planner": {"config": {"max_deliver": None}}}},
            "/roles/planner/config",
            id="missing-max-deliver",
        ),
        pytest.param(
            {"roles": {"planner": {"config": {"retries": 3}}}},
            "additional properties 'retries'",
            id="unknown-role-setting",
        ),
        pytest.param(
            {"roles": {"planner": {"keda": {"maxReplicaCount": 0}}}},
            "/roles/planner/keda/maxReplicaCount",
            id="keda-max-zero",
        ),
        pytest.param(
            {"securityContext": {"allowPrivilegeEscalation": True}},
            "/securityContext/allowPrivilegeEscalation",
            id="privilege-escalation",
        ),
        pytest.param(
            {"securityContext": {"readOnlyRootFilesystem": False}},
            "/securityContext/readOnlyRootFilesystem",
            id="writable-root",
        ),
        pytest.param(
            {"podSecurityContext": {"runAsNonRoot": False}},
            "/podSecurityContext/runAsNonRoot",
            id="root",
        ),
        pytest.param(
            {"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
            "/securityContext/capabilities/drop",
            id="capabilities-kept",
        ),
        pytest.param(
            {"keda": {"natsServerMonitoringEndpoint": "http://nats:8222"}},
            "/keda",
            id="endpoint-url",
        ),
        pytest.param({"image": {"digest": "latest"}}, "/image/digest", id="bad-digest"),
        pytest.param(
            {"probes": {"readiness": {"path": "readyz"}}},
            "/probes/readiness/path",
            id="relative-probe",
        ),
        pytest.param(
            {"telemetry": {"otlp": {"protocol": "zipkin"}}},
            "/telemetry/otlp/protocol",
            id="bad-otlp",
        ),
        pytest.param(
            {"roles": {"enricher": {"config": {"inline_fuel": -1}}}},
            "/roles/enricher/config/inline_fuel",
            id="negative-inline-fuel",
        ),
        pytest.param(
            {"unknownTopLevel": True}, "additional properties 'unknownTopLevel'", id="unknown-key"
        ),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ChartError, match=re.escape(field)):
        render(values)
    assert lint(values)["errors"], "helm lint must report the same values as errors"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"nats": {"enabled": True, "existingSecret": "mine"}},
            "nats.existingSecret cannot be combined with nats.enabled",
            id="all-in-one-with-existing-secret",
        ),
        pytest.param(
            {"nats": {"auth": "creds"}},
            "nats.auth=creds needs nats.existingSecret",
            id="creds-without-secret",
        ),
        pytest.param(
            {"nats": {"enabled": True}, "config": {"topology": {"replicas": 3}}},
            "config.topology.replicas=3 needs a clustered JetStream",
            id="r3-on-one-server",
        ),
        pytest.param(
            {"keda": {"enabled": True}},
            "keda.natsServerMonitoringEndpoint is required",
            id="keda-without-endpoint",
        ),
        pytest.param(
            {
                "keda": {"enabled": True, "natsServerMonitoringEndpoint": "nats:8222"},
                "roles": {"enricher": {"keda": {"minReplicaCount": 5, "maxReplicaCount": 2}}},
            },
            "roles.enricher.keda.minReplicaCount=5 exceeds maxReplicaCount=2",
            id="keda-min-above-max",
        ),
        pytest.param(
            {"roles": {"planner": {"config": {"max_deliver": 4}}}},
            "roles.planner.config.max_deliver=4 must exceed the number of backoff_s steps (4)",
            id="max-deliver-not-above-backoff",
        ),
        pytest.param(
            {
                "roles": {
                    r: {"enabled": False}
                    for r in ("planner", "markdown-compiler", "enricher", "extension-runner")
                }
            },
            "no role is enabled",
            id="no-role",
        ),
    ],
)
def test_chart_refuses_inconsistent_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ChartError, match=re.escape(message)):
        render(values)


def test_given_passwords_are_used_and_missing_ones_generated() -> None:
    rendered = render(
        {"nats": {"credentials": {"planner": {"user": "planner", "password": "s3cret"}}}}
    )
    (secret,) = rendered.of_kind("Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["planner-user"] == "planner"
    assert data["planner-password"] == "s3cret"
    generated = [data[f"{i}-password"] for i in ("enricher", "provisioner", "status-probe")]
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", p) for p in generated)
    assert len(set(generated)) == len(generated)
