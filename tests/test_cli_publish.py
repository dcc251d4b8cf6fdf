"""``gitstore-agents publish EVENT.json``: a git event as the control plane sends it.

Run as a real process against a real nats-server: the event lands on its
subject with the contract's headers (docs/contracts.md), the command prints
one line with the stream and sequence, a second publish of the same event is
a duplicate, and an invalid event is refused in one line before connecting.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from gitstore_agents.config import Topology
from gitstore_agents.consumers import provision
from gitstore_agents.envelopes import GitEvent, decode, headers

from .runtime_support import runtime_config
from .test_cli_failures import (
    CONNECT_TIMEOUT,
    GIT_EVENT,
    assert_one_error_line,
    closed_port,
    run_cli,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def config_file(tmp_path: Path, nats_url: str, topology: Topology) -> Path:
    """A configuration naming the session server and this test's topology."""
    path = tmp_path / "config.yaml"
    path.write_bytes(
        msgspec.yaml.encode({"nats": {"url": nats_url}, "topology": msgspec.to_builtins(topology)})
    )
    return path


async def test_publish_sends_the_event_with_the_contract_headers(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path, config_file: Path
) -> None:
    js = nc.jetstream()
    await provision(js, runtime_config(nats_url, topology, tmp_path), upload_modules=False)
    event = decode(GIT_EVENT.read_bytes(), GitEvent)
    subject = topology.subjects.git_push(event.repository_id)

    run = run_cli(
        "publish", str(GIT_EVENT), "--config", str(config_file), "--traceparent", TRACEPARENT
    )
    assert run.code == 0, run.stderr
    assert run.stdout == (
        f"stored: stream={topology.events_stream} seq=1 subject={subject} "
        f"event_id={event.event_id} trace_id=0af7651916cd43dd8448eb211c80319c\n"
    )
    stored = await js.get_msg(topology.events_stream, 1)
    assert stored.subject == subject
    assert stored.data == GIT_EVENT.read_bytes()  # the file's bytes, unchanged
    assert stored.headers == {
        headers.MSG_ID: event.event_id,
        headers.CONTENT_TYPE: "application/json",
        headers.SCHEMA_VERSION: "1.0",
        headers.TRACEPARENT: TRACEPARENT,
        headers.REQUEST_ID: "req-7f3a9c",
    }

    # The same event again, inside the duplicate window: JetStream keeps the first.
    again = run_cli("publish", str(GIT_EVENT), "--config", str(config_file))
    assert again.code == 0, again.stderr
    assert again.stdout.startswith(f"duplicate: stream={topology.events_stream} seq=1 ")
    # A new trace each time when none is given.
    trace_id = again.stdout.rsplit("trace_id=", 1)[1].strip()
    assert len(trace_id) == 32
    assert trace_id != "0af7651916cd43dd8448eb211c80319c"
    assert (await js.stream_info(topology.events_stream)).state.messages == 1


def test_an_invalid_event_is_refused_in_one_line_before_connecting(tmp_path: Path) -> None:
    nowhere = ["--nats-url", f"nats://127.0.0.1:{closed_port()}", *CONNECT_TIMEOUT]
    data = json.loads(GIT_EVENT.read_text())

    data["event_id"] = "not-a-uuid"
    bad = tmp_path / "bad-id.json"
    bad.write_text(json.dumps(data))
    run = run_cli("publish", str(bad), *nowhere)
    assert run.code == 1
    assert_one_error_line(run, "envelope-invalid", str(bad), "$.event_id")
    assert run.stderr.count("envelope-invalid") == 1, "the code once, then the message"

    data = json.loads(GIT_EVENT.read_text())
    data["blobs"][0]["content"] += "tampered"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    run = run_cli("publish", str(tampered), *nowhere)
    assert run.code == 1
    assert_one_error_line(run, "blob-oid-mismatch", data["blobs"][0]["path"])

    missing = tmp_path / "missing.json"
    run = run_cli("publish", str(missing), *nowhere)
    assert run.code == 1
    assert_one_error_line(run, f"cannot read event {missing}")

    run = run_cli("publish", str(GIT_EVENT), "--traceparent", "00-zz", *nowhere)
    assert run.code == 1
    assert_one_error_line(run, "header-invalid", "--traceparent")


def test_publish_without_a_provisioned_stream_says_so(config_file: Path) -> None:
    run = run_cli("publish", str(GIT_EVENT), "--config", str(config_file), *CONNECT_TIMEOUT)
    assert run.code == 1
    assert_one_error_line(run, "publish-failed", "no stream stores", "gitstore-agents provision")
