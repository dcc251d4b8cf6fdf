;; Grows a table 1000 elements at a time; aborts when growth fails.
(module
  (memory (export "memory") 1)
  (table (export "table") 1 funcref)
  (func (export "_start")
    (loop $more
      (if (i32.eq (table.grow (ref.null func) (i32.const 1000)) (i32.const -1))
        (then unreachable))
      (br $more))))
