"""The idempotency ledger: one run record per task, claimed with KV revision checks.

The ledger lives in a KV bucket (``gitstore-runs``), keyed by the hex of the
task's idempotency key (KV keys cannot hold ``:``). Two workers that receive
the same task at once both try to claim it; JetStream's expected-revision check
lets exactly one ``create``/``update`` win, so exactly one of them runs it — no
local lock, nothing that only works inside one process. A claim carries a
lease (``lease_until``) so the claim of a worker that crashed can be taken over
once the lease has run out.

State machine of a record::

    (none) ──claim──▶ running ──succeed──▶ succeeded   (skip on every later delivery)
                         │ ├──fail───────▶ failed      (permanent; skip, term)
                         │ └──retry_later▶ retrying ──claim──▶ running ...
                         └─lease expires (crash)──────claim──▶ running ...
    running/retrying ──deliveries exhausted──▶ dead-lettered ──(requeue) claim──▶ running ...
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from ..clock import rfc3339, utc_now
from ..envelopes import TaskRequest
from ._errors import LedgerUnavailableError

SCHEMA_VERSION = "1.0"

_HEX_KEY = re.compile(r"^sha256:([0-9a-f]{64})$")

# Two claims racing on one key resolve in one retry; more means something
# keeps rewriting the record, which is worth an error rather than a loop.
_MAX_RACES = 8
# Claims this process gave up on but could not release (NATS was down).
_MAX_ABANDONED = 10_000


class RunState(enum.StrEnum):
    """Where a task's run stands."""

    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead-lettered"

    @property
    def settled(self) -> bool:
        """True when no further run is needed: later deliveries are skipped."""
        return self in (RunState.SUCCEEDED, RunState.FAILED)


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The ledger's record of one task (JSON in the KV bucket).

    Attributes:
        idempotency_key: The task's key.
        kind: Task kind.
        task_id: Task id.
        source_event_id: Git event the task descends from.
        module_digest: Module the task runs.
        input_digest: Digest of the task input.
        state: Where the run stands.
        attempts: Claims so far (runs started, including crashed ones).
        worker_id: Worker holding (or that last held) the claim.
        claim_id: Unique id of the current claim (a restarted worker with the
            same ``worker_id`` does not own its predecessor's claim).
        lease_until: When a ``running`` claim may be taken over (RFC 3339).
        last_error: ``code: message`` of the last failed attempt.
        output_digest: Digest of the published output (``succeeded``).
        result_seq: Stream sequence of the published result (``succeeded``).
        started_at: When the current (or last) attempt claimed the task.
        updated_at: When the record last changed.
    """

    schema_version: str = SCHEMA_VERSION
    idempotency_key: str
    kind: str
    task_id: str
    source_event_id: str
    module_digest: str
    input_digest: str
    state: RunState
    attempts: int = 0
    worker_id: str | None = None
    claim_id: str | None = None
    lease_until: str | None = None
    last_error: str | None = None
    output_digest: str | None = None
    result_seq: int | None = None
    started_at: str | None = None
    updated_at: str = ""


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """This worker holds the task: run it, then settle the record with the revision."""

    key: str
    revision: int
    record: RunRecord


class Settled(msgspec.Struct, frozen=True, kw_only=True):
    """The task already reached a final state: do not run it again."""

    record: RunRecord


class Busy(msgspec.Struct, frozen=True, kw_only=True):
    """Another live claim holds the task; ask again after ``retry_in_s``."""

    record: RunRecord
    retry_in_s: float


ClaimResult = Claim | Settled | Busy

_ENCODER = msgspec.json.Encoder(order="sorted")
_DECODER = msgspec.json.Decoder(RunRecord)

# What a KV request can fail with when NATS is unavailable or slow.
_NATS_ERRORS = (nats.errors.Error, TimeoutError)
# Nobody answered (503): the bucket's stream is between leaders, or the node
# this connection uses is still catching up. Nothing was written; ask again.
_UNANSWERED = (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError)
_UNANSWERED_PAUSE_S = (0.05, 0.5)

T = TypeVar("T")


def ledger_key(idempotency_key: str) -> str:
    """The KV key of an idempotency key: its hex digest (KV keys cannot hold ``:``).

    Keys that are not ``sha256:<hex>`` are hashed, so any string maps to a valid key.
    """
    match = _HEX_KEY.match(idempotency_key)
    if match:
        return match.group(1)
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


class Ledger:
    """Claims and settles run records with compare-and-set on KV revisions.

    Args:
        kv: The ledger bucket.
        clock: Current UTC time (tests move it to expire leases).
        unanswered_retry_s: How long a request nobody answered (a leader
            election) is asked again before the ledger counts as unavailable;
            the runtime passes its request timeout, so a claim or a settle
            still ends within about twice that.
    """

    def __init__(
        self,
        kv: KeyValue,
        *,
        clock: Callable[[], datetime] = utc_now,
        unanswered_retry_s: float = 0.0,
    ) -> None:
        self._kv = kv
        self._clock = clock
        self._retry_s = unanswered_retry_s
        # claim_id -> None, oldest first: claims this process abandoned. A
        # claim id is unique to one attempt of one process, so only this
        # process can know such a claim is dead before its lease runs out.
        self._abandoned: dict[str, None] = {}

    def abandon(self, claim: Claim | str) -> None:
        """Remember that this process stopped working on ``claim`` without releasing it.

        The next delivery of the task (to this process) takes the claim over
        at once instead of waiting for its lease: after NATS comes back, the
        work resumes immediately rather than after a lease per task.
        """
        claim_id = claim if isinstance(claim, str) else claim.record.claim_id
        if claim_id:
            self._abandoned[claim_id] = None
            while len(self._abandoned) > _MAX_ABANDONED:
                del self._abandoned[next(iter(self._abandoned))]

    def _held(self, record: RunRecord, now: datetime) -> bool:
        """True while a live claim (one this process has not abandoned) holds ``record``."""
        if record.state is not RunState.RUNNING or record.claim_id in self._abandoned:
            return False
        lease_until = _parse(record.lease_until)
        return lease_until is not None and lease_until > now

    async def get(self, idempotency_key: str) -> tuple[RunRecord, int] | None:
        """The record of ``idempotency_key`` and its revision, or None.

        Raises:
            LedgerUnavailableError: the bucket could not be read.
        """
        key = ledger_key(idempotency_key)
        try:
            entry = await self._answered(lambda: self._kv.get(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        except _NATS_ERRORS as exc:
            raise LedgerUnavailableError(f"ledger get {key}: {exc!r}") from None
        if entry.value is None or entry.revision is None:
            return None
        try:
            return _DECODER.decode(entry.value), entry.revision
        except msgspec.DecodeError as exc:
            raise LedgerUnavailableError(
                f"ledger record {key} is unreadable ({exc}); delete it to let the task run again",
                retryable=False,
            ) from None

    async def claim(self, task: TaskRequest, *, worker_id: str, lease_s: float) -> ClaimResult:
        """Claim ``task`` for ``worker_id`` for ``lease_s`` seconds.

        Returns:
            ``Claim`` (run it), ``Settled`` (already succeeded or failed for
            good: skip) or ``Busy`` (another live claim: retry later).

        Raises:
            LedgerUnavailableError: the bucket could not be read or written.
        """
        key = ledger_key(task.idempotency_key)
        # Most tasks are new: write the record straight away, expecting no
        # revision at all (one request; the server's check still decides any
        # race). Only a key that exists (or a deleted one's tombstone) is read.
        record = self._claimed(_fresh(task), worker_id, lease_s, self._clock())
        revision = await self._write_claim(key, record, last=0, fresh=True)
        if revision is not None:
            return Claim(key=key, revision=revision, record=record)
        for _ in range(_MAX_RACES):
            current = await self.get(task.idempotency_key)
            now = self._clock()
            if current is None:
                record = self._claimed(_fresh(task), worker_id, lease_s, now)
                revision = await self._write_claim(key, record, last=0)
            else:
                previous, last = current
                if previous.state.settled:
                    return Settled(record=previous)
                if self._held(previous, now):
                    lease_until = _parse(previous.lease_until)
                    assert lease_until is not None
                    return Busy(record=previous, retry_in_s=(lease_until - now).total_seconds())
                record = self._claimed(previous, worker_id, lease_s, now)
                revision = await self._write_claim(key, record, last=last)
            if revision is not None:
                return Claim(key=key, revision=revision, record=record)
        raise LedgerUnavailableError(f"ledger claim {key} lost {_MAX_RACES} races in a row")

    async def succeed(self, claim: Claim, *, output_digest: str, result_seq: int | None) -> bool:
        """Mark the claimed task succeeded; False if the claim was taken over meanwhile."""
        return await self._settle(
            claim,
            state=RunState.SUCCEEDED,
            output_digest=output_digest,
            result_seq=result_seq,
            last_error=None,
        )

    async def fail(self, claim: Claim, *, error: str) -> bool:
        """Mark the claimed task failed for good; False if the claim was taken over."""
        return await self._settle(claim, state=RunState.FAILED, last_error=error)

    async def retry_later(self, claim: Claim, *, error: str) -> bool:
        """Give the claim up after a transient failure, so the next delivery claims at once."""
        return await self._settle(claim, state=RunState.RETRYING, last_error=error)

    async def mark_dead_lettered(self, idempotency_key: str, *, error: str | None) -> None:
        """Record that deliveries ran out (a requeue claims the task again).

        A settled record is left alone: the dead letter then refers to a
        duplicate delivery of work already done.
        """
        key = ledger_key(idempotency_key)
        for _ in range(_MAX_RACES):
            current = await self.get(idempotency_key)
            if current is None or current[0].state.settled:
                return
            record, last = current
            updated = msgspec.structs.replace(
                record,
                state=RunState.DEAD_LETTERED,
                claim_id=None,
                lease_until=None,
                last_error=error or record.last_error,
                updated_at=rfc3339(self._clock()),
            )
            if await self._write(key, updated, last=last) is not None:
                return

    async def _settle(self, claim: Claim, **changes: object) -> bool:
        record = msgspec.structs.replace(
            claim.record,
            lease_until=None,
            updated_at=rfc3339(self._clock()),
            **changes,
        )
        try:
            return await self._write(claim.key, record, last=claim.revision) is not None
        except LedgerUnavailableError:
            self.abandon(claim)
            raise

    async def _write_claim(
        self, key: str, record: RunRecord, *, last: int, fresh: bool = False
    ) -> int | None:
        try:
            return await self._write(key, record, last=last, fresh=fresh)
        except LedgerUnavailableError:
            # The write may have landed even though no reply came back.
            self.abandon(record.claim_id or "")
            raise

    def _claimed(
        self, record: RunRecord, worker_id: str, lease_s: float, now: datetime
    ) -> RunRecord:
        started = rfc3339(now)
        return msgspec.structs.replace(
            record,
            state=RunState.RUNNING,
            attempts=record.attempts + 1,
            worker_id=worker_id,
            claim_id=uuid.uuid4().hex,
            lease_until=rfc3339(now + timedelta(seconds=lease_s)),
            started_at=started,
            updated_at=started,
        )

    async def _write(
        self, key: str, record: RunRecord, *, last: int, fresh: bool = False
    ) -> int | None:
        """Write if the key is still at revision ``last`` (0: absent); None if it moved on.

        ``fresh`` expects the subject to have no message at all: one request,
        refused for a deleted key's tombstone too (``create`` looks for one).
        """
        data = _ENCODER.encode(record)
        try:
            if fresh:
                return await self._answered(lambda: self._kv.update(key, data, last=0))
            if last == 0:
                return await self._answered(lambda: self._kv.create(key, data))
            return await self._answered(lambda: self._kv.update(key, data, last=last))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None
        except _NATS_ERRORS as exc:
            raise LedgerUnavailableError(f"ledger write {key}: {exc!r}") from None

    async def _answered(self, request: Callable[[], Awaitable[T]]) -> T:
        """``request()``, asked again while nobody answers, for up to ``unanswered_retry_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_s
        pause = _UNANSWERED_PAUSE_S[0]
        while True:
            try:
                return await request()
            except _UNANSWERED:
                if loop.time() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, _UNANSWERED_PAUSE_S[1])


def _fresh(task: TaskRequest) -> RunRecord:
    return RunRecord(
        idempotency_key=task.idempotency_key,
        kind=task.kind,
        task_id=task.task_id,
        source_event_id=task.source_event_id,
        module_digest=task.module_digest,
        input_digest=task.input_digest,
        state=RunState.RUNNING,
    )


def _parse(moment: str | None) -> datetime | None:
    if moment is None:
        return None
    try:
        return datetime.fromisoformat(moment)
    except ValueError:
        return None
