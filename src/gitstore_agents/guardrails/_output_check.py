"""Output check: after a run, may this output be proposed for validation?

Agents propose; the control plane decides. An output is refused when it is
not a JSON object (``output-not-object``), is larger than the role may
propose (``output-too-large``), is not a compiled resource where one is due
(``output-schema-invalid``), carries a resource kind the role may not produce
(``result-kind-not-allowed``), is about a file outside the role's path
patterns (``output-path-not-allowed``) or another file than its task
(``output-path-mismatch``), or claims a decision that belongs to the control
plane — a ``status``, ``admission``, ``admitted``, ``approved`` or
``approval`` key on the output or on any resource in it, or such a label or
annotation (``output-claims-status``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..config import MARKDOWN_COMPILE
from ..envelopes import CompiledResource, Stage, TaskRequest
from ._policy import Policy
from ._stages import Refusal

CLAIM_KEYS = frozenset({"status", "admission", "admitted", "approved", "approval"})
"""Keys only the control plane may write: an agent proposes ``spec``, never a verdict."""

_COMPILED = msgspec.json.Decoder(CompiledResource)
_API_VERSION_KEY = b'"apiVersion":'


class PolicyOutputCheck:
    """Checks every role's outputs against the policy (the role is the one running the kind).

    Args:
        policy: The resolved policy.
    """

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    def output_limit(self, task: TaskRequest) -> int | None:
        """The output cap of the role running ``task``'s kind (None: no role may run it)."""
        rules = self._policy.role_of_kind(task.kind)
        return None if rules is None else self._policy.output_bytes(rules)

    def check(self, task: TaskRequest, output: Any, raw: bytes) -> Refusal | None:
        """None to accept ``output`` of ``task``; otherwise the first rule it breaks."""
        rules = self._policy.role_of_kind(task.kind)
        if rules is None:
            return _refuse("kind-not-allowed", f"no role of the policy may run kind={task.kind!r}")
        if not isinstance(output, dict):
            return _refuse(
                "output-not-object",
                f"output of {task.kind} is a JSON {type(output).__name__}, not an object",
            )
        limit = self._policy.output_bytes(rules)
        if len(raw) > limit:
            return _refuse(
                "output-too-large",
                f"output is {len(raw)} bytes, over {limit} (roles.{rules.role}.ceilings."
                f"output_bytes / max_output_bytes)",
            )
        if not rules.strict_output:
            return None
        return (
            _check_schema(task, raw)
            or _check_resource_kind(output, rules.result_kinds, rules.role)
            or _check_source_path(task, output, rules.paths, rules.role)
            or _check_claims(output, raw)
        )


def _check_schema(task: TaskRequest, raw: bytes) -> Refusal | None:
    if task.kind != MARKDOWN_COMPILE:
        return None
    try:
        compiled = _COMPILED.decode(raw)
    except msgspec.ValidationError as exc:
        return _refuse("output-schema-invalid", f"not a CompiledResource: {exc}")
    if compiled.body.get("type") != "root":
        return _refuse(
            "output-schema-invalid",
            "not a CompiledResource: body.type must be 'root' - at `$.body.type`",
        )
    return None


def _check_resource_kind(
    output: dict[str, Any], allowed: tuple[str, ...], role: str
) -> Refusal | None:
    resource = output.get("resource")
    if resource is None:
        return None
    if not isinstance(resource, dict) or not isinstance(resource.get("kind"), str):
        return _refuse(
            "output-schema-invalid",
            "resource must be an object with a string kind - at `$.resource`",
        )
    if resource["kind"] not in allowed:
        return _refuse(
            "result-kind-not-allowed",
            f"resource.kind={resource['kind']!r} is not one of roles.{role}.result_kinds "
            f"{list(allowed)}",
        )
    return None


def _check_source_path(
    task: TaskRequest, output: dict[str, Any], paths: Any, role: str
) -> Refusal | None:
    source = output.get("source")
    if source is None:
        return None
    path = source.get("path") if isinstance(source, dict) else None
    if not isinstance(path, str):
        return _refuse("output-schema-invalid", "source.path must be a string - at `$.source.path`")
    if not paths.allows(path):
        return _refuse(
            "output-path-not-allowed",
            f"source.path={path!r} matches none of roles.{role}.paths {list(paths.patterns)}",
        )
    if path != task.path:
        return _refuse(
            "output-path-mismatch",
            f"source.path={path!r} is not the task's path {task.path!r}",
        )
    return None


def _check_claims(output: dict[str, Any], raw: bytes) -> Refusal | None:
    claimed = sorted(CLAIM_KEYS & output.keys())
    if claimed:
        return _claims(f"$.{claimed[0]}")
    # ``raw`` is the canonical encoding of ``output``: every object key named
    # apiVersion appears in it as ``"apiVersion":`` (a quote inside a string is
    # escaped, and a string value is never followed by a colon). So the count
    # bounds the resource-shaped objects; a compiled product has exactly one,
    # its ``resource``, and is checked without walking the body.
    holders = raw.count(_API_VERSION_KEY)
    if holders == 0:
        return None
    single = _only_resource(output) if holders == 1 else None
    if single is not None:
        found = _resource_claim(single[0], single[1])
        return _claims(found) if found is not None else None
    if not _claims_anywhere(output):
        return None
    found = _claim_path(output)
    return _claims(found) if found is not None else None


def _only_resource(output: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """Where the one object holding an apiVersion key is, when it is a top-level one."""
    if "apiVersion" in output:
        return ("$", output) if "kind" in output else None
    resource = output.get("resource")
    if isinstance(resource, dict) and "apiVersion" in resource:
        return ("$.resource", resource) if "kind" in resource else None
    return None


def _claims_anywhere(output: dict[str, Any]) -> bool:
    """Whether any resource-shaped object in ``output`` claims a decision.

    Runs on every output, so it walks values only: naming every node's path
    as it goes costs several times the walk (about 190 µs on a compiled
    product), and the path is only needed for the rare output that claims.
    Iterative: outputs may be deep (mdast bodies).
    """
    stack: list[Any] = [output]
    pop, extend = stack.pop, stack.extend
    while stack:
        value = pop()
        if isinstance(value, dict):
            if "apiVersion" in value and "kind" in value and _resource_claim("$", value):
                return True
            extend(value.values())
        elif isinstance(value, list):
            extend(value)
    return False


def _claim_path(output: dict[str, Any]) -> str | None:
    """The path of the first claim found (the same walk, naming where it is)."""
    stack: list[tuple[str, Any]] = [("$", output)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            if "apiVersion" in value and "kind" in value:
                found = _resource_claim(where, value)
                if found is not None:
                    return found
            stack.extend((f"{where}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


def _resource_claim(where: str, resource: dict[str, Any]) -> str | None:
    """The path of a claim on a resource-shaped object (apiVersion + kind), if any."""
    claimed = sorted(CLAIM_KEYS & resource.keys())
    if claimed:
        return f"{where}.{claimed[0]}"
    metadata = resource.get("metadata")
    if not isinstance(metadata, dict):
        return None
    for field in ("annotations", "labels"):
        entries = metadata.get(field)
        if not isinstance(entries, dict):
            continue
        for key in sorted(entries):
            # gitstore.dev/approved, admission.example.com/status: the name after the prefix.
            if isinstance(key, str) and key.rsplit("/", 1)[-1].lower() in CLAIM_KEYS:
                return f"{where}.metadata.{field}[{key}]"
    return None


def _claims(where: str) -> Refusal:
    return _refuse(
        "output-claims-status",
        f"the output claims a control-plane decision at `{where}`: agents propose spec; "
        "status and admission are decided by the validation pipeline",
    )


def _refuse(code: str, message: str) -> Refusal:
    return Refusal(stage=Stage.OUTPUT_CHECK, code=code, message=message)
