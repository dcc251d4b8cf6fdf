"""A module upgrade reaches history: preview it without publishing, then backfill it once.

50 events run with enrich module v1 (``{"v":0}`` for every input). v2 answers
``{"v":1}`` for inputs whose bytes add up to a multiple of 3 and ``{"v":0}``
otherwise, so exactly those inputs change: the preview must say so, input by input, and the
backfill must store one v2 result per past input, once, however often it runs.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import msgspec
import wasmtime
from nats.aio.client import Client

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    ROLES,
    Config,
    Topology,
)
from gitstore_agents.envelopes import TaskRequest, decode, encode_decoded
from gitstore_agents.ops import Window, backfill, preview

from .runtime_support import (
    default_modules,
    make_event,
    publish_event,
    read_subject,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_config,
    write_module,
)
from .support import eventually

EVENTS = 50

# Reads stdin to its end, then writes {"v":0} - or, with $odd set, {"v":1}
# when the sum of the input's bytes is a multiple of 3.
_PARITY = """(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 64) "{{\\"v\\":0}}")
  (data (i32.const 80) "{{\\"v\\":1}}")
  (func (export "_start") (local $total i32) (local $n i32) (local $i i32) (local $sum i32)
    (block $eof (loop $read
      (i32.store (i32.const 16) (i32.add (i32.const 1024) (local.get $total)))
      (i32.store (i32.const 20) (i32.sub (i32.const 64512) (local.get $total)))
      (br_if $eof (i32.ne
        (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)) (i32.const 0)))
      (local.set $n (i32.load (i32.const 24)))
      (br_if $eof (i32.eqz (local.get $n)))
      (local.set $total (i32.add (local.get $total) (local.get $n)))
      (br $read)))
    (block $summed (loop $add
      (br_if $summed (i32.ge_u (local.get $i) (local.get $total)))
      (local.set $sum
        (i32.add (local.get $sum) (i32.load8_u (i32.add (i32.const 1024) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $add)))
    (i32.store (i32.const 0)
      (select (i32.const 80) (i32.const 64)
        (i32.and (i32.const {odd}) (i32.eqz (i32.rem_u (local.get $sum) (i32.const 3))))))
    (i32.store (i32.const 4) (i32.const 7))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def parity_module(*, odd_is_one: bool) -> bytes:
    """v1 (``odd_is_one=False``) or v2 of the enrich module."""
    return wasmtime.wat2wasm(_PARITY.format(odd=int(odd_is_one)))


async def _enrich_tasks(nc: Client, topology: Topology, digest: str) -> list[TaskRequest]:
    stored = await read_subject(
        nc.jetstream(), topology.tasks_stream, topology.subjects.tasks_of(CATALOG_ENRICH)
    )
    tasks = [decode(data, TaskRequest) for _, _, data, _ in stored]
    return [t for t in tasks if t.module_digest == digest]


async def test_preview_names_exactly_the_changed_results_and_backfill_stores_them_once(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    js = nc.jetstream()
    modules = default_modules(tmp_path)
    # The real compiler: enrich inputs carry compiled resources (namespace, labels).
    modules[MARKDOWN_COMPILE] = "reference:markdown-compile"
    v1 = modules[CATALOG_ENRICH] = write_module(tmp_path, "v1", parity_module(odd_is_one=False))
    v2 = write_module(tmp_path, "v2", parity_module(odd_is_one=True))
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules=modules,
        follow_ups=(CATALOG_ENRICH, EXTENSION_RUN),
        extensions=[{"name": "seo-lint", "version": "1.0.0"}],
    )
    async with running(config, list(ROLES)) as runtime:
        for number in range(EVENTS):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, list(ROLES), timeout_s=60)
        assert runtime.modules is not None
        v1_digest = await runtime.modules.digest(v1)
        v2_digest = await runtime.modules.digest(v2)
        before = await validation_requests(js, topology)
        assert len(before) == 3 * EVENTS  # compile, enrich, extension per event

        # The preview runs v2 on the 50 past enrich inputs and publishes nothing.
        report = await preview(runtime, CATALOG_ENRICH, v2, Window())
        stored_count = (await js.stream_info(topology.tasks_stream)).state.messages
        assert len(await validation_requests(js, topology)) == len(before)

    past = await _enrich_tasks(nc, topology, v1_digest)
    assert len(past) == EVENTS
    odd = {t.idempotency_key for t in past if sum(_input_bytes(t)) % 3 == 0}
    assert 0 < len(odd) < EVENTS, "the fixture changes some inputs, not all"
    assert report.inputs == EVENTS
    assert report.counts == {
        "unchanged": EVENTS - len(odd),
        "changed": len(odd),
        "added": 0,
        "removed": 0,
        "failing": 0,
        "not_stored": 0,
    }
    assert {c.idempotency_key for c in report.changes} == odd
    assert report.fields == {"$.v": len(odd)}
    assert all('-  "v": 0' in c.diff and '+  "v": 1' in c.diff for c in report.changes[:20])
    assert report.configured_module == v1_digest
    assert report.candidate_module == v2_digest
    assert report.segments, "where the changes concentrate"
    assert report.segments[0].name.startswith(("namespace=", "kind=", "label:"))

    # Upgrade: the enricher runs v2 now. Backfill the enrich history (twice).
    upgraded = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules={**modules, CATALOG_ENRICH: v2},
        follow_ups=(CATALOG_ENRICH, EXTENSION_RUN),
        extensions=[{"name": "seo-lint", "version": "1.0.0"}],
    )
    async with running(upgraded, list(ROLES)) as runtime:
        first = await backfill(runtime, CATALOG_ENRICH, Window())
        again = await backfill(runtime, CATALOG_ENRICH, Window())
        # The extension's module did not change: its keys are the old ones.
        unchanged = await backfill(runtime, EXTENSION_RUN, Window())
        await wait_settled(js, upgraded, list(ROLES), timeout_s=60)

    assert (first.inputs, first.published, first.already_stored) == (EVENTS, EVENTS, 0)
    assert (again.published, again.already_stored) == (0, EVENTS)
    assert (unchanged.inputs, unchanged.published) == (EVENTS, 0)
    assert (await js.stream_info(topology.tasks_stream)).state.messages == stored_count + EVENTS
    after = await validation_requests(js, topology)
    new = [r for r in after if r.module_digest == v2_digest]
    assert len(new) == EVENTS, "one result from the new module per past input"
    assert len(after) == len(before) + EVENTS
    outputs = {r.idempotency_key: bytes(r.output) for r in new if r.output is not msgspec.UNSET}
    assert sorted(outputs.values()) == sorted(
        [b'{"v":1}'] * len(odd) + [b'{"v":0}'] * (EVENTS - len(odd))
    )


async def test_backfilling_the_compile_kind_with_an_unchanged_module_stores_nothing(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    js = nc.jetstream()
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    async with running(config, list(ROLES)) as runtime:
        for number in range(5):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, list(ROLES))
        report = await backfill(runtime, MARKDOWN_COMPILE, Window())
    assert (report.inputs, report.published, report.already_stored) == (5, 0, 5)


def _input_bytes(task: TaskRequest) -> bytes:
    return encode_decoded(task.input)


async def test_a_backfill_killed_half_way_and_run_again_stores_each_task_once(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    js = nc.jetstream()
    modules = default_modules(tmp_path)
    v2 = write_module(tmp_path, "v2", parity_module(odd_is_one=True))
    config = runtime_config(nats_url, topology, tmp_path, modules=modules)
    async with running(config, list(ROLES)):
        for number in range(EVENTS):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, list(ROLES), timeout_s=60)
    tasks_before = (await js.stream_info(topology.tasks_stream)).state.messages

    upgraded = runtime_config(nats_url, topology, tmp_path, modules={**modules, CATALOG_ENRICH: v2})
    config_file = write_config(tmp_path / "upgraded.yaml", upgraded)
    command = [
        sys.executable, "-m", "gitstore_agents", "backfill", "--kind", CATALOG_ENRICH,
        "--config", str(config_file), "--batch", "1",
    ]  # fmt: skip
    first = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        # SIGKILL as soon as the first of its tasks is stored: one task per
        # confirmed batch, so it dies with most of the history not done.
        await eventually(
            lambda: js.stream_info(topology.tasks_stream),
            lambda info: info.state.messages > tasks_before,
            timeout_s=30,
            what="the backfill's first task",
        )
        first.kill()
    finally:
        await first.wait()
    stored_when_killed = (await js.stream_info(topology.tasks_stream)).state.messages
    assert first.returncode == -signal.SIGKILL

    again = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(again.communicate(), timeout=60)
    assert again.returncode == 0, err.decode()
    published = stored_when_killed - tasks_before
    assert published > 0, "it had started"
    assert f"{EVENTS} past inputs, {EVENTS - published} tasks published" in out.decode()
    async with running(upgraded, list(ROLES)) as runtime:
        await wait_settled(js, upgraded, list(ROLES), timeout_s=60)
        assert runtime.modules is not None
        v2_digest = await runtime.modules.digest(v2)
    assert (await js.stream_info(topology.tasks_stream)).state.messages == tasks_before + EVENTS
    new = [r for r in await validation_requests(js, topology) if r.module_digest == v2_digest]
    assert len(new) == EVENTS
    assert len({r.idempotency_key for r in new}) == EVENTS


async def test_one_extensions_upgrade_is_previewed_and_backfilled_alone(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    js = nc.jetstream()
    modules = default_modules(tmp_path)
    lint_v1 = write_module(tmp_path, "lint-v1", parity_module(odd_is_one=False))
    lint_v2 = write_module(tmp_path, "lint-v2", parity_module(odd_is_one=True))

    def extensions(lint: str) -> list[dict[str, str]]:
        return [
            {"name": "seo-lint", "version": "1.0.0", "module": lint},
            {"name": "alt-text", "version": "1.0.0"},  # the kind's module
        ]

    def configured(lint: str) -> Config:
        return runtime_config(
            nats_url,
            topology,
            tmp_path,
            modules=modules,
            follow_ups=(EXTENSION_RUN,),
            extensions=extensions(lint),
        )

    events = 10
    config = configured(lint_v1)
    async with running(config, list(ROLES)) as runtime:
        for number in range(events):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, list(ROLES), timeout_s=60)
        assert runtime.modules is not None
        v1_digest = await runtime.modules.digest(lint_v1)
        v2_digest = await runtime.modules.digest(lint_v2)
        one = await preview(runtime, EXTENSION_RUN, lint_v2, Window(extension="seo-lint"))
        both = await preview(runtime, EXTENSION_RUN, lint_v2, Window())
    assert (one.inputs, one.extension, one.configured_module) == (events, "seo-lint", v1_digest)
    assert both.inputs == 2 * events, "without --extension every extension's inputs run"

    upgraded = configured(lint_v2)
    async with running(upgraded, list(ROLES)) as runtime:
        report = await backfill(runtime, EXTENSION_RUN, Window(extension="seo-lint"))
        others = await backfill(runtime, EXTENSION_RUN, Window(extension="alt-text"))
        await wait_settled(js, upgraded, list(ROLES), timeout_s=60)
    assert (report.module, report.inputs, report.published) == (v2_digest, events, events)
    assert (others.inputs, others.published, others.already_stored) == (events, 0, events)
    results = await validation_requests(js, topology)
    new = [r for r in results if r.module_digest == v2_digest]
    assert len(new) == events
    assert {(r.extension.name if r.extension else None) for r in new} == {"seo-lint"}
