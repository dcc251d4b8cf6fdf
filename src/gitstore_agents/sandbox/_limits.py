"""Per-run limits of the sandbox."""

from __future__ import annotations

import msgspec

from ._errors import SandboxError

MIB = 1024 * 1024


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Hard limits for one module run. Every field must be positive.

    Attributes:
        fuel: Deterministic CPU budget (wasmtime fuel units; about one per
            instruction, plus a fixed charge per host call).
        timeout_ms: Wall-clock deadline, enforced by epoch interruption.
        memory_bytes: Cap on the linear memory's size.
        max_table_elements: Cap on each table's element count.
        max_instances: Module instances one run may create.
        max_tables: Tables one run may create.
        max_memories: Linear memories one run may create (1: the memory cap
            is then the total).
        max_input_bytes: Largest stdin accepted; larger input is refused unrun.
        max_stdout_bytes: Output beyond this stops the run (``output-too-large``).
        max_stderr_bytes: Log bytes kept (the tail); older ones are dropped.
    """

    fuel: int = 200_000_000
    timeout_ms: int = 2_000
    memory_bytes: int = 64 * MIB
    max_table_elements: int = 100_000
    max_instances: int = 1
    max_tables: int = 4
    max_memories: int = 1
    max_input_bytes: int = 8 * MIB
    max_stdout_bytes: int = 4 * MIB
    max_stderr_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise SandboxError(f"limits.{name}={value!r} must be a positive integer")
