"""The operator and the control plane can do their work under the generated permissions.

A real nats-server runs the authorization ``policy nats-config`` generates; workers run with
their roles' credentials. As ``operator``, every step of the runbooks in docs/operations.md
(looking inside, consumers, dead letters, a rewind, making one task run again, trace,
status, replay, preview, backfill), through the CLI or the same JetStream API calls the
``nats`` CLI makes; as ``control-plane``, publishing a git event and reading the validation
and failures streams through its durable, and asking the status service. What neither may do
(change or empty the trail, write a result) is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from gitstore_agents.config import ROLES, Topology
from gitstore_agents.envelopes import DeadLetter, canonical_json, headers
from gitstore_agents.guardrails import (
    CONTROL_PLANE,
    CONTROL_PLANE_DURABLE,
    OPERATOR,
    PROVISIONER,
)
from gitstore_agents.ops import ask_status, ping_status
from gitstore_agents.service import status_subject
from gitstore_agents.telemetry import read_event_trail

from .guardrails_support import SecureNats, serving
from .runtime_support import cli, make_event, publish_event, write_config
from .support import eventually

TOPOLOGY = Topology()


@pytest.fixture
async def secure(secure: SecureNats, policy_file: Path) -> SecureNats:
    """The suite's secure server (conftest), provisioned by the provisioner identity."""
    await secure.provision(secure.config_for(policy_file, PROVISIONER))
    return secure


async def test_the_control_plane_publishes_events_and_reads_results(
    secure: SecureNats, policy_file: Path
) -> None:
    errors: list[str] = []
    control = await secure.connect(CONTROL_PLANE, errors)
    js = control.jetstream(timeout=5.0)
    configs = [(secure.config_for(policy_file, role), [role]) for role in ROLES]
    event = make_event(1)
    async with serving(configs):
        await publish_event(js, TOPOLOGY, event)  # a PubAck, or this raises
        results = await js.pull_subscribe(
            TOPOLOGY.subjects.validation_all(),
            durable=CONTROL_PLANE_DURABLE,
            stream=TOPOLOGY.validation_stream,
        )
        kinds = []
        while len(kinds) < 3:
            for msg in await results.fetch(3 - len(kinds), timeout=15):
                kinds.append(msg.subject.split(".")[2:4])
                await msg.ack()
        assert sorted(".".join(k) for k in kinds) == [
            "catalog.enrich",
            "extension.run",
            "markdown.compile",
        ]
        failures = await js.pull_subscribe(
            TOPOLOGY.subjects.failures_all(),
            durable=CONTROL_PLANE_DURABLE,
            stream=TOPOLOGY.failures_stream,
        )
        with pytest.raises(nats.errors.TimeoutError):
            await failures.fetch(1, timeout=0.5)  # nothing failed; the read itself is allowed
        assert await ping_status(control, TOPOLOGY.prefix, timeout_s=5.0) is not None
        reply = await ask_status(
            control,
            status_subject(TOPOLOGY.prefix, "event"),
            {"event_id": event.event_id},
            timeout_s=5.0,
        )
        assert json.loads(reply.data)["found"] is True
    assert errors == []
    # What the control plane may not do: write a result, read a role's durable, touch the trail.
    for subject in (
        "gitstore.validation.markdown.compile." + "ab" * 32,
        "$JS.API.CONSUMER.MSG.NEXT.GITSTORE_TASKS.markdown-compiler",
        "$JS.API.STREAM.UPDATE.GITSTORE_AUDIT",
        "gitstore.audit.planner." + event.event_id,
    ):
        await control.publish(subject, b"{}")
    await control.flush()

    async def seen() -> list[str]:
        return errors

    await eventually(seen, lambda e: len(e) >= 4, what="the control plane's refusals")
    assert all("permissions violation" in e.lower() for e in errors)


async def test_every_runbook_step_runs_as_the_operator(  # noqa: PLR0915 (one runbook)
    secure: SecureNats, policy_file: Path, tmp_path: Path
) -> None:
    admin = await secure.admin_js()
    errors: list[str] = []
    operator = await secure.connect(OPERATOR, errors)
    js = operator.jetstream(timeout=5.0)
    # The operator's file as an operator writes it: provision_on_start left at its
    # default (true), which a tool run must not act on (the operator may not provision).
    operator_config = msgspec.structs.replace(
        secure.config_for(policy_file, OPERATOR), provision_on_start=True
    )
    config_file = write_config(tmp_path / "operator.yaml", operator_config)
    configs = [(secure.config_for(policy_file, role), [role]) for role in ROLES]
    event = make_event(2)
    async with serving(configs):
        await publish_event(admin, TOPOLOGY, event)
        await eventually(
            lambda: admin.stream_info(TOPOLOGY.validation_stream),
            lambda info: info.state.messages == 3,
            what="three results",
        )
        # -- Looking inside -------------------------------------------------------------------
        names = sorted(info.config.name for info in await js.streams_info())  # nats stream ls
        assert TOPOLOGY.audit_stream in names
        for name in names:  # nats stream info
            await js.stream_info(name)
        slots = await js.stream_info(  # nats stream subjects
            TOPOLOGY.validation_stream, subjects_filter="gitstore.validation.markdown.compile.*"
        )
        (subject,) = slots.state.subjects or {}
        assert (await js.get_last_msg(TOPOLOGY.validation_stream, subject, direct=True)).data
        assert (await js.get_last_msg(TOPOLOGY.validation_stream, subject)).data  # stream get
        assert (await js.get_msg(TOPOLOGY.tasks_stream, 1)).data  # get by sequence
        view = await js.subscribe(  # nats stream view
            "gitstore.tasks.>", stream=TOPOLOGY.tasks_stream, ordered_consumer=True
        )
        assert (await view.next_msg(timeout=5)).data
        await view.unsubscribe()
        durables = {c.name for c in await js.consumers_info(TOPOLOGY.tasks_stream)}  # consumer ls
        assert set(ROLES) - {"planner"} <= durables
        info = await js.consumer_info(TOPOLOGY.tasks_stream, "markdown-compiler")
        assert info.num_ack_pending == 0
        await js.consumers_info(TOPOLOGY.advisories_stream)  # consumer report
        await operator.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>")  # nats sub
        modules = await (await js.object_store(TOPOLOGY.modules_bucket)).list()  # object ls
        assert modules
        # -- trace and status -----------------------------------------------------------------
        code, out = await cli("trace", event.event_id, "--config", str(config_file))
        assert code == 0, out
        code, out = await cli("status", "ping", "--config", str(config_file))
        assert code == 0, out
        # -- Rewind a role's durable: reset it to a sequence, its settings stay ---------------
        answer = await operator.request(
            f"$JS.API.CONSUMER.RESET.{TOPOLOGY.tasks_stream}.enricher",
            json.dumps({"seq": 1}).encode(),
            timeout=5,
        )
        assert "error" not in json.loads(answer.data), answer.data
        await eventually(
            lambda: js.consumer_info(TOPOLOGY.tasks_stream, "enricher"),
            lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
            what="the rewound enricher to work through its tasks again",
        )
        assert (await admin.stream_info(TOPOLOGY.validation_stream)).state.messages == 3
    # -- Make one task run again: remove its result, replay its task --------------------------
    stored = await js.get_last_msg(TOPOLOGY.validation_stream, subject)
    await js.delete_msg(TOPOLOGY.validation_stream, stored.seq)
    task_subject = subject.replace(".validation.", ".tasks.")
    task = await js.get_last_msg(TOPOLOGY.tasks_stream, task_subject)
    code, out = await cli(
        "replay",
        "--stream",
        "TASKS",
        "--from-seq",
        str(task.seq),
        "--to-seq",
        str(task.seq),
        "--config",
        str(config_file),
    )
    assert code == 0, out
    # Inside the duplicate window JetStream still knows the result's Nats-Msg-Id, so the
    # re-run is told "already stored" (docs/operations.md says to wait the window out).
    assert json.loads(out.strip().splitlines()[-1])["settled"] == {"ack": 1}
    # The replay is in the trail, in the operator's name.
    trail = await read_event_trail(operator, TOPOLOGY, event.event_id)
    replayed = [e for e in trail if e.writer == OPERATOR]
    assert replayed
    assert {e.claimed_role for e in replayed} == {"markdown-compiler"}
    code, out = await cli(
        "replay", "--stream", "EVENTS", "--from-seq", "1", "--verify", "--config", str(config_file)
    )
    assert code == 0, out
    # -- preview and backfill ------------------------------------------------------------------
    code, out = await cli(
        "preview",
        "--kind",
        "catalog.enrich",
        "--module",
        "reference:catalog-enrich",
        "--config",
        str(config_file),
    )
    assert code == 0, out
    code, out = await cli("backfill", "--kind", "catalog.enrich", "--config", str(config_file))
    assert code == 0, out
    # -- Dead letters: list and requeue (a dead letter of the compile task) -------------------
    letter = DeadLetter(
        id=f"{TOPOLOGY.tasks_stream}-{task.seq}",
        kind="markdown.compile",
        namespace=event.repository_id,
        name="t",
        attempts=5,
        last_error="deadline-exceeded: test",
        last_attempt_at="2026-01-01T00:00:00Z",
        quarantined_at="2026-01-01T00:00:00Z",
        stream=TOPOLOGY.tasks_stream,
        stream_seq=task.seq,
        subject=task_subject,
        idempotency_key=None,
    )
    await admin.publish(
        TOPOLOGY.subjects.dead_letter("markdown.compile", letter.id),
        canonical_json(letter),
        headers={headers.MSG_ID: "dlq-test"},
    )
    code, out = await cli("dlq", "list", "--config", str(config_file))
    assert code == 0, out
    assert letter.id in out
    code, out = await cli(
        "dlq", "requeue", letter.id, "--by", "alice", "--config", str(config_file)
    )
    assert code == 0, out
    trail = await read_event_trail(operator, TOPOLOGY, event.event_id)
    assert [e.record.decision for e in trail if e.writer == OPERATOR][-1] == "requeued"
    # -- Recreating a durable (servers without reset; the per-kind upgrade) -------------------
    await js.delete_consumer(TOPOLOGY.tasks_stream, "enricher")
    await js.add_consumer(
        TOPOLOGY.tasks_stream,
        ConsumerConfig(
            durable_name="enricher",
            filter_subject="gitstore.tasks.catalog.enrich.*",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
        ),
    )
    assert errors == [], errors
    # -- Never: the trail rewritten, a stream removed -------------------------------------------
    audit_config = next(c for c in TOPOLOGY.stream_configs() if c.name == TOPOLOGY.audit_stream)
    refused = {
        f"$JS.API.STREAM.UPDATE.{TOPOLOGY.audit_stream}": json.dumps(
            {**audit_config.as_dict(), "max_msgs": 1}
        ).encode(),
        f"$JS.API.STREAM.DELETE.{TOPOLOGY.audit_stream}": b"",
        f"$JS.API.STREAM.PURGE.{TOPOLOGY.audit_stream}": b"",
        f"$JS.API.STREAM.MSG.DELETE.{TOPOLOGY.audit_stream}": b'{"seq": 1}',
        f"$JS.API.STREAM.DELETE.{TOPOLOGY.validation_stream}": b"",
        f"$JS.API.STREAM.PURGE.{TOPOLOGY.validation_stream}": b"",
        f"gitstore.audit.planner.{event.event_id}": b"{}",
    }
    before = await admin.stream_info(TOPOLOGY.audit_stream)
    for subject_, payload in refused.items():
        await operator.publish(subject_, payload)
    await operator.flush()

    async def seen() -> list[str]:
        return errors

    await eventually(
        seen,
        lambda errors: all(any(f'"{s}"'.lower() in e.lower() for e in errors) for s in refused),
        what="the server refusing the operator's rewrites",
    )
    after = await admin.stream_info(TOPOLOGY.audit_stream)
    assert after.state.messages == before.state.messages
    assert after.config.max_msgs == before.config.max_msgs
