"""The one engine configuration every sandbox run and cached artifact shares."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata

import wasmtime

# Native stack a guest may use before it traps with a stack overflow. Fixed
# (not wasmtime's default) so deep-recursion outcomes cannot change when the
# default does; it is part of the artifact fingerprint.
MAX_WASM_STACK = 512 * 1024

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


def engine_config() -> wasmtime.Config:
    """A fresh ``wasmtime.Config`` with :data:`ENGINE_SETTINGS` applied."""
    config = wasmtime.Config()
    for name, value in ENGINE_SETTINGS.items():
        setattr(config, name, value)
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
    }
    encoded = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]
