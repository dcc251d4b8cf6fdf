"""Module references resolved to digests and compiled modules (the warm cache).

``reference:<name>`` reads a packaged module, ``file:<path>`` a local file,
``sha256:<hex>`` the object named by that digest in the modules object store.
Every module is verified against its digest before it is compiled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from ..config import ModuleRef, ModuleSource, Topology, parse_module_ref
from ..sandbox import (
    REFERENCE_MODULES,
    CompiledModule,
    ModuleError,
    ModuleRegistry,
    Outcome,
    module_digest,
    reference_module_path,
)
from ._errors import ContentDigestMismatchError, ContentUnavailableError


class ModuleLoader:
    """Turns configured module references into digests and compiled modules.

    Args:
        registry: Where compiled modules are kept (by digest).
        js: JetStream context for the modules object store (None: no store).
        topology: Names the modules bucket.
    """

    def __init__(
        self, registry: ModuleRegistry, js: JetStreamContext | None, topology: Topology
    ) -> None:
        self._registry = registry
        self._js = js
        self._topology = topology
        self._digests: dict[str, str] = {}

    async def digest(self, reference: str) -> str:
        """The digest a reference names (reads local files, never the object store)."""
        cached = self._digests.get(reference)
        if cached is not None:
            return cached
        ref = parse_module_ref(reference)
        if ref.source is ModuleSource.OBJECT_STORE:
            digest = ref.value
        else:
            digest = module_digest(await asyncio.to_thread(_read_local, ref))
        self._digests[reference] = digest
        return digest

    async def load(self, reference: str) -> CompiledModule:
        """Verify and compile the module ``reference`` names (cached by digest).

        Raises:
            ContentUnavailableError: the object store does not have it (yet).
            ContentDigestMismatchError: the stored bytes do not match the digest.
            ModuleError: the bytes are not a usable module.
        """
        ref = parse_module_ref(reference)
        if ref.source is ModuleSource.OBJECT_STORE:
            return await self.ensure(ref.value)
        wasm = await asyncio.to_thread(_read_local, ref)
        digest = await asyncio.to_thread(self._registry.register, wasm)
        self._digests[reference] = digest
        return self._registry.get(digest)

    async def ensure(self, digest: str) -> CompiledModule:
        """The compiled module for ``digest``, fetched from the object store if needed."""
        try:
            return self._registry.get(digest)
        except ModuleError:
            pass
        wasm = await fetch_object(self._js, self._topology.modules_bucket, digest)
        try:
            await asyncio.to_thread(self._registry.register, wasm, digest)
        except ModuleError as exc:
            if exc.outcome is Outcome.DIGEST_MISMATCH:
                raise ContentDigestMismatchError(str(exc)) from None
            raise
        return self._registry.get(digest)


def _read_local(ref: ModuleRef) -> bytes:
    path = reference_module_path(ref.value) if ref.source is ModuleSource.REFERENCE else None
    path = path or Path(ref.value)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContentUnavailableError(
            f"module {ref}: cannot read {path}: {exc.strerror or exc}", retryable=False
        ) from None


async def fetch_object(js: JetStreamContext | None, bucket: str, name: str) -> bytes:
    """Bytes of object ``name`` in object store ``bucket``.

    Raises:
        ContentUnavailableError: no store, no such object, or NATS unavailable.
    """
    if js is None:
        raise ContentUnavailableError(f"{name} is not cached and no object store is connected")
    try:
        store = await js.object_store(bucket)
        result = await store.get(name)
    except nats.js.errors.NotFoundError:
        raise ContentUnavailableError(f"object {name} is not in object store {bucket}") from None
    except (nats.errors.Error, TimeoutError) as exc:
        raise ContentUnavailableError(f"object store {bucket}: {exc!r}") from None
    if result.data is None:
        raise ContentUnavailableError(f"object {name} in {bucket} has no data")
    return bytes(result.data)


async def put_module(js: JetStreamContext, topology: Topology, wasm: bytes) -> str:
    """Store ``wasm`` in the modules object store under its digest; return the digest.

    Idempotent: a module already stored under its digest is not uploaded again.
    """
    digest = module_digest(wasm)
    store = await js.object_store(topology.modules_bucket)
    try:
        info = await store.get_info(digest)
    except nats.js.errors.NotFoundError:
        info = None
    if info is None or info.deleted:
        await store.put(digest, wasm)
    return digest


async def upload_reference_modules(js: JetStreamContext, topology: Topology) -> dict[str, str]:
    """Store every packaged reference module that exists; return name -> digest."""
    uploaded: dict[str, str] = {}
    for name in REFERENCE_MODULES:
        path = reference_module_path(name)
        if not path.is_file():
            continue
        wasm = await asyncio.to_thread(path.read_bytes)
        uploaded[name] = await put_module(js, topology, wasm)
    return uploaded
