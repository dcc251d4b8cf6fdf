"""In-memory stdin, and bounded stdout/stderr buffers for one run."""

from __future__ import annotations

import ctypes

import wasmtime
from wasmtime import _ffi as ffi


def set_stdin_bytes(config: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the guest ``data`` as its stdin without touching the filesystem.

    wasmtime-py 50 exposes only file-backed stdin; the C API's
    ``wasi_config_set_stdin_bytes`` (bound in ``wasmtime._ffi``) takes an owned
    byte vector, so the input never lands on disk. Pinned with ``wasmtime<51``.
    """
    vec = ffi.wasm_byte_vec_t()
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buf)
    ffi.wasi_config_set_stdin_bytes(config.ptr(), ctypes.byref(vec))


class OutputSink:
    """stdout of a run: keeps the first ``cap`` bytes and counts what did not fit.

    Output is the task's result, so anything beyond the cap makes the result
    unusable; the host stops the run at the first overflowing write.
    """

    __slots__ = ("_buf", "cap", "dropped")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._buf = bytearray()
        self.dropped = 0

    def write_from(self, address: int, size: int) -> None:
        """Append ``size`` bytes read from host ``address``, within the cap."""
        take = min(size, self.cap - len(self._buf))
        if take > 0:
            self._buf += ctypes.string_at(address, take)
        self.dropped += size - max(take, 0)

    def getvalue(self) -> bytes:
        """Everything kept, in order."""
        return bytes(self._buf)


class LogSink:
    """stderr of a run: keeps the *last* ``cap`` bytes and counts what it dropped.

    The tail is what explains a failure (the last lines before a trap), so a
    log flood pushes out its own beginning rather than the final message.
    """

    __slots__ = ("_buf", "_total", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._buf = bytearray()
        self._total = 0

    def write_from(self, address: int, size: int) -> None:
        """Append ``size`` bytes read from host ``address``; only the tail is copied."""
        self._total += size
        keep = min(size, self.cap)
        if keep > 0:
            self._buf += ctypes.string_at(address + size - keep, keep)
        # Trim in amortized batches so a flood of small writes stays linear.
        if len(self._buf) > 2 * self.cap:
            del self._buf[: len(self._buf) - self.cap]

    @property
    def dropped(self) -> int:
        """Bytes written but not kept (from the beginning of the stream)."""
        return self._total - min(len(self._buf), self.cap)

    def getvalue(self) -> bytes:
        """The last ``cap`` bytes written."""
        if len(self._buf) > self.cap:
            return bytes(self._buf[len(self._buf) - self.cap :])
        return bytes(self._buf)
