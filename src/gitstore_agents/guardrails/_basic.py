"""The basic admission and output check: the role configuration alone, no policy.

The runtime uses the policy-backed stages (``PolicyAdmission``,
``PolicyOutputCheck``) by default; these two remain for callers that want only
the configuration's rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..envelopes import Stage, TaskRequest
from ._stages import KindAllowance, Refusal


class BasicAdmission:
    """Admit a task only if the role runs its kind, knows its module and its limits fit.

    Args:
        allowed: Kind to what the role allows for it (from the role configuration).
    """

    def __init__(self, allowed: Mapping[str, KindAllowance]) -> None:
        self._allowed = dict(allowed)

    def admit(self, task: TaskRequest, envelope_bytes: int = 0) -> Refusal | None:
        """Check kind, module digest and limits against the role's configuration."""
        allowance = self._allowed.get(task.kind)
        if allowance is None:
            return Refusal(
                stage=Stage.ADMISSION,
                code="kind-not-allowed",
                message=f"kind={task.kind!r} is not run by this role "
                f"(runs: {sorted(self._allowed)})",
            )
        if task.module_digest not in allowance.modules:
            return Refusal(
                stage=Stage.ADMISSION,
                code="module-not-allowed",
                message=f"module_digest={task.module_digest} is not a module this role "
                f"runs for {task.kind} (allowed: {sorted(allowance.modules)})",
            )
        for field in ("fuel", "timeout_ms", "memory_bytes"):
            asked, ceiling = getattr(task.limits, field), getattr(allowance.ceilings, field)
            if asked > ceiling:
                return Refusal(
                    stage=Stage.ADMISSION,
                    code="limits-over-ceiling",
                    message=f"limits.{field}={asked} is over this role's ceiling {ceiling}",
                )
        return None


class BasicOutputCheck:
    """Accept only a JSON object no larger than ``max_output_bytes``.

    Args:
        max_output_bytes: Largest canonical output proposed for validation.
    """

    def __init__(self, max_output_bytes: int = 4 * 1024 * 1024) -> None:
        self._max = max_output_bytes

    def output_limit(self, task: TaskRequest) -> int | None:
        """The one cap, whatever the task."""
        return self._max

    def check(self, task: TaskRequest, output: Any, raw: bytes) -> Refusal | None:
        """Check the output's shape and size."""
        if not isinstance(output, dict):
            return Refusal(
                stage=Stage.OUTPUT_CHECK,
                code="output-not-object",
                message=f"output of {task.kind} is a JSON {type(output).__name__}, not an object",
            )
        if len(raw) > self._max:
            return Refusal(
                stage=Stage.OUTPUT_CHECK,
                code="output-too-large",
                message=f"output is {len(raw)} bytes, over max_output_bytes={self._max}",
            )
        return None
