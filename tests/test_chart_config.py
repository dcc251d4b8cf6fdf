"""The configuration the chart renders is what the worker's own loader accepts, and means what
the values say: every config file loads with ``load_config``, every enabled role starts
against the rendered policy (the start-time policy checks, module digests included), and the
settings a role depends on are there."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    Config,
    load_config,
    parse_module_ref,
)
from gitstore_agents.guardrails import KindAllowance, PolicyAdmission, PolicyError, load_policy
from gitstore_agents.sandbox import module_digest, reference_module_path
from gitstore_agents.service import Runtime

from .chart_support import RELEASE, ROLES, Rendered, load_value_set, merged_values, render
from .test_chart_render import VALUE_SETS_BY_ID


@functools.cache
def _render(set_id: str) -> Rendered:
    return render(VALUE_SETS_BY_ID[set_id])


def _config_files(rendered: Rendered) -> dict[str, str]:
    files = dict(rendered.named("ConfigMap", f"{RELEASE}-gitstore-agents-config")["data"])
    if rendered.of_kind("Job"):
        provision = rendered.named("ConfigMap", f"{RELEASE}-gitstore-agents-provision")
        files.update(provision["data"])
    return files


def _load(text: str, tmp_path: Path, policy: Path) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    # The pod mounts the policy at policy_file; here it sits in tmp_path.
    return load_config(path, env={"GITSTORE_POLICY_FILE": str(policy)})


def _policy(rendered: Rendered, tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        rendered.named("ConfigMap", f"{RELEASE}-gitstore-agents-policy")["data"]["policy.yaml"]
    )
    return path


def _digest(reference: str) -> str:
    ref = parse_module_ref(reference)
    if ref.source.value == "sha256":
        return ref.value
    return module_digest(reference_module_path(ref.value).read_bytes())


@pytest.mark.parametrize("set_id", sorted(VALUE_SETS_BY_ID))
def test_every_rendered_config_loads_and_every_role_starts_under_the_policy(
    set_id: str, tmp_path: Path
) -> None:
    rendered = _render(set_id)
    values = merged_values(VALUE_SETS_BY_ID[set_id])
    policy_path = _policy(rendered, tmp_path)
    policy = load_policy(policy_path)  # the rendered policy is one the worker accepts
    assert policy.subject_prefix == values["config"]["topology"]["prefix"]
    enabled = [role for role in ROLES if values["roles"][role]["enabled"]]
    files = _config_files(rendered)
    assert set(files) >= {f"{role}.yaml" for role in enabled} | {"status-probe.yaml"}
    for name, text in files.items():
        config = _load(text, tmp_path, policy_path)
        assert config.provision_on_start is (
            not values["provisioning"]["enabled"] and values["nats"]["auth"] == "none"
        ), name
    for role in enabled:
        config = _load(files[f"{role}.yaml"], tmp_path, policy_path)
        runtime = Runtime(config, [role])  # policy vs configuration, as at start
        settings = config.role(role)
        allowed = {
            kind: KindAllowance(
                modules=frozenset(
                    _digest(ref)
                    for ref in [k.module, *(e.module for e in k.extensions if e.module)]
                ),
                ceilings=k.limits.ceilings(),
            )
            for kind, k in settings.kinds.items()
        }
        PolicyAdmission(runtime.policy, role, allowed)  # every configured module is allowed


def _config(set_id: str, role: str, tmp_path: Path) -> Config:
    rendered = _render(set_id)
    return _load(_config_files(rendered)[f"{role}.yaml"], tmp_path, _policy(rendered, tmp_path))


def test_the_config_means_what_the_values_say(tmp_path: Path) -> None:
    planner = _config("defaults", "planner", tmp_path)
    # The planner plans markdown.compile with the markdown-compiler's module and limits.
    owner, compile_kind = planner.kind(MARKDOWN_COMPILE)
    assert owner == "markdown-compiler"
    assert compile_kind.module == "reference:markdown-compile"
    # Grown with each input: 2 s for an empty one, at most 10 s for the largest.
    assert compile_kind.limits.timeout_ms == 2000
    assert compile_kind.limits.ceilings().timeout_ms == 10000
    assert compile_kind.limits.task_limits(4 * 1024 * 1024).timeout_ms == 6000
    assert planner.role("planner").follow_ups == ()
    compiler = _config("defaults", "markdown-compiler", tmp_path)
    assert compiler.role("markdown-compiler").follow_ups == (CATALOG_ENRICH, EXTENSION_RUN)
    # ... and publishes them with the roles' modules, one extension task per extension.
    assert compiler.kind(CATALOG_ENRICH)[1].module == "reference:catalog-enrich"
    _, extension = compiler.kind(EXTENSION_RUN)
    assert [(e.name, e.version) for e in extension.extensions] == [("seo-lint", "1.0.0")]
    assert compiler.nats.inbox_prefix == "_INBOX_markdown-compiler"
    assert compiler.policy_file is not None


def test_a_config_the_policy_does_not_grant_is_caught_before_deploying(tmp_path: Path) -> None:
    # Values whose role config asks for more than the policy: the worker would refuse to
    # start; the test above would fail for such a value set (shown here).
    values: dict[str, Any] = load_value_set("defaults") or {}
    values["roles"] = {
        "enricher": {
            "config": {
                "kinds": {
                    CATALOG_ENRICH: {
                        "module": "reference:catalog-enrich",
                        "limits": {"fuel": 10**11, "timeout_ms": 1000, "memory_bytes": 65536},
                    }
                }
            }
        }
    }
    rendered = render(values)
    policy_path = _policy(rendered, tmp_path)
    config = _load(_config_files(rendered)["enricher.yaml"], tmp_path, policy_path)
    with pytest.raises(PolicyError, match=r"limits\.fuel=100000000000 is over the policy"):
        Runtime(config, ["enricher"])


def test_optional_role_settings_pass_through_the_schema_to_the_worker(tmp_path: Path) -> None:
    rendered = render(
        {
            "roles": {
                "enricher": {
                    "config": {"inline_fuel": 0, "fetch_expires_s": 10, "fetch_heartbeat_s": 2}
                }
            }
        }
    )
    config = _load(_config_files(rendered)["enricher.yaml"], tmp_path, _policy(rendered, tmp_path))
    settings = config.role("enricher")
    assert (settings.inline_fuel, settings.fetch_expires_s, settings.fetch_heartbeat_s) == (
        0,
        10.0,
        2.0,
    )
