"""Content addressing: large payloads travel as ``sha256:<hex>`` refs into an object store.

The ``gitstore-content`` JetStream object store holds each payload under the
object name ``<hex>`` (the 64 hex digits of its sha256; object names are kept
to characters every NATS tool accepts). A ref is only ever resolved together
with its digest check, so a corrupted or substituted object is the permanent,
named error ``content-digest-mismatch``, never silently used.

Publishers store the content first and publish the envelope after the put is
acknowledged; a ref to a missing object is therefore permanent too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

from ..errors import GitStoreAgentsError
from ._canonical import DIGEST_PREFIX, canonical_json, encode_decoded, is_digest, sha256_digest
from ._codec import MAX_ENVELOPE_BYTES, EnvelopeError, decode_json
from ._git_blob import git_blob_oid, verify_blob
from ._git_event import Blob, GitEvent
from ._task import TaskRequest

CONTENT_BUCKET = "gitstore-content"
# Larger payloads go by ref. Well below JetStream's default 1 MiB message size,
# so an event with a handful of inline files still fits one message.
DEFAULT_INLINE_LIMIT = 64 * 1024
# The largest object a ref may resolve to (the modules read at most 8 MiB).
DEFAULT_MAX_CONTENT_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0


class ContentError(GitStoreAgentsError):
    """Content behind a ref could not be used."""

    code = "content-invalid"
    retryable = False


class ContentDigestMismatchError(ContentError):
    """The object's bytes do not hash to the ref that named them."""

    code = "content-digest-mismatch"


class ContentMissingError(ContentError):
    """No object is stored under the ref (publishers store before they publish)."""

    code = "content-missing"


class ContentTooLargeError(ContentError):
    """The object behind a ref is larger than the reader accepts."""

    code = "content-too-large"


class ContentStoreUnavailableError(ContentError):
    """The object store did not answer; a retry may succeed."""

    code = "content-store-unavailable"
    retryable = True


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """Where a payload travels: inline bytes, or a ref to the content store.

    Attributes:
        content: The bytes, when at most the inline limit.
        ref: ``sha256:<hex>`` of the bytes, stored in the content store.
    """

    content: bytes | None = None
    ref: str | None = None


def object_name(ref: str) -> str:
    """The object store name of ``ref``: its 64 hex digits.

    Raises:
        ContentError: ``ref`` is not ``sha256:<64 lower-case hex>``.
    """
    if not is_digest(ref):
        raise ContentError(f"ref={ref!r} is not sha256:<64 lower-case hex>", code="ref-invalid")
    return ref.removeprefix(DIGEST_PREFIX)


class ContentStore:
    """Content-addressed payloads in a JetStream object store.

    Args:
        store: The bound object store bucket.
        inline_limit: Largest payload that travels inline (bytes).
        timeout_s: Bound on one get or put (nats-py's own have none).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._store = store
        # nats-py keeps the bucket name private; tools and tests need it.
        self.bucket: str = store._name
        self.inline_limit = inline_limit
        self._timeout_s = timeout_s

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        bucket: str = CONTENT_BUCKET,
        create: bool = True,
        replicas: int = 1,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> ContentStore:
        """Bind to ``bucket``, creating it (file storage) when ``create`` and it is absent.

        Raises:
            ContentStoreUnavailableError: the bucket is absent and ``create`` is False.
        """
        try:
            store = await js.object_store(bucket)
        except nats.js.errors.BucketNotFoundError:
            if not create:
                raise ContentStoreUnavailableError(
                    f"object store bucket {bucket!r} does not exist (run provisioning)"
                ) from None
            store = await js.create_object_store(
                bucket,
                ObjectStoreConfig(storage=StorageType.FILE, replicas=replicas),
            )
        return cls(store, inline_limit=inline_limit, timeout_s=timeout_s)

    async def put(self, data: bytes) -> str:
        """Store ``data`` (once: an object already stored under its digest is kept).

        Returns:
            The ref, ``sha256:<hex>`` of ``data``.

        Raises:
            ContentStoreUnavailableError: the store did not acknowledge in time.
        """
        ref = sha256_digest(data)
        name = object_name(ref)
        try:
            async with asyncio.timeout(self._timeout_s):
                try:
                    info = await self._store.get_info(name)
                except nats.js.errors.ObjectNotFoundError:
                    info = None
                if info is None or info.digest != _nats_digest(data):
                    await self._store.put(name, data)
        except (TimeoutError, nats.errors.Error) as exc:
            raise ContentStoreUnavailableError(f"put {ref}: {exc!r}") from None
        return ref

    async def get(self, ref: str, *, max_bytes: int = DEFAULT_MAX_CONTENT_BYTES) -> bytes:
        """The bytes ``ref`` names, verified against it.

        Raises:
            ContentError: ``ref`` is malformed (``ref-invalid``).
            ContentMissingError: nothing is stored under ``ref``.
            ContentTooLargeError: the object is larger than ``max_bytes``.
            ContentDigestMismatchError: the stored bytes hash to something else.
            ContentStoreUnavailableError: the store did not answer in time.
        """
        name = object_name(ref)
        try:
            async with asyncio.timeout(self._timeout_s):
                info = await self._store.get_info(name)
                size = info.size or 0
                if size > max_bytes:
                    raise ContentTooLargeError(
                        f"{ref} is {size} bytes, over the limit max_content_bytes={max_bytes}"
                    )
                result = await self._store.get(name)
        except nats.js.errors.ObjectNotFoundError:
            raise ContentMissingError(f"no object {name} in the content store for {ref}") from None
        except nats.js.errors.DigestMismatchError:
            raise ContentDigestMismatchError(
                f"object {name} is corrupt: its chunks do not match its own digest"
            ) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise ContentStoreUnavailableError(f"get {ref}: {exc!r}") from None
        data = bytes(result.data or b"")
        if len(data) > max_bytes:
            raise ContentTooLargeError(
                f"{ref} is {len(data)} bytes, over the limit max_content_bytes={max_bytes}"
            )
        actual = sha256_digest(data)
        if actual != ref:
            raise ContentDigestMismatchError(f"object {name} holds bytes hashing to {actual}")
        return data

    async def inline_or_ref(self, data: bytes) -> Placement:
        """Inline ``data`` up to the inline limit, else store it and return its ref."""
        if len(data) <= self.inline_limit:
            return Placement(content=data)
        return Placement(ref=await self.put(data))

    async def blob(self, path: str, data: bytes) -> Blob:
        """A ``Blob`` for a file's bytes: inline text when small and UTF-8, else a ref."""
        oid = git_blob_oid(data)
        if len(data) <= self.inline_limit:
            try:
                return Blob(path=path, blob_oid=oid, content=data.decode("utf-8"))
            except UnicodeDecodeError:
                pass
        return Blob(path=path, blob_oid=oid, ref=await self.put(data))

    async def task_input(
        self, document: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """``(input, input_ref)`` for a ``TaskRequest``: inline when small, else by ref."""
        data = canonical_json(document)
        if len(data) <= self.inline_limit:
            return document, None
        return None, await self.put(data)


async def resolve_blobs(
    event: GitEvent,
    store: ContentStore | None,
    *,
    max_bytes: int = DEFAULT_MAX_CONTENT_BYTES,
) -> GitEvent:
    """``event`` with every blob's content inline and verified against its ``blob_oid``.

    Raises:
        EnvelopeError: a blob has both or neither of ``content`` and ``ref``,
            has a ref but no store is configured, or its bytes are not UTF-8.
        BlobMismatchError: a blob's bytes do not hash to its ``blob_oid``.
        ContentError: a ref could not be resolved (see ``ContentStore.get``).
    """
    resolved: list[Blob] = []
    changed = False
    for index, blob in enumerate(event.blobs):
        where = f"$.blobs[{index}]"
        if blob.content is not None and blob.ref is not None:
            raise EnvelopeError(
                f"GitEvent: blobs[path={blob.path!r}] has both content and ref; send one",
                field=where,
            )
        if blob.ref is None:
            if blob.content is None:
                raise EnvelopeError(
                    f"GitEvent: blobs[path={blob.path!r}]: content is required "
                    "(inline 'content' or a content-store 'ref')",
                    field=where,
                )
            verify_blob(blob.path, blob.blob_oid, blob.content.encode())
            resolved.append(blob)
            continue
        if store is None:
            raise EnvelopeError(
                f"GitEvent: blobs[path={blob.path!r}].ref needs a content store, "
                "and this worker has none configured",
                field=f"{where}.ref",
                code="content-store-missing",
            )
        data = await store.get(blob.ref, max_bytes=max_bytes)
        verify_blob(blob.path, blob.blob_oid, data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError(
                f"GitEvent: blobs[path={blob.path!r}] content behind {blob.ref} is not UTF-8 text",
                field=f"{where}.ref",
            ) from None
        resolved.append(msgspec.structs.replace(blob, content=text, ref=None))
        changed = True
    return msgspec.structs.replace(event, blobs=resolved) if changed else event


async def resolve_task_input(
    task: TaskRequest,
    store: ContentStore | None,
    *,
    max_bytes: int = MAX_ENVELOPE_BYTES,
) -> bytes:
    """The canonical stdin bytes of ``task``, checked against ``input_digest``.

    Raises:
        EnvelopeError: both or neither of ``input``/``input_ref`` are set, the
            input does not match ``input_digest``, a ref needs a missing store,
            or the input behind the ref is over ``max_bytes`` (``input-too-large``).
        ContentError: the ref could not be resolved.
    """
    if (task.input is None) == (task.input_ref is None):
        raise EnvelopeError(
            "TaskRequest: exactly one of input and input_ref must be set", field="$.input"
        )
    if task.input is not None:
        data = encode_decoded(task.input)
    else:
        assert task.input_ref is not None
        if store is None:
            raise EnvelopeError(
                "TaskRequest: input_ref needs a content store, and this worker has none configured",
                field="$.input_ref",
                code="content-store-missing",
            )
        try:
            data = await store.get(task.input_ref, max_bytes=max_bytes)
        except ContentTooLargeError as exc:
            raise EnvelopeError(
                f"TaskRequest: the input behind input_ref is too large: {exc.message}",
                field="$.input_ref",
                code="input-too-large",
            ) from None
        if sha256_digest(data) != task.input_digest:
            # The stored bytes must be the canonical form, or their digest would
            # not be the input digest every key was derived from.
            try:
                document = decode_json(data, max_bytes=max_bytes, what="TaskRequest input")
            except EnvelopeError as exc:
                raise ContentError(
                    f"the object behind input_ref {task.input_ref} is not a JSON document: "
                    f"{exc.message}"
                ) from None
            data = canonical_json(document)
    digest = sha256_digest(data)
    if digest != task.input_digest:
        raise EnvelopeError(
            f"TaskRequest: input_digest is {task.input_digest} but the input hashes to {digest}",
            field="$.input_digest",
            code="input-digest-mismatch",
        )
    return data


def _nats_digest(data: bytes) -> str:
    """The digest nats object stores keep for ``data`` (``SHA-256=<base64url>``)."""
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
