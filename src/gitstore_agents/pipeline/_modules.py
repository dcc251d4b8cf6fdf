"""Module references resolved to digests and compiled modules (the warm cache).

``reference:<name>`` reads a packaged module, ``file:<path>`` a local file,
``sha256:<hex>`` the object named by that digest in the modules object store.
Loading by digest goes through the sandbox's ``ModuleRegistry`` (memory →
disk cache → object store); every module is verified against its digest
before it is compiled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..config import ModuleRef, ModuleSource, RoleConfig, parse_module_ref
from ..consumers import ContentUnavailableError
from ..sandbox import (
    CompiledModule,
    ModuleRegistry,
    module_digest,
    reference_module_path,
)


class ModuleLoader:
    """Turns configured module references into digests and compiled modules.

    Args:
        registry: Compiled modules by digest, backed by the module object store.
    """

    def __init__(self, registry: ModuleRegistry) -> None:
        self._registry = registry
        self._digests: dict[str, str] = {}

    async def digest(self, reference: str) -> str:
        """The digest a reference names (reads local files, never the object store)."""
        cached = self._digests.get(reference)
        if cached is not None:
            return cached
        digest = await asyncio.to_thread(reference_digest, reference)
        self._digests[reference] = digest
        return digest

    async def load(self, reference: str) -> CompiledModule:
        """Verify and compile the module ``reference`` names (cached by digest).

        Raises:
            ContentUnavailableError: a local module file cannot be read.
            UnknownModuleError: the object store does not have it (yet; retryable).
            ModuleStoreError: the object store could not be read (retryable).
            ModuleError: the bytes do not match the digest or are not a usable module.
        """
        ref = parse_module_ref(reference)
        if ref.source is ModuleSource.OBJECT_STORE:
            return await self.ensure(ref.value)
        wasm = await asyncio.to_thread(_read_local, ref)
        digest = await asyncio.to_thread(self._registry.register, wasm)
        self._digests[reference] = digest
        return await self._registry.load(digest)

    async def ensure(self, digest: str) -> CompiledModule:
        """The compiled module for ``digest``, fetched from the object store if needed."""
        return await self._registry.load(digest)


def reference_digest(reference: str) -> str:
    """The digest a module reference names (reads local files, never the object store).

    Raises:
        ConfigError: the reference is malformed.
        ContentUnavailableError: a local module file cannot be read.
    """
    ref = parse_module_ref(reference)
    if ref.source is ModuleSource.OBJECT_STORE:
        return ref.value
    return module_digest(_read_local(ref))


def configured_digests(role: RoleConfig) -> dict[str, frozenset[str]]:
    """Each task kind of ``role`` to the digests of the modules it may run.

    A kind's own module and its extensions' (an extension without a module
    runs the kind's), resolved locally by ``reference_digest``.
    """
    return {
        kind: frozenset(
            reference_digest(ref)
            for ref in [config.module, *(e.module for e in config.extensions if e.module)]
        )
        for kind, config in role.kinds.items()
    }


def _read_local(ref: ModuleRef) -> bytes:
    path = reference_module_path(ref.value) if ref.source is ModuleSource.REFERENCE else None
    path = path or Path(ref.value)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContentUnavailableError(
            f"module {ref}: cannot read {path}: {exc.strerror or exc}", retryable=False
        ) from None
