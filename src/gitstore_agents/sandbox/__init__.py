"""Sandbox: bounded, deterministic execution of WASI task modules.

A task module is a WASI preview-1 command: input on stdin, output on stdout,
logs on stderr, exit code 0 for success. Modules are addressed by the sha256
digest of their bytes and come from a :class:`ModuleRegistry`.
"""

from ._artifacts import ArtifactCache, default_cache_dir
from ._engine import POOL_SLOTS
from ._errors import ModuleError, ModuleStoreError, SandboxError, UnknownModuleError
from ._limits import SandboxLimits
from ._logical_time import logical_time_ns
from ._module_store import (
    MODULES_BUCKET,
    ModuleStore,
    StoredModule,
    provision_module_store,
    upload_reference_modules,
)
from ._outcome import Outcome, RunResult
from ._reference import REFERENCE_MODULES, reference_module_path
from ._registry import ModuleRegistry
from ._report import refusal_report, run_report
from ._runner import CompiledModule, Sandbox, module_digest

# The name other modules (and the reference-task tests) use for run limits.
Limits = SandboxLimits

__all__ = [
    "MODULES_BUCKET",
    "POOL_SLOTS",
    "REFERENCE_MODULES",
    "ArtifactCache",
    "CompiledModule",
    "Limits",
    "ModuleError",
    "ModuleRegistry",
    "ModuleStore",
    "ModuleStoreError",
    "Outcome",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "StoredModule",
    "UnknownModuleError",
    "default_cache_dir",
    "logical_time_ns",
    "module_digest",
    "provision_module_store",
    "reference_module_path",
    "refusal_report",
    "run_report",
    "upload_reference_modules",
]
