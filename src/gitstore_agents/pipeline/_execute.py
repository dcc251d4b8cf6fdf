"""Run one task and decide what its run means: the one place that does.

``judge`` turns a ``RunResult`` into an ``Execution``: ``ok`` with the output
in canonical form and its digest, or the failure with its stage, code and
whether a retry could help. ``run_task`` runs the module first. Workers,
``replay --verify`` and ``sandbox run`` all go through them, so the three can
never disagree about an output.

The output is decoded once (msgspec, floats refused as they are read) and
encoded once in canonical form; nothing walks the document in Python unless
the policy's claim check finds a reason to (see ``PolicyOutputCheck``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from typing import Any, Protocol

import msgspec

from .. import codes
from ..envelopes import (
    CanonicalFormError,
    FieldError,
    Stage,
    TaskRequest,
    Usage,
    encode_decoded,
    lone_surrogate,
    sha256_digest,
)
from ..guardrails import OutputCheck
from ..sandbox import CompiledModule, Outcome, RunResult, SandboxLimits, logical_time_ns

INPUT_REJECTED_EXIT_CODE = 65
"""A module exits 65 (``EX_DATAERR``) when it rejects its input (``{"errors": [...]}``)."""


def _reject_float(literal: str) -> Any:
    raise ValueError(f"float {literal} has no canonical JSON form (write integers or strings)")


_OUTPUT = msgspec.json.Decoder(float_hook=_reject_float)


class Execution(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of a task came to.

    Attributes:
        code: ``ok`` or the failure's code (``codes.CODES``).
        stage: Where it ended: ``sandbox`` (the run) or ``output-check``.
        message: Why, when not ``ok``, naming the limit or field.
        retryable: Whether running again could end differently (only the
            wall-clock deadline can).
        output: The decoded output (``ok`` only).
        raw: The output's canonical JSON bytes (``ok`` only).
        output_digest: ``sha256`` of ``raw`` (``ok`` only).
        usage: What the run consumed (None when the module never ran).
        stderr: The module's stderr (its tail goes into diagnostics).
        errors: Field errors of a module that rejected its input (exit 65).
    """

    code: str
    stage: Stage = Stage.SANDBOX
    message: str = ""
    retryable: bool = False
    output: Any = None
    raw: bytes = b""
    output_digest: str | None = None
    usage: Usage | None = None
    stderr: bytes = b""
    errors: tuple[FieldError, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the output may be proposed for validation."""
        return self.code == codes.OK


class Runner(Protocol):
    """Runs a module (inline or on a thread: ``SandboxOffload.run``)."""

    def __call__(
        self,
        module: CompiledModule,
        stdin: bytes,
        limits: SandboxLimits,
        *,
        logical_time_ns: int,
        seed: int,
    ) -> Awaitable[RunResult]:
        """Run ``module`` on ``stdin`` within ``limits``."""
        ...


DEFAULT_STDOUT_BYTES = SandboxLimits().max_stdout_bytes
"""A run's stdout cap when no output check says otherwise (``sandbox run`` without a policy)."""


async def run_task(
    task: TaskRequest,
    stdin: bytes,
    module: CompiledModule,
    run: Runner,
    check: OutputCheck | None,
) -> Execution:
    """Run ``task``'s module on ``stdin`` and judge the result.

    Clock and randomness come from the task (its logical time and seed), so a
    replay sees the same values and produces the same bytes.
    """
    cap = check.output_limit(task) if check is not None else None
    limits = sandbox_limits(
        task.limits.fuel,
        task.limits.timeout_ms,
        task.limits.memory_bytes,
        cap or DEFAULT_STDOUT_BYTES,
    )
    result = await run(
        module, stdin, limits, logical_time_ns=logical_time_ns(task.logical_time), seed=task.seed
    )
    return judge(result, task=task, check=check)


@functools.lru_cache(maxsize=64)
def sandbox_limits(
    fuel: int, timeout_ms: int, memory_bytes: int, max_stdout_bytes: int = DEFAULT_STDOUT_BYTES
) -> SandboxLimits:
    """The sandbox limits of a task's limits (a role's tasks share a handful: built once).

    ``max_stdout_bytes`` is the role's output cap: a module writing more is
    stopped there rather than after the check has read it all.
    """
    return SandboxLimits(
        fuel=fuel,
        timeout_ms=timeout_ms,
        memory_bytes=memory_bytes,
        max_stdout_bytes=max_stdout_bytes,
    )


def judge(  # noqa: PLR0911 - one early return per way a run can end reads best
    result: RunResult, *, task: TaskRequest | None = None, check: OutputCheck | None = None
) -> Execution:
    """What ``result`` means: its canonical output, or why it failed.

    Args:
        result: The run.
        task: The task that ran (needed by ``check``).
        check: The policy's output check (None: canonical form only, as
            ``sandbox run`` without a policy).
    """
    usage = Usage(
        fuel=result.fuel_used,
        wall_time_us=result.wall_time_us,
        peak_memory_bytes=result.peak_memory_bytes,
    )
    if result.outcome is not Outcome.OK:
        return _failed_run(result, usage)
    try:
        output = _OUTPUT.decode(result.stdout)
    except msgspec.ValidationError as exc:  # a float, refused as it was read
        return _refused(
            CanonicalFormError.code, f"stdout has no canonical JSON form: {exc}", result, usage
        )
    except msgspec.DecodeError as exc:
        surrogate = lone_surrogate(result.stdout)
        if surrogate is not None:
            return _refused(CanonicalFormError.code, f"stdout: {surrogate}", result, usage)
        return _refused(str(Outcome.INVALID_OUTPUT), f"stdout is not JSON: {exc}", result, usage)
    except RecursionError:
        return _refused(
            "output-too-deep",
            f"stdout is nested too deeply to read ({len(result.stdout)} bytes)",
            result,
            usage,
        )
    try:
        raw = encode_decoded(output)
    except CanonicalFormError as exc:
        # Integers outside int64/uint64, lone surrogates: no canonical form.
        return _refused(
            exc.code, f"stdout has no canonical JSON form: {exc.message}", result, usage
        )
    except RecursionError:
        return _refused("output-too-deep", "stdout is nested too deeply to encode", result, usage)
    if check is not None and task is not None:
        refusal = check.check(task, output, raw)
        if refusal is not None:
            return _refused(refusal.code, refusal.message, result, usage, stage=refusal.stage)
    return Execution(
        code=codes.OK,
        output=output,
        raw=raw,
        output_digest=sha256_digest(raw),
        usage=usage,
        stderr=result.stderr,
    )


def _failed_run(result: RunResult, usage: Usage) -> Execution:
    if not result.outcome.deterministic:
        # Only the wall-clock deadline depends on load: worth another try.
        return Execution(
            code=str(result.outcome),
            message=result.detail,
            retryable=True,
            usage=usage,
            stderr=result.stderr,
        )
    if result.outcome is Outcome.EXIT_NONZERO and result.exit_code == INPUT_REJECTED_EXIT_CODE:
        errors = field_errors(result.stdout)
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
        return Execution(
            code="input-rejected",
            message=f"module rejected its input with {len(errors)} error(s)"
            + (f": {summary}" if summary else ""),
            usage=usage,
            stderr=result.stderr,
            errors=tuple(errors),
        )
    return Execution(
        code=str(result.outcome), message=result.detail, usage=usage, stderr=result.stderr
    )


def _refused(
    code: str,
    message: str,
    result: RunResult,
    usage: Usage,
    *,
    stage: Stage = Stage.OUTPUT_CHECK,
) -> Execution:
    return Execution(code=code, stage=stage, message=message, usage=usage, stderr=result.stderr)


class _Rejection(msgspec.Struct, frozen=True):
    """stdout of a module that exited 65."""

    errors: list[FieldError] = msgspec.field(default_factory=list)


_REJECTION = msgspec.json.Decoder(_Rejection)


def field_errors(stdout: bytes) -> list[FieldError]:
    """The field errors a module that exited 65 wrote (none when unreadable)."""
    try:
        return _REJECTION.decode(stdout).errors
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return []
