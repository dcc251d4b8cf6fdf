"""The task pipeline against a real nats-server: success, retries, failures, admission."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TypeVar

import msgspec
from nats.aio.client import Client
from nats.js.api import StreamConfig

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    Topology,
)
from gitstore_agents.envelopes import AuditDecision, TaskRequest, canonical_json, slot_token
from gitstore_agents.guardrails import BasicAdmission, KindAllowance, Refusal

from .runtime_support import (
    RecordingObserver,
    default_modules,
    diagnostics,
    make_event,
    planned_task,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_module,
)
from .support import eventually
from .wasm_modules import loop_module, rejecting_module, text_module

T = TypeVar("T")


async def test_event_yields_one_result_per_task_and_follow_up(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        follow_ups=(CATALOG_ENRICH, EXTENSION_RUN),
        extensions=[{"name": "sample", "version": "1.0.0", "parameters": {"lang": "en"}}],
    )
    js = nc.jetstream()
    observer = RecordingObserver()
    async with running(config, observer=observer):
        await publish_event(js, topology, make_event(1, files=2))
        await wait_settled(js, config)
        requests = await validation_requests(js, topology)
        slots = [
            await js.get_last_msg(
                topology.validation_stream,
                topology.subjects.validation(r.kind, r.idempotency_key),
                direct=True,
            )
            for r in requests
        ]

    kinds = sorted(r.kind for r in requests)
    assert kinds == sorted([MARKDOWN_COMPILE] * 2 + [CATALOG_ENRICH] * 2 + [EXTENSION_RUN] * 2)
    assert len({r.idempotency_key for r in requests}) == 6
    compiled = {r.idempotency_key: r for r in requests if r.kind == MARKDOWN_COMPILE}
    for request in requests:
        if request.kind == EXTENSION_RUN:
            output = json.loads(bytes(request.output))["extended"]
            assert output["extension"] == {"name": "sample", "version": "1.0.0"}
            assert output["parameters"] == {"lang": "en"}
            assert output["compiled"] in [json.loads(bytes(c.output)) for c in compiled.values()]
    # Each result sits in its task's slot, stored by one attempt.
    assert [s.data for s in slots] == [canonical_json(r) for r in requests]
    published = observer.of(AuditDecision.PUBLISHED)
    assert sorted(r.idempotency_key for r in published) == sorted(
        r.idempotency_key for r in requests
    )
    assert {r.attempt for r in published} == {1}


async def test_transient_failure_is_retried_with_backoff_then_succeeds(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    backoff = (0.5, 1.0)
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        follow_ups=(),
        roles={MARKDOWN_COMPILER: {"backoff_s": list(backoff), "max_deliver": 6}},
    )
    js = nc.jetstream()
    observer = RecordingObserver()
    started: list[float] = []

    def admission(_role: str, allowed: dict[str, KindAllowance]) -> BasicAdmission:
        return _Timed(allowed, started)

    async with running(
        config, [PLANNER, MARKDOWN_COMPILER], observer=observer, admission=admission
    ):
        # No validation stream: every result publish fails (a NATS-side, transient error).
        await js.delete_stream(topology.validation_stream)
        await publish_event(js, topology, make_event(1))
        await eventually(
            lambda: _value(len(observer.of(AuditDecision.RETRIED, kind=MARKDOWN_COMPILE))),
            lambda n: n >= 3,
            what="three failed attempts",
        )
        await js.add_stream(_stream_config(topology, topology.validation_stream))
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        requests = await validation_requests(js, topology)

    assert len(requests) == 1, "retries must not duplicate the result"
    retried = [
        (t, r) for t, r in observer.times(AuditDecision.RETRIED) if r.kind == MARKDOWN_COMPILE
    ]
    assert {r.code for _, r in retried} == {"publish-failed"}
    # Each retry waits the role's backoff for that attempt (the last entry repeats)...
    for (failed_at, failure), next_at in zip(retried, started[1:], strict=False):
        wanted = backoff[min(failure.attempt or 1, len(backoff)) - 1]
        waited = next_at - failed_at
        assert waited >= wanted - 0.05, f"attempt {failure.attempt} retried after {waited:.2f}s"
        # ...and no more: a delayed NAK on a consumer with a backoff would also wait
        # backoff[n] - backoff[0] unless the runtime compensates (see _retry.py).
        assert waited < wanted + 0.3, f"attempt {failure.attempt} retried after {waited:.2f}s"


async def test_deadline_exceeded_is_transient_and_retried_until_deliveries_run_out(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "loop", loop_module())
    config = runtime_config(
        nats_url, topology, tmp_path, modules=modules, limits={"timeout_ms": 200}
    )
    js = nc.jetstream()
    observer = RecordingObserver()
    async with running(config, [PLANNER, MARKDOWN_COMPILER], observer=observer):
        await publish_event(js, topology, make_event(1))
        retried = await eventually(
            lambda: _value(observer.of(AuditDecision.RETRIED, kind=MARKDOWN_COMPILE)),
            lambda r: len(r) >= 3,
            what="every delivery to hit the deadline",
        )
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])

    assert [r.code for r in retried] == ["deadline-exceeded"] * 3
    assert [r.attempt for r in retried] == [1, 2, 3], "retried per policy: max_deliver=3"
    assert all("timeout_ms=200" in r.reason for r in retried)
    assert await diagnostics(js, topology) == [], "a transient failure is not a diagnostic"
    assert await validation_requests(js, topology) == []


async def test_permanent_failure_publishes_a_diagnostic_and_is_not_retried(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "reject", rejecting_module())
    config = runtime_config(nats_url, topology, tmp_path, modules=modules)
    js = nc.jetstream()
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_event(js, topology, make_event(1))
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        failures = await diagnostics(js, topology)
        info = await js.consumer_info(topology.tasks_stream, MARKDOWN_COMPILER)
        key = failures[0].idempotency_key if failures else None
        assert key is not None
        # The diagnostic sits in the task's failure slot.
        stored = await js.get_last_msg(
            topology.failures_stream,
            topology.subjects.failure(MARKDOWN_COMPILE, slot_token(key)),
            direct=True,
        )

    assert len(failures) == 1
    diagnostic = failures[0]
    assert (diagnostic.stage, diagnostic.code, diagnostic.retryable) == (
        "sandbox",
        "input-rejected",
        False,
    )
    assert diagnostic.attempt == 1
    assert [(e.field, e.constraint) for e in diagnostic.errors] == [("spec.price", "required")]
    assert info.num_redelivered == 0, "a permanent failure is terminated, not retried"
    assert await validation_requests(js, topology) == []
    assert msgspec.json.decode(stored.data)["code"] == "input-rejected"


async def test_admission_refusal_publishes_a_diagnostic_and_no_result(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    async with running(config, [MARKDOWN_COMPILER]) as runtime:
        allowed = await planned_task(runtime, make_event(1))
        unknown_module = msgspec.structs.replace(
            allowed, module_digest="sha256:" + "0" * 64, idempotency_key="sha256:" + "1" * 64
        )
        too_greedy = msgspec.structs.replace(
            allowed,
            limits=msgspec.structs.replace(allowed.limits, fuel=allowed.limits.fuel + 1),
            idempotency_key="sha256:" + "2" * 64,
        )
        for task in (unknown_module, too_greedy):
            await js.publish(
                topology.subjects.task(MARKDOWN_COMPILE, slot_token(task.idempotency_key)),
                canonical_json(task),
                headers={"Nats-Msg-Id": task.idempotency_key},
            )
        await wait_settled(js, config, [MARKDOWN_COMPILER])
        failures = await diagnostics(js, topology)

    assert sorted((f.stage, f.code) for f in failures) == [
        ("admission", "limits-over-ceiling"),
        ("admission", "module-not-allowed"),
    ]
    assert await validation_requests(js, topology) == [], "refused tasks never run"


class _Timed(BasicAdmission):
    """The basic admission, noting when each attempt started (admission comes first)."""

    def __init__(self, allowed: dict[str, KindAllowance], started: list[float]) -> None:
        super().__init__(allowed)
        self._started = started

    def admit(self, task: TaskRequest, envelope_bytes: int = 0) -> Refusal | None:
        self._started.append(asyncio.get_running_loop().time())
        return super().admit(task, envelope_bytes)


async def _value(value: T) -> T:
    return value


def _stream_config(topology: Topology, name: str) -> StreamConfig:
    return next(c for c in topology.stream_configs() if c.name == name)


async def test_output_without_a_canonical_form_is_a_permanent_output_check_failure(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    # A float has no canonical JSON form: deterministic, so a diagnostic and a
    # term, never a retry (it used to escape the pipeline as a handler error).
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "float", text_module('{"price": 1.5}'))
    config = runtime_config(nats_url, topology, tmp_path, modules=modules)
    js = nc.jetstream()
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_event(js, topology, make_event(1))
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        failures = await diagnostics(js, topology)
        info = await js.consumer_info(topology.tasks_stream, MARKDOWN_COMPILER)

    assert [(f.stage, f.code, f.retryable) for f in failures] == [
        ("output-check", "canonical-form", False)
    ]
    assert "float" in failures[0].message
    assert info.num_redelivered == 0
    assert await validation_requests(js, topology) == []
