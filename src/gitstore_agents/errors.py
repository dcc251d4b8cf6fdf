"""The one error base class of the package.

Whether a retry can help is decided where the error is raised (``retryable``),
so the worker maps errors to ``term`` or ``nak`` in a single place.
"""

from __future__ import annotations


class GitStoreAgentsError(Exception):
    """Base of every error this package raises on purpose.

    Attributes:
        code: Stable, machine-readable error code (``kebab-case``); callers and
            the control plane branch on it, never on the message text.
        message: What failed, naming the field or limit, for a human to act on.
        retryable: True when the same input could succeed later (transient).
    """

    code: str = "internal"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ConfigError(GitStoreAgentsError):
    """Configuration is invalid; the process refuses to start."""

    code = "config-invalid"
