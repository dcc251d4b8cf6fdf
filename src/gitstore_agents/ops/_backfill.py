"""Backfill after a module upgrade: every past input of a kind gets the configured module's task.

A new module digest derives new task keys, so the history an upgrade should
apply to never reaches it on its own: replaying events re-plans compile tasks
whose keys did not change (their slots are taken), and follow-ups are derived
only when a compile task runs. ``backfill`` derives, for every past input of
the kind (``_history``), the task the configuration in force would publish,
and publishes it to its slot:

* a kind whose module changed gets one new task per past input, and the
  workers run it: exactly one result from the new module each;
* a kind whose module did not change derives the keys it derived before:
  every slot is taken, nothing new is stored;
* run twice, or killed half-way and run again: the slots that were filled
  stay filled, the rest are filled now.

Nothing here runs a module: the workers do, as for any task.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec

from ..consumers import JetStreamPublisher, Published
from ..envelopes import slot_token
from ..guardrails import Outbound, PublishBoundary
from ..pipeline import Carrier, Derived, envelope_headers
from ..service import Runtime
from ._history import Skipped, Window, configured_module, past_inputs

BATCH = 64
"""Tasks published (and confirmed) together."""


class BackfillReport(msgspec.Struct, kw_only=True):
    """What a backfill published.

    Attributes:
        kind: The task kind.
        module: The configured module its tasks run.
        inputs: Past inputs found.
        published: Tasks stored now (new work for the workers).
        already_stored: Tasks whose slot was taken: done before, or by an
            earlier (or interrupted) backfill, or the module did not change.
        skipped: History that could not be derived again.
        seconds: Wall time.
    """

    kind: str
    module: str
    inputs: int = 0
    published: int = 0
    already_stored: int = 0
    skipped: Skipped = msgspec.field(default_factory=Skipped)
    seconds: float = 0.0


async def backfill(
    runtime: Runtime,
    kind: str,
    window: Window,
    *,
    request_id: str | None = None,
    batch_size: int = BATCH,
) -> BackfillReport:
    """Publish the configured module's task for every past input of ``kind`` in ``window``.

    Args:
        runtime: A built runtime with the roles the kind's history needs.
        kind: The task kind.
        window: Which part of history.
        request_id: ``X-Request-ID`` of every task (to find them later).
        batch_size: Tasks published and confirmed together.

    Raises:
        ConfigError: ``kind`` is not run or derived by the configuration.
        PublishFailedError: the tasks stream did not confirm a batch (run it
            again: what was stored stays stored).
    """
    assert runtime.modules is not None
    report = BackfillReport(kind=kind, module=await configured_module(runtime, kind, window))
    publisher = task_publisher(runtime, [kind])
    carrier = Carrier(publisher, runtime.content)
    started = time.perf_counter()
    batch: list[Derived] = []
    async for derived in past_inputs(runtime, kind, window, report.skipped):
        report.inputs += 1
        batch.append(await carrier.task(derived))
        if len(batch) >= batch_size:
            await _publish(publisher, runtime, batch, report, request_id)
            batch = []
    if batch:
        await _publish(publisher, runtime, batch, report, request_id)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def _publish(
    publisher: JetStreamPublisher,
    runtime: Runtime,
    batch: Sequence[Derived],
    report: BackfillReport,
    request_id: str | None,
) -> None:
    for published in await publish_tasks(publisher, runtime, batch, request_id):
        if published.stored_before:
            report.already_stored += 1
        else:
            report.published += 1


def task_publisher(runtime: Runtime, kinds: Sequence[str]) -> JetStreamPublisher:
    """A publisher allowed to send tasks of ``kinds`` to their slots, and nothing else."""
    subjects = runtime.config.topology.subjects
    boundary = PublishBoundary(runtime.js, [subjects.tasks_of(kind) for kind in kinds])
    return JetStreamPublisher(boundary, timeout_s=runtime.config.publish_timeout_s)


async def publish_tasks(
    publisher: JetStreamPublisher,
    runtime: Runtime,
    tasks: Sequence[Derived],
    request_id: str | None = None,
) -> list[Published]:
    """Publish ``tasks`` to their slots (a taken slot: stored before), confirmed together."""
    subjects = runtime.config.topology.subjects
    messages = [
        Outbound(
            subject=subjects.task(d.task.kind, slot_token(d.task.idempotency_key)),
            payload=d.payload,
            headers=envelope_headers(d.task.idempotency_key, d.task.schema_version, request_id),
        )
        for d in tasks
    ]
    return await publisher.publish(messages)
