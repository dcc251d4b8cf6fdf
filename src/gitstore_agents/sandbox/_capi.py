"""The few wasmtime C API functions our host calls use, bound for speed.

wasmtime-py's own bindings (``wasmtime._ffi``) wrap every C function in a
Python function and return typed pointers that must be cast to addresses. Host
calls are on the guest's hot path (every ``fd_write``), so this module binds
the same shared library a second time with plain ``void*`` / integer
signatures: no wrapper frames, no pointer objects. The library handle is the
one wasmtime-py loaded (``dlopen`` returns the same handle), and these function
objects are ours, so their signatures cannot disturb wasmtime-py's.

The signatures follow wasmtime's C headers (``wasmtime/func.h``,
``wasmtime/store.h``, ``wasmtime/memory.h``, ``wasmtime/linker.h``).
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import _ffi as ffi

_lib = ctypes.CDLL(str(ffi.filename))

ValRaw = ffi.wasmtime_val_raw_t
"""One slot of an unchecked call's argument/result array (16 bytes)."""

MemoryRef = ffi.wasmtime_memory_t
"""A store-scoped handle of a linear memory."""

Extern = ffi.wasmtime_extern_t
MEMORY_KIND = ffi.WASMTIME_EXTERN_MEMORY.value

# wasm_trap_t *(*)(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n)
UncheckedCallback = ctypes.CFUNCTYPE(
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ValRaw), ctypes.c_size_t
)


def _bind(name: str, restype: Any, *argtypes: Any) -> Any:
    func = getattr(_lib, name)
    func.restype = restype
    func.argtypes = argtypes
    return func


caller_context = _bind("wasmtime_caller_context", ctypes.c_void_p, ctypes.c_void_p)
caller_export_get = _bind(
    "wasmtime_caller_export_get",
    ctypes.c_bool,
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.POINTER(Extern),
)
memory_data = _bind("wasmtime_memory_data", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
memory_data_size = _bind(
    "wasmtime_memory_data_size", ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p
)
context_get_fuel = _bind(
    "wasmtime_context_get_fuel",
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
)
context_set_fuel = _bind(
    "wasmtime_context_set_fuel", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64
)
error_delete = _bind("wasmtime_error_delete", None, ctypes.c_void_p)
trap_new = _bind("wasmtime_trap_new", ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
linker_define_func_unchecked = _bind(
    "wasmtime_linker_define_func_unchecked",
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    UncheckedCallback,
    ctypes.c_void_p,
    ctypes.c_void_p,
)
