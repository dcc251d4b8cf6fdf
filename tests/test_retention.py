"""Retention per stream: provisioning applies it (and updates it in place), the defaults keep
results forever, and the configuration refuses ages that would break one result per task."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from gitstore_agents.config import Config, Topology, load_config
from gitstore_agents.consumers import (
    JetStreamPublisher,
    PublishFailedError,
    provision_buckets,
    provision_streams,
)
from gitstore_agents.errors import ConfigError
from gitstore_agents.guardrails import Outbound, PublishBoundary

from .runtime_support import cli, make_event, publish_event, runtime_config, write_config
from .support import eventually

DAY = 86400.0
MIB = 1024 * 1024
KEY = "sha256:" + "ab" * 32
OTHER_KEY = "sha256:" + "cd" * 32


def _streams(topology: Topology) -> dict[str, str]:
    """Setting prefix to stream name."""
    return {
        "events": topology.events_stream,
        "tasks": topology.tasks_stream,
        "validation": topology.validation_stream,
        "failures": topology.failures_stream,
        "audit": topology.audit_stream,
    }


async def _limits(js: JetStreamContext, stream: str) -> tuple[float, int, int]:
    config = (await js.stream_info(stream)).config
    return (round(config.max_age or 0, 3), config.max_bytes or 0, config.max_msgs or 0)


async def _provision(
    nats_url: str, topology: Topology, tmp_path: Path, *args: str, code: int = 0
) -> Config:
    """Provision as the Helm hook does: ``gitstore-agents provision --config FILE``."""
    config = runtime_config(nats_url, topology, tmp_path)
    config_file = str(write_config(tmp_path / "c.yaml", config))
    exit_code, out = await cli("provision", *args, "--config", config_file)
    assert exit_code == code, out
    return config


async def test_provisioning_applies_each_streams_limits_then_updates_them_in_place(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    js = nc.jetstream()
    first = msgspec.structs.replace(
        topology,
        events_max_age_s=30 * DAY,
        events_max_bytes=64 * MIB,
        events_max_msgs=100_000,
        tasks_max_age_s=30 * DAY,
        tasks_max_bytes=256 * MIB,
        validation_max_age_s=120 * DAY,
        validation_max_msgs=500_000,
        failures_max_age_s=120 * DAY,
        audit_max_age_s=60 * DAY,
        audit_max_bytes=32 * MIB,
        content_max_age_s=180 * DAY,
        content_max_bytes=512 * MIB,
    )
    await _provision(nats_url, first, tmp_path)
    assert await _limits(js, first.events_stream) == (30 * DAY, 64 * MIB, 100_000)
    assert await _limits(js, first.tasks_stream) == (30 * DAY, 256 * MIB, -1)
    assert await _limits(js, first.validation_stream) == (120 * DAY, -1, 500_000)
    assert await _limits(js, first.failures_stream) == (120 * DAY, -1, -1)
    assert await _limits(js, first.audit_stream) == (60 * DAY, 32 * MIB, -1)
    assert (await _limits(js, f"OBJ_{first.content_bucket}"))[:2] == (180 * DAY, 512 * MIB)
    assert (await _limits(js, f"OBJ_{first.modules_bucket}"))[:2] == (0, -1), "modules stay"
    await publish_event(js, first, make_event(1))

    # Shorter ages, other sizes, some limits lifted (0): the same streams, updated.
    second = msgspec.structs.replace(
        topology,
        events_max_age_s=10 * DAY,
        events_max_bytes=0,
        tasks_max_age_s=5 * DAY,
        tasks_max_msgs=1_000,
        audit_max_age_s=0,
        audit_max_msgs=10_000,
    )
    # Everything but the audit stream is updated; the audit stream is left to audit-admin
    # (`provision --audit-stream`), and until then provisioning says it differs.
    await _provision(nats_url, second, tmp_path, code=1)
    assert await _limits(js, second.audit_stream) == (60 * DAY, 32 * MIB, -1)
    await _provision(nats_url, second, tmp_path, "--audit-stream")
    assert await _limits(js, second.events_stream) == (10 * DAY, -1, -1)
    assert await _limits(js, second.tasks_stream) == (5 * DAY, -1, 1_000)
    assert await _limits(js, second.validation_stream) == (0, -1, -1)
    assert await _limits(js, second.failures_stream) == (0, -1, -1)
    assert await _limits(js, second.audit_stream) == (0, -1, 10_000)
    assert (await _limits(js, f"OBJ_{second.content_bucket}"))[:2] == (0, -1)
    events = await js.stream_info(second.events_stream)
    assert (events.state.messages, events.state.first_seq) == (1, 1), "updated, not recreated"
    for name in second.slot_streams():
        config = (await js.stream_info(name)).config
        assert (config.max_msgs_per_subject, config.discard_new_per_subject) == (1, True), name
    audit = (await js.stream_info(second.audit_stream)).config
    assert (audit.deny_delete, audit.deny_purge) == (True, True)


async def test_by_default_results_stay_forever_and_inputs_ninety_days(
    nc: Client, topology: Topology
) -> None:
    js = nc.jetstream()
    await provision_streams(js, topology)
    await provision_buckets(js, topology)
    assert await _limits(js, topology.events_stream) == (90 * DAY, -1, -1)
    assert await _limits(js, topology.tasks_stream) == (90 * DAY, -1, -1)
    assert await _limits(js, topology.validation_stream) == (0, -1, -1)
    assert await _limits(js, topology.failures_stream) == (0, -1, -1)
    assert await _limits(js, topology.audit_stream) == (365 * DAY, -1, -1)
    assert (await _limits(js, f"OBJ_{topology.content_bucket}"))[:2] == (0, -1)


def _result(topology: Topology, key: str, msg_id: str) -> Outbound:
    return Outbound(
        subject=topology.subjects.validation("markdown.compile", key),
        payload=b'{"result": "' + b"x" * 200 + b'"}',
        headers={"Nats-Msg-Id": msg_id},
    )


@pytest.mark.parametrize(
    ("limit", "refusal"),
    [
        ({"validation_max_msgs": 1}, "maximum messages exceeded"),
        ({"validation_max_bytes": 400}, "maximum bytes exceeded"),
    ],
    ids=["max-msgs", "max-bytes"],
)
async def test_a_full_slot_stream_refuses_new_results_and_still_knows_its_taken_slots(
    nc: Client, topology: Topology, limit: dict[str, int], refusal: str
) -> None:
    js = nc.jetstream()
    full = msgspec.structs.replace(topology, **limit)
    await provision_streams(js, full)
    boundary = PublishBoundary(js, [full.subjects.validation_all()])
    publisher = JetStreamPublisher(boundary, timeout_s=2.0)
    (stored,) = await publisher.publish([_result(full, KEY, "first")])
    assert stored.seq == 1
    # A new result into the full stream fails (its task is retried): it is not "stored before".
    with pytest.raises(PublishFailedError, match=refusal):
        await publisher.publish([_result(full, OTHER_KEY, "second")])
    # A repeat of the stored one (past the duplicate window: another id) is still recognised.
    (repeat,) = await publisher.publish([_result(full, KEY, "repeat")])
    assert repeat.occupied


async def test_a_result_slot_that_ages_out_takes_a_second_result_so_config_refuses_it(
    nc: Client, topology: Topology
) -> None:
    # Why the rule exists: a slot whose message aged out is free again.
    js = nc.jetstream()
    aging = msgspec.structs.replace(topology, duplicate_window_s=0.5, validation_max_age_s=1.0)
    await provision_streams(js, aging)
    boundary = PublishBoundary(js, [aging.subjects.validation_all()])
    publisher = JetStreamPublisher(boundary, timeout_s=2.0)
    (first,) = await publisher.publish([_result(aging, KEY, "first")])
    assert not first.stored_before

    async def stored() -> int:
        return (await js.stream_info(aging.validation_stream)).state.messages

    await eventually(stored, lambda n: n == 0, timeout_s=10, what="the result to age out")
    (second,) = await publisher.publish([_result(aging, KEY, "replayed")])
    assert not second.stored_before, "a second result for the same task"

    with pytest.raises(ConfigError, match=r"topology\.validation_max_age_s=1 \(1 s\)"):
        load_config(env={}, overrides={"topology": msgspec.to_builtins(aging)})


def _refusal(tmp_path: Path, topology_yaml: str) -> str:
    path = tmp_path / "gitstore.yaml"
    path.write_text("topology:\n" + topology_yaml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.message


@pytest.mark.parametrize(
    ("topology_yaml", "expected"),
    [
        (
            "  validation_max_age_s: 2592000\n",
            [
                "topology.validation_max_age_s=2592000 (30 d) breaks exactly-once",
                "topology.events_max_age_s=7776000 (90 d)",
                "topology.tasks_max_age_s=7776000 (90 d)",
                "store a second result",
            ],
        ),
        (
            "  failures_max_age_s: 86400\n  tasks_max_age_s: 172800\n",
            [
                "topology.failures_max_age_s=86400 (1 d) breaks exactly-once",
                "topology.tasks_max_age_s=172800 (2 d)",
                "store a second diagnostic",
            ],
        ),
        (
            "  events_max_age_s: 0\n  tasks_max_age_s: 0\n  validation_max_age_s: 31536000\n",
            [
                "topology.validation_max_age_s=31536000 (365 d) breaks exactly-once",
                "topology.events_max_age_s=0 (forever)",
            ],
        ),
        (
            "  content_max_age_s: 604800\n",
            [
                "topology.content_max_age_s=604800 (7 d) removes content before",
                "topology.validation_max_age_s=0 (forever)",
                "content-missing",
            ],
        ),
        (
            "  duplicate_window_s: 300\n  audit_max_age_s: 60\n",
            ["topology.audit_max_age_s=60 (60 s) is shorter than topology.duplicate_window_s=300"],
        ),
        ("  events_max_bytes: -1\n", ["$.topology.events_max_bytes"]),
    ],
    ids=[
        "results-age-before-inputs",
        "diagnostics-age-before-tasks",
        "results-age-while-events-stay-forever",
        "content-ages-before-refs",
        "age-below-duplicate-window",
        "negative-limit",
    ],
)
def test_configuration_refuses_ages_that_break_exactly_once_naming_the_field(
    tmp_path: Path, topology_yaml: str, expected: list[str]
) -> None:
    message = _refusal(tmp_path, topology_yaml)
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    "topology",
    [
        {
            "events_max_age_s": 30 * DAY,
            "tasks_max_age_s": 30 * DAY,
            "validation_max_age_s": 30 * DAY,
            "failures_max_age_s": 60 * DAY,
            "content_max_age_s": 60 * DAY,
            "audit_max_age_s": 30 * DAY,
        },
        {"events_max_age_s": 3600, "tasks_max_age_s": 3600, "failures_max_age_s": DAY},
        {"validation_max_bytes": 64 * MIB, "tasks_max_msgs": 1_000_000, "audit_max_age_s": 0},
    ],
    ids=["equal-ages", "outcomes-outlive-inputs", "size-limits"],
)
def test_ages_that_keep_outcomes_as_long_as_their_inputs_are_accepted(
    topology: dict[str, float],
) -> None:
    loaded = load_config(env={}, overrides={"topology": topology}).topology
    assert {k: getattr(loaded, k) for k in topology} == topology
