;; Imports a host function no sandbox provides.
(module
  (import "env" "read_host_secrets" (func $steal (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $steal))))
