"""Render, lint and check the Helm chart without a cluster.

Rendering uses Helm's own engine in-process through ``helm-python-sdk`` (Helm's Go SDK behind a
C ABI: template functions, schema validation and lint are Helm's, not a re-implementation), or
a ``helm`` binary when the SDK is not installed. The checks here are plain functions over the
rendered objects, so tests can also prove that they catch a broken template.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "gitstore-agents"
VALUE_SETS = Path(__file__).resolve().parent / "data" / "chart"
RELEASE = "gs"
NAMESPACE = "gitstore"
# Kubernetes version whose schemas (shipped inside kubernetes-validate) the manifests must meet.
KUBE_VERSION = "1.33.0"
ROLES = ("planner", "markdown-compiler", "enricher", "extension-runner")
# Each role's durable pull consumer (stream, durable), as the worker creates it.
CONSUMERS = {
    "planner": ("GITSTORE_EVENTS", "planner"),
    "markdown-compiler": ("GITSTORE_TASKS", "markdown-compiler"),
    "enricher": ("GITSTORE_TASKS", "enricher"),
    "extension-runner": ("GITSTORE_TASKS", "extension-runner"),
}
WORKLOAD_KINDS = ("Deployment", "Job", "Pod")


class ChartError(Exception):
    """Helm refused the values (schema) or a template failed (``fail``)."""


@dataclass
class Rendered:
    """The objects one render produced."""

    values: dict[str, Any]
    objects: list[dict[str, Any]]
    notes: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    # "ours" or "subchart", one per object.
    origins: list[str] = field(default_factory=list)

    def of_kind(self, kind: str, *, ours: bool = True) -> list[dict[str, Any]]:
        """Objects of ``kind`` (by default this chart's, not a vendored subchart's)."""
        return [o for o in (self.ours() if ours else self.objects) if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        """The one object of ``kind`` called ``name``."""
        found = [o for o in self.of_kind(kind, ours=False) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def ours(self) -> list[dict[str, Any]]:
        """Objects from this chart's own templates (a vendored subchart's excluded)."""
        return [o for o, origin in zip(self.objects, self.origins, strict=True) if origin == "ours"]

    def deployment(self, role: str) -> dict[str, Any]:
        """The Deployment of ``role``."""
        return self.named("Deployment", f"{RELEASE}-gitstore-agents-{role}")

    def config_of(self, pod_spec: dict[str, Any]) -> dict[str, Any]:
        """The worker config file a pod mounts at /etc/gitstore-agents/config.yaml."""
        volume = next(v for v in pod_spec["volumes"] if v["name"] == "config")
        source = volume["configMap"]
        (item,) = source["items"]
        configmap = self.named("ConfigMap", source["name"])
        loaded: dict[str, Any] = yaml.safe_load(configmap["data"][item["key"]])
        return loaded


def merged_values(values: dict[str, Any]) -> dict[str, Any]:
    """The chart's defaults coalesced with ``values`` as Helm does (maps merge, the rest wins)."""

    def merge(base: Any, override: Any) -> Any:
        if isinstance(base, dict) and isinstance(override, dict):
            out = dict(base)
            for key, value in override.items():
                if value is None:
                    out.pop(key, None)
                else:
                    out[key] = merge(base.get(key), value)
            return out
        return override

    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    merged: dict[str, Any] = merge(defaults, values)
    return merged


def _load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_value_set(name: str) -> dict[str, Any]:
    """Values from ``tests/data/chart/<name>.yaml``."""
    loaded: dict[str, Any] = yaml.safe_load((VALUE_SETS / f"{name}.yaml").read_text()) or {}
    return loaded


def _render_sdk(chart_dir: Path, values: dict[str, Any]) -> dict[str, str]:
    import helm_python  # noqa: PLC0415 - optional: the helm binary is the fallback

    try:
        with helm_python.Chart.load(chart_dir) as chart:
            return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except (helm_python.HelmValuesError, helm_python.HelmRenderError) as exc:
        raise ChartError(str(exc)) from exc


def _render_binary(chart_dir: Path, values: dict[str, Any]) -> dict[str, str]:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("neither helm-python-sdk nor a helm binary is available")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(values, file)
        file.flush()
        result = subprocess.run(
            [helm, "template", RELEASE, str(chart_dir), "-n", NAMESPACE, "-f", file.name],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise ChartError(result.stderr)
    sources: dict[str, str] = {}
    for chunk in re.split(r"^---\n# Source: ", result.stdout, flags=re.MULTILINE)[1:]:
        name, _, body = chunk.partition("\n")
        sources[name] = sources.get(name, "") + "\n---\n" + body
    return sources


def render(values: dict[str, Any] | None = None, *, chart_dir: Path = CHART_DIR) -> Rendered:
    """Render the chart as ``helm install`` would, offline (``lookup`` finds nothing)."""
    values = values or {}
    try:
        sources = _render_sdk(chart_dir, values)
    except ImportError:
        sources = _render_binary(chart_dir, values)
    objects: list[dict[str, Any]] = []
    origins: list[str] = []
    notes = ""
    for name, text in sorted(sources.items()):
        if name.endswith("NOTES.txt"):
            notes = text
        elif name.endswith((".yaml", ".yml")):
            documents = _load_documents(text)
            objects.extend(documents)
            origin = "ours" if name.startswith("gitstore-agents/templates/") else "subchart"
            origins.extend([origin] * len(documents))
    return Rendered(values=values, objects=objects, notes=notes, sources=sources, origins=origins)


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """``helm lint`` findings: ``{"messages": [{"severity", "path", "error"}], "errors": []}``."""
    try:
        import helm_python  # noqa: PLC0415
    except ImportError:
        helm = shutil.which("helm")
        if helm is None:
            pytest.skip("neither helm-python-sdk nor a helm binary is available")
        with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
            json.dump(values or {}, file)
            file.flush()
            result = subprocess.run(
                [helm, "lint", str(CHART_DIR), "-f", file.name],
                capture_output=True,
                text=True,
                check=False,
            )
        errors = [line for line in result.stdout.splitlines() if line.startswith("[ERROR]")]
        return {"messages": [], "errors": errors if result.returncode else []}
    report: dict[str, Any] = helm_python.lint(CHART_DIR, values, kube_version=f"v{KUBE_VERSION}")
    return report


def copy_chart(destination: Path) -> Path:
    """A private copy of the chart (for tests that break a template on purpose)."""
    target = destination / "gitstore-agents"
    shutil.copytree(CHART_DIR, target)
    return target


# ---------------------------------------------------------------------------------------------
# Checks: each returns the list of problems found (empty = fine), naming the object and field.
# ---------------------------------------------------------------------------------------------


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec) of every workload object."""
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "Job"):
            yield where, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield where, obj["spec"]


def _pod_problems(where: str, spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    pod = spec.get("securityContext") or {}
    if pod.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if not isinstance(pod.get("runAsUser"), int) or pod["runAsUser"] < 1:
        problems.append(f"{where}: pod securityContext.runAsUser is not a non-root UID")
    if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken is not false")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{where}: uses a host namespace")
    return problems


def _container_problems(at: str, container: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    ctx = container.get("securityContext") or {}
    expected = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
    }
    for key, value in expected.items():
        if ctx.get(key) is not value:
            problems.append(f"{at}: securityContext.{key} is not {value}")
    if ctx.get("privileged"):
        problems.append(f"{at}: privileged")
    caps = ctx.get("capabilities") or {}
    if "ALL" not in caps.get("drop", []) or caps.get("add"):
        problems.append(f"{at}: capabilities do not drop ALL (or add some)")
    if (ctx.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{at}: seccompProfile is not RuntimeDefault")
    if not isinstance(ctx.get("runAsUser"), int) or ctx["runAsUser"] < 1:
        problems.append(f"{at}: runAsUser is not a non-root UID")
    return problems


def security_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Where a pod or container falls short of the restricted Pod Security Standard."""
    problems: list[str] = []
    for where, spec in pod_specs(objects):
        problems += _pod_problems(where, spec)
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            problems += _container_problems(f"{where} container {container['name']}", container)
    return problems


def probe_problems(rendered: Rendered) -> list[str]:
    """Where a worker container lacks a probe on the health server."""
    problems: list[str] = []
    for deployment in rendered.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]["template"]["spec"]
        port = rendered.config_of(spec)["health"]["port"]
        for container in spec["containers"]:
            named_ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            wanted = {
                "startupProbe": "/healthz",
                "livenessProbe": "/healthz",
                "readinessProbe": "/readyz",
            }
            for probe, path in wanted.items():
                get = (container.get(probe) or {}).get("httpGet")
                if not get:
                    problems.append(f"Deployment/{name} {container['name']}: no {probe}")
                    continue
                target = get["port"]
                resolved = named_ports.get(target) if isinstance(target, str) else target
                if resolved != port or get["path"] != path:
                    problems.append(
                        f"Deployment/{name} {container['name']}: {probe} is "
                        f"{get['path']} on {target} (want {path} on {port})"
                    )
    return problems


def grace_problems(rendered: Rendered) -> list[str]:
    """Where Kubernetes could kill a worker before its drain grace has passed."""
    problems: list[str] = []
    for deployment in rendered.of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        drain = rendered.config_of(spec)["drain_grace_s"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= drain:
            problems.append(
                f"Deployment/{deployment['metadata']['name']}: terminationGracePeriodSeconds "
                f"{grace} <= drain_grace_s {drain}"
            )
    return problems


def kubernetes_schema_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Objects that do not meet the Kubernetes API schemas (strict: unknown fields too)."""
    import kubernetes_validate  # noqa: PLC0415 - heavy import, only where validation runs

    problems: list[str] = []
    for obj in objects:
        if obj["apiVersion"] in ("keda.sh/v1alpha1", "monitoring.coreos.com/v1"):
            continue  # CRDs: their shape is asserted by the tests instead
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(exc.message)
    return problems


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """True when every ``matchLabels`` pair is among ``labels``."""
    return all(labels.get(key) == value for key, value in selector.items())
