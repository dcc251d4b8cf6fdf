;; Asks poll_oneoff for a 30 s sleep on the monotonic clock, once, and reports
;; (20 + 44 bytes on stdout): clock before (u64), clock after (u64), poll errno
;; (u32), event count (u32), then the event (userdata u64, error u16, type u8).
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 200)))
    ;; subscription at 0: userdata 7, tag clock, id monotonic, timeout 30 s, relative
    (i64.store (i32.const 0) (i64.const 7))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 30000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (i32.store (i32.const 216)
      (call $poll (i32.const 0) (i32.const 232) (i32.const 1) (i32.const 220)))
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 208)))
    (i32.store (i32.const 100) (i32.const 200))
    (i32.store (i32.const 104) (i32.const 64))
    (drop (call $write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))))
