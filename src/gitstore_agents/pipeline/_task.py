"""Task roles: one task delivery in, its one result stored, then the delivery settled.

Stages, in order::

    decode → admit → (look up the result, for long runs) → run → judge
           → publish (validation request + follow-ups) → audit → settle

Exactly one result per task comes from the result streams themselves: a
task's validation request goes to ``<prefix>.validation.<kind>.<key>``, a
slot the stream keeps one message in. A redelivery, a replay or a second copy
of the task runs again (same input, same module: same bytes) and finds the
slot taken: the task was done, and the delivery is acked. Follow-ups and
diagnostics are slots too. Nothing is written before a run, nothing after
the results but the audit records (one write per flush, shared by every
delivery that finished meanwhile), so a task costs one stored write.

Runs expected to be long (their module's recent runs used more than
``LOOKUP_FUEL``), and tasks an upgrade copied into their slots, first look
their result up: re-running them on every redelivery, rewind or migration
would cost more than the read.
"""

from __future__ import annotations

import asyncio

import msgspec

from .. import codes
from ..config import EXTENSION_RUN
from ..consumers import (
    MIGRATED_FROM,
    Decision,
    Delivery,
    Published,
    Publisher,
    ResultStore,
    Settle,
    StoredMessage,
)
from ..envelopes import (
    AuditDecision,
    ContentStore,
    EnvelopeError,
    ExtensionRef,
    Stage,
    Subjects,
    TaskRequest,
    ValidationRequest,
    decode,
    headers,
    resolve_task_input,
    slot_of,
    slot_token,
)
from ..guardrails import Admission, Outbound, OutputCheck
from ..telemetry import FOLLOW_UP_REF, annotate, planned_ref, record_run
from ._carry import Carrier
from ._derive import Derived
from ._execute import Execution, Runner, run_task
from ._follow_ups import FollowUpSpec, follow_up_tasks
from ._modules import ModuleLoader
from ._offload import SandboxOffload
from ._report import About, Failure, Reporter, classify, envelope_headers

LOOKUP_FUEL = 20_000_000
"""Runs expected to use more fuel than this look their stored result up first.

A direct get costs about 100 µs of worker CPU and a round trip; 20 M fuel is
10-20 ms of guest work (docs/performance.md).
"""

_VALIDATION = msgspec.json.Decoder(ValidationRequest)


class _NamesExtension(msgspec.Struct, frozen=True):
    """The part of an ``extension.run`` input that says which extension it is."""

    extension: ExtensionRef


# For an input by ref: skips the compiled tree without building it.
_EXTENSION_OF = msgspec.json.Decoder(_NamesExtension)


def extension_refs(extension: ExtensionRef | msgspec.UnsetType) -> dict[str, str]:
    """The audit refs naming ``extension`` (none for other kinds)."""
    if isinstance(extension, ExtensionRef):
        return {"extension": extension.label}
    return {}


def extension_of(task: TaskRequest, stdin: bytes) -> ExtensionRef | msgspec.UnsetType:
    """Which extension ``task`` ran as, read from the input the module read.

    Taken from the input rather than from anything beside it, so a result
    can only name the extension whose name and version the module was given.
    """
    if task.kind != EXTENSION_RUN:
        return msgspec.UNSET
    try:
        if isinstance(task.input, dict):
            # Inline: decoded with the task already; the module read exactly this.
            return msgspec.convert(task.input, _NamesExtension).extension
        return _EXTENSION_OF.decode(stdin).extension
    except (msgspec.DecodeError, msgspec.ValidationError):
        return msgspec.UNSET


# A stored output is at most what a policy lets any role propose.
_MAX_STORED_OUTPUT = 64 * 1024 * 1024


class TaskSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the pipeline needs to know about its role.

    Attributes:
        role: Role name.
        kinds: Task kinds the role runs (diagnostics about foreign or
            unreadable tasks are filed under the first).
        follow_ups: Follow-up tasks published after each success.
        validation_stream: The stream holding validation requests (result lookups).
        failures_stream: The stream holding diagnostics (result lookups).
    """

    role: str
    kinds: tuple[str, ...]
    follow_ups: tuple[FollowUpSpec, ...] = ()
    validation_stream: str = ""
    failures_stream: str = ""


class TaskHandler:
    """Runs task requests in the sandbox and proposes their outputs for validation.

    Args:
        settings: The role's settings.
        offload: Runs modules (inline when short, on threads otherwise).
        modules: Resolves module digests to compiled modules.
        publisher: The role's publisher (its boundary is the only way out).
        reporter: The role's report path (diagnostics, retries, audit).
        subjects: Subject scheme.
        admission: Decides whether a task may run (before running).
        output_check: Decides whether an output may be proposed (after running).
        results: Looks stored results up (None: never looked up, always run).
        content: The content store large inputs are read from (None: inline inputs only).
    """

    def __init__(
        self,
        *,
        settings: TaskSettings,
        offload: SandboxOffload,
        modules: ModuleLoader,
        publisher: Publisher,
        reporter: Reporter,
        subjects: Subjects,
        admission: Admission,
        output_check: OutputCheck,
        results: ResultStore | None = None,
        content: ContentStore | None = None,
    ) -> None:
        self.settings = settings
        self.offload = offload
        self._modules = modules
        self._publisher = publisher
        self._report = reporter
        self._subjects = subjects
        self._admission = admission
        self._output_check = output_check
        self._results = results
        self._content = content
        self._carrier = Carrier(publisher, content)
        self.lookups = 0

    async def __call__(self, delivery: Delivery) -> Decision:
        """Process one task delivery; return how to settle it."""
        at = _Progress(About.unread(delivery, self.settings.kinds[0]))
        try:
            return await self._process(delivery, at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Whatever a stage raised (ours or a bug): classified once, reported
            # about as much of the task as was read, at the stage it happened in.
            return await self._report.failed(at.about, classify(exc, at.stage))

    async def stdin(self, task: TaskRequest) -> bytes:
        """The module's input: inline, or from the content store; checked against its digest."""
        return await resolve_task_input(task, self._content)

    async def execute(
        self, task: TaskRequest, *, stdin: bytes | None = None, run: Runner | None = None
    ) -> Execution:
        """Run ``task`` and judge its output, touching nothing else (``replay --verify``).

        Exactly what a worker does between admission and publishing.

        Args:
            task: The task.
            stdin: Its input bytes, when the caller has them (else resolved).
            run: Where the module runs (default: the role's offload).
        """
        try:
            if stdin is None:
                stdin = await self.stdin(task)
            module = await self._modules.ensure(task.module_digest)
        except Exception as exc:
            failure = classify(exc, Stage.SANDBOX)
            return Execution(
                code=failure.code, message=failure.message, retryable=failure.retryable
            )
        return await run_task(task, stdin, module, run or self.offload.run, self._output_check)

    async def _process(self, delivery: Delivery, at: _Progress) -> Decision:
        settings, report = self.settings, self._report
        # What the headers announce is checked first (a content type or a major
        # version this worker cannot read), as the planner does for events.
        headers.check_headers(headers.read_headers(delivery.headers), "TaskRequest")
        task = decode(delivery.data, TaskRequest)
        at.about = about = at.about.task(task, settings.kinds)
        _check_slot(delivery.subject, task)
        annotate(
            role=settings.role,
            event_id=task.source_event_id,
            idempotency_key=task.idempotency_key,
            kind=task.kind,
        )
        at.stage = Stage.ADMISSION
        refusal = self._admission.admit(task, len(delivery.data))
        if refusal is not None:
            failure = Failure(
                stage=refusal.stage, code=refusal.code, message=refusal.message, retryable=False
            )
            return await report.permanent(about, failure)
        if self._results is not None and (self._long(task) or MIGRATED_FROM in delivery.headers):
            found = await self._stored(task, about)
            if found is not None:
                return found
        at.stage = Stage.SANDBOX
        stdin = await self.stdin(task)
        module = await self._modules.ensure(task.module_digest)
        with report.observer.stage(Stage.SANDBOX, delivery.subject):
            execution = await run_task(task, stdin, module, self.offload.run, self._output_check)
            if execution.usage is not None:
                usage = execution.usage
                record_run(
                    execution.code,
                    fuel=usage.fuel,
                    wall_time_us=usage.wall_time_us,
                    peak_memory_bytes=usage.peak_memory_bytes,
                )
        if not execution.ok:
            return await report.failed(about, _failure(execution))
        at.stage = Stage.PUBLISH
        return await self._publish(about, task, execution, extension_of(task, stdin))

    async def _publish(
        self,
        about: About,
        task: TaskRequest,
        execution: Execution,
        extension: ExtensionRef | msgspec.UnsetType,
    ) -> Decision:
        assert execution.usage is not None
        assert execution.output_digest is not None
        request = ValidationRequest(
            idempotency_key=task.idempotency_key,
            task_id=task.task_id,
            kind=task.kind,
            source_event_id=task.source_event_id,
            repository_id=task.repository_id,
            commit_sha=task.commit_sha,
            path=task.path,
            module_digest=task.module_digest,
            extension=extension,
            input_digest=task.input_digest,
            output=msgspec.Raw(execution.raw),
            output_digest=execution.output_digest,
            usage=execution.usage,
        )
        # Too large for one message: the output goes by ref, follow-ups' inputs too.
        request = await self._carrier.result(request, execution.raw)
        report = self._report
        message = report.outbound(
            self._subjects.validation(task.kind, task.idempotency_key),
            request,
            about,
            msg_id=task.idempotency_key,
        )
        follow_ups = [await self._carrier.task(f) for f in self._follow_ups(task, execution.raw)]
        published = await self._publisher.publish(
            [message, *(self._task_message(f, about) for f in follow_ups)]
        )
        usage = execution.usage
        refs = {
            "module_digest": task.module_digest,
            **extension_refs(extension),
            "output_digest": execution.output_digest,
            "fuel": str(usage.fuel),
            "wall_time_us": str(usage.wall_time_us),
            "peak_memory_bytes": str(usage.peak_memory_bytes),
            **_follow_up_refs(follow_ups, published[1:]),
        }
        result = published[0]
        if result.stored_before:
            # The slot held this task's result already: done before, by this
            # worker's earlier delivery, another worker, or a replay.
            record = report.record(
                about,
                AuditDecision.DUPLICATE_SKIPPED,
                code=codes.SUCCEEDED,
                reason="validation request already stored",
                refs=refs,
            )
            decision = Decision(settle=Settle.ACK, code=codes.DUPLICATE, reason="succeeded")
        else:
            refs["validation_seq"] = str(result.seq)
            record = report.record(about, AuditDecision.PUBLISHED, refs=refs)
            decision = Decision(settle=Settle.ACK, code=codes.OK, reason=execution.output_digest)
        return await report.settle([record], decision, about)

    def _follow_ups(self, task: TaskRequest, output: bytes) -> list[Derived]:
        if not self.settings.follow_ups:
            return []
        return follow_up_tasks(task, output, self.settings.follow_ups)

    def _task_message(self, follow_up: Derived, about: About) -> Outbound:
        task = follow_up.task
        subject = self._subjects.task(task.kind, slot_token(task.idempotency_key))
        return Outbound(
            subject=subject,
            payload=follow_up.payload,
            headers=envelope_headers(task.idempotency_key, task.schema_version, about.request_id),
        )

    def _long(self, task: TaskRequest) -> bool:
        expected = self.offload.expected_fuel(task.module_digest)
        return expected is not None and expected > LOOKUP_FUEL

    async def _stored(self, task: TaskRequest, about: About) -> Decision | None:
        """Settle a delivery whose result is stored already, without running it again."""
        assert self._results is not None
        self.lookups += 1
        subjects, settings = self._subjects, self.settings
        try:
            done = await self._results.last(
                settings.validation_stream, subjects.validation(task.kind, task.idempotency_key)
            )
            failed = (
                None
                if done is not None
                else await self._results.last(
                    settings.failures_stream,
                    subjects.failure(task.kind, slot_token(task.idempotency_key)),
                )
            )
        except Exception:
            return None  # a lookup is an optimisation: run the task instead
        if done is not None:
            return await self._stored_result(task, about, done)
        if failed is not None:
            record = self._report.record(
                about,
                AuditDecision.DUPLICATE_SKIPPED,
                code=codes.FAILED,
                reason="diagnostic already stored",
                refs={"failure_seq": str(failed.seq)},
            )
            decision = Decision(settle=Settle.TERM, code=codes.DUPLICATE, reason="failed")
            return await self._report.settle([record], decision, about)
        return None

    async def _stored_result(
        self, task: TaskRequest, about: About, stored: StoredMessage
    ) -> Decision | None:
        # Follow-ups derive from the stored output with the modules configured
        # now, so a task done before still leads to the work that follows it.
        try:
            output = await self.output_of(_VALIDATION.decode(stored.data))
            follow_ups = [await self._carrier.task(f) for f in self._follow_ups(task, output)]
            published = await self._publisher.publish(
                [self._task_message(f, about) for f in follow_ups]
            )
        except Exception:
            return None  # run it: the publish path reports whatever is wrong
        record = self._report.record(
            about,
            AuditDecision.DUPLICATE_SKIPPED,
            code=codes.SUCCEEDED,
            reason="validation request already stored (looked up before running)",
            refs={"validation_seq": str(stored.seq), **_follow_up_refs(follow_ups, published)},
        )
        decision = Decision(settle=Settle.ACK, code=codes.DUPLICATE, reason="succeeded")
        return await self._report.settle([record], decision, about)

    async def output_of(self, request: ValidationRequest) -> bytes:
        """The output a stored validation request carries, inline or by ref."""
        if request.output is not msgspec.UNSET:
            return bytes(request.output)
        if request.output_ref is msgspec.UNSET or self._content is None:
            raise EnvelopeError("the stored validation request has no output this worker can read")
        return await self._content.get(request.output_ref, max_bytes=_MAX_STORED_OUTPUT)


class _Progress:
    """How far a delivery got: what it is about, and the stage it is in."""

    __slots__ = ("about", "stage")

    def __init__(self, about: About) -> None:
        self.about = about
        self.stage = Stage.DECODE


def _check_slot(subject: str, task: TaskRequest) -> None:
    """A task must sit in its own slot (or a requeue of it): the subject names its key."""
    slot, key = slot_of(subject), slot_token(task.idempotency_key)
    if slot != key and not slot.startswith(f"{key}-rq"):
        raise EnvelopeError(
            f"TaskRequest: subject token {slot[:80]!r} is not the task's idempotency key "
            f"{key} (tasks are published on <prefix>.tasks.<kind>.<key hex>)",
            field="$.idempotency_key",
            code="subject-mismatch",
        )


def _failure(execution: Execution) -> Failure:
    return Failure(
        stage=execution.stage,
        code=execution.code,
        message=execution.message,
        retryable=execution.retryable,
        errors=execution.errors,
        stderr=execution.stderr,
    )


def _follow_up_refs(follow_ups: list[Derived], published: list[Published]) -> dict[str, str]:
    refs = {
        # The follow-ups by id, so `trace` can show them before they run.
        f"{FOLLOW_UP_REF}{f.task.task_id}": planned_ref(
            f.task.kind, f.task.idempotency_key, f.task.path
        )
        for f in follow_ups
    }
    if follow_ups:
        refs["follow_ups"] = str(len(follow_ups))
        refs["follow_ups_new"] = str(sum(1 for p in published if not p.stored_before))
    return refs
