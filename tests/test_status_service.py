"""The status API: a discoverable micro service in every worker, answering by event and by key."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from gitstore_agents.cli import main
from gitstore_agents.config import (
    EXTENSION_RUN,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    Topology,
)
from gitstore_agents.envelopes import ExtensionRef, headers
from gitstore_agents.ops import StatusUnavailableError, ask_status
from gitstore_agents.service import STATUS_QUEUE_GROUP, STATUS_SERVICE, status_subject

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


async def test_status_service_is_discoverable_and_answers_by_event_and_key(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    event = make_event(1)
    prefix = topology.prefix
    async with running(config, [PLANNER, MARKDOWN_COMPILER]) as runtime:
        info_reply = await nc.request(f"$SRV.INFO.{STATUS_SERVICE}", b"", timeout=5)
        ping_code, ping_out = await cli("status", "ping", "--config", str(config_file))
        unknown = json.loads(
            (
                await ask_status(
                    nc,
                    status_subject(prefix, "event"),
                    {"event_id": "0193f1c2-0000-7000-8000-0000000000ff"},
                    timeout_s=5,
                )
            ).data
        )
        with pytest.raises(StatusUnavailableError, match="400"):
            await ask_status(nc, status_subject(prefix, "event"), {"event": "x"}, timeout_s=5)

        await publish_event(js, topology, event)
        # The compile task succeeds; its enrich follow-up has no enricher running here.
        (request,) = await eventually(
            lambda: validation_requests(js, topology), lambda found: len(found) == 1
        )
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        event_code, event_out = await cli(
            "status", "event", event.event_id, "--config", str(config_file)
        )
        key_code, key_out = await cli(
            "status", "key", request.idempotency_key, "--config", str(config_file)
        )
        worker_id = runtime.worker_id

    info = json.loads(info_reply.data)
    assert info["name"] == STATUS_SERVICE
    assert info["metadata"] == {"prefix": prefix, "worker_id": worker_id}
    assert sorted((e["name"], e["subject"], e["queue_group"]) for e in info["endpoints"]) == [
        ("event", f"{prefix}.status.event", STATUS_QUEUE_GROUP),
        ("key", f"{prefix}.status.key", STATUS_QUEUE_GROUP),
    ]
    assert ping_code == 0, ping_out
    assert (unknown["found"], unknown["state"], unknown["tasks"]) == (False, "unknown", [])

    assert event_code == 0, event_out
    status = json.loads(event_out)
    assert status["found"] is True
    assert status["state"] == "in-progress", "the follow-up is planned and not run yet"
    compile_task, follow_up = status["tasks"]
    assert (compile_task["kind"], compile_task["state"]) == (MARKDOWN_COMPILE, "succeeded")
    assert compile_task["output_digest"] == request.output_digest
    assert compile_task["attempts"] == 1
    assert compile_task["path"] == request.path
    assert (follow_up["state"], follow_up["parent_key"]) == (
        "planned",
        request.idempotency_key,
    )
    assert status["counts"] == {"planned": 1, "succeeded": 1}
    assert status["trace_id"] is not None
    assert compile_task["trace_id"] == status["trace_id"]

    assert key_code == 0, key_out
    by_key = json.loads(key_out)
    assert by_key["event_id"] == event.event_id
    assert by_key["trace_id"] == status["trace_id"]
    assert by_key["task"]["result_seq"] == compile_task["result_seq"]


async def test_event_the_planner_refused_has_state_failed(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    event = make_event(2)
    blob = msgspec.structs.replace(event.blobs[0], blob_oid="0" * 40)
    broken = msgspec.structs.replace(event, blobs=[blob])
    async with running(config, [PLANNER]):
        await publish_event(js, topology, broken)
        await wait_settled(js, config, [PLANNER])
        reply = await ask_status(
            nc,
            status_subject(topology.prefix, "event"),
            {"event_id": event.event_id},
            timeout_s=5,
        )
    status = json.loads(reply.data)
    assert (status["state"], status["tasks"]) == ("failed", [])
    assert headers.get_header(reply.headers, "Content-Type") == headers.JSON


def test_status_ping_fails_without_a_worker(
    nats_url: str, topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process, twice: logging must follow pytest's swapped stderr.
    for _ in range(2):
        code = main(
            [
                "status",
                "ping",
                "--nats-url",
                nats_url,
                "--timeout",
                "0.3",
                "--config",
                "/dev/null",
            ]
        )
        assert code == 1
    assert "no status service" in capsys.readouterr().out


async def test_extension_results_name_their_extension_and_module(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        follow_ups=[EXTENSION_RUN],
        extensions=[{"name": "seo-lint", "version": "2.1.0"}],
    )
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    event = make_event(7)
    roles = [PLANNER, MARKDOWN_COMPILER, EXTENSION_RUNNER]
    async with running(config, roles):
        await publish_event(js, topology, event)
        found = await eventually(
            lambda: validation_requests(js, topology), lambda found: len(found) == 2
        )
        await wait_settled(js, config, roles)
        (extension,) = [r for r in found if r.kind == EXTENSION_RUN]
        key_code, key_out = await cli(
            "status", "key", extension.idempotency_key, "--config", str(config_file)
        )
        trace_code, trace_out = await cli("trace", event.event_id, "--config", str(config_file))
        json_code, json_out = await cli(
            "trace", event.event_id, "--json", "--config", str(config_file)
        )

    (compiled,) = [r for r in found if r.kind == MARKDOWN_COMPILE]
    assert compiled.extension is msgspec.UNSET, "only extension.run results name an extension"
    assert isinstance(extension.extension, ExtensionRef)
    assert (extension.extension.name, extension.extension.version) == ("seo-lint", "2.1.0")
    assert b'"extension"' not in msgspec.json.encode(compiled)

    assert key_code == 0, key_out
    task = json.loads(key_out)["task"]
    assert (task["extension"], task["module_digest"]) == (
        "seo-lint@2.1.0",
        extension.module_digest,
    )
    assert trace_code == 0, trace_out
    assert "extension.run  seo-lint@2.1.0" in trace_out
    assert f"module {extension.module_digest}" in trace_out
    assert json_code == 0, json_out
    (follow_up,) = json.loads(json_out)["tasks"][0]["follow_ups"]
    assert (follow_up["extension"], follow_up["module_digest"]) == (
        "seo-lint@2.1.0",
        extension.module_digest,
    )
