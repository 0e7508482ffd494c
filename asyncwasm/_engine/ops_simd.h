/* ops_simd.h -- the semantics of Wasm's fixed-width SIMD instructions
 * (opcodes_simd.def), as small pure functions on a 128-bit value.
 *
 * Rules (as ops_numeric.h, whose scalar functions the lanes reuse):
 * - Every function is pure; the interpreter's handlers decode operands, call
 *   one of these, store the result and dispatch (interp_simd.inc).
 * - A v128 is 16 little-endian bytes; lane i of a shape is bytes
 *   [i * w, (i + 1) * w). Float lanes travel as bit patterns.
 * - Two implementations, one result: each function has a portable C form
 *   (lane loops, which compilers may vectorize by themselves) and, where it
 *   pays, an SSE2 form (x86-64's baseline, so no CPU check is needed).
 *   -DASYNCWASM_NO_SIMD_INTRINSICS builds the portable forms only; both
 *   builds must give bit-identical results (tests/c/simd_check.c compares
 *   them op by op, and the spec suite runs on both: scripts/build-variants.sh).
 * - NaNs: every NaN that a float operation produces (arithmetic, sqrt,
 *   min/max, rounding, demote/promote) is the canonical NaN with a positive
 *   sign (0x7FC00000, 0x7FF8000000000000). The spec lets such results be any
 *   arithmetic NaN, and hardware differs in which one it picks (x86 keeps the
 *   first operand's payload, ARM prefers a signalling one); canonical NaNs
 *   make every machine and both builds agree. Operations the spec defines
 *   bitwise (abs, neg, pmin, pmax, lane moves, bitwise ops) never touch a NaN.
 * - No UB: lane arithmetic is done on unsigned types or on int32/int64 wide
 *   enough for the result; right shifts of negative values go through asr().
 *
 * Spec: https://webassembly.github.io/spec/core/exec/numerics.html (vector ops).
 */
#ifndef ASYNCWASM_OPS_SIMD_H
#define ASYNCWASM_OPS_SIMD_H

#include "ops_numeric.h"

#if defined(__SSE2__) && !defined(ASYNCWASM_NO_SIMD_INTRINSICS)
#define OPS_SSE2 1
#include <emmintrin.h>
#else
#define OPS_SSE2 0
#endif

typedef union {
    uint8_t u8[16];
    uint16_t u16[8];
    uint32_t u32[4];
    uint64_t u64[2];
    int8_t i8[16];
    int16_t i16[8];
    int32_t i32[4];
    int64_t i64[2];
#if OPS_SSE2
    __m128i m;
    __m128 ps;
    __m128d pd;
#endif
} v128;

#define F32_CANONICAL_NAN 0x7FC00000u
#define F64_CANONICAL_NAN 0x7FF8000000000000ull

/* ---- moving v128 values ---------------------------------------------------------------- */

/* Frame slots hold a v128 as two uint64_t, low half first, with no
 * alignment beyond 8: these unaligned moves cost the same as aligned ones. */
OPS_INLINE v128 v128_from_slots(const uint64_t *s) { v128 v; memcpy(&v, s, sizeof v); return v; }
OPS_INLINE void v128_to_slots(uint64_t *s, v128 v) { memcpy(s, &v, sizeof v); }
OPS_INLINE v128 v128_from_words(const uint32_t *w)
{
    v128 v;
    for (int i = 0; i < 4; i++) v.u32[i] = w[i];
    return v;
}
OPS_INLINE v128 v128_zero(void)
{
    v128 v;
    v.u64[0] = v.u64[1] = 0;
    return v;
}
#if OPS_SSE2
OPS_INLINE v128 vm(__m128i x) { v128 v; v.m = x; return v; }
OPS_INLINE v128 vps(__m128 x) { v128 v; v.ps = x; return v; }
OPS_INLINE v128 vpd(__m128d x) { v128 v; v.pd = x; return v; }
#endif

/* Returns the v128 whose lane L[i] is EXPR for every lane i (the portable
 * form of a lane-wise operation; EXPR reads a.L[i], b.L[i], ...). */
#define LANES(L, EXPR)                                                           \
    do {                                                                         \
        v128 r_;                                                                 \
        for (unsigned i = 0; i < sizeof r_.L / sizeof r_.L[0]; i++) r_.L[i] = (EXPR); \
        return r_;                                                               \
    } while (0)

/* Arithmetic shift right of a (sign-extended) lane value. */
OPS_INLINE int64_t asr(int64_t v, unsigned k) { return v < 0 ? ~(~v >> k) : v >> k; }

OPS_INLINE uint8_t sat_s8(int32_t x) { return (uint8_t)(x < -128 ? 0x80 : x > 127 ? 0x7F : x); }
OPS_INLINE uint8_t sat_u8(int32_t x) { return (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x); }
OPS_INLINE uint16_t sat_s16(int32_t x) { return (uint16_t)(x < -32768 ? 0x8000 : x > 32767 ? 0x7FFF : x); }
OPS_INLINE uint16_t sat_u16(int32_t x) { return (uint16_t)(x < 0 ? 0 : x > 65535 ? 65535 : x); }
OPS_INLINE uint16_t sat_s16_64(int64_t x) { return (uint16_t)(x < -32768 ? 0x8000 : x > 32767 ? 0x7FFF : x); }
OPS_INLINE uint16_t sat_u16_64(int64_t x) { return (uint16_t)(x < 0 ? 0 : x > 65535 ? 65535 : x); }

/* All ones for true, as SIMD comparisons answer. */
#define MASK8(c) ((uint8_t)(0u - (unsigned)(c)))
#define MASK16(c) ((uint16_t)(0u - (unsigned)(c)))
#define MASK32(c) ((uint32_t)(0u - (uint32_t)(c)))
#define MASK64(c) ((uint64_t)(0u - (uint64_t)(c)))

OPS_INLINE uint32_t canon32(uint32_t x) { return f32_is_nan(x) ? F32_CANONICAL_NAN : x; }
OPS_INLINE uint64_t canon64(uint64_t x) { return f64_is_nan(x) ? F64_CANONICAL_NAN : x; }

#if OPS_SSE2
/* NaN lanes of r become the canonical NaN. */
OPS_INLINE __m128 canon_ps(__m128 r)
{
    __m128 nan = _mm_cmpunord_ps(r, r);
    return _mm_or_ps(_mm_andnot_ps(nan, r), _mm_and_ps(nan, _mm_castsi128_ps(_mm_set1_epi32((int)F32_CANONICAL_NAN))));
}
OPS_INLINE __m128d canon_pd(__m128d r)
{
    __m128d nan = _mm_cmpunord_pd(r, r);
    return _mm_or_pd(_mm_andnot_pd(nan, r),
                     _mm_and_pd(nan, _mm_castsi128_pd(_mm_set1_epi64x((long long)F64_CANONICAL_NAN))));
}
/* Unsigned comparisons as signed ones: flip the sign bits. */
OPS_INLINE __m128i flip8(__m128i x) { return _mm_xor_si128(x, _mm_set1_epi8((char)0x80)); }
OPS_INLINE __m128i flip16(__m128i x) { return _mm_xor_si128(x, _mm_set1_epi16((short)0x8000)); }
OPS_INLINE __m128i flip32(__m128i x) { return _mm_xor_si128(x, _mm_set1_epi32((int)0x80000000u)); }
OPS_INLINE __m128i not128(__m128i x) { return _mm_xor_si128(x, _mm_set1_epi32(-1)); }
/* m ? a : b, bit by bit. */
OPS_INLINE __m128i blend128(__m128i m, __m128i a, __m128i b)
{
    return _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
}
#endif

/* ---- loads (p: the guest bytes, bounds already checked) ----------------------------------- */

OPS_INLINE v128 v128_load(const uint8_t *p) { v128 v; memcpy(&v, p, 16); return v; }
OPS_INLINE v128 v128_load8x8_s(const uint8_t *p) { LANES(u16, (uint16_t)(int8_t)p[i]); }
OPS_INLINE v128 v128_load8x8_u(const uint8_t *p) { LANES(u16, p[i]); }
OPS_INLINE v128 v128_load16x4_s(const uint8_t *p) { LANES(u32, (uint32_t)(int16_t)mem_read_u16(p + 2 * i)); }
OPS_INLINE v128 v128_load16x4_u(const uint8_t *p) { LANES(u32, mem_read_u16(p + 2 * i)); }
OPS_INLINE v128 v128_load32x2_s(const uint8_t *p) { LANES(u64, (uint64_t)(int32_t)mem_read_u32(p + 4 * i)); }
OPS_INLINE v128 v128_load32x2_u(const uint8_t *p) { LANES(u64, mem_read_u32(p + 4 * i)); }
OPS_INLINE v128 v128_load8_splat(const uint8_t *p) { LANES(u8, p[0]); }
OPS_INLINE v128 v128_load16_splat(const uint8_t *p) { uint16_t x = (uint16_t)mem_read_u16(p); LANES(u16, x); }
OPS_INLINE v128 v128_load32_splat(const uint8_t *p) { uint32_t x = mem_read_u32(p); LANES(u32, x); }
OPS_INLINE v128 v128_load64_splat(const uint8_t *p) { uint64_t x = mem_read_u64(p); LANES(u64, x); }
OPS_INLINE v128 v128_load32_zero(const uint8_t *p) { v128 v = v128_zero(); v.u32[0] = mem_read_u32(p); return v; }
OPS_INLINE v128 v128_load64_zero(const uint8_t *p) { v128 v = v128_zero(); v.u64[0] = mem_read_u64(p); return v; }

/* One lane of `size` bytes (1, 2, 4, 8) between memory and v. The lane is
 * below 16 / size (validated); the mask keeps even corrupt code in bounds. */
OPS_INLINE v128 v128_load_lane(v128 v, const uint8_t *p, uint32_t lane, unsigned size)
{
    memcpy(&v.u8[(lane & (16 / size - 1)) * size], p, size);
    return v;
}
OPS_INLINE void v128_store_lane(uint8_t *p, v128 v, uint32_t lane, unsigned size)
{
    memcpy(p, &v.u8[(lane & (16 / size - 1)) * size], size);
}

/* ---- splats, lanes, shuffles ------------------------------------------------------------------ */

OPS_INLINE v128 i8x16_splat(uint32_t x) { LANES(u8, (uint8_t)x); }
OPS_INLINE v128 i16x8_splat(uint32_t x) { LANES(u16, (uint16_t)x); }
OPS_INLINE v128 i32x4_splat(uint32_t x) { LANES(u32, x); }
OPS_INLINE v128 i64x2_splat(uint64_t x) { LANES(u64, x); }
OPS_INLINE v128 f32x4_splat(uint32_t x) { LANES(u32, x); }
OPS_INLINE v128 f64x2_splat(uint64_t x) { LANES(u64, x); }

OPS_INLINE uint32_t i8x16_extract_lane_s(v128 a, uint32_t l) { return (uint32_t)(int32_t)a.i8[l & 15]; }
OPS_INLINE uint32_t i8x16_extract_lane_u(v128 a, uint32_t l) { return a.u8[l & 15]; }
OPS_INLINE uint32_t i16x8_extract_lane_s(v128 a, uint32_t l) { return (uint32_t)(int32_t)a.i16[l & 7]; }
OPS_INLINE uint32_t i16x8_extract_lane_u(v128 a, uint32_t l) { return a.u16[l & 7]; }
OPS_INLINE uint32_t i32x4_extract_lane(v128 a, uint32_t l) { return a.u32[l & 3]; }
OPS_INLINE uint64_t i64x2_extract_lane(v128 a, uint32_t l) { return a.u64[l & 1]; }
OPS_INLINE uint32_t f32x4_extract_lane(v128 a, uint32_t l) { return a.u32[l & 3]; }
OPS_INLINE uint64_t f64x2_extract_lane(v128 a, uint32_t l) { return a.u64[l & 1]; }
OPS_INLINE v128 i8x16_replace_lane(v128 a, uint32_t x, uint32_t l) { a.u8[l & 15] = (uint8_t)x; return a; }
OPS_INLINE v128 i16x8_replace_lane(v128 a, uint32_t x, uint32_t l) { a.u16[l & 7] = (uint16_t)x; return a; }
OPS_INLINE v128 i32x4_replace_lane(v128 a, uint32_t x, uint32_t l) { a.u32[l & 3] = x; return a; }
OPS_INLINE v128 i64x2_replace_lane(v128 a, uint64_t x, uint32_t l) { a.u64[l & 1] = x; return a; }
OPS_INLINE v128 f32x4_replace_lane(v128 a, uint32_t x, uint32_t l) { a.u32[l & 3] = x; return a; }
OPS_INLINE v128 f64x2_replace_lane(v128 a, uint64_t x, uint32_t l) { a.u64[l & 1] = x; return a; }

/* lanes: the 16 index bytes (each below 32, validated) packed in 4 words. */
OPS_INLINE v128 i8x16_shuffle(v128 a, v128 b, const uint32_t *lanes)
{
    v128 r, idx = v128_from_words(lanes);
    for (int i = 0; i < 16; i++) {
        unsigned k = idx.u8[i] & 31;
        r.u8[i] = k < 16 ? a.u8[k] : b.u8[k - 16];
    }
    return r;
}
OPS_INLINE v128 i8x16_swizzle(v128 a, v128 s) { LANES(u8, s.u8[i] < 16 ? a.u8[s.u8[i]] : 0); }

/* ---- bitwise ------------------------------------------------------------------------------------ */

OPS_INLINE v128 v128_not(v128 a) { LANES(u64, ~a.u64[i]); }
OPS_INLINE v128 v128_and(v128 a, v128 b) { LANES(u64, a.u64[i] & b.u64[i]); }
OPS_INLINE v128 v128_andnot(v128 a, v128 b) { LANES(u64, a.u64[i] & ~b.u64[i]); }
OPS_INLINE v128 v128_or(v128 a, v128 b) { LANES(u64, a.u64[i] | b.u64[i]); }
OPS_INLINE v128 v128_xor(v128 a, v128 b) { LANES(u64, a.u64[i] ^ b.u64[i]); }
OPS_INLINE v128 v128_bitselect(v128 a, v128 b, v128 c) { LANES(u64, (a.u64[i] & c.u64[i]) | (b.u64[i] & ~c.u64[i])); }
OPS_INLINE uint32_t v128_any_true(v128 a) { return (a.u64[0] | a.u64[1]) != 0; }

/* ---- integer comparisons ---------------------------------------------------------------------- */

#if OPS_SSE2
#define CMP_SSE2(BITS, FLIP)                                                                       \
    OPS_INLINE v128 i##BITS##_eq_m(__m128i a, __m128i b) { return vm(_mm_cmpeq_epi##BITS(a, b)); } \
    OPS_INLINE v128 i##BITS##_gt_s_m(__m128i a, __m128i b) { return vm(_mm_cmpgt_epi##BITS(a, b)); } \
    OPS_INLINE v128 i##BITS##_gt_u_m(__m128i a, __m128i b) { return vm(_mm_cmpgt_epi##BITS(FLIP(a), FLIP(b))); }
CMP_SSE2(8, flip8)
CMP_SSE2(16, flip16)
CMP_SSE2(32, flip32)
#undef CMP_SSE2
/* eq, ne, lt, gt, le, ge from eq and gt: a < b is b > a, a <= b is !(a > b). */
#define CMP_FROM_SSE2(SHAPE, BITS)                                                                            \
    OPS_INLINE v128 SHAPE##_eq(v128 a, v128 b) { return i##BITS##_eq_m(a.m, b.m); }                           \
    OPS_INLINE v128 SHAPE##_ne(v128 a, v128 b) { return vm(not128(i##BITS##_eq_m(a.m, b.m).m)); }             \
    OPS_INLINE v128 SHAPE##_lt_s(v128 a, v128 b) { return i##BITS##_gt_s_m(b.m, a.m); }                       \
    OPS_INLINE v128 SHAPE##_lt_u(v128 a, v128 b) { return i##BITS##_gt_u_m(b.m, a.m); }                       \
    OPS_INLINE v128 SHAPE##_gt_s(v128 a, v128 b) { return i##BITS##_gt_s_m(a.m, b.m); }                       \
    OPS_INLINE v128 SHAPE##_gt_u(v128 a, v128 b) { return i##BITS##_gt_u_m(a.m, b.m); }                       \
    OPS_INLINE v128 SHAPE##_le_s(v128 a, v128 b) { return vm(not128(i##BITS##_gt_s_m(a.m, b.m).m)); }         \
    OPS_INLINE v128 SHAPE##_le_u(v128 a, v128 b) { return vm(not128(i##BITS##_gt_u_m(a.m, b.m).m)); }         \
    OPS_INLINE v128 SHAPE##_ge_s(v128 a, v128 b) { return vm(not128(i##BITS##_gt_s_m(b.m, a.m).m)); }         \
    OPS_INLINE v128 SHAPE##_ge_u(v128 a, v128 b) { return vm(not128(i##BITS##_gt_u_m(b.m, a.m).m)); }
CMP_FROM_SSE2(i8x16, 8)
CMP_FROM_SSE2(i16x8, 16)
CMP_FROM_SSE2(i32x4, 32)
#undef CMP_FROM_SSE2
#else
#define CMP_PORTABLE(SHAPE, U, S, MASK)                                                         \
    OPS_INLINE v128 SHAPE##_eq(v128 a, v128 b) { LANES(U, MASK(a.U[i] == b.U[i])); }            \
    OPS_INLINE v128 SHAPE##_ne(v128 a, v128 b) { LANES(U, MASK(a.U[i] != b.U[i])); }            \
    OPS_INLINE v128 SHAPE##_lt_s(v128 a, v128 b) { LANES(U, MASK(a.S[i] < b.S[i])); }           \
    OPS_INLINE v128 SHAPE##_lt_u(v128 a, v128 b) { LANES(U, MASK(a.U[i] < b.U[i])); }           \
    OPS_INLINE v128 SHAPE##_gt_s(v128 a, v128 b) { LANES(U, MASK(a.S[i] > b.S[i])); }           \
    OPS_INLINE v128 SHAPE##_gt_u(v128 a, v128 b) { LANES(U, MASK(a.U[i] > b.U[i])); }           \
    OPS_INLINE v128 SHAPE##_le_s(v128 a, v128 b) { LANES(U, MASK(a.S[i] <= b.S[i])); }          \
    OPS_INLINE v128 SHAPE##_le_u(v128 a, v128 b) { LANES(U, MASK(a.U[i] <= b.U[i])); }          \
    OPS_INLINE v128 SHAPE##_ge_s(v128 a, v128 b) { LANES(U, MASK(a.S[i] >= b.S[i])); }          \
    OPS_INLINE v128 SHAPE##_ge_u(v128 a, v128 b) { LANES(U, MASK(a.U[i] >= b.U[i])); }
CMP_PORTABLE(i8x16, u8, i8, MASK8)
CMP_PORTABLE(i16x8, u16, i16, MASK16)
CMP_PORTABLE(i32x4, u32, i32, MASK32)
#undef CMP_PORTABLE
#endif
/* i64x2 has signed comparisons only; SSE2 has no 64-bit compare. */
OPS_INLINE v128 i64x2_eq(v128 a, v128 b) { LANES(u64, MASK64(a.u64[i] == b.u64[i])); }
OPS_INLINE v128 i64x2_ne(v128 a, v128 b) { LANES(u64, MASK64(a.u64[i] != b.u64[i])); }
OPS_INLINE v128 i64x2_lt_s(v128 a, v128 b) { LANES(u64, MASK64(a.i64[i] < b.i64[i])); }
OPS_INLINE v128 i64x2_gt_s(v128 a, v128 b) { LANES(u64, MASK64(a.i64[i] > b.i64[i])); }
OPS_INLINE v128 i64x2_le_s(v128 a, v128 b) { LANES(u64, MASK64(a.i64[i] <= b.i64[i])); }
OPS_INLINE v128 i64x2_ge_s(v128 a, v128 b) { LANES(u64, MASK64(a.i64[i] >= b.i64[i])); }

/* ---- float comparisons (IEEE: false with a NaN, ne true) --------------------------------------- */

#if OPS_SSE2 /* cmpltps and cmpleps with swapped operands give gt and ge */
#define FLOAT_CMP(SHAPE, SCALAR, L, MASK, V, M)                                                   \
    OPS_INLINE v128 SHAPE##_eq(v128 a, v128 b) { return V(_mm_cmpeq_##M(a.M, b.M)); }            \
    OPS_INLINE v128 SHAPE##_ne(v128 a, v128 b) { return V(_mm_cmpneq_##M(a.M, b.M)); }           \
    OPS_INLINE v128 SHAPE##_lt(v128 a, v128 b) { return V(_mm_cmplt_##M(a.M, b.M)); }            \
    OPS_INLINE v128 SHAPE##_gt(v128 a, v128 b) { return V(_mm_cmplt_##M(b.M, a.M)); }            \
    OPS_INLINE v128 SHAPE##_le(v128 a, v128 b) { return V(_mm_cmple_##M(a.M, b.M)); }            \
    OPS_INLINE v128 SHAPE##_ge(v128 a, v128 b) { return V(_mm_cmple_##M(b.M, a.M)); }
#else
#define FLOAT_CMP(SHAPE, SCALAR, L, MASK, V, M)                                                   \
    OPS_INLINE v128 SHAPE##_eq(v128 a, v128 b) { LANES(L, MASK(SCALAR##_eq(a.L[i], b.L[i]))); }  \
    OPS_INLINE v128 SHAPE##_ne(v128 a, v128 b) { LANES(L, MASK(SCALAR##_ne(a.L[i], b.L[i]))); }  \
    OPS_INLINE v128 SHAPE##_lt(v128 a, v128 b) { LANES(L, MASK(SCALAR##_lt(a.L[i], b.L[i]))); }  \
    OPS_INLINE v128 SHAPE##_gt(v128 a, v128 b) { LANES(L, MASK(SCALAR##_gt(a.L[i], b.L[i]))); }  \
    OPS_INLINE v128 SHAPE##_le(v128 a, v128 b) { LANES(L, MASK(SCALAR##_le(a.L[i], b.L[i]))); }  \
    OPS_INLINE v128 SHAPE##_ge(v128 a, v128 b) { LANES(L, MASK(SCALAR##_ge(a.L[i], b.L[i]))); }
#endif
FLOAT_CMP(f32x4, f32, u32, MASK32, vps, ps)
FLOAT_CMP(f64x2, f64, u64, MASK64, vpd, pd)
#undef FLOAT_CMP

/* ---- integer arithmetic, every shape -------------------------------------------------------------- */

/* add, sub: wrapping. */
#if OPS_SSE2
#define ADD_SUB(SHAPE, BITS, U)                                                                   \
    OPS_INLINE v128 SHAPE##_add(v128 a, v128 b) { return vm(_mm_add_epi##BITS(a.m, b.m)); }       \
    OPS_INLINE v128 SHAPE##_sub(v128 a, v128 b) { return vm(_mm_sub_epi##BITS(a.m, b.m)); }       \
    OPS_INLINE v128 SHAPE##_neg(v128 a) { return vm(_mm_sub_epi##BITS(_mm_setzero_si128(), a.m)); }
#else
#define ADD_SUB(SHAPE, BITS, U)                                                                   \
    OPS_INLINE v128 SHAPE##_add(v128 a, v128 b) { LANES(U, (uint##BITS##_t)(a.U[i] + b.U[i])); }  \
    OPS_INLINE v128 SHAPE##_sub(v128 a, v128 b) { LANES(U, (uint##BITS##_t)(a.U[i] - b.U[i])); }  \
    OPS_INLINE v128 SHAPE##_neg(v128 a) { LANES(U, (uint##BITS##_t)(0u - a.U[i])); }
#endif
ADD_SUB(i8x16, 8, u8)
ADD_SUB(i16x8, 16, u16)
ADD_SUB(i32x4, 32, u32)
ADD_SUB(i64x2, 64, u64)
#undef ADD_SUB

/* abs: wrapping, so abs(INT_MIN) = INT_MIN. */
OPS_INLINE v128 i8x16_abs(v128 a) { LANES(u8, a.i8[i] < 0 ? (uint8_t)(0u - a.u8[i]) : a.u8[i]); }
OPS_INLINE v128 i16x8_abs(v128 a) { LANES(u16, a.i16[i] < 0 ? (uint16_t)(0u - a.u16[i]) : a.u16[i]); }
OPS_INLINE v128 i32x4_abs(v128 a) { LANES(u32, a.i32[i] < 0 ? 0u - a.u32[i] : a.u32[i]); }
OPS_INLINE v128 i64x2_abs(v128 a) { LANES(u64, a.i64[i] < 0 ? 0u - a.u64[i] : a.u64[i]); }

/* Saturating add/sub of 8- and 16-bit lanes. */
#if OPS_SSE2
OPS_INLINE v128 i8x16_add_sat_s(v128 a, v128 b) { return vm(_mm_adds_epi8(a.m, b.m)); }
OPS_INLINE v128 i8x16_add_sat_u(v128 a, v128 b) { return vm(_mm_adds_epu8(a.m, b.m)); }
OPS_INLINE v128 i8x16_sub_sat_s(v128 a, v128 b) { return vm(_mm_subs_epi8(a.m, b.m)); }
OPS_INLINE v128 i8x16_sub_sat_u(v128 a, v128 b) { return vm(_mm_subs_epu8(a.m, b.m)); }
OPS_INLINE v128 i16x8_add_sat_s(v128 a, v128 b) { return vm(_mm_adds_epi16(a.m, b.m)); }
OPS_INLINE v128 i16x8_add_sat_u(v128 a, v128 b) { return vm(_mm_adds_epu16(a.m, b.m)); }
OPS_INLINE v128 i16x8_sub_sat_s(v128 a, v128 b) { return vm(_mm_subs_epi16(a.m, b.m)); }
OPS_INLINE v128 i16x8_sub_sat_u(v128 a, v128 b) { return vm(_mm_subs_epu16(a.m, b.m)); }
#else
OPS_INLINE v128 i8x16_add_sat_s(v128 a, v128 b) { LANES(u8, sat_s8(a.i8[i] + b.i8[i])); }
OPS_INLINE v128 i8x16_add_sat_u(v128 a, v128 b) { LANES(u8, sat_u8(a.u8[i] + b.u8[i])); }
OPS_INLINE v128 i8x16_sub_sat_s(v128 a, v128 b) { LANES(u8, sat_s8(a.i8[i] - b.i8[i])); }
OPS_INLINE v128 i8x16_sub_sat_u(v128 a, v128 b) { LANES(u8, sat_u8(a.u8[i] - b.u8[i])); }
OPS_INLINE v128 i16x8_add_sat_s(v128 a, v128 b) { LANES(u16, sat_s16(a.i16[i] + b.i16[i])); }
OPS_INLINE v128 i16x8_add_sat_u(v128 a, v128 b) { LANES(u16, sat_u16(a.u16[i] + b.u16[i])); }
OPS_INLINE v128 i16x8_sub_sat_s(v128 a, v128 b) { LANES(u16, sat_s16(a.i16[i] - b.i16[i])); }
OPS_INLINE v128 i16x8_sub_sat_u(v128 a, v128 b) { LANES(u16, sat_u16(a.u16[i] - b.u16[i])); }
#endif

/* mul: the low half of each lane's product. */
#if OPS_SSE2
OPS_INLINE v128 i16x8_mul(v128 a, v128 b) { return vm(_mm_mullo_epi16(a.m, b.m)); }
/* SSE2 multiplies lanes 0 and 2 (pmuludq); shift 1 and 3 down for the rest. */
OPS_INLINE v128 i32x4_mul(v128 a, v128 b)
{
    __m128i even = _mm_mul_epu32(a.m, b.m);
    __m128i odd = _mm_mul_epu32(_mm_srli_epi64(a.m, 32), _mm_srli_epi64(b.m, 32));
    return vm(_mm_unpacklo_epi32(_mm_shuffle_epi32(even, _MM_SHUFFLE(0, 0, 2, 0)),
                                 _mm_shuffle_epi32(odd, _MM_SHUFFLE(0, 0, 2, 0))));
}
/* (ah * 2^32 + al) * (bh * 2^32 + bl) mod 2^64 = al * bl + ((ah * bl + al * bh) << 32) */
OPS_INLINE v128 i64x2_mul(v128 a, v128 b)
{
    __m128i low = _mm_mul_epu32(a.m, b.m);
    __m128i cross = _mm_add_epi64(_mm_mul_epu32(_mm_srli_epi64(a.m, 32), b.m),
                                  _mm_mul_epu32(a.m, _mm_srli_epi64(b.m, 32)));
    return vm(_mm_add_epi64(low, _mm_slli_epi64(cross, 32)));
}
#else
OPS_INLINE v128 i16x8_mul(v128 a, v128 b) { LANES(u16, (uint16_t)((uint32_t)a.u16[i] * b.u16[i])); }
OPS_INLINE v128 i32x4_mul(v128 a, v128 b) { LANES(u32, a.u32[i] * b.u32[i]); }
OPS_INLINE v128 i64x2_mul(v128 a, v128 b) { LANES(u64, a.u64[i] * b.u64[i]); }
#endif

/* min, max */
#if OPS_SSE2
OPS_INLINE v128 i8x16_min_u(v128 a, v128 b) { return vm(_mm_min_epu8(a.m, b.m)); }
OPS_INLINE v128 i8x16_max_u(v128 a, v128 b) { return vm(_mm_max_epu8(a.m, b.m)); }
OPS_INLINE v128 i8x16_min_s(v128 a, v128 b) { return vm(flip8(_mm_min_epu8(flip8(a.m), flip8(b.m)))); }
OPS_INLINE v128 i8x16_max_s(v128 a, v128 b) { return vm(flip8(_mm_max_epu8(flip8(a.m), flip8(b.m)))); }
OPS_INLINE v128 i16x8_min_s(v128 a, v128 b) { return vm(_mm_min_epi16(a.m, b.m)); }
OPS_INLINE v128 i16x8_max_s(v128 a, v128 b) { return vm(_mm_max_epi16(a.m, b.m)); }
OPS_INLINE v128 i16x8_min_u(v128 a, v128 b) { return vm(flip16(_mm_min_epi16(flip16(a.m), flip16(b.m)))); }
OPS_INLINE v128 i16x8_max_u(v128 a, v128 b) { return vm(flip16(_mm_max_epi16(flip16(a.m), flip16(b.m)))); }
OPS_INLINE v128 i32x4_min_s(v128 a, v128 b) { return vm(blend128(_mm_cmpgt_epi32(a.m, b.m), b.m, a.m)); }
OPS_INLINE v128 i32x4_max_s(v128 a, v128 b) { return vm(blend128(_mm_cmpgt_epi32(a.m, b.m), a.m, b.m)); }
OPS_INLINE v128 i32x4_min_u(v128 a, v128 b) { return vm(blend128(_mm_cmpgt_epi32(flip32(a.m), flip32(b.m)), b.m, a.m)); }
OPS_INLINE v128 i32x4_max_u(v128 a, v128 b) { return vm(blend128(_mm_cmpgt_epi32(flip32(a.m), flip32(b.m)), a.m, b.m)); }
#else
#define MIN_MAX(SHAPE, U, S)                                                                   \
    OPS_INLINE v128 SHAPE##_min_s(v128 a, v128 b) { LANES(U, a.S[i] < b.S[i] ? a.U[i] : b.U[i]); } \
    OPS_INLINE v128 SHAPE##_min_u(v128 a, v128 b) { LANES(U, a.U[i] < b.U[i] ? a.U[i] : b.U[i]); } \
    OPS_INLINE v128 SHAPE##_max_s(v128 a, v128 b) { LANES(U, a.S[i] > b.S[i] ? a.U[i] : b.U[i]); } \
    OPS_INLINE v128 SHAPE##_max_u(v128 a, v128 b) { LANES(U, a.U[i] > b.U[i] ? a.U[i] : b.U[i]); }
MIN_MAX(i8x16, u8, i8)
MIN_MAX(i16x8, u16, i16)
MIN_MAX(i32x4, u32, i32)
#undef MIN_MAX
#endif

/* avgr_u: (a + b + 1) / 2, without overflow. */
#if OPS_SSE2
OPS_INLINE v128 i8x16_avgr_u(v128 a, v128 b) { return vm(_mm_avg_epu8(a.m, b.m)); }
OPS_INLINE v128 i16x8_avgr_u(v128 a, v128 b) { return vm(_mm_avg_epu16(a.m, b.m)); }
#else
OPS_INLINE v128 i8x16_avgr_u(v128 a, v128 b) { LANES(u8, (uint8_t)((a.u8[i] + b.u8[i] + 1u) >> 1)); }
OPS_INLINE v128 i16x8_avgr_u(v128 a, v128 b) { LANES(u16, (uint16_t)((a.u16[i] + b.u16[i] + 1u) >> 1)); }
#endif

/* Shifts: the count is taken modulo the lane width. */
#if OPS_SSE2
#define SHIFTS_SSE2(SHAPE, BITS)                                                                        \
    OPS_INLINE v128 SHAPE##_shl(v128 a, uint32_t k)                                                     \
    {                                                                                                   \
        return vm(_mm_sll_epi##BITS(a.m, _mm_cvtsi32_si128((int)(k & (BITS - 1)))));                   \
    }                                                                                                   \
    OPS_INLINE v128 SHAPE##_shr_u(v128 a, uint32_t k)                                                   \
    {                                                                                                   \
        return vm(_mm_srl_epi##BITS(a.m, _mm_cvtsi32_si128((int)(k & (BITS - 1)))));                   \
    }
SHIFTS_SSE2(i16x8, 16)
SHIFTS_SSE2(i32x4, 32)
SHIFTS_SSE2(i64x2, 64)
#undef SHIFTS_SSE2
OPS_INLINE v128 i16x8_shr_s(v128 a, uint32_t k) { return vm(_mm_sra_epi16(a.m, _mm_cvtsi32_si128((int)(k & 15)))); }
OPS_INLINE v128 i32x4_shr_s(v128 a, uint32_t k) { return vm(_mm_sra_epi32(a.m, _mm_cvtsi32_si128((int)(k & 31)))); }
#else
OPS_INLINE v128 i16x8_shl(v128 a, uint32_t k) { LANES(u16, (uint16_t)((uint32_t)a.u16[i] << (k & 15))); }
OPS_INLINE v128 i16x8_shr_u(v128 a, uint32_t k) { LANES(u16, (uint16_t)(a.u16[i] >> (k & 15))); }
OPS_INLINE v128 i16x8_shr_s(v128 a, uint32_t k) { LANES(u16, (uint16_t)asr(a.i16[i], k & 15)); }
OPS_INLINE v128 i32x4_shl(v128 a, uint32_t k) { LANES(u32, a.u32[i] << (k & 31)); }
OPS_INLINE v128 i32x4_shr_u(v128 a, uint32_t k) { LANES(u32, a.u32[i] >> (k & 31)); }
OPS_INLINE v128 i32x4_shr_s(v128 a, uint32_t k) { LANES(u32, (uint32_t)asr(a.i32[i], k & 31)); }
OPS_INLINE v128 i64x2_shl(v128 a, uint32_t k) { LANES(u64, a.u64[i] << (k & 63)); }
OPS_INLINE v128 i64x2_shr_u(v128 a, uint32_t k) { LANES(u64, a.u64[i] >> (k & 63)); }
#endif
OPS_INLINE v128 i8x16_shl(v128 a, uint32_t k) { LANES(u8, (uint8_t)((uint32_t)a.u8[i] << (k & 7))); }
OPS_INLINE v128 i8x16_shr_u(v128 a, uint32_t k) { LANES(u8, (uint8_t)(a.u8[i] >> (k & 7))); }
OPS_INLINE v128 i8x16_shr_s(v128 a, uint32_t k) { LANES(u8, (uint8_t)asr(a.i8[i], k & 7)); }
OPS_INLINE v128 i64x2_shr_s(v128 a, uint32_t k) { LANES(u64, (uint64_t)asr(a.i64[i], k & 63)); }

/* ---- lane tests and masks ---------------------------------------------------------------------------- */

#if OPS_SSE2
OPS_INLINE uint32_t i8x16_all_true(v128 a) { return _mm_movemask_epi8(_mm_cmpeq_epi8(a.m, _mm_setzero_si128())) == 0; }
OPS_INLINE uint32_t i16x8_all_true(v128 a) { return _mm_movemask_epi8(_mm_cmpeq_epi16(a.m, _mm_setzero_si128())) == 0; }
OPS_INLINE uint32_t i32x4_all_true(v128 a) { return _mm_movemask_epi8(_mm_cmpeq_epi32(a.m, _mm_setzero_si128())) == 0; }
OPS_INLINE uint32_t i8x16_bitmask(v128 a) { return (uint32_t)_mm_movemask_epi8(a.m); }
OPS_INLINE uint32_t i16x8_bitmask(v128 a) { return (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(a.m, a.m)) & 0xFFu; }
OPS_INLINE uint32_t i32x4_bitmask(v128 a) { return (uint32_t)_mm_movemask_ps(a.ps); }
OPS_INLINE uint32_t i64x2_bitmask(v128 a) { return (uint32_t)_mm_movemask_pd(a.pd); }
#else
/* all_true: every lane nonzero; bitmask: bit i is lane i's top bit. */
#define LANE_TESTS(SHAPE, L, N, BITS)                                                           \
    OPS_INLINE uint32_t SHAPE##_all_true(v128 a)                                                \
    {                                                                                           \
        uint32_t all = 1;                                                                       \
        for (int i = 0; i < (N); i++) all &= a.L[i] != 0;                                       \
        return all;                                                                             \
    }                                                                                           \
    OPS_INLINE uint32_t SHAPE##_bitmask(v128 a)                                                 \
    {                                                                                           \
        uint32_t m = 0;                                                                         \
        for (int i = 0; i < (N); i++) m |= (uint32_t)(a.L[i] >> ((BITS) - 1)) << i;             \
        return m;                                                                               \
    }
LANE_TESTS(i8x16, u8, 16, 8)
LANE_TESTS(i16x8, u16, 8, 16)
LANE_TESTS(i32x4, u32, 4, 32)
#undef LANE_TESTS
OPS_INLINE uint32_t i64x2_bitmask(v128 a) { return (uint32_t)(a.u64[0] >> 63) | (uint32_t)(a.u64[1] >> 63) << 1; }
#endif
OPS_INLINE uint32_t i64x2_all_true(v128 a) { return a.u64[0] != 0 && a.u64[1] != 0; }

/* popcnt per byte: the SWAR steps of i64_popcnt, stopped before the bytes are summed. */
OPS_INLINE v128 i8x16_popcnt(v128 a)
{
    v128 r;
    for (int i = 0; i < 2; i++) {
        uint64_t x = a.u64[i];
        x = x - ((x >> 1) & 0x5555555555555555ull);
        x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
        r.u64[i] = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    }
    return r;
}

/* ---- narrowing (signed inputs, saturated), widening ------------------------------------------------- */

#if OPS_SSE2
OPS_INLINE v128 i8x16_narrow_i16x8_s(v128 a, v128 b) { return vm(_mm_packs_epi16(a.m, b.m)); }
OPS_INLINE v128 i8x16_narrow_i16x8_u(v128 a, v128 b) { return vm(_mm_packus_epi16(a.m, b.m)); }
OPS_INLINE v128 i16x8_narrow_i32x4_s(v128 a, v128 b) { return vm(_mm_packs_epi32(a.m, b.m)); }
#else
OPS_INLINE v128 i8x16_narrow_i16x8_s(v128 a, v128 b) { LANES(u8, sat_s8(i < 8 ? a.i16[i] : b.i16[i - 8])); }
OPS_INLINE v128 i8x16_narrow_i16x8_u(v128 a, v128 b) { LANES(u8, sat_u8(i < 8 ? a.i16[i] : b.i16[i - 8])); }
OPS_INLINE v128 i16x8_narrow_i32x4_s(v128 a, v128 b) { LANES(u16, sat_s16_64(i < 4 ? a.i32[i] : b.i32[i - 4])); }
#endif
OPS_INLINE v128 i16x8_narrow_i32x4_u(v128 a, v128 b) { LANES(u16, sat_u16_64(i < 4 ? a.i32[i] : b.i32[i - 4])); }

/* extend_low/high: lanes 0..n/2-1 or n/2..n-1, sign- or zero-extended. */
#if OPS_SSE2
OPS_INLINE __m128i sign8(__m128i x) { return _mm_cmpgt_epi8(_mm_setzero_si128(), x); }
OPS_INLINE __m128i sign16(__m128i x) { return _mm_srai_epi16(x, 15); }
OPS_INLINE __m128i sign32(__m128i x) { return _mm_srai_epi32(x, 31); }
OPS_INLINE v128 i16x8_extend_low_i8x16_s(v128 a) { return vm(_mm_unpacklo_epi8(a.m, sign8(a.m))); }
OPS_INLINE v128 i16x8_extend_high_i8x16_s(v128 a) { return vm(_mm_unpackhi_epi8(a.m, sign8(a.m))); }
OPS_INLINE v128 i16x8_extend_low_i8x16_u(v128 a) { return vm(_mm_unpacklo_epi8(a.m, _mm_setzero_si128())); }
OPS_INLINE v128 i16x8_extend_high_i8x16_u(v128 a) { return vm(_mm_unpackhi_epi8(a.m, _mm_setzero_si128())); }
OPS_INLINE v128 i32x4_extend_low_i16x8_s(v128 a) { return vm(_mm_unpacklo_epi16(a.m, sign16(a.m))); }
OPS_INLINE v128 i32x4_extend_high_i16x8_s(v128 a) { return vm(_mm_unpackhi_epi16(a.m, sign16(a.m))); }
OPS_INLINE v128 i32x4_extend_low_i16x8_u(v128 a) { return vm(_mm_unpacklo_epi16(a.m, _mm_setzero_si128())); }
OPS_INLINE v128 i32x4_extend_high_i16x8_u(v128 a) { return vm(_mm_unpackhi_epi16(a.m, _mm_setzero_si128())); }
OPS_INLINE v128 i64x2_extend_low_i32x4_s(v128 a) { return vm(_mm_unpacklo_epi32(a.m, sign32(a.m))); }
OPS_INLINE v128 i64x2_extend_high_i32x4_s(v128 a) { return vm(_mm_unpackhi_epi32(a.m, sign32(a.m))); }
OPS_INLINE v128 i64x2_extend_low_i32x4_u(v128 a) { return vm(_mm_unpacklo_epi32(a.m, _mm_setzero_si128())); }
OPS_INLINE v128 i64x2_extend_high_i32x4_u(v128 a) { return vm(_mm_unpackhi_epi32(a.m, _mm_setzero_si128())); }
#else
OPS_INLINE v128 i16x8_extend_low_i8x16_s(v128 a) { LANES(u16, (uint16_t)a.i8[i]); }
OPS_INLINE v128 i16x8_extend_high_i8x16_s(v128 a) { LANES(u16, (uint16_t)a.i8[i + 8]); }
OPS_INLINE v128 i16x8_extend_low_i8x16_u(v128 a) { LANES(u16, a.u8[i]); }
OPS_INLINE v128 i16x8_extend_high_i8x16_u(v128 a) { LANES(u16, a.u8[i + 8]); }
OPS_INLINE v128 i32x4_extend_low_i16x8_s(v128 a) { LANES(u32, (uint32_t)a.i16[i]); }
OPS_INLINE v128 i32x4_extend_high_i16x8_s(v128 a) { LANES(u32, (uint32_t)a.i16[i + 4]); }
OPS_INLINE v128 i32x4_extend_low_i16x8_u(v128 a) { LANES(u32, a.u16[i]); }
OPS_INLINE v128 i32x4_extend_high_i16x8_u(v128 a) { LANES(u32, a.u16[i + 4]); }
OPS_INLINE v128 i64x2_extend_low_i32x4_s(v128 a) { LANES(u64, (uint64_t)a.i32[i]); }
OPS_INLINE v128 i64x2_extend_high_i32x4_s(v128 a) { LANES(u64, (uint64_t)a.i32[i + 2]); }
OPS_INLINE v128 i64x2_extend_low_i32x4_u(v128 a) { LANES(u64, a.u32[i]); }
OPS_INLINE v128 i64x2_extend_high_i32x4_u(v128 a) { LANES(u64, a.u32[i + 2]); }
#endif

/* ---- widening arithmetic ------------------------------------------------------------------------------- */

/* extmul: the full product of the low (or high) half lanes, extended. */
#define EXTMUL(SHAPE, HALF, FROM, W, EXPR) \
    OPS_INLINE v128 SHAPE##_extmul_##HALF##_##FROM(v128 a, v128 b) { LANES(W, (EXPR)); }
#if OPS_SSE2
OPS_INLINE v128 i16x8_extmul_low_i8x16_s(v128 a, v128 b)
{
    return i16x8_mul(i16x8_extend_low_i8x16_s(a), i16x8_extend_low_i8x16_s(b));
}
OPS_INLINE v128 i16x8_extmul_high_i8x16_s(v128 a, v128 b)
{
    return i16x8_mul(i16x8_extend_high_i8x16_s(a), i16x8_extend_high_i8x16_s(b));
}
OPS_INLINE v128 i16x8_extmul_low_i8x16_u(v128 a, v128 b)
{
    return i16x8_mul(i16x8_extend_low_i8x16_u(a), i16x8_extend_low_i8x16_u(b));
}
OPS_INLINE v128 i16x8_extmul_high_i8x16_u(v128 a, v128 b)
{
    return i16x8_mul(i16x8_extend_high_i8x16_u(a), i16x8_extend_high_i8x16_u(b));
}
/* 16 x 16 -> 32: pmullw gives the low halves, pmulhw/pmulhuw the high ones. */
OPS_INLINE v128 i32x4_extmul_low_i16x8_s(v128 a, v128 b)
{
    return vm(_mm_unpacklo_epi16(_mm_mullo_epi16(a.m, b.m), _mm_mulhi_epi16(a.m, b.m)));
}
OPS_INLINE v128 i32x4_extmul_high_i16x8_s(v128 a, v128 b)
{
    return vm(_mm_unpackhi_epi16(_mm_mullo_epi16(a.m, b.m), _mm_mulhi_epi16(a.m, b.m)));
}
OPS_INLINE v128 i32x4_extmul_low_i16x8_u(v128 a, v128 b)
{
    return vm(_mm_unpacklo_epi16(_mm_mullo_epi16(a.m, b.m), _mm_mulhi_epu16(a.m, b.m)));
}
OPS_INLINE v128 i32x4_extmul_high_i16x8_u(v128 a, v128 b)
{
    return vm(_mm_unpackhi_epi16(_mm_mullo_epi16(a.m, b.m), _mm_mulhi_epu16(a.m, b.m)));
}
/* pmaddwd: pairs of signed 16-bit products, summed in 32 bits (wrapping). */
OPS_INLINE v128 i32x4_dot_i16x8_s(v128 a, v128 b) { return vm(_mm_madd_epi16(a.m, b.m)); }
#else
EXTMUL(i16x8, low, i8x16_s, u16, (uint16_t)(a.i8[i] * b.i8[i]))
EXTMUL(i16x8, high, i8x16_s, u16, (uint16_t)(a.i8[i + 8] * b.i8[i + 8]))
EXTMUL(i16x8, low, i8x16_u, u16, (uint16_t)(a.u8[i] * b.u8[i]))
EXTMUL(i16x8, high, i8x16_u, u16, (uint16_t)(a.u8[i + 8] * b.u8[i + 8]))
EXTMUL(i32x4, low, i16x8_s, u32, (uint32_t)(a.i16[i] * b.i16[i]))
EXTMUL(i32x4, high, i16x8_s, u32, (uint32_t)(a.i16[i + 4] * b.i16[i + 4]))
EXTMUL(i32x4, low, i16x8_u, u32, (uint32_t)a.u16[i] * b.u16[i])
EXTMUL(i32x4, high, i16x8_u, u32, (uint32_t)a.u16[i + 4] * b.u16[i + 4])
OPS_INLINE v128 i32x4_dot_i16x8_s(v128 a, v128 b)
{
    LANES(u32, (uint32_t)(a.i16[2 * i] * b.i16[2 * i]) + (uint32_t)(a.i16[2 * i + 1] * b.i16[2 * i + 1]));
}
#endif
EXTMUL(i64x2, low, i32x4_s, u64, (uint64_t)((int64_t)a.i32[i] * b.i32[i]))
EXTMUL(i64x2, high, i32x4_s, u64, (uint64_t)((int64_t)a.i32[i + 2] * b.i32[i + 2]))
EXTMUL(i64x2, low, i32x4_u, u64, (uint64_t)a.u32[i] * b.u32[i])
EXTMUL(i64x2, high, i32x4_u, u64, (uint64_t)a.u32[i + 2] * b.u32[i + 2])
#undef EXTMUL

/* extadd_pairwise: lane i is the extended sum of input lanes 2i and 2i + 1. */
OPS_INLINE v128 i16x8_extadd_pairwise_i8x16_s(v128 a) { LANES(u16, (uint16_t)(a.i8[2 * i] + a.i8[2 * i + 1])); }
OPS_INLINE v128 i16x8_extadd_pairwise_i8x16_u(v128 a) { LANES(u16, (uint16_t)(a.u8[2 * i] + a.u8[2 * i + 1])); }
OPS_INLINE v128 i32x4_extadd_pairwise_i16x8_s(v128 a) { LANES(u32, (uint32_t)(a.i16[2 * i] + a.i16[2 * i + 1])); }
OPS_INLINE v128 i32x4_extadd_pairwise_i16x8_u(v128 a) { LANES(u32, (uint32_t)a.u16[2 * i] + a.u16[2 * i + 1]); }

/* q15mulr_sat_s: (a * b + 2^14) >> 15, saturated (only -1 * -1 in Q15 overflows). */
OPS_INLINE v128 i16x8_q15mulr_sat_s(v128 a, v128 b)
{
    LANES(u16, sat_s16((int32_t)asr((int32_t)a.i16[i] * b.i16[i] + 0x4000, 15)));
}

/* ---- float arithmetic (results' NaNs canonical) --------------------------------------------------------- */

OPS_INLINE v128 f32x4_abs(v128 a) { LANES(u32, f32_abs(a.u32[i])); }
OPS_INLINE v128 f32x4_neg(v128 a) { LANES(u32, f32_neg(a.u32[i])); }
OPS_INLINE v128 f64x2_abs(v128 a) { LANES(u64, f64_abs(a.u64[i])); }
OPS_INLINE v128 f64x2_neg(v128 a) { LANES(u64, f64_neg(a.u64[i])); }

#if OPS_SSE2
#define FLOAT_ARITH(OP, SSE)                                                                        \
    OPS_INLINE v128 f32x4_##OP(v128 a, v128 b) { return vps(canon_ps(_mm_##SSE##_ps(a.ps, b.ps))); } \
    OPS_INLINE v128 f64x2_##OP(v128 a, v128 b) { return vpd(canon_pd(_mm_##SSE##_pd(a.pd, b.pd))); }
#else
#define FLOAT_ARITH(OP, SSE)                                                                      \
    OPS_INLINE v128 f32x4_##OP(v128 a, v128 b) { LANES(u32, canon32(f32_##OP(a.u32[i], b.u32[i]))); } \
    OPS_INLINE v128 f64x2_##OP(v128 a, v128 b) { LANES(u64, canon64(f64_##OP(a.u64[i], b.u64[i]))); }
#endif
FLOAT_ARITH(add, add)
FLOAT_ARITH(sub, sub)
FLOAT_ARITH(mul, mul)
FLOAT_ARITH(div, div)
#undef FLOAT_ARITH

#if OPS_SSE2
OPS_INLINE v128 f32x4_sqrt(v128 a) { return vps(canon_ps(_mm_sqrt_ps(a.ps))); }
OPS_INLINE v128 f64x2_sqrt(v128 a) { return vpd(canon_pd(_mm_sqrt_pd(a.pd))); }
/* minps(x, y) is x < y ? x : y, so it answers y for a NaN or equal zeros:
 * OR-ing both orders gives -0 for min(+0, -0) (AND, for max, gives +0), and
 * the lanes with a NaN operand are set to the canonical NaN. */
#define MIN_MAX_SSE2(SHAPE, OP, COMBINE, T, V, M)                                                \
    OPS_INLINE v128 SHAPE##_##OP(v128 a, v128 b)                                                  \
    {                                                                                            \
        T r = _mm_##COMBINE##_##M(_mm_##OP##_##M(a.M, b.M), _mm_##OP##_##M(b.M, a.M));            \
        return V(canon_##M(_mm_or_##M(r, _mm_cmpunord_##M(a.M, b.M))));                          \
    }
MIN_MAX_SSE2(f32x4, min, or, __m128, vps, ps)
MIN_MAX_SSE2(f32x4, max, and, __m128, vps, ps)
MIN_MAX_SSE2(f64x2, min, or, __m128d, vpd, pd)
MIN_MAX_SSE2(f64x2, max, and, __m128d, vpd, pd)
#undef MIN_MAX_SSE2
/* pmin(a, b) = b < a ? b : a and pmax(a, b) = a < b ? b : a are exactly
 * minps(b, a) and maxps(b, a): an operand comes through unchanged. */
OPS_INLINE v128 f32x4_pmin(v128 a, v128 b) { return vps(_mm_min_ps(b.ps, a.ps)); }
OPS_INLINE v128 f32x4_pmax(v128 a, v128 b) { return vps(_mm_max_ps(b.ps, a.ps)); }
OPS_INLINE v128 f64x2_pmin(v128 a, v128 b) { return vpd(_mm_min_pd(b.pd, a.pd)); }
OPS_INLINE v128 f64x2_pmax(v128 a, v128 b) { return vpd(_mm_max_pd(b.pd, a.pd)); }
#else
OPS_INLINE v128 f32x4_sqrt(v128 a) { LANES(u32, canon32(f32_sqrt(a.u32[i]))); }
OPS_INLINE v128 f64x2_sqrt(v128 a) { LANES(u64, canon64(f64_sqrt(a.u64[i]))); }
OPS_INLINE v128 f32x4_min(v128 a, v128 b) { LANES(u32, canon32(f32_min(a.u32[i], b.u32[i]))); }
OPS_INLINE v128 f32x4_max(v128 a, v128 b) { LANES(u32, canon32(f32_max(a.u32[i], b.u32[i]))); }
OPS_INLINE v128 f64x2_min(v128 a, v128 b) { LANES(u64, canon64(f64_min(a.u64[i], b.u64[i]))); }
OPS_INLINE v128 f64x2_max(v128 a, v128 b) { LANES(u64, canon64(f64_max(a.u64[i], b.u64[i]))); }
OPS_INLINE v128 f32x4_pmin(v128 a, v128 b) { LANES(u32, f32_lt(b.u32[i], a.u32[i]) ? b.u32[i] : a.u32[i]); }
OPS_INLINE v128 f32x4_pmax(v128 a, v128 b) { LANES(u32, f32_lt(a.u32[i], b.u32[i]) ? b.u32[i] : a.u32[i]); }
OPS_INLINE v128 f64x2_pmin(v128 a, v128 b) { LANES(u64, f64_lt(b.u64[i], a.u64[i]) ? b.u64[i] : a.u64[i]); }
OPS_INLINE v128 f64x2_pmax(v128 a, v128 b) { LANES(u64, f64_lt(a.u64[i], b.u64[i]) ? b.u64[i] : a.u64[i]); }
#endif

/* Rounding to integral values: ops_numeric.h's lane functions. */
OPS_INLINE v128 f32x4_ceil(v128 a) { LANES(u32, canon32(f32_ceil(a.u32[i]))); }
OPS_INLINE v128 f32x4_floor(v128 a) { LANES(u32, canon32(f32_floor(a.u32[i]))); }
OPS_INLINE v128 f32x4_trunc(v128 a) { LANES(u32, canon32(f32_trunc(a.u32[i]))); }
OPS_INLINE v128 f32x4_nearest(v128 a) { LANES(u32, canon32(f32_nearest(a.u32[i]))); }
OPS_INLINE v128 f64x2_ceil(v128 a) { LANES(u64, canon64(f64_ceil(a.u64[i]))); }
OPS_INLINE v128 f64x2_floor(v128 a) { LANES(u64, canon64(f64_floor(a.u64[i]))); }
OPS_INLINE v128 f64x2_trunc(v128 a) { LANES(u64, canon64(f64_trunc(a.u64[i]))); }
OPS_INLINE v128 f64x2_nearest(v128 a) { LANES(u64, canon64(f64_nearest(a.u64[i]))); }

/* ---- conversions ----------------------------------------------------------------------------------------- */

OPS_INLINE v128 f32x4_demote_f64x2_zero(v128 a) { LANES(u32, i < 2 ? canon32(f32_demote_f64(a.u64[i])) : 0); }
OPS_INLINE v128 f64x2_promote_low_f32x4(v128 a) { LANES(u64, canon64(f64_promote_f32(a.u32[i]))); }
OPS_INLINE v128 f32x4_convert_i32x4_u(v128 a) { LANES(u32, f32_convert_i32_u(a.u32[i])); }
OPS_INLINE v128 f64x2_convert_low_i32x4_s(v128 a) { LANES(u64, f64_convert_i32_s(a.u32[i])); }
OPS_INLINE v128 f64x2_convert_low_i32x4_u(v128 a) { LANES(u64, f64_convert_i32_u(a.u32[i])); }
OPS_INLINE v128 i32x4_trunc_sat_f32x4_u(v128 a) { LANES(u32, i32_trunc_sat_f32_u(a.u32[i])); }
OPS_INLINE v128 i32x4_trunc_sat_f64x2_s_zero(v128 a) { LANES(u32, i < 2 ? i32_trunc_sat_f64_s(a.u64[i]) : 0); }
OPS_INLINE v128 i32x4_trunc_sat_f64x2_u_zero(v128 a) { LANES(u32, i < 2 ? i32_trunc_sat_f64_u(a.u64[i]) : 0); }
#if OPS_SSE2
OPS_INLINE v128 f32x4_convert_i32x4_s(v128 a) { return vps(_mm_cvtepi32_ps(a.m)); }
/* cvttps2dq answers 0x80000000 for NaN and out-of-range lanes: NaN lanes
 * become 0, and those at or above 2^31 flip to 0x7FFFFFFF. */
OPS_INLINE v128 i32x4_trunc_sat_f32x4_s(v128 a)
{
    __m128i r = _mm_cvttps_epi32(a.ps);
    __m128i too_big = _mm_castps_si128(_mm_cmpge_ps(a.ps, _mm_set1_ps(2147483648.0f)));
    __m128i is_num = _mm_castps_si128(_mm_cmpord_ps(a.ps, a.ps));
    return vm(_mm_and_si128(_mm_xor_si128(r, too_big), is_num));
}
#else
OPS_INLINE v128 f32x4_convert_i32x4_s(v128 a) { LANES(u32, f32_convert_i32_s(a.u32[i])); }
OPS_INLINE v128 i32x4_trunc_sat_f32x4_s(v128 a) { LANES(u32, i32_trunc_sat_f32_s(a.u32[i])); }
#endif

#undef LANES

#endif /* ASYNCWASM_OPS_SIMD_H */
