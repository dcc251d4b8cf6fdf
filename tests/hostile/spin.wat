;; Never returns: a loop without a host call in it.
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
