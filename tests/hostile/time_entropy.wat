;; Reads the clocks and asks for entropy; reports on stdout: realtime twice
;; (u64, u64), monotonic (u64), realtime resolution (u64), 32 random bytes,
;; then 16 more random bytes.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get" (func $res (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 1000)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 1008)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 1016)))
    (drop (call $res (i32.const 0) (i32.const 1024)))
    (drop (call $random (i32.const 1032) (i32.const 32)))
    (drop (call $random (i32.const 1064) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 1000))
    (i32.store (i32.const 4) (i32.const 80))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
