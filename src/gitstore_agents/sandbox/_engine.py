"""The one engine configuration every sandbox run and cached artifact shares."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata

import wasmtime
from wasmtime import _ffi as ffi

# Native stack a guest may use before it traps with a stack overflow. Fixed
# (not wasmtime's default) so deep-recursion outcomes cannot change when the
# default does; it is part of the artifact fingerprint.
MAX_WASM_STACK = 512 * 1024

MIB = 1024 * 1024

# Ceilings of the per-run limits: the pooling allocator sizes its slots once,
# for the largest run any task may ask for (SandboxLimits refuses more).
MEMORY_CEILING_BYTES = 1024 * MIB
TABLE_ELEMENTS_CEILING = 1_000_000
TABLES_CEILING = 4

POOL_SLOTS = 32
"""Runs one Sandbox executes at once (each holds a memory, table and instance slot)."""

# Memory of a finished run that is zeroed and kept mapped rather than returned
# to the kernel: the next run reuses the pages without page faults, and no
# munmap forces TLB shootdowns on the threads running other guests.
POOL_KEEP_RESIDENT_BYTES = 2 * MIB

# Every setting that changes generated code or run semantics. The fingerprint
# of this dict keys the on-disk artifact cache, so changing a value here
# invalidates old artifacts instead of deserializing incompatible code.
ENGINE_SETTINGS: dict[str, object] = {
    "consume_fuel": True,
    "epoch_interruption": True,
    # Same bits on every machine: NaN payloads are otherwise hardware-defined.
    "cranelift_nan_canonicalization": True,
    # Relaxed SIMD results may differ between CPUs; pin the deterministic lowering.
    "wasm_relaxed_simd_deterministic": True,
    # No shared memories or threads: a run is one thread of guest code.
    "wasm_threads": False,
    "shared_memory": False,
    "max_wasm_stack": MAX_WASM_STACK,
}

# The pooling allocator: instance, memory and table slots reserved up front and
# reused, instead of mmap/munmap per run (which serializes threads in the
# kernel). Part of the fingerprint, as it shapes memory tunables.
POOL_SETTINGS: dict[str, int] = {
    "total_core_instances": POOL_SLOTS,
    "total_memories": POOL_SLOTS,
    "total_tables": POOL_SLOTS,
    "max_memories_per_module": 1,
    "max_tables_per_module": TABLES_CEILING,
    "max_memory_size": MEMORY_CEILING_BYTES,
    "table_elements": TABLE_ELEMENTS_CEILING,
    "linear_memory_keep_resident": POOL_KEEP_RESIDENT_BYTES,
    "table_keep_resident": 64 * 1024,
}


def engine_config() -> wasmtime.Config:
    """A fresh ``wasmtime.Config`` with :data:`ENGINE_SETTINGS` applied."""
    config = wasmtime.Config()
    for name, value in ENGINE_SETTINGS.items():
        setattr(config, name, value)
    # wasmtime-py 50 binds the pooling allocator's C API but wraps none of it.
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        for name, value in POOL_SETTINGS.items():
            getattr(ffi, f"wasmtime_pooling_allocation_config_{name}_set")(pool, value)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)
    return config


def wasmtime_version() -> str:
    """Version of the installed wasmtime-py (and so of the wasmtime library)."""
    return metadata.version("wasmtime")


def engine_fingerprint() -> str:
    """Identity of the code an engine generates: wasmtime version, target and settings.

    Serialized artifacts are only valid for an engine with the same fingerprint.
    """
    identity = {
        "wasmtime": wasmtime_version(),
        "machine": platform.machine(),
        "system": platform.system(),
        "settings": ENGINE_SETTINGS,
        "pool": POOL_SETTINGS,
    }
    encoded = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]
