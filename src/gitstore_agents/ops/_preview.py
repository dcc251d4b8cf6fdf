"""Preview a module upgrade: run history with a candidate module, publish nothing, diff.

For every past input of a kind (``_history``), the candidate module runs in
the sandbox exactly as a worker would run it (``TaskHandler.execute``: the
same limits, clock, seed and output check), and its outcome is compared with
what the configured module's task stored in its slots. The report says what
an upgrade would do to the catalog, the way data teams diff two versions of
a table before merging a pipeline change:

* counts: ``unchanged``, ``changed``, ``added`` (a result where the stored
  task failed or none is stored), ``removed`` (the stored result would now
  fail, by code), ``failing`` (failed before and after), ``not_stored`` (the
  configured module's task has no result yet);
* per output field (JSON paths, three levels deep): how many results change it;
* where the changes concentrate: by namespace, resource kind and label, with
  the share of that segment's inputs that change;
* for the first changed resources, a readable diff of the output.

Runs go to sandbox threads (the GIL is released while guest code runs), as
many as the machine has cores; modules are compiled once.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import json
import os
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from ..envelopes import ValidationRequest, slot_token
from ..errors import GitStoreAgentsError
from ..pipeline import Derived, Execution, Runner, TaskHandler, with_module
from ..sandbox import CompiledModule, RunResult, SandboxLimits
from ..service import Runtime
from ._history import Skipped, Window, configured_module, past_inputs, task_handler

_VALIDATION = msgspec.json.Decoder(ValidationRequest)
# Field paths are reported this deep ("$.spec.price.amount").
_FIELD_DEPTH = 3
_DIFF_LINES = 60


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One input whose result would change.

    Attributes:
        path: The catalog file.
        idempotency_key: The configured module's task key (its stored result).
        candidate_key: The candidate's task key.
        change: ``changed``, ``added`` or ``removed``.
        stored: ``ok`` or the stored failure state.
        candidate: ``ok`` or the candidate's failure code.
        fields: Output fields that differ (``changed``).
        diff: A unified diff of the pretty-printed outputs (``changed``, bounded).
        message: The candidate's failure message (``removed``).
    """

    path: str
    idempotency_key: str
    candidate_key: str
    change: str
    stored: str
    candidate: str
    fields: list[str] = msgspec.field(default_factory=list)
    diff: str = ""
    message: str = ""


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """A slice of the catalog and how much of it changes.

    Attributes:
        name: ``namespace=…``, ``kind=…`` or ``label:<key>=<value>``.
        inputs: Inputs in the segment.
        changes: Of those, how many change (changed, added or removed).
    """

    name: str
    inputs: int
    changes: int


class PreviewReport(msgspec.Struct, kw_only=True):
    """What running history with a candidate module would change.

    Attributes:
        kind: The task kind.
        extension: The one extension previewed (``extension.run``), if chosen.
        configured_module: The digest the configuration runs now.
        candidate_module: The candidate's digest.
        inputs: Past inputs run.
        counts: ``unchanged``, ``changed``, ``added``, ``removed``, ``failing``,
            ``not_stored``.
        removed_by_code: Why the removed ones would fail.
        fields: Output field path to how many results change it.
        segments: Segments with changes, most changed share first.
        changes: The changed, added and removed inputs (diffs on the first ones).
        skipped: History that could not be derived again.
        seconds: Wall time of the preview.
        runs_per_s: Candidate runs per second.
    """

    kind: str
    extension: str | None = None
    configured_module: str
    candidate_module: str
    inputs: int = 0
    counts: dict[str, int] = msgspec.field(
        default_factory=lambda: dict.fromkeys(
            ("unchanged", "changed", "added", "removed", "failing", "not_stored"), 0
        )
    )
    removed_by_code: dict[str, int] = msgspec.field(default_factory=dict)
    fields: dict[str, int] = msgspec.field(default_factory=dict)
    segments: list[Segment] = msgspec.field(default_factory=list)
    changes: list[Change] = msgspec.field(default_factory=list)
    skipped: Skipped = msgspec.field(default_factory=Skipped)
    seconds: float = 0.0
    runs_per_s: float = 0.0


class _Stored(msgspec.Struct, frozen=True):
    state: str  # "ok", "failed" or "none"
    output: bytes | None = None


async def preview(
    runtime: Runtime,
    kind: str,
    candidate: str,
    window: Window,
    *,
    max_diffs: int = 20,
    threads: int | None = None,
) -> PreviewReport:
    """Run every past input of ``kind`` in ``window`` with the ``candidate`` module.

    Args:
        runtime: A built runtime with the roles this kind needs (its results,
            content store and modules are used; nothing is published).
        kind: The task kind.
        candidate: The candidate module: ``file:``, ``reference:`` or ``sha256:``.
        window: Which part of history.
        max_diffs: Changed resources that get a diff.
        threads: Sandbox threads (default: one per core).

    Raises:
        ConfigError: ``kind`` is not run or derived by the configuration.
        GitStoreAgentsError: the candidate module cannot be loaded.
    """
    assert runtime.modules is not None
    handler = task_handler(runtime, kind)
    await runtime.modules.load(candidate)
    candidate_digest = await runtime.modules.digest(candidate)
    report = PreviewReport(
        kind=kind,
        extension=window.extension,
        configured_module=await configured_module(runtime, kind, window),
        candidate_module=candidate_digest,
    )
    started = time.perf_counter()
    workers = threads or os.cpu_count() or 2
    with ThreadPoolExecutor(workers, thread_name_prefix="preview") as pool:
        comparison = _Comparison(
            runtime, handler, candidate_digest, _threaded_runner(runtime, pool)
        )
        pending: set[asyncio.Task[None]] = set()
        try:
            async for derived in past_inputs(runtime, kind, window, report.skipped):
                # A few runs queued per thread: the threads stay busy, memory stays bounded.
                if len(pending) >= 4 * workers:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for finished in done:
                        finished.result()  # a comparison that raised ends the preview, loudly
                pending.add(asyncio.create_task(comparison.compare(derived, report)))
            if pending:
                await asyncio.gather(*pending)
        finally:
            for task in pending:
                task.cancel()
    segments = comparison.segments
    report.seconds = round(time.perf_counter() - started, 3)
    report.runs_per_s = round(report.inputs / report.seconds, 1) if report.seconds else 0.0
    report.changes.sort(key=lambda c: (c.change, c.path, c.idempotency_key))
    kept: dict[str, int] = {}
    for index, change in enumerate(report.changes):
        # Only the first ones of each sort keep their diff: the report stays readable.
        kept[change.change] = kept.get(change.change, 0) + 1
        if kept[change.change] > max_diffs:
            report.changes[index] = msgspec.structs.replace(change, diff="")
    report.fields = dict(sorted(report.fields.items(), key=lambda kv: (-kv[1], kv[0])))
    report.segments = sorted(
        (Segment(name=n, inputs=v[0], changes=v[1]) for n, v in segments.items() if v[1]),
        key=lambda s: (-s.changes / s.inputs, -s.changes, s.name),
    )
    return report


def _threaded_runner(runtime: Runtime, pool: ThreadPoolExecutor) -> Runner:
    sandbox = runtime.sandbox

    def run(
        module: CompiledModule,
        stdin: bytes,
        limits: SandboxLimits,
        *,
        logical_time_ns: int,
        seed: int,
    ) -> Awaitable[RunResult]:
        call = functools.partial(
            sandbox.run, module, stdin, limits, logical_time_ns=logical_time_ns, seed=seed
        )
        return asyncio.get_running_loop().run_in_executor(pool, call)

    return run


class _Comparison:
    """Runs one past input with the candidate and adds what it found to the report."""

    def __init__(
        self, runtime: Runtime, handler: TaskHandler, candidate_digest: str, run: Runner
    ) -> None:
        self.runtime = runtime
        self.handler = handler
        self.candidate_digest = candidate_digest
        self.run = run
        # segment name -> [inputs, changes]
        self.segments: dict[str, list[int]] = {}

    async def compare(self, derived: Derived, report: PreviewReport) -> None:
        task = derived.task
        trial = with_module(derived, self.candidate_digest)
        stored, execution = await asyncio.gather(
            _stored(self.runtime, self.handler, derived),
            self.handler.execute(trial.task, stdin=derived.stdin, run=self.run),
        )
        report.inputs += 1
        change = _classify(stored, execution)
        report.counts[change] += 1
        changed = change in ("changed", "added", "removed")
        for name in _segments(derived.stdin, stored.output):
            counts = self.segments.setdefault(name, [0, 0])
            counts[0] += 1
            counts[1] += int(changed)
        if not changed:
            return
        fields: list[str] = []
        diff = ""
        if change == "changed":
            assert stored.output is not None
            assert execution.raw is not None
            old, new = json.loads(stored.output), json.loads(execution.raw)
            fields = sorted(_changed_paths(old, new, "$", _FIELD_DEPTH))
            for field in fields:
                report.fields[field] = report.fields.get(field, 0) + 1
            diff = _diff(old, new, task.path)
        if change == "removed":
            code = execution.code
            report.removed_by_code[code] = report.removed_by_code.get(code, 0) + 1
        report.changes.append(
            Change(
                path=task.path,
                idempotency_key=task.idempotency_key,
                candidate_key=trial.task.idempotency_key,
                change=change,
                stored=stored.state,
                candidate=execution.code,
                fields=fields,
                diff=diff,
                message=execution.message if change == "removed" else "",
            )
        )


def _classify(stored: _Stored, execution: Execution) -> str:
    if stored.state == "none":
        return "not_stored"
    if stored.state == "ok":
        if not execution.ok:
            return "removed"
        return "unchanged" if execution.raw == stored.output else "changed"
    return "added" if execution.ok else "failing"


async def _stored(runtime: Runtime, handler: TaskHandler, derived: Derived) -> _Stored:
    """What the configured module's task stored: its output, a failure, or nothing."""
    assert runtime.results is not None
    topology, task = runtime.config.topology, derived.task
    done = await runtime.results.last(
        topology.validation_stream,
        topology.subjects.validation(task.kind, task.idempotency_key),
    )
    if done is not None:
        try:
            output = await handler.output_of(_VALIDATION.decode(done.data))
        except (GitStoreAgentsError, msgspec.DecodeError):
            return _Stored("none")
        return _Stored("ok", output)
    failed = await runtime.results.last(
        topology.failures_stream,
        topology.subjects.failure(task.kind, slot_token(task.idempotency_key)),
    )
    return _Stored("failed") if failed is not None else _Stored("none")


def _changed_paths(old: Any, new: Any, path: str, depth: int) -> set[str]:
    """JSON paths (``depth`` levels at most) where ``old`` and ``new`` differ."""
    if old == new:
        return set()
    if depth == 0 or not (isinstance(old, dict) and isinstance(new, dict)):
        return {path}
    found: set[str] = set()
    for key in old.keys() | new.keys():
        if key not in old or key not in new:
            found.add(f"{path}.{key}")
        else:
            found |= _changed_paths(old[key], new[key], f"{path}.{key}", depth - 1)
    return found


def _diff(old: Any, new: Any, path: str) -> str:
    before = json.dumps(old, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    after = json.dumps(new, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    lines = list(
        difflib.unified_diff(before, after, f"{path} (configured)", f"{path} (candidate)", n=2)
    )
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... {len(lines) - _DIFF_LINES} more lines"]
    return "\n".join(line.rstrip("\n") for line in lines)


def _segments(stdin: bytes, output: bytes | None) -> list[str]:
    """The segments an input belongs to: its resource's namespace, kind and labels."""
    resource = _resource(stdin, output)
    if resource is None:
        return []
    names = []
    metadata = resource.get("metadata")
    if isinstance(metadata, dict):
        if isinstance(metadata.get("namespace"), str):
            names.append(f"namespace={metadata['namespace']}")
        labels = metadata.get("labels")
        if isinstance(labels, dict):
            names += [f"label:{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str)]
    if isinstance(resource.get("kind"), str):
        names.append(f"kind={resource['kind']}")
    return names


def _resource(stdin: bytes, output: bytes | None) -> dict[str, Any] | None:
    """The catalog resource an input is about (its ``apiVersion``/``kind``/``metadata``).

    A follow-up's input carries the compiled resource (``compiled.resource``);
    a compile task's stored output is a ``CompiledResource`` (``resource``).
    """
    for data, path in ((stdin, ("compiled", "resource")), (output, ("resource",))):
        if data is None:
            continue
        try:
            found: Any = json.loads(data)
        except ValueError:
            continue
        for key in path:
            found = found.get(key) if isinstance(found, dict) else None
        if isinstance(found, dict) and isinstance(found.get("metadata"), dict):
            return found
    return None


def count_line(report: PreviewReport) -> str:
    """One line of counts, for people."""
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    return f"{report.kind}: {report.inputs} past inputs ({counts})"
