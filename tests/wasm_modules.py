"""Small WASI command modules (WAT) for runtime tests: deterministic, fast to build.

The runtime does not care what a module computes, only how it ends: these
cover success (echo the input back), slowness (spin before answering), a
wall-clock overrun, an input rejection (exit 65) and a plain crash.
"""

from __future__ import annotations

import wasmtime

_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 16)
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
"""

_ECHO = (
    "(module"
    + _IMPORTS
    + """
  (data (i32.const 64) "{{\\"{key}\\":")
  (data (i32.const 128) "}}")
  (func (export "_start")
    (local $total i32) (local $n i32) (local $i i32)
    (local.set $i (i32.const {spin}))
    (block $done (loop $spin
      (br_if $done (i32.eqz (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $spin)))
    (block $eof (loop $read
      (i32.store (i32.const 16) (i32.add (i32.const 1024) (local.get $total)))
      (i32.store (i32.const 20) (i32.sub (i32.const {buffer}) (local.get $total)))
      (br_if $eof (i32.ne
        (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)) (i32.const 0)))
      (local.set $n (i32.load (i32.const 24)))
      (br_if $eof (i32.eqz (local.get $n)))
      (local.set $total (i32.add (local.get $total) (local.get $n)))
      (br $read)))
    (call $write (i32.const 64) (i32.const {prefix_len}))
    (call $write (i32.const 1024) (local.get $total))
    (call $write (i32.const 128) (i32.const 1))))
"""
)

_TEXT = (
    "(module"
    + _IMPORTS
    + """
  (data (i32.const 1024) "{text}")
  (func (export "_start")
    (call $write (i32.const 1024) (i32.const {length}))
    {tail}))
"""
)


def echo_module(key: str = "echo", *, spin: int = 0, pages: int = 16) -> bytes:
    """Outputs ``{"<key>": <stdin>}`` after ``spin`` idle loop iterations.

    A different ``key`` (or ``spin``) is a different module with its own
    digest. It reads at most its memory (``pages`` of 64 KiB) less 1 KiB.
    """
    wat = _ECHO.format(key=key, spin=spin, prefix_len=len(key) + 4, buffer=pages * 65536 - 1024)
    return wasmtime.wat2wasm(
        wat.replace('(memory (export "memory") 16)', f'(memory (export "memory") {pages})')
    )


def text_module(text: str, *, exit_code: int = 0) -> bytes:
    """Writes ``text`` to stdout, then exits with ``exit_code``."""
    tail = f"(call $proc_exit (i32.const {exit_code}))" if exit_code else ""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return wasmtime.wat2wasm(_TEXT.format(text=escaped, length=len(text.encode()), tail=tail))


def loop_module() -> bytes:
    """Never finishes: only the wall-clock deadline (or fuel) stops it."""
    return wasmtime.wat2wasm("(module" + _IMPORTS + '(func (export "_start") (loop $l (br $l))))')


REJECTION = (
    '{"errors":[{"constraint":"required","field":"spec.price","file_path":"products/x.md",'
    '"message":"price is required"}]}'
)


def rejecting_module() -> bytes:
    """Rejects every input the way a module reports bad input: exit 65 with field errors."""
    return text_module(REJECTION, exit_code=65)
