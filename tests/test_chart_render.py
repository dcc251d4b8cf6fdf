"""The Helm chart renders, lints and meets the Kubernetes schemas for every value set, and every
object has the properties an operator relies on (restricted pods, probes, drain time, network
limits, scaling, labels). No cluster: Helm's engine runs in-process."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

import pytest

from .chart_support import (
    CONSUMERS,
    NAMESPACE,
    RELEASE,
    ROLES,
    VALUE_SETS,
    Rendered,
    copy_chart,
    grace_problems,
    kubernetes_schema_problems,
    lint,
    load_value_set,
    matches,
    merged_values,
    pod_specs,
    probe_problems,
    render,
    security_problems,
)

NAMED_SETS = sorted(path.stem for path in VALUE_SETS.glob("*.yaml"))


def _only(role: str) -> dict[str, Any]:
    return {"roles": {r: {"enabled": r == role} for r in ROLES}}


def _without(role: str) -> dict[str, Any]:
    return {"roles": {role: {"enabled": False}}}


# Named sets from tests/data/chart plus, for each role, the chart with only that role and the
# chart without it.
VALUE_SETS_BY_ID: dict[str, dict[str, Any]] = {
    **{name: load_value_set(name) for name in NAMED_SETS},
    **{f"only-{role}": _only(role) for role in ROLES},
    **{f"without-{role}": _without(role) for role in ROLES},
}


@functools.cache
def _render_set(set_id: str) -> Rendered:
    return render(VALUE_SETS_BY_ID[set_id])


@pytest.fixture(params=sorted(VALUE_SETS_BY_ID))
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return _render_set(request.param)


def _merged(rendered: Rendered) -> dict[str, Any]:
    """The values Helm used (chart defaults coalesced with the set)."""
    return merged_values(rendered.values)


def _enabled_roles(values: dict[str, Any]) -> list[str]:
    return [role for role in ROLES if values["roles"][role]["enabled"]]


# --- the whole chart ---------------------------------------------------------------------------


@pytest.mark.parametrize("set_id", sorted(VALUE_SETS_BY_ID))
def test_helm_lint_finds_no_error(set_id: str) -> None:
    report = lint(VALUE_SETS_BY_ID[set_id])
    assert report["errors"] == []
    # The only warning allowed: the optional NATS subchart is not vendored (no network here).
    warnings = [m for m in report["messages"] if m["severity"] >= 2]
    assert all("missing these dependencies: nats" in m["error"] for m in warnings), warnings


def test_every_manifest_meets_the_kubernetes_schemas(rendered: Rendered) -> None:
    assert kubernetes_schema_problems(rendered.objects) == []


def test_every_pod_and_container_is_restricted(rendered: Rendered) -> None:
    workloads = [o for o in rendered.ours() if o["kind"] in ("Deployment", "Job", "Pod")]
    assert {o["kind"] for o in workloads} == {"Deployment", "Job", "Pod"}
    assert security_problems(rendered.ours()) == []


def test_every_worker_probes_the_health_server(rendered: Rendered) -> None:
    assert rendered.of_kind("Deployment")
    assert probe_problems(rendered) == []


def test_every_object_carries_the_standard_labels(rendered: Rendered) -> None:
    required = {
        "app.kubernetes.io/name": "gitstore-agents",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/part-of": "gitstore",
    }
    for obj in rendered.ours():
        labels = obj["metadata"]["labels"]
        assert matches(required, labels), obj["metadata"]
        assert labels["app.kubernetes.io/version"]
        assert labels["helm.sh/chart"].startswith("gitstore-agents-")


def test_pod_templates_carry_component_labels(rendered: Rendered) -> None:
    for obj in rendered.ours():
        if obj["kind"] in ("Deployment", "Job"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
        elif obj["kind"] == "Pod":
            labels = obj["metadata"]["labels"]
        else:
            continue
        assert labels["app.kubernetes.io/component"], obj["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == RELEASE


def test_every_container_has_requests_and_a_memory_limit(rendered: Rendered) -> None:
    for where, spec in pod_specs(rendered.ours()):
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert "memory" in resources["limits"], where


def test_images_are_pinned_to_a_version(rendered: Rendered) -> None:
    for where, spec in pod_specs(rendered.ours()):
        for container in spec["containers"]:
            image = container["image"]
            assert not image.endswith(":latest"), where
            assert "@sha256:" in image or image.endswith(":0.1.0"), (where, image)


# --- workers -----------------------------------------------------------------------------------


def test_one_deployment_per_enabled_role(rendered: Rendered) -> None:
    values = _merged(rendered)
    enabled = _enabled_roles(values)
    names = {d["metadata"]["name"] for d in rendered.of_kind("Deployment")}
    assert names == {f"{RELEASE}-gitstore-agents-{role}" for role in enabled}
    for role in enabled:
        deployment = rendered.deployment(role)
        pod = deployment["spec"]["template"]
        assert matches(deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
        (worker,) = pod["spec"]["containers"]
        assert worker["args"] == [
            "worker",
            "--role",
            role,
            "--config",
            "/etc/gitstore-agents/config.yaml",
        ]
        env = {e["name"]: e for e in worker["env"]}
        assert env["GITSTORE_WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["GITSTORE_MODULE_CACHE"]["value"] == "/var/cache/gitstore-agents"
        mounts = {m["mountPath"] for m in worker["volumeMounts"]}
        assert {"/tmp", "/var/cache/gitstore-agents", "/etc/gitstore-agents/policy"} <= mounts


def test_termination_grace_outlasts_the_drain(rendered: Rendered) -> None:
    values = _merged(rendered)
    assert grace_problems(rendered) == []
    for role in _enabled_roles(values):
        spec = rendered.deployment(role)["spec"]["template"]["spec"]
        drain = rendered.config_of(spec)["drain_grace_s"]
        assert drain == values["config"]["drain_grace_s"]
        assert (
            spec["terminationGracePeriodSeconds"] == drain + values["terminationGraceMarginSeconds"]
        )


def test_each_role_reads_its_own_config(rendered: Rendered) -> None:
    values = _merged(rendered)
    enabled = _enabled_roles(values)
    for role in enabled:
        spec = rendered.deployment(role)["spec"]["template"]["spec"]
        config = rendered.config_of(spec)
        # Every role's settings, enabled or not: a role reads the kinds it depends on there.
        assert sorted(config["roles"]) == sorted(ROLES)
        assert config["roles"][role] == values["roles"][role]["config"]
        # The hook Job provisions; role credentials could not.
        assert config["provision_on_start"] is False
        # The inbox prefix is the only subscription the role's NATS user may read.
        assert config["nats"]["inbox_prefix"] == f"_INBOX_{role}"
        assert config["policy_file"] == "/etc/gitstore-agents/policy/policy.yaml"
        assert config["topology"] == values["config"]["topology"]
        assert config["health"]["port"] == 8080
        if values["nats"]["enabled"]:
            assert config["nats"]["url"] == f"nats://{RELEASE}-nats.{NAMESPACE}.svc:4222"
        else:
            assert config["nats"]["url"] == values["nats"]["url"]


def test_credentials_reach_each_role_as_its_own_identity(rendered: Rendered) -> None:
    values = _merged(rendered)
    auth = values["nats"]["auth"]
    secret_name = values["nats"]["existingSecret"] or f"{RELEASE}-gitstore-agents-nats-credentials"
    for role in _enabled_roles(values):
        spec = rendered.deployment(role)["spec"]["template"]["spec"]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        config = rendered.config_of(spec)
        if auth == "userPassword":
            for var, key in (("USER", "user"), ("PASSWORD", "password")):
                ref = env[f"GITSTORE_NATS_{var}"]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": secret_name, "key": f"{role}-{key}"}
            assert "creds_file" not in config["nats"]
        elif auth == "creds":
            assert env["GITSTORE_NATS_CREDS"]["value"] == f"/etc/gitstore-agents/nats/{role}.creds"
            assert config["nats"]["creds_file"] == env["GITSTORE_NATS_CREDS"]["value"]
            volume = next(v for v in spec["volumes"] if v["name"] == "nats-creds")
            assert volume["secret"]["items"] == [{"key": f"{role}.creds", "path": f"{role}.creds"}]
        else:
            assert not any(name.startswith("GITSTORE_NATS_") for name in env)
        # Passwords never land in a ConfigMap.
        assert "password" not in config["nats"]
    generated = [s for s in rendered.of_kind("Secret") if s["metadata"]["name"] == secret_name]
    assert len(generated) == (auth == "userPassword" and not values["nats"]["existingSecret"])


def test_a_pdb_guards_each_enabled_role(rendered: Rendered) -> None:
    values = _merged(rendered)
    pdbs = rendered.of_kind("PodDisruptionBudget")
    enabled = _enabled_roles(values)
    assert len(pdbs) == len(enabled)
    for role in enabled:
        pod_labels = rendered.deployment(role)["spec"]["template"]["metadata"]["labels"]
        (pdb,) = [p for p in pdbs if matches(p["spec"]["selector"]["matchLabels"], pod_labels)]
        assert pdb["spec"]["maxUnavailable"] == 1
        # It must select this role's pods only.
        for other in set(enabled) - {role}:
            other_labels = rendered.deployment(other)["spec"]["template"]["metadata"]["labels"]
            assert not matches(pdb["spec"]["selector"]["matchLabels"], other_labels)


# --- network -----------------------------------------------------------------------------------


def test_network_policy_limits_egress_to_dns_nats_and_otlp(rendered: Rendered) -> None:
    values = _merged(rendered)
    (policy,) = rendered.of_kind("NetworkPolicy")
    spec = policy["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    for obj in rendered.ours():
        if obj["kind"] in ("Deployment", "Job"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
        elif obj["kind"] == "Pod":
            labels = obj["metadata"]["labels"]
        else:
            continue
        assert matches(spec["podSelector"]["matchLabels"], labels), obj["metadata"]["name"]
    nats_ports = {
        4443 if ":4443" in values["nats"]["url"] and not values["nats"]["enabled"] else 4222
    }
    otlp = values["telemetry"]["otlp"]["endpoint"]
    allowed = {53} | nats_ports | ({4318} if otlp else set())
    egress_ports: set[int] = set()
    for rule in spec["egress"]:
        # No rule may open every port.
        assert rule["ports"], rule
        egress_ports |= {p["port"] for p in rule["ports"]}
    assert egress_ports == allowed
    nats_rule = next(r for r in spec["egress"] if {p["port"] for p in r["ports"]} == nats_ports)
    if values["nats"]["enabled"]:
        (peer,) = nats_rule["to"]
        assert peer["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "nats",
            "app.kubernetes.io/instance": RELEASE,
        }
    elif values["networkPolicy"]["natsTo"]:
        assert nats_rule["to"] == values["networkPolicy"]["natsTo"]
    (ingress,) = spec["ingress"]
    assert [p["port"] for p in ingress["ports"]] == [values["config"]["health"]["port"]]


# --- scaling -----------------------------------------------------------------------------------


def test_keda_scales_each_role_on_its_consumer_lag(rendered: Rendered) -> None:
    values = _merged(rendered)
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in rendered.of_kind("ScaledObject")}
    enabled = _enabled_roles(values)
    if not values["keda"]["enabled"]:
        assert scaled == {}
        for role in enabled:
            assert (
                rendered.deployment(role)["spec"]["replicas"] == values["roles"][role]["replicas"]
            )
        return
    assert len(scaled) == len(enabled)
    for role in enabled:
        deployment = rendered.deployment(role)
        # The HPA KEDA creates owns the replica count: a fixed one would fight it.
        assert "replicas" not in deployment["spec"]
        obj = scaled[deployment["metadata"]["name"]]
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        target = obj["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        keda = values["roles"][role]["keda"]
        assert obj["spec"]["minReplicaCount"] == keda["minReplicaCount"]
        assert obj["spec"]["maxReplicaCount"] == keda["maxReplicaCount"]
        assert obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        # KEDA reads trigger metadata as strings.
        assert all(isinstance(v, str) for v in meta.values()), meta
        stream, durable = CONSUMERS[role]
        assert (meta["stream"], meta["consumer"]) == (stream, durable)
        assert meta["account"] == "$G"
        assert meta["lagThreshold"] == str(keda["lagThreshold"])
        assert meta["activationLagThreshold"] == str(keda["activationLagThreshold"])
        endpoint = values["keda"]["natsServerMonitoringEndpoint"] or (
            f"{RELEASE}-nats-headless.{NAMESPACE}.svc.cluster.local:8222"
        )
        assert meta["natsServerMonitoringEndpoint"] == endpoint
        if values["keda"]["behavior"]:
            hpa = obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
            assert hpa["behavior"] == values["keda"]["behavior"]


def test_service_monitor_scrapes_every_worker(rendered: Rendered) -> None:
    values = _merged(rendered)
    monitors = rendered.of_kind("ServiceMonitor")
    if not values["serviceMonitor"]["enabled"]:
        assert monitors == []
        return
    (monitor,) = monitors
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert matches(values["serviceMonitor"]["labels"], monitor["metadata"]["labels"])
    (service,) = [
        s
        for s in rendered.of_kind("Service")
        if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    for role in _enabled_roles(values):
        labels = rendered.deployment(role)["spec"]["template"]["metadata"]["labels"]
        assert matches(service["spec"]["selector"], labels)


# --- hooks -------------------------------------------------------------------------------------


def test_provisioning_runs_as_a_hook_job(rendered: Rendered) -> None:
    values = _merged(rendered)
    (job,) = rendered.of_kind("Job")
    annotations = job["metadata"]["annotations"]
    phases = set(annotations["helm.sh/hook"].split(","))
    assert "pre-upgrade" in phases
    # Before the release exists only if NATS and its credentials exist before it too.
    external_ready = not values["nats"]["enabled"] and (
        values["nats"]["existingSecret"] or values["nats"]["auth"] == "none"
    )
    assert ("pre-install" in phases) == bool(external_ready)
    assert ("post-install" in phases) != bool(external_ready)
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    roles = [arg for prev, arg in itertools.pairwise(container["args"]) if prev == "--role"]
    assert container["args"][:3] == ["provision", "--config", "/etc/gitstore-agents/config.yaml"]
    assert roles == _enabled_roles(values)
    config = rendered.config_of(job["spec"]["template"]["spec"])
    assert config["nats"]["inbox_prefix"] == "_INBOX_provisioner"
    # Its ConfigMap is a hook of the same phases, created first.
    configmap = rendered.named("ConfigMap", f"{RELEASE}-gitstore-agents-provision")
    cm_annotations = configmap["metadata"]["annotations"]
    assert cm_annotations["helm.sh/hook"] == annotations["helm.sh/hook"]
    assert int(cm_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])


def test_helm_test_pings_the_status_service(rendered: Rendered) -> None:
    (pod,) = rendered.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["args"][:3] == ["status", "ping", "--nats-url"]
    config = rendered.config_of(pod["spec"])
    assert container["args"][3] == config["nats"]["url"]
    assert config["nats"]["inbox_prefix"] == "_INBOX_status-probe"


def test_notes_name_every_role_and_the_test_command(rendered: Rendered) -> None:
    for role in _enabled_roles(_merged(rendered)):
        assert f"{RELEASE}-gitstore-agents-{role}" in rendered.notes
    assert f"helm test {RELEASE}" in rendered.notes


# --- the checks catch a broken chart -----------------------------------------------------------


def _break(tmp_path: Path, old: str, new: str) -> Rendered:
    chart = copy_chart(tmp_path)
    template = chart / "templates" / "deployment.yaml"
    text = template.read_text()
    assert old in text
    template.write_text(text.replace(old, new, 1))
    return render({}, chart_dir=chart)


def test_checks_catch_a_container_without_security_context(tmp_path: Path) -> None:
    broken = _break(
        tmp_path,
        '          securityContext:\n            {{- include "gitstore-agents.securityContext" $'
        " | nindent 12 }}\n",
        "",
    )
    problems = security_problems(broken.ours())
    assert len(problems) >= 4 * 6  # six failed checks on each of the four workers
    assert any("readOnlyRootFilesystem" in p for p in problems)


def test_checks_catch_a_worker_without_probes(tmp_path: Path) -> None:
    broken = _break(tmp_path, "          readinessProbe:", "          x-readinessProbe:")
    # kubernetes-validate refuses the unknown field; probe_problems names the missing probe.
    assert any("no readinessProbe" in p for p in probe_problems(broken))
    broken = _break(tmp_path / "2", "path: {{ .liveness.path }}", "path: /")
    assert any("livenessProbe is / on http" in p for p in probe_problems(broken))


def test_checks_catch_a_grace_period_shorter_than_the_drain(tmp_path: Path) -> None:
    broken = _break(
        tmp_path,
        "terminationGracePeriodSeconds: {{ add",
        "terminationGracePeriodSeconds: {{ sub",
    )
    assert len(grace_problems(broken)) == 4


def test_passwords_stay_in_secrets() -> None:
    def workloads(password: str) -> list[dict[str, Any]]:
        rendered = render({"nats": {"credentials": {"planner": {"password": password}}}})
        for obj in rendered.ours():
            if obj["kind"] != "Secret":
                assert password not in str(obj), f"{obj['kind']}/{obj['metadata']['name']}"
        return [o for o in rendered.ours() if o["kind"] in ("Deployment", "Job", "Pod")]

    # Not even a hash of them in pod metadata: the same pods whatever the password.
    assert workloads("first-Password-1") == workloads("second-Password-2")
    renamed = render({"nats": {"credentials": {"planner": {"user": "planner-2"}}}})
    annotations = renamed.deployment("planner")["spec"]["template"]["metadata"]["annotations"]
    default = _render_set("defaults").deployment("planner")["spec"]["template"]["metadata"]
    assert annotations["checksum/credentials"] != default["annotations"]["checksum/credentials"]
