"""The chart with TLS to NATS and extra volumes: every pod mounts the certificates its
configuration names, and the extra volumes; the schema and templates refuse what cannot work.
Rendered, linted and schema-checked for the value set ``tls`` by tests/test_chart_render.py, and
its config files loaded by the worker's loader in tests/test_chart_config.py."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from .chart_support import ChartError, Rendered, lint, load_value_set, pod_specs, render

TLS_DIR = "/etc/gitstore-agents/nats-tls"


@functools.cache
def _tls() -> Rendered:
    return render(load_value_set("tls"))


def _config(rendered: Rendered, spec: dict[str, Any]) -> dict[str, Any]:
    return rendered.config_of(spec)


def test_every_pod_mounts_the_nats_certificates_its_configuration_names() -> None:
    rendered = _tls()
    specs = list(pod_specs(rendered.ours()))
    # Four workers, the provisioning Job and the helm test pod.
    assert len(specs) == 6
    for where, spec in specs:
        (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-tls"]
        assert volume["secret"]["secretName"] == "gitstore-nats-client-tls", where
        assert [i["key"] for i in volume["secret"]["items"]] == ["ca.crt", "tls.crt", "tls.key"]
        for container in spec["containers"]:
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == "nats-tls"]
            assert mount == {"name": "nats-tls", "mountPath": TLS_DIR, "readOnly": True}, where
        nats = _config(rendered, spec)["nats"]
        assert nats["tls_ca_file"] == f"{TLS_DIR}/ca.crt", where
        assert nats["tls_cert_file"] == f"{TLS_DIR}/tls.crt"
        assert nats["tls_key_file"] == f"{TLS_DIR}/tls.key"
        assert nats["tls_server_name"] == "nats.messaging.svc"
        assert nats["url"] == "tls://nats.messaging.svc:4222"
        assert nats["creds_file"].endswith(".creds")  # JWT credentials and TLS together


def test_every_pod_gets_the_extra_volumes_and_mounts() -> None:
    rendered = _tls()
    for where, spec in pod_specs(rendered.ours()):
        assert {"name": "corporate-ca", "configMap": {"name": "corporate-ca-bundle"}} in spec[
            "volumes"
        ], where
        for container in spec["containers"]:
            assert {
                "name": "corporate-ca",
                "mountPath": "/etc/ssl/corporate",
                "readOnly": True,
            } in container["volumeMounts"], where


def test_workers_get_the_drift_setting() -> None:
    rendered = _tls()
    for role in ("planner", "markdown-compiler"):
        spec = rendered.deployment(role)["spec"]["template"]["spec"]
        config = _config(rendered, spec)
        assert config["on_consumer_drift"] == "provision"
        assert config["provision_on_start"] is False
    defaults = render({})
    spec = defaults.deployment("planner")["spec"]["template"]["spec"]
    assert _config(defaults, spec)["on_consumer_drift"] == "refuse"


def test_without_tls_nothing_is_mounted_or_configured() -> None:
    rendered = render({})
    for where, spec in pod_specs(rendered.ours()):
        assert all(v["name"] != "nats-tls" for v in spec["volumes"]), where
        assert not any(key.startswith("tls_") for key in _config(rendered, spec)["nats"])


def test_a_ca_only_tls_mounts_no_client_certificate() -> None:
    rendered = render(
        {"nats": {"tls": {"enabled": True, "secretName": "nats-ca", "certKey": "", "caKey": "ca"}}}
    )
    spec = rendered.deployment("enricher")["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-tls"]
    assert volume["secret"]["items"] == [{"key": "ca", "path": "ca"}]
    nats = _config(rendered, spec)["nats"]
    assert nats["tls_ca_file"] == f"{TLS_DIR}/ca"
    assert "tls_cert_file" not in nats
    assert "tls_key_file" not in nats


def test_tls_without_a_secret_is_refused_by_name() -> None:
    with pytest.raises(ChartError, match=r"nats\.tls\.secretName is required"):
        render({"nats": {"tls": {"enabled": True}}})


@pytest.mark.parametrize(
    "values",
    [
        {"nats": {"tls": {"enabled": True, "secretName": "s", "ca": "typo"}}},
        {"extraVolumeMounts": [{"name": "x"}]},
        {"extraVolumes": [{"configMap": {"name": "x"}}]},
        {"config": {"on_consumer_drift": "ignore"}},
    ],
    ids=["unknown-tls-key", "mount-without-path", "volume-without-name", "unknown-drift-action"],
)
def test_the_schema_refuses_what_cannot_work(values: dict[str, Any]) -> None:
    with pytest.raises(ChartError):
        render(values)


def test_lint_is_clean_with_tls_and_extra_volumes() -> None:
    report = lint(load_value_set("tls"))
    assert report["errors"] == []
    # The only warning allowed: the optional NATS subchart is not vendored (no network here).
    warnings = [m for m in report["messages"] if m["severity"] >= 2]
    assert all("missing these dependencies: nats" in m["error"] for m in warnings), warnings
