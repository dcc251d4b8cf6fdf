"""Task roles: run a task's WASI module and propose its output for validation."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor

import msgspec
import structlog
from nats.aio.msg import Msg

from ..envelopes import (
    Subjects,
    TaskRequest,
    Usage,
    ValidationRequest,
    canonical_json,
    decode,
    headers,
    sha256_digest,
)
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound
from ..sandbox import (
    ModuleError,
    ModuleRegistry,
    Outcome,
    Sandbox,
    SandboxLimits,
    logical_time_ns,
)
from ._decision import Decision, Settle

log = structlog.get_logger(__name__)


class TaskHandler:
    """Runs task requests in the sandbox and turns outputs into validation requests.

    Args:
        sandbox: Executes modules.
        registry: Resolves ``module_digest`` to a compiled module.
        subjects: Subject scheme for the validation requests.
        executor: Threads the sandbox runs on (wasmtime releases the GIL).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        registry: ModuleRegistry,
        subjects: Subjects,
        executor: Executor,
    ) -> None:
        self._sandbox = sandbox
        self._registry = registry
        self._subjects = subjects
        self._executor = executor

    async def __call__(self, msg: Msg) -> Decision:
        """Execute one task request."""
        try:
            task = decode(msg.data, TaskRequest)
            clock = logical_time_ns(task.logical_time)
            limits = SandboxLimits(
                fuel=task.limits.fuel,
                timeout_ms=task.limits.timeout_ms,
                memory_bytes=task.limits.memory_bytes,
            )
            module = await self._registry.load(task.module_digest)
        except (GitStoreAgentsError, ModuleError) as exc:
            return Decision(settle=Settle.TERM, reason=str(exc))
        if task.input is None:
            return Decision(settle=Settle.TERM, reason="input_ref is not supported yet")
        stdin = canonical_json(task.input)
        loop = asyncio.get_running_loop()
        run = functools.partial(
            self._sandbox.run, module, stdin, limits, logical_time_ns=clock, seed=task.seed
        )
        result = await loop.run_in_executor(self._executor, run)
        if result.outcome is not Outcome.OK:
            settle = Settle.TERM if result.outcome.deterministic else Settle.NAK
            return Decision(settle=settle, reason=f"{result.outcome}: {result.detail}")
        try:
            output = canonical_json(msgspec.json.decode(result.stdout))
        except msgspec.DecodeError as exc:
            return Decision(settle=Settle.TERM, reason=f"{Outcome.INVALID_OUTPUT}: {exc}")
        request = ValidationRequest(
            idempotency_key=task.idempotency_key,
            task_id=task.task_id,
            kind=task.kind,
            source_event_id=task.source_event_id,
            repository_id=task.repository_id,
            commit_sha=task.commit_sha,
            path=task.path,
            module_digest=task.module_digest,
            input_digest=task.input_digest,
            output=msgspec.Raw(output),
            output_digest=sha256_digest(output),
            usage=Usage(
                fuel=result.fuel_used,
                wall_time_us=result.wall_time_us,
                peak_memory_bytes=result.peak_memory_bytes,
            ),
        )
        log.info(
            "task executed",
            idempotency_key=task.idempotency_key,
            fuel=result.fuel_used,
            output_digest=request.output_digest,
        )
        return Decision(
            settle=Settle.ACK,
            outbound=(
                Outbound(
                    subject=self._subjects.validation(task.kind),
                    payload=canonical_json(request),
                    headers={
                        headers.MSG_ID: task.idempotency_key,
                        headers.CONTENT_TYPE: headers.JSON,
                    },
                ),
            ),
        )
