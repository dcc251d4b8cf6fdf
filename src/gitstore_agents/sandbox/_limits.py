"""Per-run limits of the sandbox."""

from __future__ import annotations

import msgspec

from ._engine import MEMORY_CEILING_BYTES, MIB, TABLE_ELEMENTS_CEILING, TABLES_CEILING
from ._errors import SandboxError

# Highest value each field may take: the engine's pool is sized for them, and a
# run instantiates exactly one module with one memory.
CEILINGS = {
    "memory_bytes": MEMORY_CEILING_BYTES,
    "max_table_elements": TABLE_ELEMENTS_CEILING,
    "max_tables": TABLES_CEILING,
    "max_memories": 1,
    "max_instances": 1,
}


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Hard limits for one module run. Every field is positive and within :data:`CEILINGS`.

    Attributes:
        fuel: Deterministic CPU budget (wasmtime fuel units; about one per
            instruction, plus a fixed charge per host call).
        timeout_ms: Wall-clock deadline, enforced by epoch interruption.
        memory_bytes: Cap on the linear memory's size.
        max_table_elements: Cap on each table's element count.
        max_instances: Module instances one run may create (the run's one).
        max_tables: Tables one run may create.
        max_memories: Linear memories one run may create (one: the memory cap
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
            ceiling = CEILINGS.get(name)
            if ceiling is not None and value > ceiling:
                raise SandboxError(f"limits.{name}={value} is above the sandbox ceiling {ceiling}")
