"""In-memory stdin and capped stdout/stderr for a WASI store."""

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


class CappedSink:
    """Collects a stream up to ``cap`` bytes and remembers what it dropped.

    The callback always reports the whole write as done: a short write would
    make libc retry forever, while fuel still bounds a flooding guest.
    """

    __slots__ = ("_chunks", "_size", "cap", "dropped")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._chunks: list[bytes] = []
        self._size = 0
        self.dropped = 0

    def write(self, data: bytes) -> int:
        """WASI write callback: keep what fits, count the rest."""
        room = self.cap - self._size
        if room >= len(data):
            self._chunks.append(data)
            self._size += len(data)
        else:
            if room > 0:
                self._chunks.append(data[:room])
                self._size += room
            self.dropped += len(data) - max(room, 0)
        return len(data)

    def getvalue(self) -> bytes:
        """Everything kept, in order."""
        return b"".join(self._chunks)
