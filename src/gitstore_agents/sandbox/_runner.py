"""Run WASI command modules under fuel, epoch and memory limits."""

from __future__ import annotations

import hashlib
import time

import wasmtime

from ._limits import SandboxLimits
from ._outcome import Outcome, RunResult
from ._ticker import EpochTicker
from ._wasi_io import CappedSink, set_stdin_bytes

# argv is fixed so a module cannot learn anything about the host from it.
_ARGV = ["task"]


class ModuleError(Exception):
    """A module could not be loaded; carries the sandbox outcome."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def module_digest(wasm: bytes) -> str:
    """``sha256:<hex>`` of a module's bytes: the only name a module has."""
    return "sha256:" + hashlib.sha256(wasm).hexdigest()


class CompiledModule:
    """A verified, compiled module ready to instantiate many times.

    Attributes:
        digest: ``sha256:<hex>`` of the module bytes.
    """

    def __init__(self, digest: str, pre: wasmtime.InstancePre) -> None:
        self.digest = digest
        self._pre = pre

    def instantiate(self, store: wasmtime.Store) -> wasmtime.Instance:
        """Instantiate in ``store`` (imports are resolved once, up front)."""
        return self._pre.instantiate(store)


def _engine_config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    # Same bits on every machine: NaN payloads are otherwise hardware-defined.
    config.cranelift_nan_canonicalization = True
    return config


class Sandbox:
    """Compiles and runs WASI modules; one per process, safe to share across threads.

    Runs take no preopened directories, no environment, a fixed argv and no
    sockets: the only way out of a module is its stdout.
    """

    def __init__(self) -> None:
        self.engine = wasmtime.Engine(_engine_config())
        self._linker = wasmtime.Linker(self.engine)
        self._linker.define_wasi()
        self._ticker = EpochTicker(self.engine)
        self._cache: dict[str, CompiledModule] = {}

    def compile(self, wasm: bytes, expected_digest: str | None = None) -> CompiledModule:
        """Verify ``wasm`` against ``expected_digest`` and compile it (cached by digest).

        Raises:
            ModuleError: digest mismatch, or bytes that are not a usable module.
        """
        digest = module_digest(wasm)
        if expected_digest is not None and digest != expected_digest:
            raise ModuleError(
                Outcome.DIGEST_MISMATCH,
                f"module bytes hash to {digest}, expected {expected_digest}",
            )
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        try:
            module = wasmtime.Module(self.engine, wasm)
            pre = self._linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise ModuleError(Outcome.MODULE_INVALID, f"module {digest}: {exc}") from None
        compiled = CompiledModule(digest, pre)
        self._cache[digest] = compiled
        return compiled

    def run(self, module: CompiledModule, stdin: bytes, limits: SandboxLimits) -> RunResult:
        """Run ``module``'s ``_start`` with ``stdin`` as input, within ``limits``.

        Blocks the calling thread; wasmtime releases the GIL while the guest runs,
        so callers use a thread pool to overlap runs with I/O.
        """
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        wasi.argv = _ARGV
        set_stdin_bytes(wasi, stdin)
        out = CappedSink(limits.max_stdout_bytes)
        err = CappedSink(limits.max_stderr_bytes)
        wasi.stdout_custom = out.write
        wasi.stderr_custom = err.write
        store.set_wasi(wasi)
        store.set_limits(memory_size=limits.memory_bytes)
        store.set_fuel(limits.fuel)
        store.set_epoch_deadline(self._ticker.ticks_for(limits.timeout_ms))

        started = time.perf_counter()
        exit_code: int | None = 0
        outcome = Outcome.OK
        detail = ""
        instance: wasmtime.Instance | None = None
        try:
            instance = module.instantiate(store)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
            if exc.code != 0:
                outcome, detail = Outcome.EXIT_NONZERO, f"module exited with code {exc.code}"
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            exit_code = None
            outcome, detail = _classify_trap(exc, store, limits)
        wall_us = int((time.perf_counter() - started) * 1_000_000)

        fuel_used = limits.fuel - store.get_fuel()
        peak = _memory_size(store, instance)
        if outcome is Outcome.OK and out.dropped:
            outcome = Outcome.OUTPUT_TOO_LARGE
            detail = (
                f"stdout exceeded max_stdout_bytes={limits.max_stdout_bytes} "
                f"({out.dropped} bytes dropped)"
            )
        return RunResult(
            outcome=outcome,
            exit_code=exit_code,
            stdout=out.getvalue(),
            stderr=err.getvalue(),
            fuel_used=fuel_used,
            wall_time_us=wall_us,
            peak_memory_bytes=peak,
            detail=detail,
        )

    def close(self) -> None:
        """Stop the epoch ticker."""
        self._ticker.close()


def _classify_trap(
    exc: Exception, store: wasmtime.Store, limits: SandboxLimits
) -> tuple[Outcome, str]:
    # Decide from the store's state, not only the trap text: the state is
    # exact, and wasmtime-py reports host-callback errors through a global.
    if store.get_fuel() == 0:
        return Outcome.FUEL_EXHAUSTED, f"fuel exhausted (limit fuel={limits.fuel})"
    code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
    if code is wasmtime.TrapCode.INTERRUPT:
        return (
            Outcome.DEADLINE_EXCEEDED,
            f"wall-clock deadline exceeded (timeout_ms={limits.timeout_ms})",
        )
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "memory" in message and "limit" in message:
        return Outcome.MEMORY_LIMIT, f"memory limit exceeded (memory_bytes={limits.memory_bytes})"
    return Outcome.TRAP, message


def _memory_size(store: wasmtime.Store, instance: wasmtime.Instance | None) -> int:
    # Linear memory never shrinks, so its final size is the peak.
    if instance is None:
        return 0
    memory = instance.exports(store).get("memory")
    if isinstance(memory, wasmtime.Memory):
        return memory.data_len(store)
    return 0
