"""Admission: before anything runs, may this role run this task, this way?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..envelopes import Stage, TaskRequest
from ._policy import Policy, PolicyError, RoleRules
from ._stages import KindAllowance, Refusal

_LIMIT_FIELDS = ("fuel", "timeout_ms", "memory_bytes")


class PolicyAdmission:
    """Admits a task only when both the policy and the role's configuration allow it.

    Checks, in order (each refusal has its own stable code): the role may run
    the task's kind (``kind-not-allowed``); its module digest is allowed
    (``module-not-allowed``); the task's path matches the role's path patterns
    (``path-not-allowed``); its limits are within the ceilings
    (``limits-over-ceiling``); the task envelope is within ``max_envelope_bytes``
    (``input-too-large``).

    Args:
        policy: The resolved policy.
        role: The role this admission serves.
        allowed: What the role's configuration runs, per kind (module digests
            resolved, configured limits).

    Raises:
        PolicyError: at construction, when the configuration names a module the
            policy does not allow (every task would be refused: fail at start).
    """

    def __init__(self, policy: Policy, role: str, allowed: Mapping[str, KindAllowance]) -> None:
        self._policy = policy
        self._rules: RoleRules = policy.role(role)
        self._allowed = dict(allowed)
        check_modules(policy, role, {kind: a.modules for kind, a in self._allowed.items()})

    @property
    def rules(self) -> RoleRules:
        """The role's rules."""
        return self._rules

    def admit(self, task: TaskRequest, envelope_bytes: int) -> Refusal | None:
        """None to admit ``task``; otherwise the first rule it breaks."""
        allowance = self._allowed.get(task.kind)
        if task.kind not in self._rules.kinds or allowance is None:
            return _refuse(
                "kind-not-allowed",
                f"kind={task.kind!r} is not run by role {self._rules.role} (policy allows "
                f"{list(self._rules.kinds)}, configuration runs {sorted(self._allowed)})",
            )
        return (
            self._check_module(task, allowance)
            or self._check_path(task)
            or self._check_limits(task, allowance)
            or self._check_size(envelope_bytes)
        )

    def _check_module(self, task: TaskRequest, allowance: KindAllowance) -> Refusal | None:
        digest = task.module_digest
        if digest in allowance.modules and self._rules.allows_module(digest):
            return None
        return _refuse(
            "module-not-allowed",
            f"module_digest={digest} is not a module role {self._rules.role} may run for "
            f"{task.kind} (configured: {sorted(allowance.modules)})",
        )

    def _check_path(self, task: TaskRequest) -> Refusal | None:
        paths = self._rules.paths
        if paths.allows(task.path):
            return None
        return _refuse(
            "path-not-allowed",
            f"path={task.path!r} matches none of roles.{self._rules.role}.paths "
            f"{list(paths.patterns)}",
        )

    def _check_limits(self, task: TaskRequest, allowance: KindAllowance) -> Refusal | None:
        role = self._rules.role
        for field in _LIMIT_FIELDS:
            asked = getattr(task.limits, field)
            ceiling = getattr(self._rules.ceilings, field)
            configured = getattr(allowance.ceilings, field)
            if asked > ceiling:
                return _refuse(
                    "limits-over-ceiling",
                    f"limits.{field}={asked} is over the policy's roles.{role}.ceilings."
                    f"{field}={ceiling}",
                )
            if asked > configured:
                return _refuse(
                    "limits-over-ceiling",
                    f"limits.{field}={asked} is over the configured roles.{role}.kinds."
                    f"{task.kind}.limits.{field}={configured}",
                )
        return None

    def _check_size(self, size: int) -> Refusal | None:
        limit = self._policy.max_envelope_bytes
        if size <= limit:
            return None
        return _refuse(
            "input-too-large",
            f"the task envelope is {size} bytes, over the policy's max_envelope_bytes={limit}",
        )


def check_modules(policy: Policy, role: str, modules: Mapping[str, Iterable[str]]) -> None:
    """Refuse configured modules the policy does not let ``role`` run.

    The check a worker makes at start (building each role's admission), and
    ``policy check --config`` makes without one.

    Args:
        policy: The resolved policy.
        role: The role.
        modules: Each task kind the role's configuration runs to its module digests.

    Raises:
        PolicyError: naming each kind and digest the policy does not allow.
    """
    rules = policy.role(role)
    problems = [
        f"roles.{role}.kinds.{kind}: module {digest} is not allowed by the policy's "
        f"roles.{role}.modules"
        for kind, digests in sorted(modules.items())
        for digest in sorted(digests)
        if not rules.allows_module(digest)
    ]
    if problems:
        raise PolicyError(
            f"configuration and policy {policy.source} disagree:\n  - " + "\n  - ".join(problems)
        )


def _refuse(code: str, message: str) -> Refusal:
    return Refusal(stage=Stage.ADMISSION, code=code, message=message)
