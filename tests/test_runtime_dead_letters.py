"""Deliveries run out → a dead letter via the captured advisory → requeue puts it back."""

from __future__ import annotations

import json
from pathlib import Path

from nats.aio.client import Client

from gitstore_agents.config import MARKDOWN_COMPILE, MARKDOWN_COMPILER, PLANNER, Topology
from gitstore_agents.envelopes import slot_token
from gitstore_agents.ops import list_dead_letters, read_subject

from .runtime_support import (
    cli,
    make_event,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_config,
)
from .support import eventually


async def test_exhausted_task_is_dead_lettered_once_and_requeue_runs_it_again(
    nats_url: str,
    nc: Client,
    topology: Topology,
    tmp_path: Path,
) -> None:
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        follow_ups=(),
        roles={MARKDOWN_COMPILER: {"max_deliver": 2, "backoff_s": [0.2]}},
    )
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    roles = [PLANNER, MARKDOWN_COMPILER]
    async with running(config, roles):
        validation = next(
            c for c in topology.stream_configs() if c.name == topology.validation_stream
        )
        await js.delete_stream(topology.validation_stream)
        event = make_event(7)
        await publish_event(js, topology, event)
        (entry,) = await eventually(
            lambda: list_dead_letters(js, topology),
            lambda entries: len(entries) == 1,
            what="the dead letter",
        )
        letter = entry.letter
        assert letter.idempotency_key is not None
        # Its slot, named after the message it is about.
        assert (
            await js.get_last_msg(
                topology.failures_stream,
                topology.subjects.dead_letter(MARKDOWN_COMPILE, letter.id),
                direct=True,
            )
        ).data

        # The advisory delivered twice (a second replica, a redelivery): still one letter.
        advisory = await js.get_msg(topology.advisories_stream, 1)
        assert advisory.subject is not None
        await js.publish(advisory.subject, advisory.data or b"")
        await eventually(
            lambda: js.consumer_info(
                topology.advisories_stream, f"{MARKDOWN_COMPILER}-dead-letters"
            ),
            lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
            what="the copy of the advisory to be handled",
        )
        stored = await read_subject(
            js, topology.failures_stream, topology.subjects.dead_letters_of(MARKDOWN_COMPILE)
        )
        assert len(stored) == 1, "the same advisory twice stores one dead letter"

        # Fix the cause, then requeue with the CLI an operator would use.
        await js.add_stream(validation)
        code, out = await cli(
            "dlq", "requeue", letter.id, "--by", "ops@example.com", "--config", str(config_file)
        )
        assert code == 0, out
        assert f"requeued {letter.id}" in out
        await eventually(
            lambda: validation_requests(js, topology),
            lambda requests: len(requests) == 1,
            what="the requeued task's result",
        )
        await wait_settled(js, config, roles)
        code, out = await cli("dlq", "list", "--json", "--config", str(config_file))
        assert code == 0, out
        listed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        (requests,) = [await validation_requests(js, topology)]
        # A dead letter is requeued once; its copy's own failures would be a new letter.
        code, out = await cli("dlq", "requeue", letter.id, "--config", str(config_file))
        assert code != 0
        assert "already-requeued" in out

    assert letter.kind == MARKDOWN_COMPILE
    assert letter.attempts == 2
    # The last failure's code and message, read back from the audit trail.
    assert letter.last_error.startswith("publish-failed: ")
    assert (letter.stream, letter.namespace) == (topology.tasks_stream, event.repository_id)
    assert letter.subject == topology.subjects.task(
        MARKDOWN_COMPILE, slot_token(letter.idempotency_key)
    )
    assert letter.name == requests[0].task_id
    assert requests[0].idempotency_key == letter.idempotency_key
    assert [e["letter"]["id"] for e in listed] == [letter.id]
    assert [r["by"] for r in listed[0]["requeues"]] == ["ops@example.com"]
    assert listed[0]["requeues"][0]["subject"].endswith(f"-rq{letter.stream_seq}")
