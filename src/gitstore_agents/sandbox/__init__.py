"""Sandbox: bounded, deterministic execution of WASI task modules.

A task module is a WASI preview-1 command: input on stdin, output on stdout,
logs on stderr, exit code 0 for success.
"""

from ._limits import SandboxLimits
from ._outcome import Outcome, RunResult
from ._reference import REFERENCE_MODULES, reference_module_path
from ._registry import ModuleRegistry
from ._runner import CompiledModule, ModuleError, Sandbox, module_digest

# The name other modules (and the reference-task tests) use for run limits.
Limits = SandboxLimits

__all__ = [
    "REFERENCE_MODULES",
    "CompiledModule",
    "Limits",
    "ModuleError",
    "ModuleRegistry",
    "Outcome",
    "RunResult",
    "Sandbox",
    "SandboxLimits",
    "module_digest",
    "reference_module_path",
]
