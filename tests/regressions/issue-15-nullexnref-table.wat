;; The bottom exception reference type nullexnref ((ref null noexn), 0x74)
;; was refused as "GC is not supported yet", while exception handling
;; alone makes it valid (wasm-tools validate at asyncwasm's features). Found
;; by scripts/fuzz.py (validation kind, seed 42, case 32: a table of it).
;; Its only value is null; it stands wherever an exnref is expected.
(module
  (table (export "t") 3 nullexnref)
  (table $u (export "u") 2 exnref)
  (global (export "g") nullexnref (ref.null noexn))
  (global $x (export "x") (mut exnref) (ref.null noexn))
  (func (export "f") (param i32) (result i32)
    (table.copy $u 0 (i32.const 0) (i32.const 1) (local.get 0))
    (global.set $x (table.get 0 (i32.const 2)))
    (ref.is_null (global.get $x))))
