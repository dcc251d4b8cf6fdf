"""Content refs against a real JetStream object store: verified on every read."""

from __future__ import annotations

import uuid
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from gitstore_agents.envelopes import (
    Blob,
    BlobMismatchError,
    ContentDigestMismatchError,
    ContentError,
    ContentMissingError,
    ContentStore,
    ContentStoreUnavailableError,
    ContentTooLargeError,
    EnvelopeError,
    GitEvent,
    TaskRequest,
    canonical_json,
    decode,
    git_blob_oid,
    object_name,
    resolve_blobs,
    resolve_task_input,
    sha256_digest,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
JACKET = decode((EXAMPLES / "GitEvent.handwritten.json").read_bytes(), GitEvent).blobs[0]
JACKET_BYTES = (JACKET.content or "").encode()


@pytest.fixture
async def store(nc: Client) -> ContentStore:
    # A unique bucket: a shared $NATS_URL server must not see other tests' objects.
    return await ContentStore.open(nc.jetstream(), bucket=f"content-{uuid.uuid4().hex[:10]}")


def _ref_event(ref: str, blob_oid: str = JACKET.blob_oid) -> GitEvent:
    event = decode((EXAMPLES / "GitEvent.ref.json").read_bytes(), GitEvent)
    blob = msgspec.structs.replace(event.blobs[0], ref=ref, blob_oid=blob_oid)
    return msgspec.structs.replace(event, blobs=[blob])


async def test_put_then_get_returns_the_bytes_by_their_digest(store: ContentStore) -> None:
    ref = await store.put(JACKET_BYTES)
    assert ref == sha256_digest(JACKET_BYTES)
    assert await store.put(JACKET_BYTES) == ref, "putting the same bytes again is a no-op"
    assert await store.get(ref) == JACKET_BYTES
    assert object_name(ref) == ref.removeprefix("sha256:")


async def test_a_corrupted_object_is_a_permanent_named_error(
    nc: Client, store: ContentStore
) -> None:
    ref = sha256_digest(b"what the ref promises")
    # Someone writes other bytes under that name, bypassing ContentStore.put.
    raw = await nc.jetstream().object_store(store.bucket)
    await raw.put(object_name(ref), b"something else entirely")
    with pytest.raises(ContentDigestMismatchError, match=object_name(ref)) as caught:
        await store.get(ref)
    assert caught.value.code == "content-digest-mismatch"
    assert not caught.value.retryable


async def test_missing_and_oversized_objects(store: ContentStore) -> None:
    with pytest.raises(ContentMissingError) as missing:
        await store.get(sha256_digest(b"never stored"))
    assert not missing.value.retryable
    ref = await store.put(b"x" * 1000)
    with pytest.raises(ContentTooLargeError, match="max_content_bytes=999"):
        await store.get(ref, max_bytes=999)
    with pytest.raises(ContentError, match="ref="):
        await store.get("sha256:NOTHEX")


async def test_open_without_create_names_the_missing_bucket(nc: Client) -> None:
    with pytest.raises(ContentStoreUnavailableError, match="no-such-bucket"):
        await ContentStore.open(nc.jetstream(), bucket="no-such-bucket", create=False)


async def test_small_payloads_travel_inline_large_ones_by_ref(store: ContentStore) -> None:
    store.inline_limit = 16
    assert (await store.inline_or_ref(b"small")).content == b"small"
    placed = await store.inline_or_ref(b"l" * 17)
    assert placed.content is None
    assert placed.ref is not None
    assert await store.get(placed.ref) == b"l" * 17
    blob = await store.blob("products/x.md", JACKET_BYTES)
    assert blob.content is None
    assert blob.ref == sha256_digest(JACKET_BYTES)
    assert blob.blob_oid == JACKET.blob_oid
    binary = await store.blob("img/x.png", b"\x89PNG")
    assert binary.content is None, "bytes that are not UTF-8 never travel as text"
    store.inline_limit = 1 << 20
    assert (await store.blob("products/x.md", JACKET_BYTES)).content == JACKET.content


async def test_resolve_blobs_inlines_and_verifies_refs(store: ContentStore) -> None:
    ref = await store.put(JACKET_BYTES)
    resolved = await resolve_blobs(_ref_event(ref), store)
    assert resolved.blobs[0].content == JACKET.content
    assert resolved.blobs[0].ref is None


async def test_resolve_blobs_checks_blob_oid_against_the_stored_bytes(
    store: ContentStore,
) -> None:
    ref = await store.put(JACKET_BYTES)
    with pytest.raises(BlobMismatchError, match="summit-shell-jacket"):
        await resolve_blobs(_ref_event(ref, blob_oid=git_blob_oid(b"other")), store)


async def test_resolve_blobs_refuses_ambiguous_or_unresolvable_blobs(
    store: ContentStore,
) -> None:
    ref = await store.put(JACKET_BYTES)
    event = _ref_event(ref)
    both = msgspec.structs.replace(event.blobs[0], content=JACKET.content)
    with pytest.raises(EnvelopeError, match="both content and ref") as caught:
        await resolve_blobs(msgspec.structs.replace(event, blobs=[both]), store)
    assert caught.value.field == "$.blobs[0]"
    neither = Blob(path=JACKET.path, blob_oid=JACKET.blob_oid)
    with pytest.raises(EnvelopeError, match="content is required"):
        await resolve_blobs(msgspec.structs.replace(event, blobs=[neither]), store)
    with pytest.raises(EnvelopeError, match="content store") as no_store:
        await resolve_blobs(event, None)
    assert no_store.value.code == "content-store-missing"
    binary = await store.put(b"\xff\xfe")
    with pytest.raises(EnvelopeError, match="not UTF-8"):
        await resolve_blobs(_ref_event(binary, blob_oid=git_blob_oid(b"\xff\xfe")), store)


async def test_task_input_by_ref_resolves_to_the_digested_bytes(store: ContentStore) -> None:
    task = decode((EXAMPLES / "TaskRequest.json").read_bytes(), TaskRequest)
    assert task.input is not None
    inline_bytes = await resolve_task_input(task, None)
    assert sha256_digest(inline_bytes) == task.input_digest
    store.inline_limit = 10
    document, ref = await store.task_input(task.input)
    assert document is None
    assert ref == task.input_digest, "an input's ref is its digest"
    by_ref = msgspec.structs.replace(task, input=None, input_ref=ref)
    assert await resolve_task_input(by_ref, store) == inline_bytes
    forged = msgspec.structs.replace(task, input={**task.input, "path": "products/other.md"})
    with pytest.raises(EnvelopeError, match="input_digest") as caught:
        await resolve_task_input(forged, store)
    assert caught.value.code == "input-digest-mismatch"
    with pytest.raises(EnvelopeError, match="exactly one"):
        await resolve_task_input(msgspec.structs.replace(task, input_ref=ref), store)
    assert canonical_json(task.input) == inline_bytes
