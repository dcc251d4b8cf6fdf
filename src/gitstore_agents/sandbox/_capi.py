"""The wasmtime C API functions a run uses, bound for speed and for parallel runs.

wasmtime-py wraps each C function in a Python function, returns typed pointer
objects, and loads the library with ``ctypes.CDLL``, which releases the GIL on
*every* call. A run through wasmtime-py makes some thirty such calls; with two
threads, each trivial call becomes a GIL hand-off between them. So this module
binds the same shared library (``dlopen`` returns wasmtime-py's handle) twice:

* ``_quick`` (``ctypes.PyDLL``, GIL kept) for calls that return in
  nanoseconds: store setup, fuel, exports, trap codes;
* ``_guest`` (``ctypes.CDLL``, GIL released) for the calls that run guest code
  or do real work: instantiation (start function, data segments), the call of
  ``_start`` (host calls back into Python take the GIL again), and dropping the
  store.

Arguments are plain ``void*``/integers, so no pointer objects are built per
call. These function objects are ours; their signatures cannot disturb
wasmtime-py's. The signatures follow wasmtime's C headers (``wasmtime/*.h``,
``wasi.h``, ``wasm.h``) for the version pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import _ffi as ffi

_quick = ctypes.PyDLL(str(ffi.filename))
_guest = ctypes.CDLL(str(ffi.filename))

_P = ctypes.c_void_p
_SIZE = ctypes.c_size_t

ValRaw = ffi.wasmtime_val_raw_t
"""One slot of an unchecked call's argument/result array (16 bytes)."""

Extern = ffi.wasmtime_extern_t
Instance = ffi.wasmtime_instance_t
ByteVec = ffi.wasm_byte_vec_t
MemoryRef = ffi.wasmtime_memory_t
"""A store-scoped handle of a linear memory."""

MEMORY_KIND = ffi.WASMTIME_EXTERN_MEMORY.value
TABLE_KIND = ffi.WASMTIME_EXTERN_TABLE.value
FUNC_KIND = ffi.WASMTIME_EXTERN_FUNC.value

# wasm_trap_t *(*)(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n)
UncheckedCallback = ctypes.CFUNCTYPE(_P, _P, _P, ctypes.POINTER(ValRaw), _SIZE)


def _bind(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    # getattr on a (Py)DLL instance caches one function object per name and
    # instance, so setting the signature here touches no one else's.
    func = getattr(lib, name)
    func.restype = restype
    func.argtypes = argtypes
    return func


# --- store and WASI setup (quick) --------------------------------------------
store_new = _bind(_quick, "wasmtime_store_new", _P, _P, _P, _P)
store_context = _bind(_quick, "wasmtime_store_context", _P, _P)
store_limiter = _bind(
    _quick,
    "wasmtime_store_limiter",
    None,
    _P,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_int64,
)
wasi_config_new = _bind(_quick, "wasi_config_new", _P)
wasi_config_set_argv = _bind(
    _quick, "wasi_config_set_argv", ctypes.c_bool, _P, _SIZE, ctypes.POINTER(ctypes.c_char_p)
)
wasi_config_set_stdin_bytes = _bind(_quick, "wasi_config_set_stdin_bytes", None, _P, _P)
byte_vec_new = _bind(_quick, "wasm_byte_vec_new", None, _P, _SIZE, ctypes.c_char_p)
byte_vec_delete = _bind(_quick, "wasm_byte_vec_delete", None, _P)
context_set_wasi = _bind(_quick, "wasmtime_context_set_wasi", _P, _P, _P)
context_set_epoch_deadline = _bind(
    _quick, "wasmtime_context_set_epoch_deadline", None, _P, ctypes.c_uint64
)
context_get_fuel = _bind(
    _quick, "wasmtime_context_get_fuel", _P, _P, ctypes.POINTER(ctypes.c_uint64)
)
context_set_fuel = _bind(_quick, "wasmtime_context_set_fuel", _P, _P, ctypes.c_uint64)

# --- guest code (GIL released) ----------------------------------------------
instance_pre_instantiate = _bind(_guest, "wasmtime_instance_pre_instantiate", _P, _P, _P, _P, _P)
func_call = _bind(_guest, "wasmtime_func_call", _P, _P, _P, _P, _SIZE, _P, _SIZE, _P)
store_delete = _bind(_guest, "wasmtime_store_delete", None, _P)

# --- results (quick) ----------------------------------------------------------
instance_export_get = _bind(
    _quick, "wasmtime_instance_export_get", ctypes.c_bool, _P, _P, ctypes.c_char_p, _SIZE, _P
)
instance_export_nth = _bind(
    _quick, "wasmtime_instance_export_nth", ctypes.c_bool, _P, _P, _SIZE, _P, _P, _P
)
memory_data = _bind(_quick, "wasmtime_memory_data", _P, _P, _P)
memory_data_size = _bind(_quick, "wasmtime_memory_data_size", _SIZE, _P, _P)
table_size = _bind(_quick, "wasmtime_table_size", ctypes.c_uint64, _P, _P)
trap_code = _bind(_quick, "wasmtime_trap_code", ctypes.c_bool, _P, ctypes.POINTER(ctypes.c_uint8))
trap_message = _bind(_quick, "wasm_trap_message", None, _P, _P)
trap_delete = _bind(_quick, "wasm_trap_delete", None, _P)
trap_new = _bind(_quick, "wasmtime_trap_new", _P, ctypes.c_char_p, _SIZE)
error_message = _bind(_quick, "wasmtime_error_message", None, _P, _P)
error_delete = _bind(_quick, "wasmtime_error_delete", None, _P)

# --- host functions (quick: they run with the GIL held, inside a callback) ----
caller_context = _bind(_quick, "wasmtime_caller_context", _P, _P)
caller_export_get = _bind(
    _quick, "wasmtime_caller_export_get", ctypes.c_bool, _P, ctypes.c_char_p, _SIZE, _P
)
linker_define_func_unchecked = _bind(
    _quick,
    "wasmtime_linker_define_func_unchecked",
    _P,
    _P,
    ctypes.c_char_p,
    _SIZE,
    ctypes.c_char_p,
    _SIZE,
    _P,
    UncheckedCallback,
    _P,
    _P,
)


def address(obj: Any) -> int:
    """The address of a ctypes object (a struct or a typed pointer's target)."""
    return ctypes.addressof(obj)


def kind(item: Any) -> int:
    """The ``WASMTIME_EXTERN_*`` kind of an :class:`Extern` (an int at run time)."""
    return int(item.kind)


def pointer_value(ptr: Any) -> int:
    """The address a wasmtime-py typed pointer holds."""
    return ctypes.cast(ptr, _P).value or 0


def take_message(getter: Any, obj: int) -> str:
    """Text of a trap or error (``wasm_trap_message`` / ``wasmtime_error_message``)."""
    vec = ByteVec()
    getter(obj, address(vec))
    try:
        raw = ctypes.string_at(vec.data, vec.size) if vec.size else b""
    finally:
        byte_vec_delete(address(vec))
    return raw.rstrip(b"\x00").decode("utf-8", errors="replace")
