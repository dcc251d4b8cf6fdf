"""Task roles: the pipeline that turns one task delivery into exactly one result.

Stages, in order (each inside ``Observer.stage``, each decision reported to
``Observer.decided``)::

    decode → admit → ledger claim → fetch input and module → sandbox
           → output check → publish (result + follow-ups) → ledger settle → settle

The handler returns only when everything the delivery produced has a PubAck;
the worker then acks, terms or naks. Failures are classified once, here:
permanent ones publish a ``FailureDiagnostic`` and ``term``; transient ones
release the claim and ``nak`` with the role's backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any

import msgspec
import structlog

from ..clock import rfc3339, utc_now
from ..config import INLINE_FUEL
from ..consumers import (
    Busy,
    Claim,
    Decision,
    Delivery,
    Ledger,
    LedgerUnavailableError,
    PublishFailedError,
    RunState,
    Settle,
    Settled,
    ledger_key,
    publish_confirmed,
    retry_delay_s,
)
from ..envelopes import (
    AuditDecision,
    CanonicalFormError,
    ContentStore,
    EnvelopeError,
    FailureDiagnostic,
    FieldError,
    Stage,
    Subjects,
    TaskRequest,
    Usage,
    ValidationRequest,
    canonical_json,
    decode,
    headers,
    resolve_task_input,
    sha256_digest,
)
from ..errors import GitStoreAgentsError
from ..guardrails import Admission, Outbound, OutputCheck, PublishBoundary, PublishRefusedError
from ..sandbox import (
    CompiledModule,
    ModuleError,
    Outcome,
    RunResult,
    Sandbox,
    SandboxLimits,
    logical_time_ns,
)
from ..telemetry import FOLLOW_UP_REF, DecisionRecord, Observer, annotate, planned_ref
from ._follow_ups import FollowUpSpec, follow_up_tasks
from ._modules import ModuleLoader
from ._offload import SandboxOffload

log = structlog.get_logger(__name__)

INPUT_REJECTED_EXIT_CODE = 65
"""A module exits 65 (``EX_DATAERR``) when it rejects its input (``{"errors": [...]}``)."""

_STDERR_TAIL_LINES = 20
_STDERR_LINE_CHARS = 500
# A busy claim is retried just after its lease ends, not exactly at it.
_BUSY_SLACK_S = 0.25
# While another worker holds a task, look at the ledger this often.
_BUSY_POLL_S = 0.25


class TaskSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the pipeline needs to know about its role.

    Attributes:
        role: Role name.
        worker_id: This process's id (recorded in the ledger).
        lease_s: Ledger lease of a claim (the role's ack wait).
        backoff_s: Retry delay after the n-th failed delivery.
        publish_timeout_s: Bound on waiting for PubAcks.
        kinds: Task kinds the role runs (diagnostics about foreign or
            unreadable tasks are filed under the first).
        follow_ups: Follow-up tasks published after each success.
        inline_fuel: Fuel cap of runs tried on the event loop thread (0: none).
    """

    role: str
    kinds: tuple[str, ...]
    worker_id: str
    lease_s: float
    backoff_s: tuple[float, ...]
    publish_timeout_s: float
    follow_ups: tuple[FollowUpSpec, ...] = ()
    inline_fuel: int = INLINE_FUEL


class Execution(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of running one task in-process (no ledger, nothing published).

    Attributes:
        code: ``ok``, a sandbox outcome or an error code.
        output: The decoded output (``ok`` only).
        output_digest: Digest of the canonical output (``ok`` only).
        detail: Why, when not ``ok``.
    """

    code: str
    output: Any = None
    output_digest: str | None = None
    detail: str = ""


class _Attempt:
    """One delivery's way through the pipeline: what is known so far."""

    __slots__ = (
        "claim",
        "delivery",
        "output",
        "output_digest",
        "raw",
        "result",
        "result_seq",
        "stdin",
        "task",
        "trail",
    )

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.task: TaskRequest | None = None
        # The canonical inline input: hashed at decode, then the module's stdin.
        self.stdin: bytes | None = None
        self.claim: Claim | None = None
        self.result: RunResult | None = None
        self.output: Any = None
        self.raw = b""
        self.output_digest: str | None = None
        self.result_seq: int | None = None
        # Messages the observer asked to publish (audit records) with the results.
        self.trail: list[Outbound] = []


class TaskHandler:
    """Runs task requests in the sandbox and proposes their outputs for validation.

    Args:
        settings: The role's settings.
        sandbox: Executes modules.
        modules: Resolves module digests to compiled modules.
        ledger: The idempotency ledger.
        boundary: The role's publish boundary (the only way out).
        subjects: Subject scheme.
        executor: Threads for runs that may be long (wasmtime releases the GIL);
            surely short runs happen inline (``_offload``).
        admission: Decides whether a task may run (before running).
        output_check: Decides whether an output may be proposed (after running).
        observer: Receives every decision.
        content: The content store large inputs are read from (None: inline inputs only).
    """

    def __init__(
        self,
        *,
        settings: TaskSettings,
        sandbox: Sandbox,
        modules: ModuleLoader,
        ledger: Ledger,
        boundary: PublishBoundary,
        subjects: Subjects,
        executor: Executor,
        admission: Admission,
        output_check: OutputCheck,
        observer: Observer,
        content: ContentStore | None = None,
    ) -> None:
        self.settings = settings
        self._offload = SandboxOffload(sandbox, executor, inline_fuel=settings.inline_fuel)
        self._modules = modules
        self._ledger = ledger
        self._boundary = boundary
        self._subjects = subjects
        self._admission = admission
        self._output_check = output_check
        self._observer = observer
        self._content = content

    async def __call__(self, delivery: Delivery) -> Decision:
        """Process one task delivery; return how to settle it."""
        attempt = _Attempt(delivery)
        try:
            return await self._process(attempt)
        except asyncio.CancelledError:
            # The worker aborts in-flight work when its drain grace runs out:
            # hand the claim back so the redelivery runs at once, not after the lease.
            if attempt.claim is not None:
                self._ledger.abandon(attempt.claim)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self._ledger.retry_later(attempt.claim, error="released: worker draining"),
                        timeout=2.0,
                    )
            raise

    async def execute(self, task: TaskRequest) -> Execution:
        """Run ``task`` in the sandbox and digest its output, touching nothing else.

        ``replay --verify`` compares the digest with the ledger's: a task that
        ran before must produce the same bytes again.
        """
        try:
            stdin = _check_input_digest(task) or await self._stdin(task)
            module = await self._modules.ensure(task.module_digest)
        except GitStoreAgentsError as exc:
            return Execution(code=exc.code, detail=exc.message)
        except ModuleError as exc:
            return Execution(code=str(exc.outcome), detail=str(exc))
        result = await self._run(module, stdin, task)
        if result.outcome is not Outcome.OK:
            return Execution(code=str(result.outcome), detail=result.detail)
        try:
            output = msgspec.json.decode(result.stdout)
            raw = canonical_json(output)
        except msgspec.DecodeError as exc:
            return Execution(code=str(Outcome.INVALID_OUTPUT), detail=str(exc))
        except CanonicalFormError as exc:
            return Execution(code=exc.code, detail=exc.message)
        return Execution(code="ok", output=output, output_digest=sha256_digest(raw))

    async def _process(self, a: _Attempt) -> Decision:
        # The stages, in order; each either fills in the attempt and returns
        # None (go on) or returns the decision that ends the delivery.
        annotate(role=self.settings.role)
        stages = (
            (Stage.DECODE, self._decode),
            (Stage.ADMISSION, self._admit),
            (Stage.LEDGER, self._claim),
            (Stage.SANDBOX, self._execute),
            (Stage.OUTPUT_CHECK, self._check_output),
            (Stage.PUBLISH, self._publish),
        )
        for stage, run in stages:
            with self._observer.stage(stage, a.delivery.subject):
                decision = await run(a)
            if decision is not None:
                return decision
        return await self._record_success(a)

    async def _decode(self, a: _Attempt) -> Decision | None:
        try:
            a.task = decode(a.delivery.data, TaskRequest)
            annotate(
                event_id=a.task.source_event_id,
                idempotency_key=a.task.idempotency_key,
                task_id=a.task.task_id,
                kind=a.task.kind,
            )
            a.stdin = _check_input_digest(a.task)
        except GitStoreAgentsError as exc:
            return await self._permanent(a, Stage.DECODE, exc.code, exc.message)
        return None

    async def _admit(self, a: _Attempt) -> Decision | None:
        assert a.task is not None
        refusal = self._admission.admit(a.task)
        if refusal is not None:
            # Not recorded in the ledger: a later policy may admit the same task.
            return await self._permanent(a, refusal.stage, refusal.code, refusal.message)
        self._decide(a, AuditDecision.ADMITTED)
        return None

    async def _claim(self, a: _Attempt) -> Decision | None:
        assert a.task is not None
        loop = asyncio.get_running_loop()
        # Another worker holds the task: wait here (the worker keeps the
        # message alive with in-progress acks) rather than nak, which would
        # spend one of the message's deliveries on every look.
        hold_until = loop.time() + self.settings.lease_s
        waiting = False
        while True:
            try:
                claim = await self._ledger.claim(
                    a.task, worker_id=self.settings.worker_id, lease_s=self.settings.lease_s
                )
            except LedgerUnavailableError as exc:
                return await self._failed(a, Stage.LEDGER, exc)
            if isinstance(claim, Settled):
                return await self._skip(a, claim)
            if isinstance(claim, Claim):
                a.claim = claim
                return None
            holder = f"{claim.record.worker_id} until {claim.record.lease_until}"
            pause = self._busy_pause(a.task, claim)
            if loop.time() + pause > hold_until:
                self._decide(
                    a,
                    AuditDecision.RETRIED,
                    code="claimed-elsewhere",
                    reason=f"claimed by {holder}",
                )
                return Decision(
                    settle=Settle.NAK,
                    nak_delay_s=claim.retry_in_s + _BUSY_SLACK_S,
                    code="claimed-elsewhere",
                    reason=f"claimed by {holder}",
                )
            if not waiting:
                waiting = True
                log.info(
                    "task claimed elsewhere; waiting", holder=holder, key=a.task.idempotency_key
                )
            await asyncio.sleep(min(pause, _BUSY_POLL_S))

    async def _execute(self, a: _Attempt) -> Decision | None:
        assert a.task is not None
        try:
            stdin = a.stdin if a.stdin is not None else await self._stdin(a.task)
            module = await self._modules.ensure(a.task.module_digest)
        except ModuleError as exc:
            return await self._permanent(a, Stage.SANDBOX, str(exc.outcome), str(exc))
        except GitStoreAgentsError as exc:
            # Content and module stores: unreachable or not-yet-uploaded is
            # retryable, a digest mismatch is not; the error says which.
            return await self._failed(a, Stage.SANDBOX, exc)
        result = await self._run(module, stdin, a.task)
        a.result = result
        if result.outcome is not Outcome.OK:
            return await self._sandbox_failure(a, result)
        self._decide(
            a,
            AuditDecision.EXECUTED,
            refs={
                "fuel": str(result.fuel_used),
                "wall_time_us": str(result.wall_time_us),
                "peak_memory_bytes": str(result.peak_memory_bytes),
            },
        )
        return None

    async def _check_output(self, a: _Attempt) -> Decision | None:
        assert a.task is not None
        assert a.result is not None
        try:
            a.output = msgspec.json.decode(a.result.stdout)
        except msgspec.DecodeError as exc:
            return await self._permanent(
                a,
                Stage.OUTPUT_CHECK,
                str(Outcome.INVALID_OUTPUT),
                f"stdout is not JSON: {exc}",
                stderr=a.result.stderr,
            )
        try:
            a.raw = canonical_json(a.output)
        except CanonicalFormError as exc:
            # A float or an out-of-range integer: deterministic, so never retried.
            return await self._permanent(
                a,
                Stage.OUTPUT_CHECK,
                exc.code,
                f"stdout has no canonical JSON form: {exc.message}",
                stderr=a.result.stderr,
            )
        refusal = self._output_check.check(a.task, a.output, a.raw)
        if refusal is not None:
            return await self._permanent(a, refusal.stage, refusal.code, refusal.message)
        a.output_digest = sha256_digest(a.raw)
        self._decide(a, AuditDecision.OUTPUT_CHECKED, refs={"output_digest": a.output_digest})
        return None

    async def _publish(self, a: _Attempt) -> Decision | None:
        task, result = a.task, a.result
        assert task is not None
        assert result is not None
        assert a.output_digest is not None
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
            output=msgspec.Raw(a.raw),
            output_digest=a.output_digest,
            usage=Usage(
                fuel=result.fuel_used,
                wall_time_us=result.wall_time_us,
                peak_memory_bytes=result.peak_memory_bytes,
            ),
        )
        follow_ups = (
            follow_up_tasks(task, a.output, self.settings.follow_ups)
            if isinstance(a.output, dict)
            else []
        )
        request_id = headers.passed_request_id(a.delivery.headers)
        messages = [
            # Every publish carries a Nats-Msg-Id: the task's own key for its
            # result, the follow-up's key for each follow-up. A redelivered or
            # taken-over run republishes the same ids, and JetStream drops them.
            _outbound(
                self._subjects.validation(task.kind), request, task.idempotency_key, request_id
            ),
            *(
                _outbound(self._subjects.task(f.kind), f, f.idempotency_key, request_id)
                for f in follow_ups
            ),
        ]
        try:
            # The decisions so far wait for "published" and go with it, in one
            # audit message stored while the ledger records the success: one
            # audit write per task instead of two (each is an fsync on a
            # single-node JetStream with sync_interval: always).
            acks = await publish_confirmed(
                self._boundary, messages, timeout_s=self.settings.publish_timeout_s
            )
        except PublishRefusedError as exc:
            return await self._permanent(a, Stage.PUBLISH, exc.code, exc.message)
        except PublishFailedError as exc:
            return await self._transient(a, Stage.PUBLISH, exc.code, exc.message)
        a.result_seq = acks[0].seq
        self._decide(
            a,
            AuditDecision.PUBLISHED,
            refs={
                "validation_seq": str(acks[0].seq),
                "duplicate": str(bool(acks[0].duplicate)).lower(),
                "follow_ups": str(len(follow_ups)),
                "output_digest": a.output_digest,
                # The follow-ups by id, so `trace` can show them before they run.
                **{
                    f"{FOLLOW_UP_REF}{f.task_id}": planned_ref(f.kind, f.idempotency_key, f.path)
                    for f in follow_ups
                },
            },
        )
        return None

    async def _record_success(self, a: _Attempt) -> Decision:
        assert a.task is not None
        assert a.claim is not None
        assert a.output_digest is not None
        # Only now, with every result stored, does the ledger say "succeeded";
        # a crash before this line leaves a lease that the redelivery takes
        # over, and its republish is dropped as a duplicate. The delivery's
        # audit records are stored meanwhile: two round trips overlap, and both
        # must be done before the ack.
        flushed = asyncio.ensure_future(self._flush_trail(a))
        try:
            owned = await self._ledger.succeed(
                a.claim, output_digest=a.output_digest, result_seq=a.result_seq
            )
        except LedgerUnavailableError as exc:
            await flushed
            return await self._transient(a, Stage.LEDGER, exc.code, exc.message)
        except BaseException:
            flushed.cancel()
            raise
        if not owned:
            log.warning(
                "claim taken over before the run settled; its results carry the same ids",
                idempotency_key=a.task.idempotency_key,
            )
        if not await flushed:
            return Decision(settle=Settle.NAK, nak_delay_s=self._backoff(a), code="audit-failed")
        return Decision(settle=Settle.ACK, code="ok", reason=a.output_digest)

    async def _failed(self, a: _Attempt, stage: Stage, exc: GitStoreAgentsError) -> Decision:
        """Classify an error by its ``retryable`` flag: nak or diagnostic + term."""
        if exc.retryable:
            return await self._transient(a, stage, exc.code, exc.message)
        return await self._permanent(a, stage, exc.code, exc.message)

    async def _skip(self, a: _Attempt, settled: Settled) -> Decision:
        record = settled.record
        self._decide(
            a,
            AuditDecision.DUPLICATE_SKIPPED,
            code=str(record.state),
            reason=f"already {record.state} (attempts={record.attempts})",
            refs={"output_digest": record.output_digest or ""},
        )
        if not await self._flush_trail(a):
            return Decision(settle=Settle.NAK, nak_delay_s=self._backoff(a), code="audit-failed")
        settle = Settle.ACK if record.state is RunState.SUCCEEDED else Settle.TERM
        return Decision(settle=settle, code="duplicate-skipped", reason=str(record.state))

    async def _sandbox_failure(self, a: _Attempt, result: RunResult) -> Decision:
        if not result.outcome.deterministic:
            # Only the wall-clock deadline depends on load: worth another try.
            return await self._transient(a, Stage.SANDBOX, str(result.outcome), result.detail)
        if result.outcome is Outcome.EXIT_NONZERO and result.exit_code == INPUT_REJECTED_EXIT_CODE:
            errors = _field_errors(result.stdout)
            summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
            return await self._permanent(
                a,
                Stage.SANDBOX,
                "input-rejected",
                f"module rejected its input with {len(errors)} error(s)"
                + (f": {summary}" if summary else ""),
                errors=errors,
                stderr=result.stderr,
            )
        return await self._permanent(
            a, Stage.SANDBOX, str(result.outcome), result.detail, stderr=result.stderr
        )

    async def _permanent(
        self,
        a: _Attempt,
        stage: Stage,
        code: str,
        message: str,
        *,
        errors: Sequence[FieldError] = (),
        stderr: bytes = b"",
    ) -> Decision:
        d, task = a.delivery, a.task
        kind = _failure_kind(d.subject, self._subjects, task, self.settings.kinds)
        diagnostic = FailureDiagnostic(
            kind=kind,
            stage=stage,
            code=code,
            message=message,
            attempt=d.num_delivered,
            retryable=False,
            idempotency_key=task.idempotency_key if task else None,
            task_id=task.task_id if task else None,
            source_event_id=task.source_event_id if task else None,
            module_digest=task.module_digest if task else None,
            input_digest=task.input_digest if task else None,
            stderr_tail=_tail(stderr),
            errors=list(errors),
            occurred_at=rfc3339(utc_now()),
        )
        refused = stage in (Stage.ADMISSION, Stage.OUTPUT_CHECK)
        self._decide(
            a,
            AuditDecision.REFUSED if refused else AuditDecision.FAILED,
            code=code,
            reason=message,
            stage=stage,
            stderr_tail=diagnostic.stderr_tail,
        )
        subject_key = ledger_key(task.idempotency_key) if task else sha256_digest(d.data)[7:]
        # Deterministic id: a redelivery that fails the same way again is dropped.
        msg_id = f"failure:{subject_key}:{stage}:{code}"
        try:
            await publish_confirmed(
                self._boundary,
                [
                    _outbound(
                        self._subjects.failure(kind),
                        diagnostic,
                        msg_id,
                        headers.passed_request_id(d.headers),
                    ),
                    *a.trail,
                ],
                timeout_s=self.settings.publish_timeout_s,
            )
        except (PublishFailedError, PublishRefusedError) as exc:
            # Without a stored diagnostic the task cannot be terminated.
            return await self._transient(a, Stage.PUBLISH, exc.code, exc.message)
        a.trail.clear()
        if a.claim is not None:
            try:
                if stage is Stage.PUBLISH:
                    # Refused by the boundary or the server: the deployment, not
                    # the task, is at fault. Release the claim so a requeue or a
                    # replay after the fix runs it again.
                    await self._ledger.retry_later(a.claim, error=f"{code}: {message}")
                else:
                    await self._ledger.fail(a.claim, error=f"{code}: {message}")
            except LedgerUnavailableError as exc:
                return await self._transient(a, Stage.LEDGER, exc.code, exc.message)
        return Decision(settle=Settle.TERM, code=code, reason=message)

    async def _transient(self, a: _Attempt, stage: Stage, code: str, message: str) -> Decision:
        delay = self._backoff(a)
        self._decide(
            a,
            AuditDecision.RETRIED,
            code=code,
            reason=message,
            refs={"retry_in_s": f"{delay:g}"},
            stage=stage,
        )
        if a.claim is not None:
            try:
                await self._ledger.retry_later(a.claim, error=f"{code}: {message}")
            except LedgerUnavailableError:
                # Another process waits for the lease to run out; this one
                # (Ledger.abandon) takes the claim over on the redelivery.
                log.warning("could not release claim", key=a.claim.key)
        await self._flush_trail(a)
        return Decision(settle=Settle.NAK, nak_delay_s=delay, code=code, reason=message)

    def _busy_pause(self, task: TaskRequest, busy: Busy) -> float:
        """How long to wait before looking again at a task another claim holds.

        A live holder is done by its start plus the task's deadline plus the
        publish timeout: look again then (a duplicate settles soon after its
        original). Past that, the holder is probably gone and only its lease
        ending frees the task: look again then.
        """
        started = _parse_time(busy.record.started_at)
        expected = 0.0
        if started is not None:
            done_by = started + timedelta(
                seconds=task.limits.timeout_ms / 1000 + self.settings.publish_timeout_s
            )
            expected = (done_by - utc_now()).total_seconds()
        wait = expected if expected > 0 else busy.retry_in_s
        return min(max(wait, 0.0), busy.retry_in_s) + _BUSY_SLACK_S

    def _backoff(self, a: _Attempt) -> float:
        return retry_delay_s(self.settings.backoff_s, a.delivery.num_delivered)

    async def _flush_trail(self, a: _Attempt) -> bool:
        if not a.trail:
            return True
        try:
            await publish_confirmed(
                self._boundary, a.trail, timeout_s=self.settings.publish_timeout_s, span=False
            )
        except (PublishFailedError, PublishRefusedError) as exc:
            log.warning("decision records not stored", error=str(exc))
            return False
        a.trail.clear()
        return True

    def _decide(
        self,
        a: _Attempt,
        decision: AuditDecision,
        *,
        code: str = "ok",
        reason: str = "",
        refs: dict[str, str] | None = None,
        stage: Stage | None = None,
        stderr_tail: Sequence[str] = (),
    ) -> None:
        d, task = a.delivery, a.task
        record = DecisionRecord(
            decision=decision,
            role=self.settings.role,
            worker_id=self.settings.worker_id,
            code=code,
            reason=reason,
            stream=d.stream,
            stream_seq=d.stream_seq,
            attempt=d.num_delivered,
            event_id=task.source_event_id if task else None,
            idempotency_key=task.idempotency_key if task else None,
            task_id=task.task_id if task else None,
            kind=task.kind if task else None,
            refs=refs or {},
            stage=stage,
            stderr_tail=tuple(stderr_tail),
            at=rfc3339(utc_now()),
        )
        a.trail.extend(self._observer.decided(record))

    async def _stdin(self, task: TaskRequest) -> bytes:
        if task.input is not None:
            return canonical_json(task.input)
        return await resolve_task_input(task, self._content)

    async def _run(self, module: CompiledModule, stdin: bytes, task: TaskRequest) -> RunResult:
        limits = SandboxLimits(
            fuel=task.limits.fuel,
            timeout_ms=task.limits.timeout_ms,
            memory_bytes=task.limits.memory_bytes,
        )
        # Clock and randomness come from the task, so a replay sees the same values.
        return await self._offload.run(
            module,
            stdin,
            limits,
            logical_time_ns=logical_time_ns(task.logical_time),
            seed=task.seed,
        )


def _parse_time(moment: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(moment) if moment else None
    except ValueError:
        return None


def _check_input_digest(task: TaskRequest) -> bytes | None:
    """The input must be present exactly once and match ``input_digest``.

    Returns:
        The canonical bytes of an inline input (the module's stdin), else None.
    """
    if (task.input is None) == (task.input_ref is None):
        raise EnvelopeError("TaskRequest: exactly one of input and input_ref is required")
    if task.input is not None:
        stdin = canonical_json(task.input)
        actual = sha256_digest(stdin)
        if actual != task.input_digest:
            raise EnvelopeError(
                f"TaskRequest.input_digest is {task.input_digest} but the input hashes to {actual}",
                code="input-digest-mismatch",
            )
        return stdin
    if task.input_ref != task.input_digest:
        raise EnvelopeError(
            f"TaskRequest.input_ref={task.input_ref} differs from input_digest={task.input_digest}",
            code="input-digest-mismatch",
        )
    return None


def _outbound(subject: str, envelope: Any, msg_id: str, request_id: str | None) -> Outbound:
    # Content type, schema version and the API's request id travel with every
    # envelope (docs/contracts.md); the publisher adds the trace context.
    return Outbound(
        subject=subject,
        payload=canonical_json(envelope),
        headers=headers.envelope_headers(
            msg_id=msg_id, schema_version=envelope.schema_version, request_id=request_id
        ),
    )


def _failure_kind(
    subject: str, subjects: Subjects, task: TaskRequest | None, kinds: tuple[str, ...]
) -> str:
    """The kind a diagnostic is filed under: one of the role's own kinds.

    The task's kind if the role runs it, else the kind in its subject, else
    the role's first kind: the publish boundary only lets a role report on
    its own kinds, and a diagnostic must never be refused.
    """
    prefix = f"{subjects.prefix}.tasks."
    candidates = [task.kind] if task is not None else []
    if subject.startswith(prefix):
        candidates.append(subject.removeprefix(prefix))
    for candidate in candidates:
        if candidate in kinds:
            return candidate
    return kinds[0]


class _Rejection(msgspec.Struct, frozen=True):
    """stdout of a module that exited 65."""

    errors: list[FieldError] = msgspec.field(default_factory=list)


_REJECTION_DECODER = msgspec.json.Decoder(_Rejection)


def _field_errors(stdout: bytes) -> list[FieldError]:
    try:
        return _REJECTION_DECODER.decode(stdout).errors
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


def _tail(stderr: bytes) -> list[str]:
    lines = stderr.decode("utf-8", "replace").splitlines()[-_STDERR_TAIL_LINES:]
    return [line[:_STDERR_LINE_CHARS] for line in lines]
