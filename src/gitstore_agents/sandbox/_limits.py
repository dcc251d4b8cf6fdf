"""Per-run limits of the sandbox."""

from __future__ import annotations

import msgspec


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Hard limits for one module run.

    Attributes:
        fuel: Deterministic CPU budget (wasmtime fuel units).
        timeout_ms: Wall-clock deadline, enforced by epoch interruption.
        memory_bytes: Cap on linear memory growth.
        max_stdout_bytes: Output beyond this is dropped and reported.
        max_stderr_bytes: Logs beyond this are dropped (the tail is not kept).
    """

    fuel: int = 200_000_000
    timeout_ms: int = 2_000
    memory_bytes: int = 64 * 1024 * 1024
    max_stdout_bytes: int = 4 * 1024 * 1024
    max_stderr_bytes: int = 64 * 1024
