"""The audit trail cannot be rewritten by anything the runtime holds, and says who wrote it.

A real nats-server runs the authorization ``policy nats-config`` generates. Every runtime
identity (the four roles, the provisioner, the status probe) tries every way to rewrite the
audit stream: an update to ``max_msgs: 1``, ``max_age: 1s``, other subjects, ``sealed``, a
create with another configuration, a delete, a purge, a message delete. The server refuses
each, and the stream keeps its records and its settings; the same update sent as
``audit-admin`` goes through (the attempts are real). Each identity writes audit records
only under its own role token, ``operator`` only by the operator, and each role writes only
its own kinds' slots.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from nats.aio.msg import Msg

from gitstore_agents.config import GIT_PUSH, ROLES, Topology
from gitstore_agents.envelopes import AuditBatch, AuditDecision, AuditRecord
from gitstore_agents.guardrails import (
    AUDIT_ADMIN,
    CONTROL_PLANE,
    IDENTITIES,
    OPERATOR,
    PROVISIONER,
    RUNTIME_IDENTITIES,
    STATUS_PROBE,
    publish_subjects,
)
from gitstore_agents.telemetry import read_event_trail

from .guardrails_support import SecureNats
from .runtime_support import cli, make_event, write_config
from .support import eventually

TOPOLOGY = Topology()
AUDIT = TOPOLOGY.audit_stream
EVENT_ID = make_event(1).event_id
API = "$JS.API"
KEY = "cd" * 32


@pytest.fixture
async def secure(secure: SecureNats, policy_file: Path) -> SecureNats:
    """The suite's secure server (conftest), provisioned by the provisioner identity."""
    await secure.provision(secure.config_for(policy_file, PROVISIONER))
    return secure


def _batch(role: str, decision: AuditDecision = AuditDecision.PUBLISHED) -> bytes:
    record = AuditRecord(
        event_id=EVENT_ID,
        decision=decision,
        role=role,
        worker_id="w",
        at="2026-01-01T00:00:00Z",
    )
    return msgspec.json.encode(AuditBatch(records=[record]))


def _audit_config(**changes: object) -> bytes:
    """The audit stream's configuration as nats-py sends it, with ``changes`` (API units)."""
    config = next(c for c in TOPOLOGY.stream_configs() if c.name == AUDIT)
    return json.dumps({**config.as_dict(), **changes}).encode()


# Every rewrite the issue found or feared: (API subject, request).
REWRITES = {
    "max_msgs 1": (f"{API}.STREAM.UPDATE.{AUDIT}", _audit_config(max_msgs=1)),
    "max_age 1s": (f"{API}.STREAM.UPDATE.{AUDIT}", _audit_config(max_age=1_000_000_000)),
    "subjects": (f"{API}.STREAM.UPDATE.{AUDIT}", _audit_config(subjects=["elsewhere.>"])),
    "sealed": (f"{API}.STREAM.UPDATE.{AUDIT}", _audit_config(sealed=True)),
    "create max_msgs 1": (f"{API}.STREAM.CREATE.{AUDIT}", _audit_config(max_msgs=1)),
    "create sealed": (f"{API}.STREAM.CREATE.{AUDIT}", _audit_config(sealed=True)),
    "delete": (f"{API}.STREAM.DELETE.{AUDIT}", b""),
    "purge": (f"{API}.STREAM.PURGE.{AUDIT}", b""),
    "message delete": (f"{API}.STREAM.MSG.DELETE.{AUDIT}", b'{"seq": 1}'),
}


async def _attempt(
    secure: SecureNats, identity: str, requests: dict[str, tuple[str, bytes]]
) -> dict[str, str]:
    """Send every request as ``identity``; how the server answered each: an API error, or a
    permissions violation (a request the server does not let through gets no answer)."""
    errors: list[str] = []
    nc = await secure.connect(identity, errors)
    answers: dict[str, str] = {}
    names = list(requests)

    async def answered(msg: Msg) -> None:
        answers[names[int(msg.subject.rsplit(".", 1)[1])]] = msg.data.decode()

    inbox = f"_INBOX_{identity}.rewrite"
    await nc.subscribe(f"{inbox}.*", cb=answered)
    for number, (subject, payload) in enumerate(requests.values()):
        await nc.publish(subject, payload, reply=f"{inbox}.{number}")
    await nc.flush()

    def outcomes(_: object = None) -> dict[str, str]:
        found = dict(answers)
        for name, (subject, _payload) in requests.items():
            if any(
                f'"{subject}"'.lower() in e.lower() and "violation" in e.lower() for e in errors
            ):
                found.setdefault(name, "permissions violation")
        return found

    async def probe() -> dict[str, str]:
        return outcomes()

    return await eventually(
        probe, lambda found: len(found) == len(requests), what=f"{identity}'s answers"
    )


async def test_no_runtime_identity_can_rewrite_the_audit_trail(secure: SecureNats) -> None:
    js = await secure.admin_js()
    for role in ROLES:
        await js.publish(TOPOLOGY.subjects.audit(role, EVENT_ID), _batch(role))
    before = await js.stream_info(AUDIT)
    assert before.state.messages == len(ROLES)

    for identity in RUNTIME_IDENTITIES:
        outcomes = await _attempt(secure, identity, REWRITES)
        for name, outcome in outcomes.items():
            # Refused: by permissions, or (the provisioner's create) by the server, which
            # never lets a create change an existing stream.
            refused = outcome == "permissions violation" or '"error"' in outcome
            assert refused, (identity, name, outcome)
        if identity == PROVISIONER:
            assert "already in use" in outcomes["create max_msgs 1"]

    after = await js.stream_info(AUDIT)
    assert after.state.messages == before.state.messages
    assert after.config.subjects == before.config.subjects
    assert (after.config.max_msgs, after.config.max_age) == (
        before.config.max_msgs,
        before.config.max_age,
    )
    assert not after.config.sealed
    # The trail still takes records.
    await js.publish(TOPOLOGY.subjects.audit("planner", EVENT_ID), _batch("planner"))

    # The same request goes through as the audit stream's administrator: the attempts above
    # were real rewrites, refused only because of who sent them.
    shrink = {"max_msgs 1": REWRITES["max_msgs 1"]}
    (outcome,) = (await _attempt(secure, AUDIT_ADMIN, shrink)).values()
    assert '"error"' not in outcome, outcome
    assert (await js.stream_info(AUDIT)).state.messages == 1


async def test_audit_records_only_in_ones_own_name(secure: SecureNats) -> None:
    js = await secure.admin_js()
    subjects = TOPOLOGY.subjects
    names = [*ROLES, OPERATOR]
    allowed: dict[str, set[str]] = {identity: set() for identity in IDENTITIES}
    for role in ROLES:
        allowed[role] = {role}
    allowed[OPERATOR] = {OPERATOR}
    for identity in IDENTITIES:
        errors: list[str] = []
        nc = await secure.connect(identity, errors)
        for name in names:
            await nc.publish(subjects.audit(name, EVENT_ID), _batch(name))
        await nc.flush()
        refused = [n for n in names if n not in allowed[identity]]

        async def seen(errors: list[str] = errors) -> list[str]:
            return errors

        await eventually(
            seen,
            lambda errors, refused=refused: all(
                any(f'"{subjects.audit(n, EVENT_ID)}"' in e for e in errors) for n in refused
            ),
            what=f"the server refusing {identity}'s records in other names",
        )
        for name in allowed[identity]:
            assert not [e for e in errors if f'"{subjects.audit(name, EVENT_ID)}"' in e]
    entries = await read_event_trail(await secure.connect(OPERATOR), TOPOLOGY, EVENT_ID)
    assert sorted(e.writer or "" for e in entries) == sorted(names)
    assert (await js.stream_info(AUDIT)).state.messages == len(names)


async def test_trace_shows_who_wrote_each_record(
    secure: SecureNats, policy_file: Path, tmp_path: Path
) -> None:
    # A compromised extension-runner writes a record claiming to be the planner's: the
    # server lets it publish only under its own role token, and trace believes the token.
    runner = await secure.connect("extension-runner")
    ack = await runner.jetstream().publish(
        TOPOLOGY.subjects.audit("extension-runner", EVENT_ID),
        _batch("planner", AuditDecision.TASKS_PLANNED),
    )
    assert ack.stream == AUDIT
    (entry,) = await read_event_trail(await secure.connect(OPERATOR), TOPOLOGY, EVENT_ID)
    assert (entry.writer, entry.record.role, entry.claimed_role) == (
        "extension-runner",
        "extension-runner",
        "planner",
    )
    config = write_config(tmp_path / "operator.yaml", secure.config_for(policy_file, OPERATOR))
    code, out = await cli("trace", EVENT_ID, "--json", "--config", str(config))
    assert code == 0, out
    story = json.loads(out)
    (attempt,) = story["attempts"]
    assert attempt["role"] == "extension-runner"
    (record,) = attempt["records"]
    assert (record["writer"], record["claimed_role"]) == ("extension-runner", "planner")
    code, text = await cli("trace", EVENT_ID, "--config", str(config))
    assert code == 0, text
    assert "attempt ?  extension-runner @" in text
    assert "written by extension-runner, claims role planner" in text


async def test_each_role_writes_only_its_own_slots(secure: SecureNats) -> None:
    """No role can take another role's slot: an enricher cannot store a compile result, a
    compile diagnostic or dead letter, or a task it does not publish; nor can the status
    probe or the control plane store any."""
    policy = secure.policy
    subjects = TOPOLOGY.subjects
    kinds = sorted({k for r in policy.roles.values() for k in r.kinds})
    slots = {
        **{f"tasks {k}": subjects.task(k, KEY) for k in kinds},
        **{f"validation {k}": subjects.validation(k, "sha256:" + KEY) for k in kinds},
        **{f"failures {k}": subjects.failure(k, KEY) for k in [*kinds, GIT_PUSH]},
        **{f"dlq {k}": subjects.dead_letter(k, "GITSTORE_TASKS-1") for k in [*kinds, GIT_PUSH]},
        "requeue record": subjects.requeue_record("GITSTORE_TASKS-1"),
    }
    js = await secure.admin_js()
    stored_before = {s: (await js.stream_info(s)).state.messages for s in TOPOLOGY.slot_streams()}
    expected_stores = 0
    for identity in [*ROLES, STATUS_PROBE, CONTROL_PLANE]:
        own = publish_subjects(policy, identity) if identity in ROLES else ()
        errors: list[str] = []
        nc = await secure.connect(identity, errors)
        refused = []
        for _name, subject in slots.items():
            mine = any(subject.startswith(p.removesuffix("*")) for p in own)
            if mine:
                expected_stores += 1
                continue
            refused.append(subject)
            await nc.publish(subject, b'{"forged": true}')
        await nc.flush()
        assert refused

        async def seen(errors: list[str] = errors) -> list[str]:
            return errors

        await eventually(
            seen,
            lambda errors, refused=refused: all(
                any(f'"{s}"'.lower() in e.lower() for e in errors) for s in refused
            ),
            what=f"the server refusing {identity}'s writes to other roles' slots",
        )
    # The enricher's refusals include a compile result and a compile task.
    assert slots["validation markdown.compile"] not in publish_subjects(policy, "enricher")
    after = {s: (await js.stream_info(s)).state.messages for s in TOPOLOGY.slot_streams()}
    assert after == stored_before
    assert expected_stores > 0


async def test_provision_leaves_a_changed_audit_stream_to_audit_admin(
    secure: SecureNats, policy_file: Path, tmp_path: Path
) -> None:
    js = await secure.admin_js()
    shorter = 7 * 24 * 3600.0
    changed = {"topology": {"audit_max_age_s": shorter}}

    def config_file(identity: str) -> Path:
        config = secure.config_for(policy_file, identity)
        topology = msgspec.structs.replace(config.topology, **changed["topology"])
        return write_config(
            tmp_path / f"{identity}.yaml", msgspec.structs.replace(config, topology=topology)
        )

    # Unchanged: provisioning again as the provisioner is a no-op for the trail.
    unchanged = write_config(tmp_path / "same.yaml", secure.config_for(policy_file, PROVISIONER))
    code, out = await cli("provision", "--no-modules", "--config", str(unchanged))
    assert code == 0, out
    # Changed: everything else is provisioned, the trail is left alone, and the command
    # says which identity may apply the change.
    code, out = await cli("provision", "--no-modules", "--config", str(config_file(PROVISIONER)))
    assert code == 1, out
    assert "audit-stream-differs" in out
    assert "audit-admin" in out
    assert "provision --audit-stream" in out
    assert "max_age: 31536000.0 -> 604800.0" in out
    assert (await js.stream_info(AUDIT)).config.max_age == 365 * 24 * 3600.0
    # The administrator applies it; then provisioning agrees with the stream again.
    code, out = await cli("provision", "--audit-stream", "--config", str(config_file(AUDIT_ADMIN)))
    assert code == 0, out
    assert (await js.stream_info(AUDIT)).config.max_age == shorter
    code, out = await cli("provision", "--no-modules", "--config", str(config_file(PROVISIONER)))
    assert code == 0, out
