"""Admission and output check against a policy: every refusal path, with its stable code."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gitstore_agents.config import MARKDOWN_COMPILE
from gitstore_agents.envelopes import Limits, Stage, TaskRequest, canonical_json
from gitstore_agents.guardrails import (
    KindAllowance,
    Policy,
    PolicyAdmission,
    PolicyError,
    PolicyOutputCheck,
    parse_policy,
)
from gitstore_agents.pipeline import plan_tasks
from gitstore_agents.sandbox import module_digest, reference_module_path

from .conftest import REPO_ROOT
from .guardrails_support import BASE_POLICY
from .runtime_support import make_event

COMPILE = module_digest(reference_module_path("markdown-compile").read_bytes())
ENRICH = module_digest(reference_module_path("catalog-enrich").read_bytes())
GOLDEN = REPO_ROOT / "tests" / "data" / "tasks"
CONFIGURED = Limits(fuel=1_000_000_000, timeout_ms=2000)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(BASE_POLICY.encode(), source="test-policy")


def _admission(policy: Policy, modules: frozenset[str] = frozenset({COMPILE})) -> PolicyAdmission:
    allowed = {MARKDOWN_COMPILE: KindAllowance(modules=modules, ceilings=CONFIGURED)}
    return PolicyAdmission(policy, "markdown-compiler", allowed)


def _task(**changes: Any) -> TaskRequest:
    (derived,) = plan_tasks(make_event(1), make_event(1).event_id, {MARKDOWN_COMPILE: COMPILE})
    task = msgspec.structs.replace(derived.task, limits=CONFIGURED)
    return msgspec.structs.replace(task, **changes)


def _size(task: TaskRequest) -> int:
    return len(canonical_json(task))


def test_a_task_within_the_policy_is_admitted(policy: Policy) -> None:
    assert _admission(policy).admit(_task(), _size(_task())) is None


@pytest.mark.parametrize(
    ("changes", "code", "names"),
    [
        ({"kind": "catalog.enrich"}, "kind-not-allowed", "kind='catalog.enrich'"),
        ({"module_digest": ENRICH}, "module-not-allowed", ENRICH),
        ({"path": "secrets/keys.md"}, "path-not-allowed", "roles.markdown-compiler.paths"),
        ({"path": "products/readme.txt"}, "path-not-allowed", "products/**/*.md"),
        (
            {"limits": Limits(fuel=10**12, timeout_ms=2000)},
            "limits-over-ceiling",
            "ceilings.fuel=1000000000",
        ),
        (
            {"limits": Limits(fuel=10, timeout_ms=3000)},
            "limits-over-ceiling",
            "ceilings.timeout_ms=2000",
        ),
        (
            {"limits": Limits(fuel=10, timeout_ms=10, memory_bytes=65 * 2**20)},
            "limits-over-ceiling",
            "ceilings.memory_bytes",
        ),
    ],
)
def test_admission_refusals(policy: Policy, changes: dict[str, Any], code: str, names: str) -> None:
    task = _task(**changes)
    refusal = _admission(policy).admit(task, _size(task))
    assert refusal is not None
    assert (refusal.stage, refusal.code) == (Stage.ADMISSION, code)
    assert names in refusal.message


def test_limits_over_the_configured_ones_are_refused_too(policy: Policy) -> None:
    allowed = {
        MARKDOWN_COMPILE: KindAllowance(modules=frozenset({COMPILE}), ceilings=Limits(fuel=100))
    }
    refusal = PolicyAdmission(policy, "markdown-compiler", allowed).admit(_task(), 100)
    assert refusal is not None
    assert refusal.code == "limits-over-ceiling"
    assert (
        "configured roles.markdown-compiler.kinds.markdown.compile.limits.fuel=100"
        in refusal.message
    )


def test_an_oversized_task_envelope_is_refused(policy: Policy) -> None:
    small = msgspec.structs.replace(policy, max_envelope_bytes=256)
    refusal = _admission(small).admit(_task(), _size(_task()))
    assert refusal is not None
    assert refusal.code == "input-too-large"
    assert "max_envelope_bytes=256" in refusal.message


def test_a_configured_module_the_policy_does_not_allow_fails_at_start(policy: Policy) -> None:
    with pytest.raises(PolicyError, match=f"module {ENRICH} is not allowed"):
        _admission(policy, frozenset({COMPILE, ENRICH}))


# -- output check ------------------------------------------------------------------------------


def _compiled() -> dict[str, Any]:
    output: dict[str, Any] = msgspec.json.decode(
        (GOLDEN / "markdown-compile" / "code.json").read_bytes()
    )
    output["source"]["path"] = "products/product-1-0.md"
    return output


def _check(policy: Policy, output: Any, task: TaskRequest | None = None) -> Any:
    return PolicyOutputCheck(policy).check(task or _task(), output, canonical_json(output))


def test_a_compiled_resource_within_the_policy_is_accepted(policy: Policy) -> None:
    assert _check(policy, _compiled()) is None


def _edit(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    output = copy.deepcopy(_compiled())
    node = output
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return output


_DELETE = object()


@pytest.mark.parametrize(
    ("output", "code", "names"),
    [
        ([1, 2], "output-not-object", "JSON list"),
        ({"compiled": {}}, "output-schema-invalid", "missing required field `body`"),
        (_edit(("resource", "metadata"), _DELETE), "output-schema-invalid", "`$.resource`"),
        (_edit(("body", "type"), "paragraph"), "output-schema-invalid", "body.type"),
        (
            _edit(("source", "path"), "secrets/keys.md"),
            "output-path-not-allowed",
            "source.path='secrets/keys.md'",
        ),
        (_edit(("source", "path"), "products/other.md"), "output-path-mismatch", "task's path"),
        (_edit(("resource", "kind"), "Order"), "result-kind-not-allowed", "resource.kind='Order'"),
        (
            _edit(("resource", "status"), {"phase": "Admitted"}),
            "output-claims-status",
            "$.resource.status",
        ),
        (_edit(("resource", "approved"), True), "output-claims-status", "$.resource.approved"),
        (_edit(("admission",), {"allowed": True}), "output-claims-status", "$.admission"),
        (
            _edit(("resource", "metadata", "annotations"), {"gitstore.dev/approved": "true"}),
            "output-claims-status",
            "annotations[gitstore.dev/approved]",
        ),
        (
            _edit(("resource", "metadata", "labels"), {"admitted": "yes"}),
            "output-claims-status",
            "labels[admitted]",
        ),
    ],
)
def test_output_check_refusals(policy: Policy, output: Any, code: str, names: str) -> None:
    refusal = _check(policy, output)
    assert refusal is not None, output
    assert (refusal.stage, refusal.code) == (Stage.OUTPUT_CHECK, code)
    assert names in refusal.message


def test_a_status_claim_is_found_on_a_resource_nested_anywhere(policy: Policy) -> None:
    enrich = _task(kind="catalog.enrich", module_digest=ENRICH)
    output = msgspec.json.decode((GOLDEN / "catalog-enrich" / "product.json").read_bytes())
    assert _check(policy, output, enrich) is None
    output["enrichment"]["related"] = [
        {"apiVersion": "catalog.gitstore.dev/v1beta1", "kind": "Product", "status": "live"}
    ]
    refusal = _check(policy, output, enrich)
    assert refusal is not None
    assert refusal.code == "output-claims-status"
    assert "$.enrichment.related[0].status" in refusal.message
    # spec keeps its own vocabulary: a product's spec.status is the author's, not a verdict.
    spec_status = _edit(("resource", "spec"), {"status": "discontinued"})
    assert _check(policy, spec_status) is None


@pytest.mark.parametrize(
    ("hidden", "where"),
    [
        # A second resource-shaped object: the body is walked, not only `resource`.
        (
            {"apiVersion": "v1", "kind": "Product", "admission": {"allowed": True}},
            "$.body.data.admission",
        ),
        # The only apiVersion key is nested (not the top-level resource's).
        ({"apiVersion": "v1", "kind": "X", "status": "ok"}, "$.body.data.status"),
    ],
)
def test_claims_are_found_wherever_resource_shaped_objects_are(
    policy: Policy, hidden: dict[str, Any], where: str
) -> None:
    output = _compiled()
    output["body"]["data"] = hidden
    if hidden["kind"] == "X":
        del output["resource"]["apiVersion"]  # the schema check comes first: skip it
        refusal = PolicyOutputCheck(policy).check(
            _task(kind="catalog.enrich", module_digest=ENRICH), output, canonical_json(output)
        )
    else:
        refusal = _check(policy, output)
    assert refusal is not None
    assert refusal.code == "output-claims-status"
    assert where in refusal.message


def test_text_that_mentions_apiversion_is_not_a_resource(policy: Policy) -> None:
    # Text quoting a manifest (a string, not an object) claims nothing.
    output = _compiled()
    output["body"]["children"].append(
        {"type": "code", "value": '{"apiVersion": "v1", "kind": "Product", "status": "live"}'}
    )
    assert _check(policy, output) is None


def test_output_size_is_bounded_by_the_role_and_the_global_cap(policy: Policy) -> None:
    small = parse_policy(
        BASE_POLICY.replace(
            "timeout_ms: 2000}\n    paths", "timeout_ms: 2000, output_bytes: 1024}\n    paths", 1
        ).encode()
    )
    refusal = _check(small, _compiled())
    assert refusal is not None
    assert refusal.code == "output-too-large"
    capped = msgspec.structs.replace(policy, max_output_bytes=512)
    refusal = _check(capped, _compiled())
    assert refusal is not None
    assert "over 512" in refusal.message


def test_the_default_policy_checks_only_shape_and_size(tmp_path: Path) -> None:
    from gitstore_agents.config import load_config  # noqa: PLC0415
    from gitstore_agents.guardrails import default_policy  # noqa: PLC0415

    policy = default_policy(load_config(env={}))
    # Today's behaviour: anything but a non-object or an oversized output passes.
    assert _check(policy, {"compiled": {"status": "approved"}}) is None
    refusal = _check(policy, [1])
    assert refusal is not None
    assert refusal.code == "output-not-object"
