"""Provisioning is idempotent and keeps what an operator chose for a durable."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from bench._cluster import NatsCluster
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from gitstore_agents.config import PLANNER, ROLES, Topology
from gitstore_agents.consumers import (
    MIGRATED_FROM,
    dead_letter_consumer,
    provision_buckets,
    role_consumer,
)
from gitstore_agents.envelopes import DeadLetter, slot_token

from .runtime_support import cli, runtime_config, write_config
from .support import eventually


async def test_provision_twice_then_keep_an_operators_rewind(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    for _ in range(2):
        code, out = await cli("provision", "--config", str(config_file))
        assert code == 0, out
    js = nc.jetstream()
    for stream in topology.stream_configs():
        assert stream.name is not None
        await js.stream_info(stream.name)
    for name in topology.slot_streams():
        # One message per subject, a second refused: what makes a subject a slot.
        info = await js.stream_info(name)
        assert (info.config.max_msgs_per_subject, info.config.discard_new_per_subject) == (1, True)
        assert info.config.allow_direct
    await js.object_store(topology.modules_bucket)
    for role in ROLES:
        for spec in (role_consumer(config, role), dead_letter_consumer(config, role)):
            info = await js.consumer_info(spec.stream, spec.durable)
            assert info.config.max_deliver == spec.max_deliver

    # An operator rewinds the planner (`nats consumer rm` + `nats consumer add
    # --deliver 5 --wait 30s`); provisioning restores our settings, not the start.
    spec = role_consumer(config, PLANNER)
    await js.delete_consumer(spec.stream, spec.durable)
    await js.add_consumer(
        spec.stream,
        ConsumerConfig(
            durable_name=spec.durable,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=5,
            ack_wait=30,
            filter_subject=spec.filter_subject,
        ),
    )
    code, out = await cli("provision", "--config", str(config_file))
    assert code == 0, out
    info = await js.consumer_info(spec.stream, spec.durable)
    assert (info.config.deliver_policy, info.config.opt_start_seq) == (
        DeliverPolicy.BY_START_SEQUENCE,
        5,
    )
    assert info.config.backoff == pytest.approx(list(spec.backoff_s))
    assert info.config.ack_wait == pytest.approx(spec.backoff_s[0])


async def test_provisioning_raises_the_replicas_of_existing_buckets(tmp_path: Path) -> None:
    # An install moved from one server to a cluster re-provisions with
    # replicas: 3; the object stores must follow the streams.
    with NatsCluster(tmp_path) as cluster:
        nc = await nats.connect(servers=cluster.url.split(","))
        try:
            js = nc.jetstream(timeout=10)
            await eventually(_jetstream_ready(js), bool, timeout_s=30, what="a meta leader")
            single = Topology()
            await provision_buckets(js, single)
            await provision_buckets(js, msgspec.structs.replace(single, replicas=3))
            for stream in (
                f"OBJ_{single.modules_bucket}",
                f"OBJ_{single.content_bucket}",
            ):
                info = await js.stream_info(stream)
                assert info.config.num_replicas == 3, stream
        finally:
            await nc.close()


def _jetstream_ready(js: JetStreamContext) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            await js.account_info()
        except (nats.errors.Error, TimeoutError):
            return False
        return True

    return probe


async def test_provision_migrates_a_per_kind_deployment_into_slots_keeping_history(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    """An install from before the slot layout: results, diagnostics and dead letters on
    one subject per kind. Provisioning copies each into its slot, so nothing is lost
    when the one-message-per-subject limit is set, and a dead letter still finds its
    original."""
    js = nc.jetstream()
    subjects, prefix = topology.subjects, topology.prefix
    old = {
        topology.tasks_stream: [f"{prefix}.tasks.>"],
        topology.validation_stream: [f"{prefix}.validation.>"],
        topology.failures_stream: [f"{prefix}.failures.>", f"{prefix}.dlq.>"],
    }
    for name, stream_subjects in old.items():
        await js.add_stream(StreamConfig(name=name, subjects=stream_subjects))
    keys = [f"sha256:{n:064x}" for n in range(1, 4)]
    task_seqs = []
    for key in keys:
        body = msgspec.json.encode({"idempotency_key": key, "kind": "markdown.compile"})
        ack = await js.publish(f"{prefix}.tasks.markdown.compile", body)
        task_seqs.append(ack.seq)
        await js.publish(f"{prefix}.validation.markdown.compile", body)
    await js.publish(
        f"{prefix}.failures.markdown.compile",
        msgspec.json.encode({"idempotency_key": keys[0], "code": "trap"}),
    )
    letter = DeadLetter(
        id=f"{topology.tasks_stream}-{task_seqs[2]}",
        kind="markdown.compile",
        namespace="repo",
        name="task",
        attempts=5,
        last_error="trap: boom",
        last_attempt_at="2026-11-29T08:00:00Z",
        quarantined_at="2026-11-29T08:00:00Z",
        stream=topology.tasks_stream,
        stream_seq=task_seqs[2],
        subject=f"{prefix}.tasks.markdown.compile",
        idempotency_key=keys[2],
    )
    await js.publish(f"{prefix}.dlq.markdown.compile", msgspec.json.encode(letter))

    config = runtime_config(nats_url, topology, tmp_path)
    code, out = await cli("provision", "--config", str(write_config(tmp_path / "c.yaml", config)))
    assert code == 0, out

    for key in keys:
        hex_key = key.removeprefix("sha256:")
        task = await js.get_last_msg(
            topology.tasks_stream, subjects.task("markdown.compile", hex_key)
        )
        assert msgspec.json.decode(task.data)["idempotency_key"] == key
        assert task.headers is not None
        assert task.headers[MIGRATED_FROM].startswith(f"{topology.tasks_stream}:")
        result = await js.get_last_msg(
            topology.validation_stream, subjects.validation("markdown.compile", key)
        )
        assert msgspec.json.decode(result.data)["idempotency_key"] == key
    diagnostic = await js.get_last_msg(
        topology.failures_stream, subjects.failure("markdown.compile", slot_token(keys[0]))
    )
    assert msgspec.json.decode(diagnostic.data)["code"] == "trap"
    moved = await js.get_last_msg(
        topology.failures_stream, subjects.dead_letter("markdown.compile", letter.id)
    )
    moved_letter = msgspec.json.decode(moved.data, type=DeadLetter)
    original = await js.get_msg(topology.tasks_stream, moved_letter.stream_seq)
    assert msgspec.json.decode(original.data or b"")["idempotency_key"] == keys[2], (
        "the dead letter points at its original's new sequence"
    )
    for name in topology.slot_streams():
        info = await js.stream_info(name)
        assert info.config.max_msgs_per_subject == 1, name
    # Provisioning again finds nothing left to migrate: the three slots, and
    # the old per-kind subject with its last message (provisioning never purges).
    code, out = await cli("provision", "--config", str(tmp_path / "c.yaml"))
    assert code == 0, out
    assert (await js.stream_info(topology.validation_stream)).state.messages == 4


async def test_migration_waits_for_the_workers_to_stop(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=topology.tasks_stream, subjects=[f"{topology.prefix}.tasks.>"])
    )
    await js.publish(f"{topology.prefix}.tasks.markdown.compile", b"{}")
    await js.add_consumer(
        topology.tasks_stream,
        ConsumerConfig(durable_name="markdown-compiler", ack_policy=AckPolicy.EXPLICIT),
    )
    # A worker still running the old version holds a delivery.
    pull = await js.pull_subscribe_bind("markdown-compiler", topology.tasks_stream)
    await pull.fetch(1, timeout=5)
    config = runtime_config(nats_url, topology, tmp_path)
    code, out = await cli("provision", "--config", str(write_config(tmp_path / "c.yaml", config)))
    assert code != 0
    assert "Stop the workers" in out
    info = await js.stream_info(topology.tasks_stream)
    assert info.config.max_msgs_per_subject != 1, "nothing was changed"


async def test_a_dead_letter_left_unacknowledged_does_not_block_the_migration(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    # A message out of deliveries stays unacknowledged on its durable for good;
    # with no worker pulling and nothing delivered within the ack wait, the
    # durable is idle and the migration goes ahead.
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=topology.tasks_stream, subjects=[f"{topology.prefix}.tasks.>"])
    )
    await js.publish(f"{topology.prefix}.tasks.markdown.compile", b"{}")
    await js.add_consumer(
        topology.tasks_stream,
        ConsumerConfig(
            durable_name="markdown-compiler",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=1.0,
            max_deliver=1,
        ),
    )
    pull = await js.pull_subscribe_bind("markdown-compiler", topology.tasks_stream)
    (last_delivery,) = await pull.fetch(1, timeout=5)
    await last_delivery.nak()  # its last attempt failed: a dead letter
    await pull.unsubscribe()
    stale = await eventually(
        lambda: js.consumer_info(topology.tasks_stream, "markdown-compiler"),
        lambda info: (
            info.num_ack_pending == 1
            and info.num_waiting == 0
            and info.delivered.last_active is not None
            and (datetime.datetime.now(datetime.UTC) - info.delivered.last_active).total_seconds()
            > 1.0
        ),
        timeout_s=10,
        what="the delivery older than the ack wait",
    )
    assert stale.num_ack_pending == 1, "still unacknowledged: out of deliveries"
    config = runtime_config(nats_url, topology, tmp_path)
    code, out = await cli("provision", "--config", str(write_config(tmp_path / "c.yaml", config)))
    assert code == 0, out
    info = await js.stream_info(topology.tasks_stream)
    assert info.config.max_msgs_per_subject == 1
