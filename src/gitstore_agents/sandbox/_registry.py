"""Modules addressed by digest: the only way a task names the code it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ._errors import UnknownModuleError
from ._module_store import ModuleStore
from ._reference import REFERENCE_MODULES, reference_module_path
from ._runner import CompiledModule, Sandbox


class ModuleRegistry:
    """Compiled modules by ``sha256:`` digest, from local files or the module bucket.

    Lookups go memory → the sandbox's disk cache → the object store. Bytes
    are verified against the digest before they are compiled, and each digest
    is compiled once.

    Args:
        sandbox: Compiles (and caches) the modules.
        store: The module bucket to fetch unknown digests from (None: local only).
    """

    def __init__(self, sandbox: Sandbox, store: ModuleStore | None = None) -> None:
        self._sandbox = sandbox
        self._store = store
        self._loading: dict[str, asyncio.Task[CompiledModule]] = {}

    def register(self, wasm: bytes, expected_digest: str | None = None) -> str:
        """Verify and compile ``wasm``; return its digest.

        Raises:
            ModuleError: digest mismatch or not a usable module.
        """
        return self._sandbox.compile(wasm, expected_digest).digest

    def register_file(self, path: Path, expected_digest: str | None = None) -> str:
        """Register the module stored at ``path``; return its digest."""
        return self.register(path.read_bytes(), expected_digest)

    def register_reference_modules(self) -> dict[str, str]:
        """Register every packaged reference module; return name -> digest."""
        return {name: self.register_file(reference_module_path(name)) for name in REFERENCE_MODULES}

    def get(self, digest: str) -> CompiledModule:
        """The compiled module for ``digest`` if it is already registered or cached on disk.

        Blocking (it may read the disk cache); async callers use :meth:`load`.

        Raises:
            UnknownModuleError: no module with that digest is known locally.
        """
        compiled = self._sandbox.cached(digest)
        if compiled is None:
            raise UnknownModuleError(f"module_digest={digest} is not in the module registry")
        return compiled

    async def load(self, digest: str) -> CompiledModule:
        """The compiled module for ``digest``, fetching it from the bucket when needed.

        Concurrent loads of one digest share a single fetch and compile; the
        blocking parts run in a thread so the event loop keeps serving.

        Raises:
            UnknownModuleError: not known locally and not in the bucket.
            ModuleError: the stored bytes do not match the digest or do not compile.
            ModuleStoreError: the bucket could not be read.
        """
        compiled = self._sandbox.loaded(digest)
        if compiled is not None:
            return compiled
        task = self._loading.get(digest)
        if task is None:
            task = asyncio.create_task(self._load(digest))
            self._loading[digest] = task
            task.add_done_callback(lambda _: self._loading.pop(digest, None))
        return await asyncio.shield(task)

    async def _load(self, digest: str) -> CompiledModule:
        compiled = await asyncio.to_thread(self._sandbox.cached, digest)
        if compiled is not None:
            return compiled
        if self._store is None:
            raise UnknownModuleError(
                f"module_digest={digest} is not in the module registry (no module store)"
            )
        wasm = await self._store.fetch(digest)
        return await asyncio.to_thread(self._sandbox.compile, wasm, digest)
