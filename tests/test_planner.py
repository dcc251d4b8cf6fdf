"""The planner derives tasks deterministically from a git event."""

from __future__ import annotations

import msgspec
import pytest

from gitstore_agents.config import MARKDOWN_COMPILE
from gitstore_agents.envelopes import (
    Blob,
    BlobMismatchError,
    EnvelopeError,
    GitEvent,
    TaskRequest,
    canonical_json,
    git_blob_oid,
)
from gitstore_agents.pipeline import plan_tasks

from .support import EXAMPLES, example_event

MODULES = {MARKDOWN_COMPILE: "sha256:" + "ab" * 32}


def _tasks(modules: dict[str, str] = MODULES) -> list[TaskRequest]:
    return [d.task for d in plan_tasks(example_event(), "evt-1", modules)]


def test_one_task_per_changed_markdown_blob_in_path_order() -> None:
    tasks = _tasks()
    assert [t.path for t in tasks] == [
        "products/trail-collection.md",
        "products/trail-runner-gtx.md",
    ]
    assert all(t.kind == MARKDOWN_COMPILE for t in tasks)
    assert all(t.module_digest == MODULES[MARKDOWN_COMPILE] for t in tasks)


def test_replanning_derives_byte_identical_tasks() -> None:
    first = [d.payload for d in plan_tasks(example_event(), "evt-1", MODULES)]
    second = [d.payload for d in plan_tasks(example_event(), "evt-1", MODULES)]
    assert first == second
    # The bytes the planner publishes are the task's canonical form.
    assert first == [canonical_json(t) for t in _tasks()]


def test_new_module_digest_derives_new_idempotency_keys() -> None:
    old = _tasks()
    new = _tasks({MARKDOWN_COMPILE: "sha256:" + "cd" * 32})
    assert {t.idempotency_key for t in old}.isdisjoint({t.idempotency_key for t in new})
    assert [t.input_digest for t in old] == [t.input_digest for t in new]


def test_unchanged_and_non_markdown_blobs_are_skipped() -> None:
    content = "---\nkind: Product\n---\n"
    blob = Blob(path="products/a.md", blob_oid=git_blob_oid(content.encode()), content=content)
    event = msgspec.structs.replace(example_event(), changed_paths=["assets/x.png"], blobs=[blob])
    assert plan_tasks(event, "evt-1", MODULES) == []


def test_blob_oid_mismatch_is_a_named_error() -> None:
    event = example_event()
    forged = msgspec.structs.replace(event.blobs[0], content=event.blobs[0].content + "tampered")
    event = msgspec.structs.replace(event, blobs=[forged, *event.blobs[1:]])
    with pytest.raises(BlobMismatchError, match=r"blobs\[path='products/trail-runner-gtx.md'\]"):
        plan_tasks(event, "evt-1", MODULES)


def test_markdown_blob_without_content_is_rejected() -> None:
    event = example_event()
    bare = msgspec.structs.replace(event.blobs[0], content=None)
    event = msgspec.structs.replace(event, blobs=[bare])
    with pytest.raises(EnvelopeError, match="content is required"):
        plan_tasks(event, "evt-1", MODULES)


def test_example_event_carries_the_example_files() -> None:
    event: GitEvent = example_event()
    for blob in event.blobs:
        on_disk = (EXAMPLES / blob.path).read_text()
        assert blob.content == on_disk, f"the packaged sample event is stale for {blob.path}"
        assert blob.blob_oid == git_blob_oid(on_disk.encode())
