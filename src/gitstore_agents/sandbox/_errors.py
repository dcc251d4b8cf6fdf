"""Errors the sandbox raises (as opposed to outcomes of a run, which are data)."""

from __future__ import annotations

from ..errors import GitStoreAgentsError
from ._outcome import Outcome


class SandboxError(GitStoreAgentsError):
    """Settings of a run are invalid (limits, logical time); the caller's bug."""

    code = "sandbox-settings-invalid"


class ModuleError(SandboxError):
    """A module could not be loaded; ``outcome`` says why (its value is the code).

    Attributes:
        outcome: ``module-invalid`` or ``digest-mismatch`` (both deterministic).
    """

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message, code=outcome.value, retryable=not outcome.deterministic)
        self.outcome = outcome


class UnknownModuleError(SandboxError):
    """No module with the digest is registered or stored (yet): a push may fix it."""

    code = "module-not-found"
    retryable = True


class ModuleStoreError(SandboxError):
    """The module object store could not be reached or read."""

    code = "module-store-unavailable"
    retryable = True
