"""Inputs and outputs of any legal size reach a result; what cannot travel is refused at once.

The NATS server refuses a message over its ``max_payload`` (1 MiB here, the
default). A task input or a result output that would not fit travels through
the content store by ref; the control plane fetches and verifies it. What is
over the policy's own caps is refused for good, immediately, with its size.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import wasmtime
from bench.fuel import SHAPES, product_stdin
from nats.aio.client import Client

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    ROLES,
    Topology,
    load_config,
)
from gitstore_agents.consumers import (
    JetStreamPublisher,
    PayloadTooLargeError,
    provision_streams,
)
from gitstore_agents.envelopes import (
    Blob,
    ContentStore,
    TaskRequest,
    ValidationRequest,
    decode,
    git_blob_oid,
    sha256_digest,
)
from gitstore_agents.guardrails import Outbound, PublishBoundary

from .runtime_support import (
    REFERENCE_MODULES,
    default_modules,
    diagnostics,
    make_event,
    publish_event,
    running,
    runtime_config,
    wait_settled,
    write_module,
)
from .support import eventually
from .wasm_modules import echo_module


def _product(size: int) -> str:
    """A product file of about ``size`` bytes (a long body)."""
    head = (
        "---\napiVersion: catalog.gitstore.dev/v1beta1\nkind: Product\n"
        "metadata:\n  name: big-product\n  namespace: test\nspec:\n  title: Big\n---\n# Big\n\n"
    )
    paragraph = "A long description of a trail shoe, repeated to make the file large. " * 10
    lines = []
    while len(head) + sum(len(line) + 2 for line in lines) < size:
        lines.append(paragraph)
    return head + "\n\n".join(lines) + "\n"


def _json_of_size(size: int) -> bytes:
    """A module writing ``{"x":"yyy…"}`` of about ``size`` bytes, 64 KiB at a time."""
    chunks = size // 65536
    return wasmtime.wat2wasm(
        f"""(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)
  (data (i32.const 16) "{{\\"x\\":\\"")
  (data (i32.const 32) "\\"}}")
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 121) (i32.const 65536))
    (call $write (i32.const 16) (i32.const 6))
    (local.set $i (i32.const {chunks}))
    (block $done (loop $more
      (br_if $done (i32.eqz (local.get $i)))
      (call $write (i32.const 65536) (i32.const 65536))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $more)))
    (call $write (i32.const 32) (i32.const 2))))"""
    )


async def _tasks(nc: Client, topology: Topology) -> list[TaskRequest]:
    js = nc.jetstream()
    count = (await js.stream_info(topology.tasks_stream)).state.messages
    return [
        decode((await js.get_msg(topology.tasks_stream, seq)).data, TaskRequest)
        for seq in range(1, count + 1)
    ]


async def _results(nc: Client, topology: Topology) -> list[ValidationRequest]:
    js = nc.jetstream()
    count = (await js.stream_info(topology.validation_stream)).state.messages
    return [
        decode((await js.get_msg(topology.validation_stream, seq)).data, ValidationRequest)
        for seq in range(1, count + 1)
    ]


async def test_a_product_over_the_servers_max_payload_travels_by_ref_end_to_end(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    js = nc.jetstream()
    assert nc.max_payload == 1024 * 1024, "the server's default max_payload"
    # Echo modules with room for a 1.2 MB input (and their own digests).
    modules = {
        MARKDOWN_COMPILE: write_module(tmp_path, "big-compile", echo_module("compiled", pages=64)),
        CATALOG_ENRICH: write_module(tmp_path, "big-enrich", echo_module("enriched", pages=128)),
        EXTENSION_RUN: write_module(tmp_path, "big-ext", echo_module("extended", pages=128)),
    }
    config = runtime_config(
        nats_url, topology, tmp_path, modules=modules, follow_ups=(CATALOG_ENRICH,)
    )
    content = _product(1_200_000)
    async with running(config, list(ROLES)):
        store = await ContentStore.open(js, bucket=topology.content_bucket, create=False)
        data = content.encode()
        blob = Blob(path="products/big.md", blob_oid=git_blob_oid(data), ref=await store.put(data))
        event = msgspec.structs.replace(make_event(1), blobs=[blob], changed_paths=[blob.path])
        await publish_event(js, topology, event)
        # The compile result and the enrich follow-up's: each over 1 MiB.
        results = await eventually(
            lambda: _results(nc, topology), lambda found: len(found) == 2, timeout_s=30
        )
        await wait_settled(js, config, list(ROLES))

    tasks = await _tasks(nc, topology)
    assert len(tasks) == 2
    for task in tasks:
        # Too large for one message: by ref, under the digest its key derives from.
        assert task.input is None
        assert task.input_ref == task.input_digest
    by_kind = {r.kind: r for r in results}
    for result in by_kind.values():
        assert result.output is msgspec.UNSET, "too large to travel inline"
        assert result.output_ref == result.output_digest
        stored = await store.get(result.output_ref, max_bytes=16 * 1024 * 1024)
        assert sha256_digest(stored) == result.output_digest
        assert len(stored) > 1024 * 1024
    compiled = json.loads(await store.get(by_kind[MARKDOWN_COMPILE].output_digest))
    assert compiled["compiled"]["content"] == content, "the echo module saw the whole file"
    assert await diagnostics(js, topology) == []


async def test_an_output_over_the_policy_cap_is_refused_at_once_with_its_size(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    # Over the 40 MiB output cap: no retry can help, so no retry happens.
    flood = write_module(tmp_path, "flood", _json_of_size(41 * 1024 * 1024))
    modules = {**default_modules(tmp_path), MARKDOWN_COMPILE: flood}
    config = runtime_config(nats_url, topology, tmp_path, modules=modules, follow_ups=())
    js = nc.jetstream()
    async with running(config, list(ROLES)):
        await publish_event(js, topology, make_event(2))
        (failure,) = await eventually(
            lambda: diagnostics(js, topology), lambda found: len(found) == 1, timeout_s=20
        )
        await wait_settled(js, config, list(ROLES))
    assert failure.code == "output-too-large"
    assert failure.attempt == 1, "permanent: refused on the first delivery"
    assert failure.retryable is False
    assert "41943040" in failure.message, "the message names the cap"
    assert await _results(nc, topology) == []


async def test_a_message_over_max_payload_with_its_headers_is_refused_before_sending(
    nc: Client, topology: Topology
) -> None:
    # nats-py compares only the payload with max_payload; the server counts the
    # headers too and answers an oversized message by closing the connection.
    js = nc.jetstream()
    await provision_streams(js, topology)
    boundary = PublishBoundary(js, [topology.subjects.validation_all()])
    publisher = JetStreamPublisher(boundary, timeout_s=2.0)
    subject = topology.subjects.validation(MARKDOWN_COMPILE, "sha256:" + "ab" * 32)
    payload = b"x" * (nc.max_payload - 10)
    fits_alone = Outbound(subject=subject, payload=payload, headers={"Nats-Msg-Id": "a" * 64})
    with pytest.raises(PayloadTooLargeError, match=r"over the NATS server's max_payload=1048576"):
        await publisher.publish([fits_alone])
    assert nc.is_connected, "nothing was sent, the connection is intact"
    small = Outbound(subject=subject, payload=b"{}", headers={"Nats-Msg-Id": "b"})
    (stored,) = await publisher.publish([small])
    assert stored.seq == 1


async def test_a_realistic_900kb_product_compiles_and_is_enriched_with_the_built_in_limits(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    # The reference modules and each kind's built-in limits, grown with the input
    # (a flat 200 M fuel ran out on such a file, and on its 4 MB compile output).
    stdin = product_stdin(SHAPES[0], 900_000)
    document = json.loads(stdin)
    built_in = load_config(env={})
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules=REFERENCE_MODULES,
        follow_ups=(CATALOG_ENRICH, EXTENSION_RUN),
        extensions=[{"name": "seo-lint", "version": "1.0.0"}],
        drain_grace_s=15.0,
    )
    roles = dict(config.roles)
    for role_name, role in roles.items():
        kinds = {
            name: msgspec.structs.replace(kind, limits=built_in.kind(name)[1].limits)
            for name, kind in role.kinds.items()
        }
        roles[role_name] = msgspec.structs.replace(role, kinds=kinds)
    config = msgspec.structs.replace(config, roles=roles)
    js = nc.jetstream()
    async with running(config, list(ROLES)):
        data = document["content"].encode()
        blob = Blob(path=document["path"], blob_oid=git_blob_oid(data), content=document["content"])
        event = msgspec.structs.replace(make_event(3), blobs=[blob], changed_paths=[blob.path])
        await publish_event(js, topology, event)
        results = await eventually(
            lambda: _results(nc, topology), lambda found: len(found) == 3, timeout_s=60
        )
        await wait_settled(js, config, list(ROLES))
    assert await diagnostics(js, topology) == []
    tasks = {task.kind: task for task in await _tasks(nc, topology)}
    for result in results:
        task = tasks[result.kind]
        flat = built_in.kind(result.kind)[1].limits.fuel
        assert task.limits.fuel > flat, f"{result.kind}: the task got fuel for its size"
        assert result.usage.fuel < task.limits.fuel
    assert results[0].output_ref is not msgspec.UNSET, "a 4 MB compile output goes by ref"
