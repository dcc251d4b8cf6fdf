"""Hostile (and one well-behaved) WASI modules, as WAT text, for the sandbox tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import wasmtime

HERE = Path(__file__).parent


@cache
def wasm(name: str) -> bytes:
    """The binary of ``<name>.wat`` in this folder."""
    return bytes(wasmtime.wat2wasm((HERE / f"{name}.wat").read_text()))
