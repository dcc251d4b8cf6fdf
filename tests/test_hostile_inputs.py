"""Hostile inputs, one table: each ends with its documented code, within seconds, and nothing else.

Every case publishes something hostile into a pipeline of all four roles
running against a real nats-server (``hostile_support``): git events with bad
bytes, deep nesting, odd paths, wrong digests, YAML bombs, floats, subjects and
headers that disagree with the payload; forged task requests; and tasks whose
module's output is hostile. A good event is published right behind it. Then:

* the input ends with the code docs/codes.md gives it: one ``FailureDiagnostic``
  answering it (``retryable: false``, first attempt), or its results stored (``ok``);
* the good event's compile and enrich results are stored;
* every role's consumer is drained and acked, nothing was redelivered, and
  nothing was dead-lettered.

Cases the product gets wrong today are ``xfail(strict=True)`` with what happens
instead: they turn red the moment a fix lands, and the mark goes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import nats.errors
import pytest
import pytest_asyncio

from gitstore_agents import codes
from gitstore_agents.config import CATALOG_ENRICH, MARKDOWN_COMPILE
from gitstore_agents.envelopes import FailureDiagnostic, canonical_json

from .hostile_support import (
    MIB,
    OUTPUT_MODULES,
    REPOSITORY,
    HostilePipeline,
    Raw,
    Sent,
    event_document,
    git_sha256_oid,
    hostile_pipeline,
    nested,
    nested_objects,
    product,
    slug,
    to_json,
)

# Every case runs against the one pipeline of this module, on its event loop.
in_pipeline_loop = pytest.mark.asyncio(loop_scope="module")

OK = codes.OK
NO_TASKS = "no-tasks"  # accepted, and nothing to do (no markdown among the changes)
REFUSED = "refused-by-server"  # the server refuses the publish: nothing reaches a worker
_PRODUCT_PATH = "products/hostile.md"

Send = Callable[[HostilePipeline, str], Awaitable["Sent | list[Sent]"]]
Check = Callable[[list[FailureDiagnostic]], None]


class Case(NamedTuple):
    """One hostile input and how it must end."""

    id: str
    send: Send
    expect: str
    xfail: str | None = None
    check: Check | None = None

    def param(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pipeline(
    nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[HostilePipeline]:
    async with hostile_pipeline(nats_url, tmp_path_factory.mktemp("hostile")) as running:
        yield running


# -- building cases -----------------------------------------------------------------------------

Mutate = Callable[[dict[str, Any]], Any]


def event(
    mutate: Mutate | None = None,
    *,
    files: Callable[[str], dict[str, str]] | None = None,
    subject: Callable[[HostilePipeline], str] | None = None,
    headers: dict[str, str] | None = None,
    msg_id: str | None = "",
    tasks: int = 1,
    encode: Callable[[dict[str, Any]], bytes] | None = None,
) -> Send:
    """A git event of one product (or ``files``), changed by ``mutate``, sent as given."""

    async def send(p: HostilePipeline, name: str) -> Sent:
        document = event_document(name, files(name) if files else None)
        if mutate is not None:
            mutate(document)
        return await p.send_event(
            encode(document) if encode else document,
            subject=subject(p) if subject else None,
            headers_=headers,
            msg_id=msg_id,
            tasks=tasks,
        )

    return send


def raw_event(data: bytes) -> Send:
    """These bytes, on a git event subject."""

    async def send(p: HostilePipeline, name: str) -> Sent:
        return await p.send_event(data)

    return send


def one_file(path: str, content: Callable[[str], str] = product) -> Callable[[str], dict[str, str]]:
    """A push of one file at ``path``."""
    return lambda name: {path: content(name)}


def body(text: str) -> Callable[[str], dict[str, str]]:
    """A push of one product with ``text`` as its markdown body."""
    return lambda name: {f"products/{slug(name)}.md": product(name, body=text)}


def frontmatter(extra: str) -> Callable[[str], dict[str, str]]:
    """A push of one product with ``extra`` lines in its frontmatter's ``spec``."""
    return lambda name: {f"products/{slug(name)}.md": product(name, extra=extra)}


def blob(**changes: Any) -> Mutate:
    """Change the event's (first) blob."""

    def mutate(document: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                document["blobs"][0].pop(key, None)
            else:
                document["blobs"][0][key] = value

    return mutate


def fields(**changes: Any) -> Mutate:
    """Set top-level fields."""
    return lambda document: document.update(changes)


def task(
    mutate: Mutate | None = None,
    *,
    subject_kind: str | None = None,
    slot: str | None = None,
    headers: dict[str, str] | None = None,
    **task_args: Any,
) -> Send:
    """A forged task (well formed until ``mutate``), on its own slot unless told otherwise."""

    async def send(p: HostilePipeline, name: str) -> Sent:
        document = p.task(name, **task_args)
        original = document["idempotency_key"]
        if mutate is not None:
            mutate(document)
        key = document.get("idempotency_key")
        key = key if isinstance(key, str) else original
        return await p.send_task(
            document,
            kind=subject_kind or MARKDOWN_COMPILE,
            slot=slot or key.removeprefix("sha256:").lower(),
            headers_=headers,
            key=key,
        )

    return send


def task_input(**changes: Any) -> Mutate:
    """Set values in a forged compile task's input ``parameters`` (without re-hashing)."""
    return lambda document: document["input"]["parameters"].update(changes)


def limits(**changes: Any) -> Mutate:
    """Set a forged task's limits (without anything else changing)."""
    return lambda document: document["limits"].update(changes)


_RUN_MODULES: set[str] = set()


def output(module: str, **task_limits: int) -> Send:
    """An ``extension.run`` task whose module is ``module`` (one of ``OUTPUT_MODULES``)."""
    assert module in OUTPUT_MODULES, module
    _RUN_MODULES.add(module)

    async def send(p: HostilePipeline, name: str) -> Sent:
        return await p.send_task(p.output_task(name, module, **task_limits))

    return send


def errors_are(*expected: tuple[str, str]) -> Check:
    def check(answers: list[FailureDiagnostic]) -> None:
        assert [(e.field, e.constraint) for e in answers[0].errors] == list(expected)

    return check


def stderr_ends_with(line: str) -> Check:
    def check(answers: list[FailureDiagnostic]) -> None:
        assert answers[0].stderr_tail[-1:] == [line], answers[0].stderr_tail

    return check


def message_names(*parts: str) -> Check:
    def check(answers: list[FailureDiagnostic]) -> None:
        for part in parts:
            assert part in answers[0].message, answers[0].message

    return check


# -- cases that need more than one publish or the content store --------------------------------


async def _over_max_payload(p: HostilePipeline, name: str) -> list[Sent]:
    document = event_document(name, body("x" * (1200 * 1024))(name))
    with pytest.raises(nats.errors.MaxPayloadError):
        await p.send_event(document)
    return []


async def _same_bytes_twice(p: HostilePipeline, name: str) -> list[Sent]:
    data = b'{"event_id": "not a uuid", "hostile": true}'
    return [
        await p.send_event(data, msg_id=f"{name}-first"),
        await p.send_event(data, msg_id=f"{name}-second"),
    ]


async def _product_by_ref(p: HostilePipeline, name: str, size: int) -> Sent:
    words = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
    document = await p.ref_event(name, body(words + "\n")(name))
    return await p.send_event(document)


async def _product_1200kb_by_ref(p: HostilePipeline, name: str) -> Sent:
    return await _product_by_ref(p, name, 1200 * 1000)


async def _frontmatter_5mb_by_ref(p: HostilePipeline, name: str) -> Sent:
    files = frontmatter(f'  blob: "{"f" * (5 * 1000 * 1000)}"\n')(name)
    return await p.send_event(await p.ref_event(name, files))


async def _blob_ref_over_8mib(p: HostilePipeline, name: str) -> Sent:
    files = body("o" * (9 * MIB) + "\n")(name)
    return await p.send_event(await p.ref_event(name, files))


async def _blob_ref_missing(p: HostilePipeline, name: str) -> Sent:
    document = event_document(name)
    content = document["blobs"][0].pop("content")
    document["blobs"][0]["ref"] = "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    return await p.send_event(document)


async def _blob_ref_other_bytes(p: HostilePipeline, name: str) -> Sent:
    document = event_document(name)
    document["blobs"][0].pop("content")
    document["blobs"][0]["ref"] = await p.content.put(product(name + "-other").encode())
    return await p.send_event(document)


def _by_ref(stored: Callable[[dict[str, Any]], bytes] | None) -> Send:
    """A forged compile task whose input travels by ref to ``stored(input)`` (None: nothing)."""

    async def send(p: HostilePipeline, name: str) -> Sent:
        document = p.task(name)
        input_ = document.pop("input")
        if stored is None:
            document["input_ref"] = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        else:
            document["input_ref"] = await p.content.put(stored(input_))
        return await p.send_task(document)

    return send


async def _input_ref_over_8mib(p: HostilePipeline, name: str) -> Sent:
    input_ = {
        "content": product(name, body="z" * (9 * MIB)),
        "parameters": {},
        "path": _PRODUCT_PATH,
    }
    document = p.task(name, input_=input_)
    document["input"] = None
    document["input_ref"] = await p.content.put(canonical_json(input_))
    return await p.send_task(document)


def _yaml_laughs() -> str:
    lines = ["  lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    lines += [f"  lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)]
    return "".join(lines)


def _yaml_block(depth: int) -> str:
    return "".join("  " * (i + 1) + f"k{i}:\n" for i in range(depth)) + "  " * (depth + 1) + "v\n"


def _list_product(items: int) -> Callable[[str], dict[str, str]]:
    return body("- a\n" * items)


def _many_products(count: int) -> Callable[[str], dict[str, str]]:
    return lambda name: {
        f"products/{slug(name)}-{i}.md": product(f"{name}-{i}") for i in range(count)
    }


def _at_max_payload(name: str) -> dict[str, str]:
    # The event fills the server's 1 MiB max_payload to within a few hundred bytes.
    return body("w" * (1024 * 1024 - 1600) + "\n")(name)


def _utf16(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode("utf-16")


def _bom(document: dict[str, Any]) -> bytes:
    return b"\xef\xbb\xbf" + to_json(document)


def _upper_hex(digest: str) -> str:
    return "sha256:" + digest.removeprefix("sha256:").upper()


def _uppercase_oid(document: dict[str, Any]) -> None:
    document["blobs"][0]["blob_oid"] = document["blobs"][0]["blob_oid"].upper()


def _sha256_oid(wrong: bool) -> Mutate:
    def mutate(document: dict[str, Any]) -> None:
        oid = git_sha256_oid(document["blobs"][0]["content"].encode())
        document["blobs"][0]["blob_oid"] = "2" * 64 if wrong else oid

    return mutate


def _truncated_oid(document: dict[str, Any]) -> None:
    document["blobs"][0]["blob_oid"] = document["blobs"][0]["blob_oid"][:39]


def _add_ref(document: dict[str, Any]) -> None:
    document["blobs"][0]["ref"] = "sha256:" + "5" * 64


def _nested_parameters(document: dict[str, Any]) -> None:
    document["input"]["parameters"]["deep"] = nested(100_000)


CASES: list[Case] = [
    # -- encodings ---------------------------------------------------------------------------
    Case(
        "encoding-invalid-utf8",
        event(fields(actor_subject=Raw(b'"user:\xff\xfe"'))),
        "envelope-invalid",
        check=message_names("invalid UTF-8"),
    ),
    Case("encoding-utf16-with-bom", event(encode=_utf16), "envelope-invalid"),
    Case("encoding-utf8-bom", event(encode=_bom), "envelope-invalid"),
    Case(
        "encoding-overlong-utf8",
        event(fields(actor_subject=Raw(b'"user:\xc0\xaf"'))),
        "envelope-invalid",
    ),
    Case(
        "encoding-surrogate-as-utf8-bytes",
        event(fields(actor_subject=Raw(b'"user:\xed\xa0\x80"'))),
        "envelope-invalid",
    ),
    Case(
        "encoding-lone-surrogate-escaped",
        event(fields(actor_subject="user:\ud800")),
        "envelope-invalid",
    ),
    Case(
        "encoding-raw-nul-in-string",
        event(fields(actor_subject=Raw(b'"user:\x00"'))),
        "envelope-invalid",
    ),
    Case("encoding-escaped-nul-in-content", event(files=body("nul \x00 byte\n")), OK),
    Case("encoding-not-json", raw_event(b"\x00\x01\x02\xff not json at all"), "envelope-invalid"),
    Case("encoding-empty-payload", raw_event(b""), "envelope-invalid"),
    Case("encoding-whitespace-only", raw_event(b" \r\n\t "), "envelope-invalid"),
    Case("encoding-json-null", raw_event(b"null"), "envelope-invalid"),
    Case("encoding-json-array", raw_event(b"[]"), "envelope-invalid"),
    Case(
        "encoding-trailing-garbage",
        event(encode=lambda d: to_json(d) + b" {}"),
        "envelope-invalid",
    ),
    # -- nesting -----------------------------------------------------------------------------
    Case(
        "nesting-event-100k-in-unknown-field",
        event(fields(hostile=nested(100_000))),
        "envelope-too-deep",
    ),
    Case(
        "nesting-event-100k-objects-in-unknown-field",
        event(fields(hostile=nested(100_000, opening=b'{"a":', middle=b"1", closing=b"}"))),
        "envelope-too-deep",
    ),
    Case(
        "nesting-event-100k-before-event-id",
        raw_event(b'{"hostile":' + b"[" * 100_000 + b"]" * 100_000 + b',"event_id":"x"}'),
        "envelope-too-deep",
    ),
    Case("nesting-task-input-100k", task(_nested_parameters), "envelope-too-deep"),
    Case(
        "nesting-task-input-200-deep-hashed",
        task(
            input_={
                "content": product("nesting-task-input-200-deep-hashed"),
                "parameters": nested_objects(200),
                "path": _PRODUCT_PATH,
            }
        ),
        "input-rejected",
        check=errors_are(("", "max_depth")),
    ),
    Case(
        "nesting-markdown-blockquotes-10k",
        event(files=body(">" * 10_000 + " deep\n")),
        "input-rejected",
        check=errors_are(("body", "max_depth")),
    ),
    Case(
        "nesting-markdown-lists-100",
        event(files=body("".join("  " * i + "- x\n" for i in range(100)))),
        "input-rejected",
    ),
    Case("nesting-output-200k", output("nested-200k"), "output-too-deep"),
    # 500 levels are fine anywhere (docs/contracts.md, size limits).
    Case("nesting-event-500-in-unknown-field", event(fields(hostile=nested(500))), OK),
    Case("nesting-output-500", output("nested-500"), OK),
    # -- sizes -------------------------------------------------------------------------------
    Case("size-event-over-max-payload", _over_max_payload, REFUSED),
    Case("size-product-900kb-inline", event(files=body("v" * 900_000 + "\n")), OK),
    Case("size-product-at-max-payload-inline", event(files=_at_max_payload), OK),
    Case("size-product-1200kb-by-ref", _product_1200kb_by_ref, OK),
    # The reference modules read up to the sandbox's 8 MiB (tasks/README.md).
    Case("size-frontmatter-5mb-by-ref", _frontmatter_5mb_by_ref, OK),
    Case("size-compiled-output-1800kb-from-32kb", event(files=_list_product(8000)), OK),
    Case(
        "size-empty-markdown-file", event(files=lambda name: {_PRODUCT_PATH: ""}), "input-rejected"
    ),
    Case("size-100-files-in-one-push", event(files=_many_products(100), tasks=100), OK),
    Case(
        "size-task-over-max-envelope-bytes",
        task(
            input_={
                "content": product("big", body="y" * 1_010_000),
                "parameters": {},
                "path": _PRODUCT_PATH,
            }
        ),
        "input-too-large",
        check=message_names("max_envelope_bytes=1000000"),
    ),
    Case("size-task-input-ref-over-8mib", _input_ref_over_8mib, "input-too-large"),
    Case("size-blob-ref-over-8mib", _blob_ref_over_8mib, "content-too-large"),
    Case("size-output-2mib-over-max-payload", output("output-2mib"), OK),
    Case("size-output-over-the-cap", output("output-over-cap"), "output-too-large"),
    Case("size-stdout-flood", output("stdout-flood"), "output-too-large"),
    # -- paths -------------------------------------------------------------------------------
    Case("path-traversal-leading", event(files=one_file("../secrets/keys.md")), "envelope-invalid"),
    Case(
        "path-traversal-inner",
        event(files=one_file("products/../secrets/keys.md")),
        "envelope-invalid",
    ),
    Case("path-absolute", event(files=one_file("/etc/passwd.md")), "envelope-invalid"),
    Case(
        "path-backslashes",
        event(files=one_file("products\\..\\..\\secrets\\keys.md")),
        "path-not-allowed",
    ),
    Case("path-nul", event(files=one_file("products/a\x00.md")), "envelope-invalid"),
    Case("path-newline", event(files=one_file("products/a\n.md")), "envelope-invalid"),
    Case("path-dot-segment", event(files=one_file("products/./a.md")), "envelope-invalid"),
    Case("path-empty-segment", event(files=one_file("products//a.md")), "envelope-invalid"),
    Case(
        "path-over-4096-chars",
        event(files=one_file("products/" + "a" * 4100 + ".md")),
        "envelope-invalid",
    ),
    Case("path-4000-chars", event(files=one_file("products/" + "a" * 4000 + ".md")), OK),
    Case("path-outside-policy", event(files=one_file("secrets/keys.md")), "path-not-allowed"),
    Case(
        "path-fullwidth-solidus",
        event(files=one_file("products\uff0fevil.md")),
        "path-not-allowed",
    ),
    Case("path-fullwidth-letters", event(files=one_file("products/\uff50\uff52\uff4f.md")), OK),
    Case("path-not-markdown", event(files=one_file("products/readme.txt")), NO_TASKS),
    Case(
        "path-blob-not-among-changed-paths",
        event(fields(changed_paths=["products/other.md"])),
        NO_TASKS,
    ),
    Case(
        "path-ref-name-with-space", event(fields(ref_name="refs/heads/ma in")), "envelope-invalid"
    ),
    # -- digests -----------------------------------------------------------------------------
    Case("digest-wrong-blob-oid", event(blob(blob_oid="1" * 40)), "blob-oid-mismatch"),
    Case("digest-blob-oid-uppercase", event(_uppercase_oid), "envelope-invalid"),
    Case("digest-blob-oid-truncated", event(_truncated_oid), "envelope-invalid"),
    Case("digest-blob-oid-sha256-repository", event(_sha256_oid(wrong=False)), OK),
    Case("digest-blob-oid-sha256-wrong", event(_sha256_oid(wrong=True)), "blob-oid-mismatch"),
    Case(
        "digest-blob-ref-malformed",
        event(blob(content=None, ref="sha256:XYZ")),
        "envelope-invalid",
    ),
    Case("digest-blob-ref-missing", _blob_ref_missing, "content-missing"),
    Case("digest-blob-ref-other-bytes", _blob_ref_other_bytes, "blob-oid-mismatch"),
    Case("digest-blob-content-and-ref", event(_add_ref), "envelope-invalid"),
    Case("digest-blob-neither-content-nor-ref", event(blob(content=None)), "envelope-invalid"),
    Case(
        "digest-task-wrong-input-digest",
        task(fields(input_digest="sha256:" + "3" * 64)),
        "input-digest-mismatch",
    ),
    Case(
        "digest-task-unknown-module",
        task(fields(module_digest="sha256:" + "4" * 64)),
        "module-not-allowed",
    ),
    Case(
        "digest-task-module-uppercase-hex",
        task(lambda d: d.update(module_digest=_upper_hex(d["module_digest"]))),
        "envelope-invalid",
    ),
    Case(
        "digest-task-module-not-sha256",
        task(fields(module_digest="md5:" + "0" * 32)),
        "envelope-invalid",
    ),
    Case(
        "digest-task-input-ref-other-document",
        _by_ref(lambda i: canonical_json({**i, "path": "products/other.md"})),
        "input-digest-mismatch",
    ),
    Case(
        "digest-task-input-ref-pretty-printed",
        _by_ref(lambda i: json.dumps(i, indent=2).encode()),
        OK,
    ),
    Case(
        "digest-task-input-ref-not-json",
        _by_ref(lambda i: b"\x00 not json"),
        "content-invalid",
    ),
    Case("digest-task-input-ref-missing", _by_ref(None), "content-missing"),
    Case(
        "digest-task-input-and-input-ref",
        task(fields(input_ref="sha256:" + "6" * 64)),
        "envelope-invalid",
    ),
    # -- YAML bombs (through the reference compiler) --------------------------------------------
    Case(
        "yaml-billion-laughs",
        event(files=frontmatter(_yaml_laughs())),
        "input-rejected",
        check=errors_are(("frontmatter", "syntax")),
    ),
    Case(
        "yaml-python-object-tag",
        event(files=frontmatter('  cmd: !!python/object/apply:os.system ["rm -rf /"]\n')),
        "input-rejected",
    ),
    Case(
        "yaml-deep-flow-10k",
        event(files=frontmatter("  deep: " + "[" * 10_000 + "]" * 10_000 + "\n")),
        "input-rejected",
        check=errors_are(("frontmatter", "max_depth")),
    ),
    Case("yaml-deep-block-100", event(files=frontmatter(_yaml_block(100))), "input-rejected"),
    Case(
        "yaml-huge-anchor",
        event(
            files=frontmatter("  big: &big [" + ", ".join(["x"] * 20_000) + "]\n  again: *big\n")
        ),
        "input-rejected",
    ),
    Case(
        "yaml-merge-key",
        event(files=frontmatter("  base: &base {a: 1}\n  child:\n    <<: *base\n")),
        "input-rejected",
    ),
    Case("yaml-duplicate-keys", event(files=frontmatter("  title: again\n")), "input-rejected"),
    Case(
        "yaml-numbers-stay-strings",
        event(
            files=frontmatter(
                "  rating: 1e400\n  weight: -0\n  count: 18446744073709551616\n  ratio: .nan\n"
            )
        ),
        OK,
    ),
    # -- numbers -----------------------------------------------------------------------------
    # An unknown field is skipped unread, floats and all (docs/contracts.md, decoding).
    Case("number-float-in-unknown-event-field", event(fields(score=Raw(b"0.5"))), OK),
    Case("number-1e400-in-unknown-event-field", event(fields(score=Raw(b"1e400"))), OK),
    Case(
        "number-float-in-event-string", event(fields(actor_subject=Raw(b"1.5"))), "envelope-invalid"
    ),
    Case("number-nan-literal", event(fields(score=Raw(b"NaN"))), "envelope-invalid"),
    Case("number-infinity-literal", event(fields(score=Raw(b"-Infinity"))), "envelope-invalid"),
    Case("number-leading-zeros", event(fields(score=Raw(b"007"))), "envelope-invalid"),
    Case("number-float-in-task-input", task(task_input(ratio=Raw(b"0.25"))), "envelope-invalid"),
    Case("number-exponent-in-task-input", task(task_input(n=Raw(b"1E2"))), "envelope-invalid"),
    Case("number-float-fuel", task(limits(fuel=Raw(b"1e8"))), "envelope-invalid"),
    Case("number-negative-zero-fuel", task(limits(fuel=Raw(b"-0"))), "envelope-invalid"),
    Case("number-fuel-over-int64", task(limits(fuel=2**63)), "envelope-invalid"),
    Case("number-seed-over-uint64", task(fields(seed=2**64)), "envelope-invalid"),
    Case("number-int-over-uint64-in-task-input", task(task_input(n=2**64)), "canonical-form"),
    Case(
        "number-int-under-int64-in-task-input", task(task_input(n=-(2**63) - 1)), "canonical-form"
    ),
    Case(
        "number-negative-zero-in-task-input",
        task(
            task_input(n=Raw(b"-0")),
            input_={
                "content": product("number-negative-zero-in-task-input"),
                "parameters": {"n": 0},
                "path": _PRODUCT_PATH,
            },
        ),
        OK,
    ),
    Case("number-float-in-output", output("float"), "canonical-form"),
    Case("number-int-over-uint64-in-output", output("int-over-uint64"), "canonical-form"),
    Case("number-int-under-int64-in-output", output("int-under-int64"), "canonical-form"),
    Case("number-nan-in-output", output("nan"), "invalid-output"),
    # -- subjects ----------------------------------------------------------------------------
    Case(
        "subject-repository-mismatch",
        event(subject=lambda p: p.subjects.git_push("0193f1c2-0000-7000-8000-00000000beef")),
        "subject-mismatch",
    ),
    Case(
        "subject-extra-token",
        event(subject=lambda p: p.subjects.git_push(REPOSITORY) + ".extra"),
        "subject-mismatch",
    ),
    Case(
        "subject-repository-uppercase",
        event(subject=lambda p: p.subjects.git_push(REPOSITORY.upper())),
        "subject-mismatch",
    ),
    Case(
        "subject-repository-wildcard-in-payload",
        event(fields(repository_id="*")),
        "envelope-invalid",
    ),
    Case("subject-task-key-mismatch", task(slot="5" * 64), "subject-mismatch"),
    Case(
        "subject-task-on-another-kinds-subject",
        task(subject_kind=CATALOG_ENRICH),
        "kind-not-allowed",
    ),
    Case("subject-task-wildcard-kind", task(fields(kind="markdown.*")), "envelope-invalid"),
    Case("subject-task-kind-with-gt", task(fields(kind="markdown.>")), "envelope-invalid"),
    Case("subject-task-kind-uppercase", task(fields(kind="Markdown.Compile")), "envelope-invalid"),
    # -- headers -----------------------------------------------------------------------------
    Case(
        "header-content-type-xml",
        event(headers={"Content-Type": "application/xml"}),
        "content-type-unsupported",
    ),
    Case(
        "header-content-type-lowercase-name",
        event(headers={"content-type": "text/plain"}),
        "content-type-unsupported",
    ),
    Case(
        "header-content-type-json-with-charset",
        event(headers={"Content-Type": "application/json; charset=utf-8"}),
        OK,
    ),
    Case(
        "header-schema-version-2",
        event(headers={"GitStore-Schema-Version": "2.0"}),
        "schema-version-unsupported",
    ),
    Case(
        "header-schema-version-garbage",
        event(headers={"GitStore-Schema-Version": "v1"}),
        "schema-version-unsupported",
    ),
    Case(
        "header-payload-schema-version-2",
        event(fields(schema_version="2.0", event_id=42)),
        "schema-version-unsupported",
    ),
    Case("header-payload-schema-minor-1-9", event(fields(schema_version="1.9")), OK),
    Case(
        "header-malformed-traceparent",
        event(headers={"traceparent": "00-zz-not-a-trace-01"}),
        OK,
    ),
    Case("header-giant-request-id", event(headers={"X-Request-ID": "r" * 32 * 1024}), OK),
    Case("header-missing-msg-id", event(msg_id=None), OK),
    Case(
        "header-request-id-with-crlf-in-payload",
        event(fields(request_id="req-1\r\nX-Evil: 1")),
        "envelope-invalid",
    ),
    Case("header-same-bytes-under-two-msg-ids", _same_bytes_twice, "envelope-invalid"),
    Case(
        "header-task-content-type-text",
        task(headers={"Content-Type": "text/plain"}),
        "content-type-unsupported",
    ),
    Case(
        "header-task-schema-version-2",
        task(headers={"GitStore-Schema-Version": "2.0"}),
        "schema-version-unsupported",
    ),
    # -- forged tasks ------------------------------------------------------------------------
    Case(
        "forged-kind-of-another-role",
        task(kind=CATALOG_ENRICH, module="enrich", input_={"compiled": {}}),
        "kind-not-allowed",
    ),
    Case("forged-unknown-kind", task(fields(kind="evil.kind")), "kind-not-allowed"),
    Case("forged-module-of-another-role", task(module="enrich"), "module-not-allowed"),
    Case("forged-hostile-module-on-compile", task(module="trap"), "module-not-allowed"),
    Case(
        "forged-fuel-over-ceiling",
        task(limits={"fuel": 10**11}),
        "limits-over-ceiling",
        check=message_names("ceilings.fuel=4000000000"),
    ),
    Case(
        "forged-fuel-over-configured",
        task(limits={"fuel": 3_000_000_000}),
        "limits-over-ceiling",
        check=message_names("limits.fuel=2000000000"),
    ),
    Case(
        "forged-timeout-over-ceiling",
        task(limits={"timeout_ms": 60_000}),
        "limits-over-ceiling",
    ),
    Case(
        "forged-memory-over-configured",
        task(limits={"memory_bytes": 384 * MIB}),
        "limits-over-ceiling",
    ),
    Case("forged-zero-fuel", task(limits(fuel=0)), "envelope-invalid"),
    Case(
        "forged-path-outside-policy",
        task(
            path="secrets/keys.md",
            input_={"content": product("x"), "parameters": {}, "path": "secrets/keys.md"},
        ),
        "path-not-allowed",
    ),
    Case("forged-path-traversal", task(fields(path="../etc/passwd")), "envelope-invalid"),
    Case("forged-parent-key-malformed", task(fields(parent_key="sha256:xyz")), "envelope-invalid"),
    # No check is documented for these two: a well-formed task is run (docs/security.md).
    Case("forged-parent-key-unknown", task(fields(parent_key="sha256:" + "6" * 64)), OK),
    Case("forged-key-not-derived", task(fields(idempotency_key="sha256:" + "7" * 64)), OK),
    Case(
        "forged-key-uppercase-hex",
        task(lambda d: d.update(idempotency_key=_upper_hex(d["idempotency_key"]))),
        "envelope-invalid",
    ),
    Case("forged-task-id-with-dot", task(fields(task_id="a.b")), "envelope-invalid"),
    Case(
        "forged-logical-time-not-rfc3339",
        task(fields(logical_time="yesterday")),
        "envelope-invalid",
    ),
    Case("forged-no-input", task(fields(input=None)), "envelope-invalid"),
    Case(
        "forged-claims-in-unknown-fields",
        task(fields(admitted=True, status="approved")),
        OK,
    ),
    # -- hostile module outputs --------------------------------------------------------------
    Case("output-not-json", output("not-json"), "invalid-output"),
    Case(
        "output-lone-surrogate",
        output("lone-surrogate"),
        "canonical-form",
    ),
    Case("output-invalid-utf8", output("invalid-utf8"), "invalid-output"),
    Case("output-array", output("array"), "output-not-object"),
    Case("output-null", output("null"), "output-not-object"),
    Case("output-empty", output("empty"), "invalid-output"),
    Case("output-two-documents", output("two-documents"), "invalid-output"),
    Case("output-path-not-allowed", output("path-not-allowed"), "output-path-not-allowed"),
    Case("output-path-traversal", output("path-traversal"), "output-path-not-allowed"),
    Case("output-path-mismatch", output("path-mismatch"), "output-path-mismatch"),
    Case("output-claims-status", output("claims-status"), "output-claims-status"),
    Case("output-claims-annotation", output("claims-annotation"), "output-claims-status"),
    Case("output-claims-nested-resource", output("claims-nested"), "output-claims-status"),
    Case("output-resource-kind", output("resource-kind"), "result-kind-not-allowed"),
    Case("output-names-subjects-and-refs", output("names-subjects"), OK),
    Case(
        "output-exit-65-field-errors",
        output("exit-65-field-errors"),
        "input-rejected",
        check=errors_are(("spec.price", "required")),
    ),
    Case("output-exit-65-garbage", output("exit-65-garbage"), "input-rejected", check=errors_are()),
    Case(
        "output-exit-65-150-errors",
        output("exit-65-150-errors"),
        "input-rejected",
        check=lambda answers: _kept_errors(answers, 100),
    ),
    Case("output-exit-3", output("exit-3"), "exit-nonzero"),
    Case("output-trap", output("trap"), "trap"),
    Case("output-stack-overflow", output("stack-overflow"), "trap"),
    Case("output-fuel-exhausted", output("spin", fuel=10_000_000), "fuel-exhausted"),
    Case("output-memory-bomb", output("memory-bomb", memory_bytes=16 * MIB), "memory-limit"),
    Case("output-table-bomb", output("table-bomb"), "memory-limit"),
    Case("output-stderr-flood-then-result", output("stderr-flood-then-result"), OK),
    Case(
        "output-stderr-flood-then-trap",
        output("stderr-flood-then-trap"),
        "trap",
        check=stderr_ends_with("last words"),
    ),
]


def _kept_errors(answers: list[FailureDiagnostic], count: int) -> None:
    assert len(answers[0].errors) == count
    assert f"first {count} of 150 field errors kept" in answers[0].message


# -- the tests ----------------------------------------------------------------------------------


@in_pipeline_loop
@pytest.mark.parametrize("case", [case.param() for case in CASES])
async def test_a_hostile_input_ends_with_its_documented_code(
    pipeline: HostilePipeline, case: Case
) -> None:
    await pipeline.settled()  # what an earlier case left behind is not this case's
    redelivered = await pipeline.redelivered()
    letters = len(pipeline.dead_letters.items)
    sent = await case.send(pipeline, case.id)
    inputs = sent if isinstance(sent, list) else [sent]
    good = await pipeline.send_good()
    try:
        if case.expect != NO_TASKS:
            await pipeline.wait_ended(inputs)
        await pipeline.wait_ended([good])
        await pipeline.settled()

        for one in inputs:
            answers = pipeline.answers(one)
            summary = [(d.code, d.stage, d.message[:300]) for d in answers]
            if case.expect == OK:
                assert summary == [], "an input that should succeed failed"
                assert len(pipeline.compiled(one)) == one.tasks
                await pipeline.check_outputs(one)
            elif case.expect == NO_TASKS:
                assert summary == []
                assert pipeline.stored(one) == []
            else:
                assert [d.code for d in answers] == [case.expect], summary
                (diagnostic,) = answers
                assert (diagnostic.retryable, diagnostic.attempt) == (False, 1)
                assert diagnostic.message
                assert pipeline.compiled(one) == [], "a refused input has no result"
                if (diagnostic.stream, diagnostic.stream_seq) == (one.stream, one.seq):
                    # It names the message it answers as its publisher knows it.
                    assert diagnostic.msg_id == one.msg_id
                if case.check is not None:
                    case.check(answers)
            assert pipeline.letters(one) == []
        assert await pipeline.redelivered() == redelivered, "a delivery was retried"
        assert pipeline.dead_letters.values()[letters:] == [], "something was dead-lettered"
        assert pipeline.diagnostics.errors == [], "a stored diagnostic does not decode"
        assert pipeline.answers(good) == []
        assert sorted(r.kind for r in pipeline.stored(good)) == [CATALOG_ENRICH, MARKDOWN_COMPILE]
    finally:
        # A failing case must not leave work behind for the next one.
        with contextlib.suppress(AssertionError):
            await pipeline.settled(timeout_s=30)


@in_pipeline_loop
async def test_the_workers_are_still_up_and_serving(pipeline: HostilePipeline) -> None:
    # Every worker is bound and serving, and good pushes still go all the way through.
    assert pipeline.runtime.readiness() == (True, "")
    goods = [await pipeline.send_good() for _ in range(3)]
    await pipeline.wait_ended(goods)
    await pipeline.settled()
    assert await pipeline.backlog() == dict.fromkeys(await pipeline.backlog(), (0, 0))
    for good in goods:
        assert pipeline.answers(good) == []
        assert sorted(r.kind for r in pipeline.stored(good)) == [CATALOG_ENRICH, MARKDOWN_COMPILE]


def test_the_table_covers_every_kind_of_hostile_input() -> None:
    families = {case.id.split("-")[0] for case in CASES}
    assert families == {
        "encoding",
        "nesting",
        "size",
        "path",
        "digest",
        "yaml",
        "number",
        "subject",
        "header",
        "forged",
        "output",
    }
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.expect for case in CASES} <= set(codes.CODES) | {NO_TASKS, REFUSED}
    assert set(OUTPUT_MODULES) == _RUN_MODULES, "every hostile module is run by a case"
