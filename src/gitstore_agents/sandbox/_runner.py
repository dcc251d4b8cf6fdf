"""Compile and run WASI command modules within hard, deterministic limits."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import structlog
import wasmtime

from . import _host
from ._artifacts import ArtifactCache
from ._capi import pointer_value
from ._engine import MAX_WASM_STACK, POOL_SLOTS, engine_config, engine_fingerprint
from ._errors import ModuleError
from ._guest import GuestStore
from ._limits import SandboxLimits
from ._outcome import Outcome, RunResult
from ._ticker import EpochTicker
from ._wasi_io import LogSink, OutputSink

log = structlog.get_logger(__name__)

_WASM_MAGIC = b"\x00asm"
_PAGE = 65536
_MIB = 1024 * 1024
_DEFAULT_LIMITS = SandboxLimits()


def module_digest(wasm: bytes) -> str:
    """``sha256:<hex>`` of a module's bytes: the only name a module has."""
    return "sha256:" + hashlib.sha256(wasm).hexdigest()


class CompiledModule:
    """A verified, compiled module, linked once and instantiated per run.

    Attributes:
        digest: ``sha256:<hex>`` of the module bytes.
        module: The compiled module.
        pre_ptr: Address of its ``InstancePre`` (imports resolved once).
        min_memory_bytes: Linear memory the module needs before it runs.
    """

    __slots__ = ("_pre", "digest", "min_memory_bytes", "module", "pre_ptr")

    def __init__(self, digest: str, module: wasmtime.Module, pre: wasmtime.InstancePre) -> None:
        self.digest = digest
        self.module = module
        self._pre = pre  # keeps pre_ptr alive
        self.pre_ptr = pointer_value(pre.ptr())
        self.min_memory_bytes = max(
            (
                export.type.limits.min * _PAGE
                for export in module.exports
                if isinstance(export.type, wasmtime.MemoryType)
            ),
            default=0,
        )


class Sandbox:
    """Compiles and runs WASI modules; one per process, safe to share across threads.

    A run gets its input on stdin and nothing else: no preopened directories,
    no environment, a fixed argv, no sockets, and clocks and randomness derived
    from the task (see ``_host``). Its only way out is stdout.

    Args:
        cache_dir: Where compiled artifacts are kept across restarts (None:
            memory only).
    """

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self.engine = wasmtime.Engine(engine_config())
        self._engine_ptr = pointer_value(self.engine.ptr())
        # One pool slot per concurrent run: a run waits here rather than fail
        # to instantiate when every slot is taken.
        self._slots = threading.BoundedSemaphore(POOL_SLOTS)
        self._linker = wasmtime.Linker(self.engine)
        self._linker.define_wasi()
        _host.install(self._linker)
        self._ticker = EpochTicker(self.engine)
        self._modules: dict[str, CompiledModule] = {}
        self._compile_lock = threading.Lock()
        self.artifacts = (
            ArtifactCache(cache_dir, engine_fingerprint()) if cache_dir is not None else None
        )

    def compile(self, wasm: bytes, expected_digest: str | None = None) -> CompiledModule:
        """Verify ``wasm`` against ``expected_digest`` and compile it, once per digest.

        The compiled module is kept in memory and, with a ``cache_dir``, on disk.

        Raises:
            ModuleError: ``digest-mismatch``, or ``module-invalid`` for bytes that
                are not a WASI command this sandbox can link.
        """
        digest = module_digest(wasm)
        if expected_digest is not None and digest != expected_digest:
            raise ModuleError(
                Outcome.DIGEST_MISMATCH,
                f"module bytes hash to {digest}, expected module_digest={expected_digest}",
            )
        with self._compile_lock:
            cached = self._modules.get(digest) or self._from_artifact(digest)
            if cached is not None:
                return cached
            if not wasm.startswith(_WASM_MAGIC):
                raise ModuleError(
                    Outcome.MODULE_INVALID, f"module {digest} is not a WebAssembly binary"
                )
            try:
                module = wasmtime.Module(self.engine, wasm)
            except wasmtime.WasmtimeError as exc:
                raise ModuleError(Outcome.MODULE_INVALID, f"module {digest}: {exc}") from None
            compiled = self._link(digest, module)
            if self.artifacts is not None:
                self.artifacts.store(digest, bytes(module.serialize()))
            self._modules[digest] = compiled
            return compiled

    def loaded(self, digest: str) -> CompiledModule | None:
        """The compiled module for ``digest`` if it is in memory (never blocks)."""
        return self._modules.get(digest)

    def cached(self, digest: str) -> CompiledModule | None:
        """The compiled module for ``digest`` from memory or the disk cache, else None.

        Disk artifacts are only ever written from bytes that hashed to
        ``digest``, so no module bytes are needed here.
        """
        found = self._modules.get(digest)
        if found is not None:
            return found
        with self._compile_lock:
            return self._modules.get(digest) or self._from_artifact(digest)

    def _from_artifact(self, digest: str) -> CompiledModule | None:
        if self.artifacts is None:
            return None
        artifact = self.artifacts.load(digest)
        if artifact is None:
            return None
        try:
            module = wasmtime.Module.deserialize(self.engine, artifact)
            compiled = self._link(digest, module)
        except (wasmtime.WasmtimeError, ModuleError) as exc:
            log.warning("cached artifact refused; recompiling", digest=digest, error=str(exc))
            return None
        self._modules[digest] = compiled
        return compiled

    def _link(self, digest: str, module: wasmtime.Module) -> CompiledModule:
        start = next((e for e in module.exports if e.name == "_start"), None)
        if start is None or not isinstance(start.type, wasmtime.FuncType):
            raise ModuleError(
                Outcome.MODULE_INVALID, f"module {digest} exports no _start: not a WASI command"
            )
        try:
            pre = self._linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            # Typically an import we do not provide: refused before any run.
            raise ModuleError(Outcome.MODULE_INVALID, f"module {digest}: {exc}") from None
        return CompiledModule(digest, module, pre)

    def run(
        self,
        module: CompiledModule,
        stdin: bytes,
        limits: SandboxLimits | None = None,
        *,
        logical_time_ns: int = 0,
        seed: int = 0,
    ) -> RunResult:
        """Run ``module``'s ``_start`` with ``stdin`` as input, within ``limits``.

        Blocks the calling thread; the GIL is released while guest code runs,
        so callers use a thread pool to run several at once (at most
        ``POOL_SLOTS`` at a time; more wait).

        Args:
            module: From :meth:`compile` or :meth:`cached`.
            stdin: The module's whole input.
            limits: Defaults to ``SandboxLimits()``.
            logical_time_ns: What the guest's ``CLOCK_REALTIME`` reads at start
                (ns since the Unix epoch); the task's logical time.
            seed: Seeds the guest's ``random_get`` stream.
        """
        limits = limits or _DEFAULT_LIMITS
        if len(stdin) > limits.max_input_bytes:
            return _unrun(
                Outcome.INPUT_TOO_LARGE,
                f"input of {len(stdin)} bytes exceeds max_input_bytes={limits.max_input_bytes}",
            )
        state = _host.HostState(
            logical_time_ns,
            seed,
            OutputSink(limits.max_stdout_bytes),
            LogSink(limits.max_stderr_bytes),
        )
        deadline_ticks = self._ticker.ticks_for(limits.timeout_ms)
        with self._slots:
            guest = GuestStore(self._engine_ptr, stdin, limits, deadline_ticks)
            try:
                _host.activate(state)
                first_tick = self._ticker.ticks
                started = time.perf_counter()
                try:
                    guest.run(module.pre_ptr, state)
                finally:
                    wall_us = int((time.perf_counter() - started) * 1_000_000)
                    _host.deactivate()
                # Tables only matter when the guest itself failed (not on exit).
                trapped = guest.failed and state.exit_code is None and state.abort is None
                run = _Ended(
                    guest,
                    fuel_left=guest.fuel_left(),
                    timed_out=self._ticker.ticks - first_tick >= deadline_ticks,
                    memory_bytes=guest.memory_bytes(),
                    table_elements=guest.largest_table() if trapped else 0,
                )
            finally:
                guest.close()
        outcome, exit_code, detail = run.classify(state, module, limits)
        return RunResult(
            outcome=outcome,
            exit_code=exit_code,
            stdout=state.stdout.getvalue(),
            stderr=state.stderr.getvalue(),
            fuel_used=limits.fuel - run.fuel_left,
            wall_time_us=wall_us,
            peak_memory_bytes=run.memory_bytes,
            detail=detail,
            stdout_dropped=state.stdout.dropped,
            stderr_dropped=state.stderr.dropped,
        )

    def close(self) -> None:
        """Stop the epoch ticker (runs afterwards never hit their deadline)."""
        self._ticker.close()


class _Ended:
    """How a run ended, read from the run's own store and host state."""

    __slots__ = ("fuel_left", "guest", "memory_bytes", "table_elements", "timed_out")

    def __init__(
        self,
        guest: GuestStore,
        *,
        fuel_left: int,
        timed_out: bool,
        memory_bytes: int,
        table_elements: int,
    ) -> None:
        self.guest = guest
        self.fuel_left = fuel_left
        self.timed_out = timed_out
        self.memory_bytes = memory_bytes
        self.table_elements = table_elements

    def classify(  # noqa: PLR0911 - one early return per outcome reads best
        self, state: _host.HostState, module: CompiledModule, limits: SandboxLimits
    ) -> tuple[Outcome, int | None, str]:
        """(outcome, exit code, detail) of the run."""
        guest = self.guest
        if not guest.failed:
            return Outcome.OK, 0, ""
        if state.exit_code is not None:
            # The module called proc_exit; our host function recorded the code.
            exit_code = state.exit_code
            if exit_code == 0:
                return Outcome.OK, 0, ""
            if self._near_cap(limits):
                cause = f"exit code {exit_code}"
                return Outcome.MEMORY_LIMIT, exit_code, self._limit_detail(limits, cause)
            return Outcome.EXIT_NONZERO, exit_code, f"module exited with code {exit_code}"
        if state.abort is not None:
            # A host function stopped the run on purpose; the trap is its means.
            return state.abort[0], None, state.abort[1]
        if not guest.instantiated:
            return self._instantiation_failed(module, limits)
        trap = guest.trap
        if trap is wasmtime.TrapCode.OUT_OF_FUEL or self.fuel_left == 0:
            return Outcome.FUEL_EXHAUSTED, None, f"fuel exhausted (limit fuel={limits.fuel})"
        if trap is wasmtime.TrapCode.INTERRUPT or (trap is None and self.timed_out):
            return (
                Outcome.DEADLINE_EXCEEDED,
                None,
                f"wall-clock deadline exceeded (timeout_ms={limits.timeout_ms})",
            )
        if trap is wasmtime.TrapCode.STACK_OVERFLOW:
            return (
                Outcome.TRAP,
                None,
                f"call stack exhausted (stack overflow; max_wasm_stack={MAX_WASM_STACK} bytes)",
            )
        if self._near_cap(limits):
            return Outcome.MEMORY_LIMIT, None, self._limit_detail(limits, _cause(guest.message))
        return Outcome.TRAP, None, _cause(guest.message)

    def _near_cap(self, limits: SandboxLimits) -> bool:
        # wasmtime's C API has no hook for a failed memory.grow or table.grow
        # (the guest just gets -1 and typically aborts), so a failed run whose
        # memory ended within max(1 MiB, 1/8 of the cap) of it, or a table
        # within 1/8 of its cap, is taken as having hit it: growth bombs and
        # allocators growing step by step end there. One huge request far
        # below the cap stays a trap or exit code; either outcome is
        # deterministic and never retried.
        memory_margin = max(_MIB, limits.memory_bytes // 8)
        table_margin = max(1, limits.max_table_elements // 8)
        return (
            self.memory_bytes + memory_margin > limits.memory_bytes
            or self.table_elements + table_margin > limits.max_table_elements
        )

    def _limit_detail(self, limits: SandboxLimits, cause: str) -> str:
        return (
            f"memory limit reached (memory_bytes={limits.memory_bytes}: linear memory "
            f"{self.memory_bytes} bytes; max_table_elements={limits.max_table_elements}: "
            f"largest table {self.table_elements} elements): {cause}"
        )

    def _instantiation_failed(
        self, module: CompiledModule, limits: SandboxLimits
    ) -> tuple[Outcome, int | None, str]:
        if module.min_memory_bytes > limits.memory_bytes:
            return (
                Outcome.MEMORY_LIMIT,
                None,
                f"module needs {module.min_memory_bytes} bytes of memory at start, "
                f"above memory_bytes={limits.memory_bytes}",
            )
        message = _cause(self.guest.message)
        if "limit" in message:
            return Outcome.MEMORY_LIMIT, None, f"instantiation exceeds a store limit: {message}"
        return Outcome.TRAP, None, f"instantiation failed: {message}"


def _cause(message: str) -> str:
    # wasmtime puts the cause after the backtrace; keep the cause's first line.
    cause = message.split("Caused by:", 1)[-1].strip()
    return cause.splitlines()[0].strip() if cause else "trap"


def _unrun(outcome: Outcome, detail: str) -> RunResult:
    return RunResult(
        outcome=outcome,
        exit_code=None,
        stdout=b"",
        stderr=b"",
        fuel_used=0,
        wall_time_us=0,
        peak_memory_bytes=0,
        detail=detail,
    )
