"""Our own WASI imports for everything that could block, leak host state or flood.

wasmtime's WASI implementation reads the real clock and the OS entropy pool,
really sleeps in ``poll_oneoff`` (where neither fuel nor the epoch deadline can
interrupt it), and buffers output without a bound. For these imports the
sandbox links the functions below instead:

* ``clock_time_get`` / ``clock_res_get``: the task's logical time, advanced by
  :data:`CLOCK_STEP_NS` per read, so a module that measures time still sees it
  move, identically on every run.
* ``random_get``: a stream derived from the task's seed (SHAKE-256 of the seed
  and a call counter).
* ``poll_oneoff``: never sleeps. Clock subscriptions complete at once by
  advancing logical time; fd subscriptions are ready (stdio) or ``EBADF``.
* ``sched_yield``: a no-op. ``sock_*``: ``ENOTSUP`` (there are no sockets).
* ``fd_write``: stdout into a capped buffer (the run stops at the first write
  past the cap), stderr into a tail-keeping buffer; other fds are ``EBADF``.
* ``proc_exit``: records the exit code in the run's state, then stops the run.

The functions use wasmtime's *unchecked* host-function interface: raw
arguments, and a trap pointer as the return value. That keeps a host call at a
few microseconds, and it means a host function never raises into wasmtime-py:
its trampoline stores Python exceptions in a process-wide global that the next
trap on *any* thread re-raises, which would misattribute failures across the
runs of a thread pool. So a host function stops a run by returning a trap
of its own after recording why in the run's state, and the runner classifies
the run from that state, never from which exception reached it.

Every host call is charged :data:`HOST_CALL_FUEL`, so a module looping on host
calls exhausts its fuel deterministically.

Per-run state lives in a thread-local: host calls run on the thread that called
into the guest.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
import threading
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from . import _capi
from ._outcome import Outcome
from ._wasi_io import LogSink, OutputSink

WASI_MODULE = "wasi_snapshot_preview1"

ERRNO_SUCCESS = 0
ERRNO_BADF = 8
ERRNO_FAULT = 21
ERRNO_INVAL = 28
ERRNO_NOTSUP = 58

CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_PROCESS_CPUTIME = 2
CLOCK_THREAD_CPUTIME = 3

CLOCK_STEP_NS = 1_000
"""Logical nanoseconds one clock read advances time by (also the clock resolution)."""

HOST_CALL_FUEL = 5_000
"""Fuel one host call costs: roughly what its wall time buys in guest instructions."""

IOV_MAX = 1024
"""Most iovecs one ``fd_write`` may pass (POSIX ``IOV_MAX``); bounds host work per call."""

RANDOM_MAX_BYTES = 1024 * 1024
"""Most bytes one ``random_get`` may ask for; bounds host work per call."""

POLL_MAX_SUBSCRIPTIONS = 1024
"""Most subscriptions one ``poll_oneoff`` may pass; bounds host work per call."""

# userdata, tag, clock id or fd, timeout, precision, flags
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
_EVENTTYPE_CLOCK = 0
_EVENTTYPE_FD_READ = 1
_EVENTTYPE_FD_WRITE = 2
_SUBSCRIPTION_CLOCK_ABSTIME = 1

_U32 = ctypes.c_uint32.__ctype_le__
_U64 = ctypes.c_uint64.__ctype_le__
_MASK32 = 0xFFFF_FFFF


class HostState:
    """What the host functions know about the run in progress.

    Args:
        logical_time_ns: ``CLOCK_REALTIME`` at the start of the run (ns since the epoch).
        seed: Seeds the ``random_get`` stream.
        stdout: Bounded stdout.
        stderr: Bounded stderr.

    Attributes:
        abort: Set when a host function stopped the run (outcome and detail);
            the runner reports it instead of the trap it caused.
        exit_code: Set by ``proc_exit``.
    """

    __slots__ = (
        "_fuel",
        "_memory",
        "_memory_address",
        "abort",
        "elapsed_ns",
        "exit_code",
        "logical_time_ns",
        "random_calls",
        "random_key",
        "stderr",
        "stdout",
    )

    def __init__(
        self, logical_time_ns: int, seed: int, stdout: OutputSink, stderr: LogSink
    ) -> None:
        self.logical_time_ns = logical_time_ns
        self.elapsed_ns = 0
        self.random_key = b"gitstore-agents/random-v1\x00" + str(seed).encode()
        self.random_calls = 0
        self.stdout = stdout
        self.stderr = stderr
        self.abort: tuple[Outcome, str] | None = None
        self.exit_code: int | None = None
        self._fuel = ctypes.c_uint64()
        self._memory: Any = None  # the instance's exported memory, found on first use
        self._memory_address = 0

    def memory(self, caller: int, ctx: int) -> tuple[int, int]:
        """Host address and size of the calling instance's exported ``memory``.

        Raises:
            _GuestFaultError: the module exports no memory named ``memory``.
        """
        if self._memory is None:
            item = _capi.Extern()
            found = _capi.caller_export_get(caller, b"memory", 6, _capi.address(item))
            if not found or _capi.kind(item) != _capi.MEMORY_KIND:
                raise _GuestFaultError
            # The handle stays valid for the store's life; the runner creates one
            # instance per store, so it is always the caller's memory.
            self._memory = _capi.MemoryRef.from_buffer_copy(item.of.memory)
            self._memory_address = ctypes.addressof(self._memory)
        base = _capi.memory_data(ctx, self._memory_address) or 0
        return base, _capi.memory_data_size(ctx, self._memory_address)

    def charge(self, ctx: int, fuel: int) -> None:
        """Take ``fuel`` from the run (down to zero: the guest then traps out of fuel)."""
        cell = self._fuel
        error = _capi.context_get_fuel(ctx, ctypes.byref(cell))
        if error:
            _capi.error_delete(error)
            return
        error = _capi.context_set_fuel(ctx, max(cell.value - fuel, 0))
        if error:
            _capi.error_delete(error)

    def now_ns(self, clock_id: int) -> int:
        """Current logical reading of ``clock_id``."""
        if clock_id == CLOCK_REALTIME:
            return self.logical_time_ns + self.elapsed_ns
        return self.elapsed_ns

    def random_bytes(self, size: int) -> bytes:
        """The next ``size`` bytes of the run's deterministic random stream."""
        self.random_calls += 1
        block = self.random_key + self.random_calls.to_bytes(8, "little")
        return hashlib.shake_256(block).digest(size)


_local = threading.local()


def activate(state: HostState) -> None:
    """Make ``state`` the one host calls on this thread see (until :func:`deactivate`)."""
    _local.state = state


def deactivate() -> None:
    """Forget this thread's run state."""
    _local.state = None


class _AbortRunError(Exception):
    """Raised inside a host function to stop the run with ``state.abort``."""


class _GuestFaultError(Exception):
    """A guest pointer outside its memory: the call fails with ``EFAULT``."""


def _check(size: int, ptr: int, length: int) -> None:
    if ptr + length > size:
        raise _GuestFaultError


def _fd_write(state: HostState, caller: int, ctx: int, args: Any) -> int:
    fd = args[0].i32
    sink: OutputSink | LogSink
    if fd == 1:
        sink = state.stdout
    elif fd == 2:
        sink = state.stderr
    else:
        return ERRNO_BADF
    iovs, count, nwritten = args[1].i32 & _MASK32, args[2].i32 & _MASK32, args[3].i32 & _MASK32
    state.charge(ctx, HOST_CALL_FUEL)
    if count > IOV_MAX:
        return ERRNO_INVAL
    base, size = state.memory(caller, ctx)
    _check(size, iovs, 8 * count)
    _check(size, nwritten, 4)
    total = 0
    for k in range(count):
        entry = base + iovs + 8 * k
        ptr = _U32.from_address(entry).value
        length = _U32.from_address(entry + 4).value
        _check(size, ptr, length)
        sink.write_from(base + ptr, length)
        total += length
    _U32.from_address(base + nwritten).value = total & _MASK32
    if fd == 1 and state.stdout.dropped:
        state.abort = (
            Outcome.OUTPUT_TOO_LARGE,
            f"stdout exceeded max_stdout_bytes={state.stdout.cap}; the run was stopped",
        )
        raise _AbortRunError
    return ERRNO_SUCCESS


def _proc_exit(state: HostState, caller: int, ctx: int, args: Any) -> int:
    state.exit_code = args[0].i32 & _MASK32
    raise _AbortRunError


def _clock_time_get(state: HostState, caller: int, ctx: int, args: Any) -> int:
    clock_id, out = args[0].i32 & _MASK32, args[2].i32 & _MASK32
    state.charge(ctx, HOST_CALL_FUEL)
    if clock_id > CLOCK_THREAD_CPUTIME:
        return ERRNO_INVAL
    base, size = state.memory(caller, ctx)
    _check(size, out, 8)
    _U64.from_address(base + out).value = state.now_ns(clock_id) & 0xFFFF_FFFF_FFFF_FFFF
    state.elapsed_ns += CLOCK_STEP_NS
    return ERRNO_SUCCESS


def _clock_res_get(state: HostState, caller: int, ctx: int, args: Any) -> int:
    clock_id, out = args[0].i32 & _MASK32, args[1].i32 & _MASK32
    state.charge(ctx, HOST_CALL_FUEL)
    if clock_id > CLOCK_THREAD_CPUTIME:
        return ERRNO_INVAL
    base, size = state.memory(caller, ctx)
    _check(size, out, 8)
    _U64.from_address(base + out).value = CLOCK_STEP_NS
    return ERRNO_SUCCESS


def _random_get(state: HostState, caller: int, ctx: int, args: Any) -> int:
    buf, length = args[0].i32 & _MASK32, args[1].i32 & _MASK32
    state.charge(ctx, HOST_CALL_FUEL + length)
    if length > RANDOM_MAX_BYTES:
        return ERRNO_INVAL
    base, size = state.memory(caller, ctx)
    _check(size, buf, length)
    ctypes.memmove(base + buf, state.random_bytes(length), length)
    return ERRNO_SUCCESS


def _poll_oneoff(state: HostState, caller: int, ctx: int, args: Any) -> int:
    subs_ptr, events_ptr = args[0].i32 & _MASK32, args[1].i32 & _MASK32
    count, nevents_ptr = args[2].i32 & _MASK32, args[3].i32 & _MASK32
    state.charge(ctx, HOST_CALL_FUEL)
    if count == 0 or count > POLL_MAX_SUBSCRIPTIONS:
        return ERRNO_INVAL
    base, size = state.memory(caller, ctx)
    _check(size, subs_ptr, _SUBSCRIPTION.size * count)
    _check(size, events_ptr, _EVENT.size * count)
    _check(size, nevents_ptr, 4)
    raw = ctypes.string_at(base + subs_ptr, _SUBSCRIPTION.size * count)
    fd_events: list[bytes] = []
    clocks: list[tuple[int, int, int]] = []  # (userdata, deadline in elapsed ns, errno)
    for k in range(count):
        userdata, tag, word, timeout, _precision, flags = _SUBSCRIPTION.unpack_from(
            raw, k * _SUBSCRIPTION.size
        )
        if tag == _EVENTTYPE_CLOCK:
            clocks.append((userdata, *_clock_deadline(state, word, timeout, flags)))
        elif tag in (_EVENTTYPE_FD_READ, _EVENTTYPE_FD_WRITE):
            # stdin is an in-memory buffer and stdout/stderr never block: they are
            # always ready; no other descriptor exists.
            ready = (word == 0 and tag == _EVENTTYPE_FD_READ) or (
                word in (1, 2) and tag == _EVENTTYPE_FD_WRITE
            )
            error = ERRNO_SUCCESS if ready else ERRNO_BADF
            fd_events.append(_EVENT.pack(userdata, error, tag, 0, 0))
        else:
            return ERRNO_INVAL
    events = fd_events
    if not events:
        # Only timers: "sleep" by moving logical time to the earliest one.
        state.elapsed_ns = max(state.elapsed_ns, min(deadline for _, deadline, _ in clocks))
    events += [
        _EVENT.pack(userdata, error, _EVENTTYPE_CLOCK, 0, 0)
        for userdata, deadline, error in clocks
        if deadline <= state.elapsed_ns
    ]
    ctypes.memmove(base + events_ptr, b"".join(events), _EVENT.size * len(events))
    _U32.from_address(base + nevents_ptr).value = len(events)
    return ERRNO_SUCCESS


def _clock_deadline(state: HostState, clock_id: int, timeout: int, flags: int) -> tuple[int, int]:
    """(deadline in elapsed logical ns, errno) of one clock subscription."""
    if clock_id > CLOCK_THREAD_CPUTIME:
        return state.elapsed_ns, ERRNO_INVAL
    if not flags & _SUBSCRIPTION_CLOCK_ABSTIME:
        return state.elapsed_ns + timeout, ERRNO_SUCCESS
    if clock_id == CLOCK_REALTIME:
        return timeout - state.logical_time_ns, ERRNO_SUCCESS
    return timeout, ERRNO_SUCCESS


def _sched_yield(state: HostState, caller: int, ctx: int, args: Any) -> int:
    state.charge(ctx, HOST_CALL_FUEL)
    return ERRNO_SUCCESS


def _no_sockets(state: HostState, caller: int, ctx: int, args: Any) -> int:
    state.charge(ctx, HOST_CALL_FUEL)
    return ERRNO_NOTSUP


_HostFunc = Callable[[HostState, int, int, Any], int]


def _trap(message: str) -> int:
    encoded = message.encode()
    return _capi.trap_new(encoded, len(encoded)) or 0


def _unchecked(func: _HostFunc) -> Any:
    """Wrap ``func`` as a raw wasmtime callback that never lets an exception out."""

    def callback(_env: int | None, caller: int, args: Any, _nargs: int) -> int:
        state: HostState | None = getattr(_local, "state", None)
        if state is None:
            return _trap("gitstore sandbox: host call outside a run")
        try:
            args[0].i32 = func(state, caller, _capi.caller_context(caller), args)
        except _GuestFaultError:
            args[0].i32 = ERRNO_FAULT
        except _AbortRunError:
            return _trap(state.abort[1] if state.abort else f"exit({state.exit_code})")
        except BaseException as exc:  # never into wasmtime-py's global (see module doc)
            state.abort = (Outcome.TRAP, f"host function {func.__name__} failed: {exc!r}")
            return _trap(state.abort[1])
        return 0

    return _capi.UncheckedCallback(callback)


_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()

# name -> (parameter types, implementation); each returns an errno (i32), but
# proc_exit, which never returns.
_FUNCTIONS: dict[str, tuple[list[wasmtime.ValType], _HostFunc]] = {
    "proc_exit": ([_I32], _proc_exit),
    "fd_write": ([_I32, _I32, _I32, _I32], _fd_write),
    "clock_time_get": ([_I32, _I64, _I32], _clock_time_get),
    "clock_res_get": ([_I32, _I32], _clock_res_get),
    "random_get": ([_I32, _I32], _random_get),
    "poll_oneoff": ([_I32, _I32, _I32, _I32], _poll_oneoff),
    "sched_yield": ([], _sched_yield),
    "sock_accept": ([_I32, _I32, _I32], _no_sockets),
    "sock_recv": ([_I32, _I32, _I32, _I32, _I32, _I32], _no_sockets),
    "sock_send": ([_I32, _I32, _I32, _I32, _I32], _no_sockets),
    "sock_shutdown": ([_I32, _I32], _no_sockets),
}

# Raw callbacks live as long as the process: wasmtime holds bare pointers to them.
_CALLBACKS = {name: _unchecked(func) for name, (_, func) in _FUNCTIONS.items()}

HOST_FUNCTIONS = tuple(_FUNCTIONS)
"""Names of the ``wasi_snapshot_preview1`` imports the sandbox implements itself."""


def install(linker: wasmtime.Linker) -> None:
    """Shadow wasmtime's :data:`HOST_FUNCTIONS` in ``linker`` (call after ``define_wasi``)."""
    linker.allow_shadowing = True
    module = WASI_MODULE.encode()
    for name, (params, _) in _FUNCTIONS.items():
        func_type = wasmtime.FuncType(params, [] if name == "proc_exit" else [_I32])
        encoded = name.encode()
        linker_ptr = ctypes.cast(linker.ptr(), ctypes.c_void_p).value
        type_ptr = ctypes.cast(func_type.ptr(), ctypes.c_void_p).value
        error = _capi.linker_define_func_unchecked(
            linker_ptr,
            module,
            len(module),
            encoded,
            len(encoded),
            type_ptr,
            _CALLBACKS[name],
            None,
            None,
        )
        if error:
            message = wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t))
            )
            raise message
    linker.allow_shadowing = False
