"""Hostile inputs against a whole running pipeline: test modules, forged envelopes, outcomes.

``hostile_pipeline`` runs every role (planner, markdown-compiler, enricher,
extension-runner) in-process against the session's nats-server, under a
policy file of its own (paths ``products/**/*.md``, strict output checks,
``max_envelope_bytes`` just under the server's 1 MiB ``max_payload``). The
extension-runner may run every module of ``OUTPUT_MODULES`` (as extensions of
``extension.run``), so a forged ``extension.run`` task naming one of them is
how a test gets a hostile module *output* into the pipeline.

``HostilePipeline`` publishes hostile bytes (git events, forged task requests,
any headers) and says what became of each input: the diagnostics that answer it
(by stream and sequence, source event or idempotency key), the validation
requests it led to and its dead letters. Everything stored in the validation and
failures streams is collected by ordered consumers, so a wait is a look at a list.

Modules are WAT (``writer_module``): they write literal bytes and long runs of
one byte (``repeat``) to stdout or stderr, then return, exit or trap, so a
2 MiB document or an array nested 200,000 deep costs a few instructions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import nats
import wasmtime
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from gitstore_agents.config import (
    ENRICHER,
    EXTENSION_RUN,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    ROLES,
    Topology,
)
from gitstore_agents.consumers import role_consumer
from gitstore_agents.envelopes import (
    ContentStore,
    DeadLetter,
    FailureDiagnostic,
    canonical_json,
    derive_idempotency_key,
    git_blob_oid,
    headers,
    sha256_digest,
)
from gitstore_agents.sandbox import module_digest
from gitstore_agents.service import Runtime

from .hostile import wasm
from .runtime_support import REFERENCE_MODULES, consumer_backlog, running, runtime_config
from .support import eventually, unique_topology
from .wasm_modules import REJECTION

MIB = 1024 * 1024
REPOSITORY = "0193f1c2-0000-7000-8000-00000000c0de"
ZERO_SHA = "0" * 40
OCCURRED_AT = "2026-11-29T08:00:00Z"
# Under the server's max_payload (1 MiB): a forged task just over it still reaches the worker.
MAX_ENVELOPE_BYTES = 1_000_000
# What a task with a small input gets: the envelope defaults.
TASK_LIMITS = {"fuel": 200_000_000, "timeout_ms": 2000, "memory_bytes": 64 * MIB}
# The configured limits: grown per MiB of input (docs/contracts.md, size limits) up to the
# configured maximum, which stays under the policy's ceilings (so both refusals can be seen).
KIND_LIMITS = {
    **TASK_LIMITS,
    "per_input_mib": {"fuel": 500_000_000, "timeout_ms": 2000, "memory_bytes": 16 * MIB},
    "max_fuel": 2_000_000_000,
    "max_timeout_ms": 10_000,
    "max_memory_bytes": 256 * MIB,
}
CEILINGS = {"fuel": 4_000_000_000, "timeout_ms": 20_000, "memory_bytes": 512 * MIB}
OUTCOME_TIMEOUT_S = 10.0

_NAMESPACE = uuid.UUID("0193f1c2-0000-7000-8000-0000000b0a7d")


# -- modules ------------------------------------------------------------------------------------


class Chunk(msgspec.Struct, frozen=True):
    """Bytes a module writes: ``data``, or ``count`` copies of the byte ``fill``."""

    fd: int = 1
    data: bytes = b""
    fill: int = 0
    count: int = 0


def write(data: bytes, *, fd: int = 1) -> Chunk:
    """Write ``data`` (to stdout, or ``fd``)."""
    return Chunk(fd=fd, data=data)


def repeat(byte: bytes, count: int, *, fd: int = 1) -> Chunk:
    """Write ``count`` copies of one byte."""
    return Chunk(fd=fd, fill=byte[0], count=count)


_BUFFER = 65536  # the fill buffer: offset and size
_LITERALS = 2 * _BUFFER


def writer_module(*chunks: Chunk, exit_code: int | None = None, trap: bool = False) -> bytes:
    """A WASI command writing ``chunks`` in order, then exiting with ``exit_code`` or trapping."""
    data, calls = [], []
    offset = _LITERALS
    for chunk in chunks:
        if chunk.count:
            calls.append(
                f"(call $repeat (i32.const {chunk.fd}) (i32.const {chunk.fill}) "
                f"(i32.const {chunk.count}))"
            )
            continue
        escaped = "".join(f"\\{b:02x}" for b in chunk.data)
        data.append(f'(data (i32.const {offset}) "{escaped}")')
        calls.append(
            f"(call $write (i32.const {chunk.fd}) (i32.const {offset}) "
            f"(i32.const {len(chunk.data)}))"
        )
        offset += len(chunk.data)
    if exit_code is not None:
        calls.append(f"(call $proc_exit (i32.const {exit_code}))")
    if trap:
        calls.append("unreachable")
    pages = offset // 65536 + 1
    source = f"""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") {pages})
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $repeat (param $fd i32) (param $byte i32) (param $count i32) (local $n i32)
    (memory.fill (i32.const {_BUFFER}) (local.get $byte) (i32.const {_BUFFER}))
    (block $done (loop $more
      (br_if $done (i32.eqz (local.get $count)))
      (local.set $n (select (i32.const {_BUFFER}) (local.get $count)
        (i32.gt_u (local.get $count) (i32.const {_BUFFER}))))
      (call $write (local.get $fd) (i32.const {_BUFFER}) (local.get $n))
      (local.set $count (i32.sub (local.get $count) (local.get $n)))
      (br $more))))
  {" ".join(data)}
  (func (export "_start") {" ".join(calls)}))
"""
    return bytes(wasmtime.wat2wasm(source))


def _json_module(document: Any, **kwargs: Any) -> bytes:
    return writer_module(write(json.dumps(document).encode()), **kwargs)


_RESOURCE = {"apiVersion": "catalog.gitstore.dev/v1beta1", "kind": "Product"}
_MANY_ERRORS = {
    "errors": [
        {"constraint": "required", "field": f"spec.f{i:03d}", "file_path": "x", "message": "m"}
        for i in range(150)
    ]
}

OUTPUT_MODULES: dict[str, bytes] = {
    "not-json": writer_module(write(b"hello, validation pipeline")),
    "float": writer_module(write(b'{"price":149.9}')),
    "int-over-uint64": writer_module(write(b'{"count":18446744073709551616}')),
    "int-under-int64": writer_module(write(b'{"count":-9223372036854775809}')),
    "nan": writer_module(write(b'{"price":NaN}')),
    "lone-surrogate": writer_module(write(b'{"name":"\\ud800"}')),
    "invalid-utf8": writer_module(write(b'{"name":"\xff\xfe"}')),
    "array": writer_module(write(b"[1,2,3]")),
    "null": writer_module(write(b"null")),
    "empty": writer_module(),
    "two-documents": writer_module(write(b'{"a":1}{"b":2}')),
    "nested-200k": writer_module(repeat(b"[", 200_000), repeat(b"]", 200_000)),
    "nested-500": writer_module(
        write(b'{"deep":'), repeat(b"[", 500), repeat(b"]", 500), write(b"}")
    ),
    "path-not-allowed": _json_module({"source": {"path": "secrets/keys.md"}}),
    "path-traversal": _json_module({"source": {"path": "../products/hostile.md"}}),
    "path-mismatch": _json_module({"source": {"path": "products/someone-else.md"}}),
    "claims-status": _json_module({"enrichment": {}, "status": {"phase": "Admitted"}}),
    "claims-annotation": _json_module(
        {"resource": {**_RESOURCE, "metadata": {"annotations": {"gitstore.dev/approved": "true"}}}}
    ),
    "claims-nested": _json_module({"related": [{**_RESOURCE, "approved": True}]}),
    "resource-kind": _json_module({"resource": {**_RESOURCE, "kind": "Order"}}),
    "names-subjects": _json_module(
        {
            "subject": "gitstore.validation.markdown.compile.>",
            "headers": {"Nats-Msg-Id": "forged"},
            "input_ref": "sha256:" + "0" * 64,
        }
    ),
    "exit-65-field-errors": writer_module(write(REJECTION.encode()), exit_code=65),
    "exit-65-garbage": writer_module(write(b"not the validation shape"), exit_code=65),
    "exit-65-150-errors": _json_module(_MANY_ERRORS, exit_code=65),
    "exit-3": writer_module(write(b'{"ok":true}'), exit_code=3),
    "trap": writer_module(write(b'{"partial":'), trap=True),
    "stack-overflow": wasm("recursion"),
    "spin": wasm("spin"),
    "memory-bomb": wasm("memory_bomb"),
    "table-bomb": wasm("table_bomb"),
    "stdout-flood": wasm("stdout_flood"),
    "stderr-flood-then-result": wasm("stderr_flood"),
    "stderr-flood-then-trap": writer_module(
        repeat(b"x", 200_000, fd=2), write(b"\nlast words\n", fd=2), trap=True
    ),
    "output-2mib": writer_module(write(b'{"blob":"'), repeat(b"a", 2 * MIB), write(b'"}')),
    # Over the default output cap (40 MiB: DEFAULT_OUTPUT_BYTES).
    "output-over-cap": writer_module(write(b'{"blob":"'), repeat(b"a", 41 * MIB), write(b'"}')),
}
"""Hostile modules by name, each an extension of ``extension.run`` the policy allows."""


# -- documents ----------------------------------------------------------------------------------


class Raw:
    """Bytes put verbatim into a document's JSON (floats, bad UTF-8, deep nesting)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def to_json(document: Any) -> bytes:
    """``document`` as JSON, with every ``Raw`` value written verbatim."""
    raws: list[bytes] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.data)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(document)).encode()
    for index, data in enumerate(raws):
        text = text.replace(f'"\\u0000raw{index}\\u0000"'.encode(), data)
    return text


def event_id(name: str) -> str:
    """The event id of case ``name`` (a UUID, unique per name)."""
    return str(uuid.uuid5(_NAMESPACE, name))


def slug(name: str) -> str:
    """``name`` as a resource name."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63] or "x"


def product(name: str, *, spec: str = "", body: str = "# A product\n", extra: str = "") -> str:
    """A catalog markdown file the reference compiler accepts (plus ``spec`` lines and ``extra``
    frontmatter)."""
    return (
        "---\napiVersion: catalog.gitstore.dev/v1beta1\nkind: Product\n"
        f"metadata:\n  name: {slug(name)}\n  namespace: test\n"
        f"spec:\n  title: Product {name}\n{spec}{extra}---\n{body}"
    )


def git_sha256_oid(data: bytes) -> str:
    """Git's blob id of ``data`` in a sha256 repository."""
    return hashlib.sha256(b"blob %d\x00" % len(data) + data).hexdigest()


def event_document(name: str, files: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A git event (as plain data) of one push changing ``files`` (path to content)."""
    files = files if files is not None else {f"products/{slug(name)}.md": product(name)}
    return {
        "schema_version": "1.0",
        "event_id": event_id(name),
        "repository_id": REPOSITORY,
        "ref_name": "refs/heads/main",
        "old_commit_sha": ZERO_SHA,
        "new_commit_sha": hashlib.sha1(name.encode()).hexdigest(),
        "changed_paths": list(files),
        "actor_subject": "user:hostile@example.com",
        "blobs": [
            {"path": path, "blob_oid": git_blob_oid(content.encode()), "content": content}
            for path, content in files.items()
        ],
        "occurred_at": OCCURRED_AT,
    }


def nested(depth: int, *, opening: bytes = b"[", middle: bytes = b"", closing: bytes = b"]") -> Raw:
    """A JSON value nested ``depth`` deep."""
    return Raw(opening * depth + middle + closing * depth)


def nested_objects(depth: int) -> dict[str, Any]:
    """An object nested ``depth`` deep (as plain data: it still hashes)."""
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# -- the pipeline -------------------------------------------------------------------------------


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    """One hostile input as it was stored.

    Attributes:
        stream: The stream that stored it.
        seq: Its sequence there.
        event_id: The git event it is, or descends from (diagnostics of its tasks name it).
        key: A forged task's idempotency key.
        msg_id: Its ``Nats-Msg-Id`` (what its publisher knows it by).
        tasks: ``markdown.compile`` tasks an event that succeeds leads to.
    """

    stream: str
    seq: int
    event_id: str | None = None
    key: str | None = None
    msg_id: str | None = None
    tasks: int = 1


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """A validation request, as much of it as matching (and fetching its output) needs."""

    kind: str
    idempotency_key: str
    source_event_id: str
    output_digest: str
    output_ref: str | None = None


class _Collected:
    """Every message an ordered consumer delivered, decoded."""

    def __init__(self, type_: Any) -> None:
        self._decoder = msgspec.json.Decoder(type_)
        self.items: list[tuple[int, str, Any]] = []
        self.errors: list[str] = []

    async def on_msg(self, msg: Msg) -> None:
        try:
            value = self._decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            self.errors.append(f"{msg.subject}: {exc}")
            return
        self.items.append((msg.metadata.sequence.stream, msg.subject, value))

    def values(self) -> list[Any]:
        return [value for _, _, value in self.items]


class HostilePipeline:
    """Every role running, and what became of each input published to it.

    Args:
        runtime: The running runtime.
        js: The test's own JetStream context (the control plane's view).
        content: The content store (blobs and inputs by ref).
        modules: Module digest per name: ``compile``, ``enrich``, ``extension`` and
            every ``OUTPUT_MODULES`` name.
    """

    def __init__(
        self,
        runtime: Runtime,
        js: JetStreamContext,
        content: ContentStore,
        modules: Mapping[str, str],
    ) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.topology: Topology = runtime.config.topology
        self.subjects = self.topology.subjects
        self.js = js
        self.content = content
        self.modules = dict(modules)
        self.diagnostics = _Collected(FailureDiagnostic)
        self.results = _Collected(Stored)
        self.dead_letters = _Collected(DeadLetter)
        self._good = 0

    async def collect(self) -> list[Any]:
        """Start the ordered consumers (the caller unsubscribes them)."""
        t = self.topology
        return [
            await self.js.subscribe(
                subject,
                stream=stream,
                cb=collected.on_msg,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
            for subject, stream, collected in (
                (self.subjects.failures_all(), t.failures_stream, self.diagnostics),
                (self.subjects.dead_letters_all(), t.failures_stream, self.dead_letters),
                (self.subjects.validation_all(), t.validation_stream, self.results),
            )
        ]

    # -- publishing ------------------------------------------------------------------------------

    async def publish(
        self, subject: str, payload: bytes, headers_: Mapping[str, str] | None = None
    ) -> tuple[str, int]:
        """Publish ``payload`` as a publisher would; (stream, seq) of what was stored."""
        ack = await self.js.publish(subject, payload, headers=dict(headers_ or {}) or None)
        assert not ack.duplicate, f"{subject}: de-duplicated, nothing new was stored"
        return ack.stream, ack.seq

    async def send_event(
        self,
        document: dict[str, Any] | bytes,
        *,
        subject: str | None = None,
        headers_: Mapping[str, str] | None = None,
        msg_id: str | None = "",
        tasks: int = 1,
    ) -> Sent:
        """Publish a git event (a document, or any bytes) on its repository's subject.

        ``msg_id`` defaults to the document's ``event_id`` (``None``: no ``Nats-Msg-Id``).
        """
        data = document if isinstance(document, bytes) else to_json(document)
        found = document.get("event_id") if isinstance(document, dict) else None
        found = found if isinstance(found, str) else None
        sent_headers = dict(headers_ or {})
        if msg_id == "":
            msg_id = found or f"hostile-{uuid.uuid4()}"
        if msg_id is not None:
            sent_headers[headers.MSG_ID] = msg_id
        stream, seq = await self.publish(
            subject or self.subjects.git_push(REPOSITORY), data, sent_headers
        )
        return Sent(stream=stream, seq=seq, event_id=found, msg_id=msg_id, tasks=tasks)

    async def ref_event(self, name: str, files: Mapping[str, str]) -> dict[str, Any]:
        """A git event whose blobs travel by ref (stored in the content store first)."""
        document = event_document(name, files)
        for blob in document["blobs"]:
            blob["ref"] = await self.content.put(blob.pop("content").encode())
        return document

    def task(
        self,
        name: str,
        *,
        kind: str = MARKDOWN_COMPILE,
        module: str = "compile",
        input_: Any = None,
        path: str = "products/hostile.md",
        limits: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """A well-formed task (as plain data) running ``module`` (a name or a digest).

        Built from docs/contracts.md alone (key, id and seed derived as a planner
        would), so a forged task is exactly as good as the contract makes it.
        """
        if input_ is None:
            input_ = {"content": product(name), "parameters": {}, "path": path}
        module_digest = self.modules.get(module, module)
        input_digest = sha256_digest(canonical_json(input_))
        key = derive_idempotency_key(event_id(name), kind, input_digest, module_digest)
        hex_key = key.removeprefix("sha256:")
        return {
            "schema_version": "1.0",
            "task_id": hex_key[:32],
            "kind": kind,
            "idempotency_key": key,
            "source_event_id": event_id(name),
            "repository_id": REPOSITORY,
            "commit_sha": ZERO_SHA,
            "path": path,
            "module_digest": module_digest,
            "input": input_,
            "input_digest": input_digest,
            "limits": {**TASK_LIMITS, **(limits or {})},
            "logical_time": OCCURRED_AT,
            "seed": int(hex_key[:16], 16),
        }

    def output_task(self, name: str, module: str, **limits: int) -> dict[str, Any]:
        """An ``extension.run`` task running the hostile module ``module``."""
        return self.task(
            name,
            kind=EXTENSION_RUN,
            module=module,
            input_={"case": name},
            limits=limits,
        )

    async def send_task(
        self,
        document: dict[str, Any] | bytes,
        *,
        kind: str | None = None,
        slot: str | None = None,
        headers_: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Sent:
        """Publish a task on ``<prefix>.tasks.<kind>.<slot>`` (default: its own kind and slot)."""
        if isinstance(document, dict):
            data = to_json(document)
            key = key or document["idempotency_key"]
            kind = kind or document["kind"]
        else:
            data = document
        assert key is not None
        assert kind is not None
        slot = slot or key.removeprefix("sha256:")
        sent_headers = {headers.MSG_ID: key, **(headers_ or {})}
        stream, seq = await self.publish(self.subjects.task(kind, slot), data, sent_headers)
        return Sent(stream=stream, seq=seq, key=key, msg_id=sent_headers[headers.MSG_ID])

    async def send_good(self) -> Sent:
        """A well-formed push of one product (compiled, then enriched)."""
        self._good += 1
        name = f"good-{self._good}"
        return await self.send_event(event_document(name))

    # -- outcomes --------------------------------------------------------------------------------

    def answers(self, sent: Sent) -> list[FailureDiagnostic]:
        """Every diagnostic about ``sent``: the input itself, or the tasks it led to."""
        return [
            d
            for d in self.diagnostics.values()
            if (d.stream, d.stream_seq) == (sent.stream, sent.seq)
            or (sent.event_id is not None and d.source_event_id == sent.event_id)
            or (sent.key is not None and d.idempotency_key == sent.key)
        ]

    def stored(self, sent: Sent) -> list[Stored]:
        """Every validation request ``sent`` led to (its own, or its tasks')."""
        return [
            r
            for r in self.results.values()
            if (sent.key is not None and r.idempotency_key == sent.key)
            or (sent.event_id is not None and r.source_event_id == sent.event_id)
        ]

    def compiled(self, sent: Sent) -> list[Stored]:
        """The ``markdown.compile`` results of an event (or the forged task's own)."""
        return [r for r in self.stored(sent) if sent.key is not None or r.kind == MARKDOWN_COMPILE]

    async def check_outputs(self, sent: Sent) -> None:
        """Every output ``sent`` led to that travelled by ref is in the content store, intact."""
        for result in self.stored(sent):
            if result.output_ref is not None:
                assert result.output_ref == result.output_digest
                data = await self.content.get(result.output_ref)
                assert sha256_digest(data) == result.output_digest

    def letters(self, sent: Sent) -> list[DeadLetter]:
        """Dead letters of ``sent`` (or of the forged task it is)."""
        return [
            d
            for d in self.dead_letters.values()
            if (d.stream, d.stream_seq) == (sent.stream, sent.seq)
            or (sent.key is not None and d.idempotency_key == sent.key)
        ]

    def ended(self, sent: Sent) -> bool:
        """Whether ``sent`` came to an end: a diagnostic, its results, or a dead letter."""
        if self.answers(sent) or self.letters(sent):
            return True
        return len(self.compiled(sent)) >= max(sent.tasks, 1)

    async def wait_ended(
        self, inputs: Sequence[Sent], *, timeout_s: float = OUTCOME_TIMEOUT_S
    ) -> None:
        """Wait until every input came to an end (failing after ``timeout_s``)."""

        async def pending() -> list[Sent]:
            return [s for s in inputs if not self.ended(s)]

        await eventually(
            pending, lambda left: not left, timeout_s=timeout_s, what="an outcome of every input"
        )

    async def backlog(self) -> dict[str, tuple[int, int]]:
        """``(num_pending, num_ack_pending)`` of every role's durable."""
        return await consumer_backlog(self.js, self.config, ROLES)

    async def redelivered(self) -> dict[str, int]:
        """How many messages each role's durable redelivered so far."""
        counts = {}
        for role in ROLES:
            spec = role_consumer(self.config, role)
            counts[role] = (await self.js.consumer_info(spec.stream, spec.durable)).num_redelivered
        return counts

    async def settled(self, *, timeout_s: float = OUTCOME_TIMEOUT_S) -> None:
        """Wait until no role has anything pending or unacknowledged, and every stored result
        and diagnostic has been collected."""
        await eventually(
            self.backlog,
            lambda backlog: all(v == (0, 0) for v in backlog.values()),
            timeout_s=timeout_s,
            what="every consumer to be drained and acked",
        )
        await eventually(
            self._uncollected, lambda n: n == 0, timeout_s=timeout_s, what="the collectors"
        )

    async def _uncollected(self) -> int:
        t = self.topology
        missing = 0
        for stream, subject, collected in (
            (t.failures_stream, self.subjects.failures_all(), self.diagnostics),
            (t.failures_stream, self.subjects.dead_letters_all(), self.dead_letters),
            (t.validation_stream, self.subjects.validation_all(), self.results),
        ):
            info = await self.js.stream_info(stream, subjects_filter=subject)
            stored = sum((info.state.subjects or {}).values())
            missing += stored - len(collected.items) - len(collected.errors)
        return missing


def policy_text(prefix: str, extension_digests: Sequence[str]) -> str:
    """The suite's policy: reference modules, the hostile extensions, products only."""
    ceilings = "{" + ", ".join(f"{k}: {v}" for k, v in CEILINGS.items()) + "}"
    digests = ", ".join(f'"{d}"' for d in sorted(set(extension_digests)))
    return f"""\
version: 1
subject_prefix: {prefix}
max_envelope_bytes: {MAX_ENVELOPE_BYTES}
roles:
  planner:
    publishes_tasks: [markdown.compile]
  markdown-compiler:
    kinds: [markdown.compile]
    modules: {{reference: [markdown-compile]}}
    ceilings: {ceilings}
    paths: ["products/**/*.md"]
    publishes_tasks: [catalog.enrich]
  enricher:
    kinds: [catalog.enrich]
    modules: {{reference: [catalog-enrich]}}
    ceilings: {ceilings}
    paths: ["products/**/*.md"]
  extension-runner:
    kinds: [extension.run]
    modules: {{reference: [extension-sample], digests: [{digests}]}}
    ceilings: {ceilings}
    paths: ["products/**/*.md"]
"""


@contextlib.asynccontextmanager
async def hostile_pipeline(nats_url: str, tmp_path: Path) -> AsyncIterator[HostilePipeline]:
    """Every role running in-process under the suite's policy, with the hostile extensions."""
    topology = unique_topology("h")
    module_dir = tmp_path / "modules"
    module_dir.mkdir(parents=True, exist_ok=True)
    extensions = []
    for name, module in OUTPUT_MODULES.items():
        path = module_dir / f"{name}.wasm"
        path.write_bytes(module)
        extensions.append({"name": name, "version": "1.0.0", "module": f"file:{path}"})
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_text(topology.prefix, [module_digest(m) for m in OUTPUT_MODULES.values()])
    )
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules=REFERENCE_MODULES,
        limits=KIND_LIMITS,
        extensions=extensions,
        policy_file=str(policy),
        drain_grace_s=15.0,
    )
    client: Client = await nats.connect(nats_url)
    try:
        js = client.jetstream(timeout=5.0)
        roles = [PLANNER, MARKDOWN_COMPILER, ENRICHER, EXTENSION_RUNNER]
        async with running(config, roles) as runtime:
            assert runtime.modules is not None
            digests = {name: module_digest(m) for name, m in OUTPUT_MODULES.items()}
            for name, ref in (
                ("compile", "reference:markdown-compile"),
                ("enrich", "reference:catalog-enrich"),
                ("extension", "reference:extension-sample"),
            ):
                digests[name] = await runtime.modules.digest(ref)
            content = await ContentStore.open(js, bucket=topology.content_bucket, create=False)
            pipeline = HostilePipeline(runtime, js, content, digests)
            subscriptions = await pipeline.collect()
            try:
                yield pipeline
            finally:
                for subscription in subscriptions:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
    finally:
        await client.close()
