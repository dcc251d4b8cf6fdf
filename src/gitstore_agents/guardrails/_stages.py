"""The two guard stages of the task pipeline: admission before running, output check after.

The pipeline (``consumers``) only knows these protocols. A refusal is
permanent: the pipeline publishes a ``FailureDiagnostic`` carrying the
refusal's stage and code, reports the decision, and terminates the task.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from ..envelopes import Limits, Stage, TaskRequest


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why a stage refused a task.

    Attributes:
        stage: ``admission`` or ``output-check``.
        code: Stable code (diagnostics and the control plane branch on it).
        message: What was refused, naming the field or limit.
    """

    stage: Stage
    code: str
    message: str


class Admission(Protocol):
    """Decides, before anything runs, whether this role may run ``task``."""

    def admit(self, task: TaskRequest, envelope_bytes: int) -> Refusal | None:
        """None to admit; a ``Refusal`` (stage ``admission``) otherwise.

        Args:
            task: The decoded task.
            envelope_bytes: Size of the task message as it arrived.
        """
        ...


class OutputCheck(Protocol):
    """Decides, after the run, whether ``output`` may be proposed for validation."""

    def check(self, task: TaskRequest, output: Any, raw: bytes) -> Refusal | None:
        """None to accept; a ``Refusal`` (stage ``output-check``) otherwise.

        Args:
            task: The task that produced the output.
            output: The decoded JSON output.
            raw: Its canonical JSON bytes.
        """
        ...

    def output_limit(self, task: TaskRequest) -> int | None:
        """The largest output ``task`` may propose (None: no cap of the check's own).

        The sandbox stops a run that writes more (``output-too-large``), so a
        flood costs no more than the cap.
        """
        ...


class KindAllowance(msgspec.Struct, frozen=True, kw_only=True):
    """What a role's configuration allows for one task kind.

    Attributes:
        modules: Module digests the configuration names for this kind.
        ceilings: The configured limits (planned tasks ask for exactly these).
    """

    modules: frozenset[str]
    ceilings: Limits
