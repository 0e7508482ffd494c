;; A br_if to the function's label that carries two or more values and is
;; not taken: the fall-through must still see the values where they were.
;; The compiler copied the values home for the (not taken) return and then
;; believed them home on the fall-through too, so global $g got a stale
;; slot instead of 1. Found by scripts/fuzz.py (seed 2, case 19).
(module
  (global $g (export "g") (mut i32) (i32.const 0))
  (func (export "f") (param i32) (result i64 i32)
    i64.const 0
    i32.const 1
    local.tee 0
    i32.const 0
    br_if 0
    global.set $g
    drop
    i64.const 0
    i32.const 0))
