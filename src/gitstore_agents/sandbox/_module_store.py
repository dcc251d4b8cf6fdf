"""WASI modules in a JetStream object store bucket, named by their digest."""

from __future__ import annotations

import asyncio

import msgspec
import nats.errors
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from ._errors import ModuleError, ModuleStoreError, UnknownModuleError
from ._outcome import Outcome
from ._reference import REFERENCE_MODULES, reference_module_path
from ._runner import module_digest

MODULES_BUCKET = "gitstore-modules"
"""Default object store bucket of the module registry."""

# Errors that mean "the store could not answer", as opposed to "no such module".
_TRANSIENT = (nats.errors.Error, OSError)


class StoredModule(msgspec.Struct, frozen=True, kw_only=True):
    """One module in the bucket.

    Attributes:
        digest: ``sha256:<hex>`` of the module bytes (also the object name).
        size: Bytes.
        description: Free text given at push time (typically the file name).
        mtime: When it was stored (RFC 3339, as the server reports it).
    """

    digest: str
    size: int
    description: str = ""
    mtime: str = ""


class ModuleStore:
    """The module bucket: ``push`` by bytes, ``fetch`` by digest, ``list``.

    The object name is the module's digest, so a name can never point at other
    bytes; ``fetch`` still re-hashes what it receives before returning it.

    Args:
        objects: The bucket, from :func:`provision_module_store` or :meth:`open`.
    """

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str = MODULES_BUCKET) -> ModuleStore:
        """Bind to an existing bucket.

        Raises:
            ModuleStoreError: the bucket does not exist or the server did not answer.
        """
        try:
            return cls(await js.object_store(bucket))
        except BucketNotFoundError:
            raise ModuleStoreError(
                f"object store bucket={bucket!r} does not exist (run provisioning first)"
            ) from None
        except _TRANSIENT as exc:
            raise ModuleStoreError(f"object store bucket={bucket!r}: {exc!r}") from None

    async def push(self, wasm: bytes, *, description: str = "") -> str:
        """Store ``wasm`` under its digest (a no-op when it is already there); return it."""
        digest = module_digest(wasm)
        try:
            try:
                info = await self._objects.get_info(digest)
            except NotFoundError:
                info = None
            if info is None or info.size != len(wasm):
                meta = api.ObjectMeta(name=digest, description=description or None)
                await self._objects.put(digest, bytes(wasm), meta=meta)
        except _TRANSIENT as exc:
            raise ModuleStoreError(f"storing module {digest}: {exc!r}") from None
        return digest

    async def fetch(self, digest: str) -> bytes:
        """The bytes of module ``digest``, verified against it.

        Raises:
            UnknownModuleError: no module with that digest is stored.
            ModuleError: ``digest-mismatch`` when the stored bytes hash differently.
            ModuleStoreError: the store could not be read.
        """
        try:
            result = await self._objects.get(digest)
        except NotFoundError:
            raise UnknownModuleError(
                f"module_digest={digest} is not in the module object store"
            ) from None
        except _TRANSIENT as exc:
            raise ModuleStoreError(f"fetching module {digest}: {exc!r}") from None
        data = bytes(result.data or b"")
        actual = module_digest(data)
        if actual != digest:
            raise ModuleError(
                Outcome.DIGEST_MISMATCH,
                f"object {digest} in the module store holds bytes hashing to {actual}",
            )
        return data

    async def list(self) -> list[StoredModule]:
        """Every stored module, sorted by digest."""
        try:
            infos = await self._objects.list(ignore_deletes=True)
        except NotFoundError:
            return []
        except _TRANSIENT as exc:
            raise ModuleStoreError(f"listing modules: {exc!r}") from None
        return sorted(
            (
                StoredModule(
                    digest=info.name,
                    size=info.size or 0,
                    description=info.description or "",
                    mtime=info.mtime or "",
                )
                for info in infos
                if not info.deleted
            ),
            key=lambda module: module.digest,
        )


async def provision_module_store(
    js: JetStreamContext, bucket: str = MODULES_BUCKET, *, replicas: int = 1
) -> ModuleStore:
    """Bind to the module bucket, creating it (file storage) when it is missing."""
    try:
        return ModuleStore(await js.object_store(bucket))
    except BucketNotFoundError:
        pass
    except _TRANSIENT as exc:
        raise ModuleStoreError(f"object store bucket={bucket!r}: {exc!r}") from None
    config = api.ObjectStoreConfig(
        description="gitstore-agents WASI modules by sha256 digest",
        storage=api.StorageType.FILE,
        replicas=replicas,
    )
    try:
        return ModuleStore(await js.create_object_store(bucket, config=config))
    except _TRANSIENT as exc:
        raise ModuleStoreError(f"creating object store bucket={bucket!r}: {exc!r}") from None


async def upload_reference_modules(store: ModuleStore) -> dict[str, str]:
    """Store every packaged reference module that exists; return name -> digest."""
    uploaded: dict[str, str] = {}
    for name in REFERENCE_MODULES:
        path = reference_module_path(name)
        if not path.is_file():
            continue
        wasm = await asyncio.to_thread(path.read_bytes)
        uploaded[name] = await store.push(wasm, description=f"reference:{name}")
    return uploaded
