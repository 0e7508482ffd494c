;; f32x4.demote_f64x2_zero of a NaN with a payload: the spec allows any
;; NaN, asyncwasm answers the canonical one and wasmtime (x86) the quieted,
;; truncated payload, and wasm-smith's --canonicalize-nans leaves demote
;; and promote alone. The fuzzers now canonicalize every such SIMD result
;; themselves (tests/fuzz/wasmtools.py, canonicalize_simd_nans); without
;; that this module disagrees. Found by the fast fuzz run (seed 20240601,
;; case 309) once SIMD modules were generated.
(module
  (global (export "demoted") (mut v128) (v128.const i64x2 0 0))
  (global (export "promoted") (mut v128) (v128.const i64x2 0 0))
  (func (export "f") (param v128) (result v128)
    (global.set 0 (f32x4.demote_f64x2_zero (v128.not (local.get 0))))
    (global.set 1 (f64x2.promote_low_f32x4 (v128.const i32x4 0x7f800001 0xffa00000 0 0)))
    (f32x4.add (v128.const i32x4 0x7fa00000 0 0 0) (local.get 0))))
