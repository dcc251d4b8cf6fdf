"""What a sandbox run can end in, and whether retrying could change it."""

from __future__ import annotations

import enum

import msgspec


class Outcome(enum.StrEnum):
    """Stable outcome codes of one module run."""

    OK = "ok"
    EXIT_NONZERO = "exit-nonzero"
    TRAP = "trap"
    FUEL_EXHAUSTED = "fuel-exhausted"
    DEADLINE_EXCEEDED = "deadline-exceeded"
    MEMORY_LIMIT = "memory-limit"
    OUTPUT_TOO_LARGE = "output-too-large"
    INPUT_TOO_LARGE = "input-too-large"
    INVALID_OUTPUT = "invalid-output"
    MODULE_INVALID = "module-invalid"
    DIGEST_MISMATCH = "digest-mismatch"

    @property
    def deterministic(self) -> bool:
        """True when the same module and input always end this way.

        Only the wall-clock deadline depends on the machine's load; every
        other outcome repeats exactly, so retrying it is waste.
        """
        return self is not Outcome.DEADLINE_EXCEEDED


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one run produced.

    Attributes:
        outcome: How the run ended.
        exit_code: The WASI exit code (None if the module trapped or never started).
        stdout: Output bytes, at most ``max_stdout_bytes``.
        stderr: The *last* ``max_stderr_bytes`` of the log stream.
        fuel_used: Fuel consumed; identical across runs of the same input.
        wall_time_us: Wall-clock time of instantiation and the run.
        peak_memory_bytes: Largest linear memory size reached.
        detail: Human-readable reason when the outcome is not ``ok``; names the limit.
        stdout_dropped: Output bytes beyond the cap (the run stops at the first).
        stderr_dropped: Log bytes dropped from the start of the stream.
    """

    outcome: Outcome
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    fuel_used: int
    wall_time_us: int
    peak_memory_bytes: int
    detail: str = ""
    stdout_dropped: int = 0
    stderr_dropped: int = 0

    @property
    def ok(self) -> bool:
        """True when the module exited 0 within every limit."""
        return self.outcome is Outcome.OK

    @property
    def deterministic(self) -> bool:
        """True when re-running the same module and input must end the same way."""
        return self.outcome.deterministic
