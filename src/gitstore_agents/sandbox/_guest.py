"""One run's wasmtime store, driven through the C API (see ``_capi``)."""

from __future__ import annotations

import ctypes

import wasmtime

from . import _capi
from ._host import HostState
from ._limits import SandboxLimits

# argv is fixed so a module cannot learn anything about the host from it.
_ARGV = (ctypes.c_char_p * 1)(b"task")
_START = b"_start"
_MEMORY = b"memory"


class GuestStore:
    """A fresh store for one run: WASI with in-memory stdin, limits, fuel, deadline.

    Nothing is preopened and no environment is set. Call :meth:`run` once, read
    the results, then :meth:`close` (always: it returns the pool slot).

    Attributes:
        instantiated: The module was instantiated.
        failed: Instantiation or ``_start`` ended in a trap or error.
        trap: The trap's code when wasmtime gave one.
        message: wasmtime's description of the trap or error.
    """

    __slots__ = (
        "_ctx",
        "_host",
        "_instance",
        "_store",
        "failed",
        "instantiated",
        "message",
        "trap",
    )

    def __init__(
        self, engine: int, stdin: bytes, limits: SandboxLimits, deadline_ticks: int
    ) -> None:
        self._store = _capi.store_new(engine, None, None)
        self._ctx = _capi.store_context(self._store)
        self._instance = _capi.Instance()
        self.instantiated = False
        self.failed = False
        self.trap: wasmtime.TrapCode | None = None
        self.message = ""
        try:
            self._configure(stdin, limits, deadline_ticks)
        except BaseException:
            self.close()
            raise

    def _configure(self, stdin: bytes, limits: SandboxLimits, deadline_ticks: int) -> None:
        config = _capi.wasi_config_new()
        _capi.wasi_config_set_argv(config, 1, _ARGV)
        stdin_vec = _capi.ByteVec()
        _capi.byte_vec_new(_capi.address(stdin_vec), len(stdin), stdin)
        # Both calls take ownership: of the vector's bytes, then of the config.
        _capi.wasi_config_set_stdin_bytes(config, _capi.address(stdin_vec))
        self._check(_capi.context_set_wasi(self._ctx, config))
        _capi.store_limiter(
            self._store,
            limits.memory_bytes,
            limits.max_table_elements,
            limits.max_instances,
            limits.max_tables,
            limits.max_memories,
        )
        self._check(_capi.context_set_fuel(self._ctx, limits.fuel))
        _capi.context_set_epoch_deadline(self._ctx, deadline_ticks)

    def run(self, pre: int, host: HostState) -> None:
        """Instantiate from ``pre`` and call ``_start``; record how it ended.

        When a host function ended the run (``proc_exit`` or an abort), its
        reason is in ``host`` and the trap's text is not worth formatting.
        """
        self._host = host
        trap = ctypes.c_void_p()
        error = _capi.instance_pre_instantiate(
            pre, self._ctx, _capi.address(self._instance), _capi.address(trap)
        )
        if not self._ended(error, trap):
            self.instantiated = True
            start = _capi.Extern()
            found = _capi.instance_export_get(
                self._ctx, _capi.address(self._instance), _START, len(_START), _capi.address(start)
            )
            if not found or _capi.kind(start) != _capi.FUNC_KIND:
                self.failed, self.message = True, "module exports no _start function"
                return
            error = _capi.func_call(
                self._ctx, _capi.address(start.of.func), None, 0, None, 0, _capi.address(trap)
            )
            self._ended(error, trap)

    def _ended(self, error: int | None, trap: ctypes.c_void_p) -> bool:
        if trap.value:
            self.failed = True
            code = ctypes.c_uint8()
            if _capi.trap_code(trap.value, ctypes.byref(code)):
                self.trap = wasmtime.TrapCode(code.value)
            if self._host.exit_code is None and self._host.abort is None:
                self.message = _capi.take_message(_capi.trap_message, trap.value)
            _capi.trap_delete(trap.value)
            trap.value = None
        if error:
            self.failed = True
            self.message = _capi.take_message(_capi.error_message, error)
            _capi.error_delete(error)
        return self.failed

    def fuel_left(self) -> int:
        """Fuel the store has left."""
        left = ctypes.c_uint64()
        self._check(_capi.context_get_fuel(self._ctx, ctypes.byref(left)))
        return left.value

    def memory_bytes(self) -> int:
        """Size of the exported ``memory`` (it never shrinks, so this is the peak)."""
        if not self.instantiated:
            return 0
        item = _capi.Extern()
        found = _capi.instance_export_get(
            self._ctx, _capi.address(self._instance), _MEMORY, len(_MEMORY), _capi.address(item)
        )
        if not found or _capi.kind(item) != _capi.MEMORY_KIND:
            return 0
        return int(_capi.memory_data_size(self._ctx, _capi.address(item.of.memory)))

    def largest_table(self) -> int:
        """Element count of the largest exported table."""
        if not self.instantiated:
            return 0
        largest, index = 0, 0
        item = _capi.Extern()
        name = ctypes.c_void_p()
        name_len = ctypes.c_size_t()
        while _capi.instance_export_nth(
            self._ctx,
            _capi.address(self._instance),
            index,
            ctypes.byref(name),
            ctypes.byref(name_len),
            _capi.address(item),
        ):
            if _capi.kind(item) == _capi.TABLE_KIND:
                largest = max(largest, _capi.table_size(self._ctx, _capi.address(item.of.table)))
            index += 1
        return largest

    def close(self) -> None:
        """Drop the store: its memory and pool slots are released now."""
        if self._store:
            _capi.store_delete(self._store)
            self._store = None

    def _check(self, error: int | None) -> None:
        if error:
            message = _capi.take_message(_capi.error_message, error)
            _capi.error_delete(error)
            raise wasmtime.WasmtimeError(message)
