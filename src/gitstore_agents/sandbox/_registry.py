"""Modules addressed by digest: the only way a task names the code it runs."""

from __future__ import annotations

from pathlib import Path

from ._outcome import Outcome
from ._reference import REFERENCE_MODULES, reference_module_path
from ._runner import CompiledModule, ModuleError, Sandbox


class ModuleRegistry:
    """Compiled modules by ``sha256:`` digest.

    Args:
        sandbox: Compiles (and caches) the modules.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._modules: dict[str, CompiledModule] = {}

    def register(self, wasm: bytes, expected_digest: str | None = None) -> str:
        """Verify and compile ``wasm``; return its digest."""
        compiled = self._sandbox.compile(wasm, expected_digest)
        self._modules[compiled.digest] = compiled
        return compiled.digest

    def register_file(self, path: Path) -> str:
        """Register the module stored at ``path``."""
        return self.register(path.read_bytes())

    def register_reference_modules(self) -> dict[str, str]:
        """Register every packaged reference module; return name -> digest."""
        return {name: self.register_file(reference_module_path(name)) for name in REFERENCE_MODULES}

    def get(self, digest: str) -> CompiledModule:
        """The compiled module for ``digest``.

        Raises:
            ModuleError: no module with that digest is registered.
        """
        try:
            return self._modules[digest]
        except KeyError:
            raise ModuleError(
                Outcome.MODULE_INVALID, f"module_digest={digest} is not in the module registry"
            ) from None
