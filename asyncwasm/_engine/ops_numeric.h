/* ops_numeric.h -- the semantics of Wasm's numeric instructions and of the
 * byte-level loads/stores, as small pure functions.
 *
 * Rule: every function here is pure (no fiber, no instance, no globals) so
 * tests/c/ops_check.c can test it directly; the interpreter's handlers only
 * decode operands, call one of these, store the result and dispatch.
 *
 * Representation: floats travel as their bit patterns (uint32_t for f32,
 * uint64_t for f64), exactly as they live in the interpreter's slots. So a
 * signalling NaN can never be quieted "in transit" (by an x87 register or a
 * calling convention), and abs/neg/copysign/reinterpret are the pure bit
 * operations the spec defines. Arithmetic converts to float/double locally.
 *
 * NaNs (Wasm 2.0, numerics section "NaN propagation"): results of arithmetic
 * on NaNs may be any arithmetic (quiet) NaN, and a canonical NaN when every
 * NaN input was canonical. Operations whose result must be a quiet NaN but
 * which the hardware might not quiet deterministically (ceil, floor, trunc,
 * nearest, sqrt, promote, demote) quiet their NaN input by bits here.
 *
 * Traps: functions that can trap take `int *trap` last and store a trap kind
 * (engine.h TRAP_*) in it; their return value is then meaningless (0).
 *
 * Spec: https://webassembly.github.io/spec/core/exec/numerics.html
 * No UB: signed arithmetic is done on unsigned types; every float->int cast
 * is guarded so that the value fits.
 */
#ifndef ASYNCWASM_OPS_NUMERIC_H
#define ASYNCWASM_OPS_NUMERIC_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine.h"

/* The rounding tricks below (nearest) need float arithmetic to happen in
 * float precision, as it does on every SSE/NEON target. */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "asyncwasm needs FLT_EVAL_METHOD == 0 (SSE2 or better float arithmetic)"
#endif
/* Loads and stores memcpy guest bytes as host integers. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "asyncwasm's memory access assumes a little-endian host"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define OPS_INLINE static inline __attribute__((always_inline))
#else
#define OPS_INLINE static inline
#endif

#define F32_SIGN 0x80000000u
#define F32_QUIET 0x00400000u
#define F32_EXP 0x7F800000u
#define F64_SIGN 0x8000000000000000ull
#define F64_QUIET 0x0008000000000000ull
#define F64_EXP 0x7FF0000000000000ull

/* ---- bit-pattern helpers --------------------------------------------------- */

OPS_INLINE float f32_value(uint32_t bits) { float f; memcpy(&f, &bits, sizeof f); return f; }
OPS_INLINE uint32_t f32_bits(float f) { uint32_t b; memcpy(&b, &f, sizeof b); return b; }
OPS_INLINE double f64_value(uint64_t bits) { double d; memcpy(&d, &bits, sizeof d); return d; }
OPS_INLINE uint64_t f64_bits(double d) { uint64_t b; memcpy(&b, &d, sizeof b); return b; }

OPS_INLINE int f32_is_nan(uint32_t a) { return (a & ~F32_SIGN) > F32_EXP; }
OPS_INLINE int f64_is_nan(uint64_t a) { return (a & ~F64_SIGN) > F64_EXP; }

/* ---- i32 comparisons ---------------------------------------------------------- */

OPS_INLINE uint32_t i32_eqz(uint32_t a) { return a == 0; }
OPS_INLINE uint32_t i32_eq(uint32_t a, uint32_t b) { return a == b; }
OPS_INLINE uint32_t i32_ne(uint32_t a, uint32_t b) { return a != b; }
OPS_INLINE uint32_t i32_lt_s(uint32_t a, uint32_t b) { return (int32_t)a < (int32_t)b; }
OPS_INLINE uint32_t i32_lt_u(uint32_t a, uint32_t b) { return a < b; }
OPS_INLINE uint32_t i32_gt_s(uint32_t a, uint32_t b) { return (int32_t)a > (int32_t)b; }
OPS_INLINE uint32_t i32_gt_u(uint32_t a, uint32_t b) { return a > b; }
OPS_INLINE uint32_t i32_le_s(uint32_t a, uint32_t b) { return (int32_t)a <= (int32_t)b; }
OPS_INLINE uint32_t i32_le_u(uint32_t a, uint32_t b) { return a <= b; }
OPS_INLINE uint32_t i32_ge_s(uint32_t a, uint32_t b) { return (int32_t)a >= (int32_t)b; }
OPS_INLINE uint32_t i32_ge_u(uint32_t a, uint32_t b) { return a >= b; }

/* ---- i64 comparisons ---------------------------------------------------------- */

OPS_INLINE uint32_t i64_eqz(uint64_t a) { return a == 0; }
OPS_INLINE uint32_t i64_eq(uint64_t a, uint64_t b) { return a == b; }
OPS_INLINE uint32_t i64_ne(uint64_t a, uint64_t b) { return a != b; }
OPS_INLINE uint32_t i64_lt_s(uint64_t a, uint64_t b) { return (int64_t)a < (int64_t)b; }
OPS_INLINE uint32_t i64_lt_u(uint64_t a, uint64_t b) { return a < b; }
OPS_INLINE uint32_t i64_gt_s(uint64_t a, uint64_t b) { return (int64_t)a > (int64_t)b; }
OPS_INLINE uint32_t i64_gt_u(uint64_t a, uint64_t b) { return a > b; }
OPS_INLINE uint32_t i64_le_s(uint64_t a, uint64_t b) { return (int64_t)a <= (int64_t)b; }
OPS_INLINE uint32_t i64_le_u(uint64_t a, uint64_t b) { return a <= b; }
OPS_INLINE uint32_t i64_ge_s(uint64_t a, uint64_t b) { return (int64_t)a >= (int64_t)b; }
OPS_INLINE uint32_t i64_ge_u(uint64_t a, uint64_t b) { return a >= b; }

/* ---- float comparisons (IEEE: every comparison with NaN is false, != true) --- */

OPS_INLINE uint32_t f32_eq(uint32_t a, uint32_t b) { return f32_value(a) == f32_value(b); }
OPS_INLINE uint32_t f32_ne(uint32_t a, uint32_t b) { return f32_value(a) != f32_value(b); }
OPS_INLINE uint32_t f32_lt(uint32_t a, uint32_t b) { return f32_value(a) < f32_value(b); }
OPS_INLINE uint32_t f32_gt(uint32_t a, uint32_t b) { return f32_value(a) > f32_value(b); }
OPS_INLINE uint32_t f32_le(uint32_t a, uint32_t b) { return f32_value(a) <= f32_value(b); }
OPS_INLINE uint32_t f32_ge(uint32_t a, uint32_t b) { return f32_value(a) >= f32_value(b); }
OPS_INLINE uint32_t f64_eq(uint64_t a, uint64_t b) { return f64_value(a) == f64_value(b); }
OPS_INLINE uint32_t f64_ne(uint64_t a, uint64_t b) { return f64_value(a) != f64_value(b); }
OPS_INLINE uint32_t f64_lt(uint64_t a, uint64_t b) { return f64_value(a) < f64_value(b); }
OPS_INLINE uint32_t f64_gt(uint64_t a, uint64_t b) { return f64_value(a) > f64_value(b); }
OPS_INLINE uint32_t f64_le(uint64_t a, uint64_t b) { return f64_value(a) <= f64_value(b); }
OPS_INLINE uint32_t f64_ge(uint64_t a, uint64_t b) { return f64_value(a) >= f64_value(b); }

/* ---- bit counting (defined for 0: clz/ctz return the width) ----------------- */

OPS_INLINE uint32_t i32_clz(uint32_t a)
{
#if defined(__GNUC__) || defined(__clang__)
    return a == 0 ? 32u : (uint32_t)__builtin_clz(a);
#else
    uint32_t n = 0;
    if (a == 0) return 32;
    while (!(a & 0x80000000u)) { a <<= 1; n++; }
    return n;
#endif
}

OPS_INLINE uint32_t i32_ctz(uint32_t a)
{
#if defined(__GNUC__) || defined(__clang__)
    return a == 0 ? 32u : (uint32_t)__builtin_ctz(a);
#else
    uint32_t n = 0;
    if (a == 0) return 32;
    while (!(a & 1u)) { a >>= 1; n++; }
    return n;
#endif
}

OPS_INLINE uint64_t i64_clz(uint64_t a)
{
#if defined(__GNUC__) || defined(__clang__)
    return a == 0 ? 64u : (uint64_t)__builtin_clzll(a);
#else
    uint64_t n = 0;
    if (a == 0) return 64;
    while (!(a & F64_SIGN)) { a <<= 1; n++; }
    return n;
#endif
}

OPS_INLINE uint64_t i64_ctz(uint64_t a)
{
#if defined(__GNUC__) || defined(__clang__)
    return a == 0 ? 64u : (uint64_t)__builtin_ctzll(a);
#else
    uint64_t n = 0;
    if (a == 0) return 64;
    while (!(a & 1u)) { a >>= 1; n++; }
    return n;
#endif
}

/* SWAR population count: stays inline everywhere, whereas __builtin_popcount
 * becomes a libgcc call on x86-64 without -mpopcnt. */
OPS_INLINE uint64_t i64_popcnt(uint64_t a)
{
    a = a - ((a >> 1) & 0x5555555555555555ull);
    a = (a & 0x3333333333333333ull) + ((a >> 2) & 0x3333333333333333ull);
    a = (a + (a >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (a * 0x0101010101010101ull) >> 56;
}
OPS_INLINE uint32_t i32_popcnt(uint32_t a) { return (uint32_t)i64_popcnt(a); }

/* ---- i32 arithmetic (wrapping: unsigned types, never signed overflow) ------- */

OPS_INLINE uint32_t i32_add(uint32_t a, uint32_t b) { return a + b; }
OPS_INLINE uint32_t i32_sub(uint32_t a, uint32_t b) { return a - b; }
OPS_INLINE uint32_t i32_mul(uint32_t a, uint32_t b) { return a * b; }

OPS_INLINE uint32_t i32_div_s(uint32_t a, uint32_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    if (a == 0x80000000u && b == 0xFFFFFFFFu) { *trap = TRAP_INT_OVERFLOW; return 0; }
    return (uint32_t)((int32_t)a / (int32_t)b);
}

OPS_INLINE uint32_t i32_div_u(uint32_t a, uint32_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    return a / b;
}

/* INT_MIN % -1 is 0 in Wasm but UB in C: any x % -1 is 0, so answer directly. */
OPS_INLINE uint32_t i32_rem_s(uint32_t a, uint32_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    if (b == 0xFFFFFFFFu) return 0;
    return (uint32_t)((int32_t)a % (int32_t)b);
}

OPS_INLINE uint32_t i32_rem_u(uint32_t a, uint32_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    return a % b;
}

OPS_INLINE uint32_t i32_and(uint32_t a, uint32_t b) { return a & b; }
OPS_INLINE uint32_t i32_or(uint32_t a, uint32_t b) { return a | b; }
OPS_INLINE uint32_t i32_xor(uint32_t a, uint32_t b) { return a ^ b; }
OPS_INLINE uint32_t i32_shl(uint32_t a, uint32_t b) { return a << (b & 31); }
OPS_INLINE uint32_t i32_shr_u(uint32_t a, uint32_t b) { return a >> (b & 31); }
/* Arithmetic shift written without shifting a negative signed value (which C
 * leaves implementation-defined); compilers emit a plain `sar` for it. */
OPS_INLINE uint32_t i32_shr_s(uint32_t a, uint32_t b)
{
    uint32_t k = b & 31;
    return (a & 0x80000000u) ? ~(~a >> k) : a >> k;
}
OPS_INLINE uint32_t i32_rotl(uint32_t a, uint32_t b)
{
    uint32_t k = b & 31;
    return (a << k) | (a >> ((32 - k) & 31));
}
OPS_INLINE uint32_t i32_rotr(uint32_t a, uint32_t b)
{
    uint32_t k = b & 31;
    return (a >> k) | (a << ((32 - k) & 31));
}

/* ---- i64 arithmetic -------------------------------------------------------------- */

OPS_INLINE uint64_t i64_add(uint64_t a, uint64_t b) { return a + b; }
OPS_INLINE uint64_t i64_sub(uint64_t a, uint64_t b) { return a - b; }
OPS_INLINE uint64_t i64_mul(uint64_t a, uint64_t b) { return a * b; }

OPS_INLINE uint64_t i64_div_s(uint64_t a, uint64_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    if (a == F64_SIGN && b == UINT64_MAX) { *trap = TRAP_INT_OVERFLOW; return 0; }
    return (uint64_t)((int64_t)a / (int64_t)b);
}

OPS_INLINE uint64_t i64_div_u(uint64_t a, uint64_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    return a / b;
}

OPS_INLINE uint64_t i64_rem_s(uint64_t a, uint64_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    if (b == UINT64_MAX) return 0;
    return (uint64_t)((int64_t)a % (int64_t)b);
}

OPS_INLINE uint64_t i64_rem_u(uint64_t a, uint64_t b, int *trap)
{
    if (b == 0) { *trap = TRAP_INT_DIV_ZERO; return 0; }
    return a % b;
}

OPS_INLINE uint64_t i64_and(uint64_t a, uint64_t b) { return a & b; }
OPS_INLINE uint64_t i64_or(uint64_t a, uint64_t b) { return a | b; }
OPS_INLINE uint64_t i64_xor(uint64_t a, uint64_t b) { return a ^ b; }
OPS_INLINE uint64_t i64_shl(uint64_t a, uint64_t b) { return a << (b & 63); }
OPS_INLINE uint64_t i64_shr_u(uint64_t a, uint64_t b) { return a >> (b & 63); }
OPS_INLINE uint64_t i64_shr_s(uint64_t a, uint64_t b)
{
    uint64_t k = b & 63;
    return (a & F64_SIGN) ? ~(~a >> k) : a >> k;
}
OPS_INLINE uint64_t i64_rotl(uint64_t a, uint64_t b)
{
    uint64_t k = b & 63;
    return (a << k) | (a >> ((64 - k) & 63));
}
OPS_INLINE uint64_t i64_rotr(uint64_t a, uint64_t b)
{
    uint64_t k = b & 63;
    return (a >> k) | (a << ((64 - k) & 63));
}

/* ---- float sign operations: pure bit operations, NaNs pass unchanged ---------- */

OPS_INLINE uint32_t f32_abs(uint32_t a) { return a & ~F32_SIGN; }
OPS_INLINE uint32_t f32_neg(uint32_t a) { return a ^ F32_SIGN; }
OPS_INLINE uint32_t f32_copysign(uint32_t a, uint32_t b) { return (a & ~F32_SIGN) | (b & F32_SIGN); }
OPS_INLINE uint64_t f64_abs(uint64_t a) { return a & ~F64_SIGN; }
OPS_INLINE uint64_t f64_neg(uint64_t a) { return a ^ F64_SIGN; }
OPS_INLINE uint64_t f64_copysign(uint64_t a, uint64_t b) { return (a & ~F64_SIGN) | (b & F64_SIGN); }

/* ---- rounding to integral values ---------------------------------------------
 * Strategy: NaN -> the same NaN made quiet. |x| >= 2^23 (f32) or 2^52 (f64),
 * including infinities, is already integral -> x. Otherwise the integer part
 * fits an int32/int64 exactly; the sign of x is OR-ed back in so that results
 * that round to zero keep x's sign (trunc(-0.5) = -0, ceil(-0.5) = -0).
 */
#define F32_INTEGRAL_MIN 0x4B000000u            /* 2^23: every |x| >= this is integral */
#define F64_INTEGRAL_MIN 0x4330000000000000ull  /* 2^52 */

OPS_INLINE uint32_t f32_trunc(uint32_t a)
{
    if (f32_is_nan(a)) return a | F32_QUIET;
    if ((a & ~F32_SIGN) >= F32_INTEGRAL_MIN) return a;
    return f32_bits((float)(int32_t)f32_value(a)) | (a & F32_SIGN);
}

OPS_INLINE uint32_t f32_floor(uint32_t a)
{
    if (f32_is_nan(a)) return a | F32_QUIET;
    if ((a & ~F32_SIGN) >= F32_INTEGRAL_MIN) return a;
    float x = f32_value(a), t = (float)(int32_t)x;
    if (t > x) t -= 1.0f;
    return f32_bits(t) | (a & F32_SIGN);
}

OPS_INLINE uint32_t f32_ceil(uint32_t a)
{
    if (f32_is_nan(a)) return a | F32_QUIET;
    if ((a & ~F32_SIGN) >= F32_INTEGRAL_MIN) return a;
    float x = f32_value(a), t = (float)(int32_t)x;
    if (t < x) t += 1.0f;
    return f32_bits(t) | (a & F32_SIGN);
}

/* Round half to even: adding then subtracting 2^23 leaves no fraction bits,
 * and IEEE round-to-nearest-even decides the ties. */
OPS_INLINE uint32_t f32_nearest(uint32_t a)
{
    if (f32_is_nan(a)) return a | F32_QUIET;
    if ((a & ~F32_SIGN) >= F32_INTEGRAL_MIN) return a;
    const float two23 = 8388608.0f;
    float r = (f32_value(a & ~F32_SIGN) + two23) - two23;
    return f32_bits(r) | (a & F32_SIGN);
}

OPS_INLINE uint64_t f64_trunc(uint64_t a)
{
    if (f64_is_nan(a)) return a | F64_QUIET;
    if ((a & ~F64_SIGN) >= F64_INTEGRAL_MIN) return a;
    return f64_bits((double)(int64_t)f64_value(a)) | (a & F64_SIGN);
}

OPS_INLINE uint64_t f64_floor(uint64_t a)
{
    if (f64_is_nan(a)) return a | F64_QUIET;
    if ((a & ~F64_SIGN) >= F64_INTEGRAL_MIN) return a;
    double x = f64_value(a), t = (double)(int64_t)x;
    if (t > x) t -= 1.0;
    return f64_bits(t) | (a & F64_SIGN);
}

OPS_INLINE uint64_t f64_ceil(uint64_t a)
{
    if (f64_is_nan(a)) return a | F64_QUIET;
    if ((a & ~F64_SIGN) >= F64_INTEGRAL_MIN) return a;
    double x = f64_value(a), t = (double)(int64_t)x;
    if (t < x) t += 1.0;
    return f64_bits(t) | (a & F64_SIGN);
}

OPS_INLINE uint64_t f64_nearest(uint64_t a)
{
    if (f64_is_nan(a)) return a | F64_QUIET;
    if ((a & ~F64_SIGN) >= F64_INTEGRAL_MIN) return a;
    const double two52 = 4503599627370496.0;
    double r = (f64_value(a & ~F64_SIGN) + two52) - two52;
    return f64_bits(r) | (a & F64_SIGN);
}

/* sqrt of a negative number is the default NaN, which is canonical. */
OPS_INLINE uint32_t f32_sqrt(uint32_t a)
{
    if (f32_is_nan(a)) return a | F32_QUIET;
    return f32_bits(sqrtf(f32_value(a)));
}

OPS_INLINE uint64_t f64_sqrt(uint64_t a)
{
    if (f64_is_nan(a)) return a | F64_QUIET;
    return f64_bits(sqrt(f64_value(a)));
}

/* ---- float arithmetic: the hardware's IEEE operations ----------------------------
 * With NaN operands, x86 answers the NaN of its first source operand. C
 * compilers treat + and * as commutative and may emit them either way round,
 * which would make the NaN that comes out depend on register allocation (and
 * a fused handler differ from the two instructions apart). On x86-64 the asm
 * pins the order: a + b and a * b with a as the first source. Its operands
 * may come straight from memory, so it costs what the plain C did. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define ORDERED_OP(NAME, TYPE, MOV, OP)                                                      \
    OPS_INLINE TYPE NAME(TYPE a, TYPE b)                                                     \
    {                                                                                        \
        TYPE r;                                                                              \
        __asm__(MOV " %1, %0\n\t" OP " %2, %0" : "=&x"(r) : "xm"(a), "xm"(b));               \
        return r;                                                                            \
    }
ORDERED_OP(f32_add_ordered, float, "movss", "addss")
ORDERED_OP(f32_mul_ordered, float, "movss", "mulss")
ORDERED_OP(f64_add_ordered, double, "movsd", "addsd")
ORDERED_OP(f64_mul_ordered, double, "movsd", "mulsd")
#undef ORDERED_OP
#else
OPS_INLINE float f32_add_ordered(float a, float b) { return a + b; }
OPS_INLINE float f32_mul_ordered(float a, float b) { return a * b; }
OPS_INLINE double f64_add_ordered(double a, double b) { return a + b; }
OPS_INLINE double f64_mul_ordered(double a, double b) { return a * b; }
#endif

OPS_INLINE uint32_t f32_add(uint32_t a, uint32_t b) { return f32_bits(f32_add_ordered(f32_value(a), f32_value(b))); }
OPS_INLINE uint32_t f32_sub(uint32_t a, uint32_t b) { return f32_bits(f32_value(a) - f32_value(b)); }
OPS_INLINE uint32_t f32_mul(uint32_t a, uint32_t b) { return f32_bits(f32_mul_ordered(f32_value(a), f32_value(b))); }
OPS_INLINE uint32_t f32_div(uint32_t a, uint32_t b) { return f32_bits(f32_value(a) / f32_value(b)); }
OPS_INLINE uint64_t f64_add(uint64_t a, uint64_t b) { return f64_bits(f64_add_ordered(f64_value(a), f64_value(b))); }
OPS_INLINE uint64_t f64_sub(uint64_t a, uint64_t b) { return f64_bits(f64_value(a) - f64_value(b)); }
OPS_INLINE uint64_t f64_mul(uint64_t a, uint64_t b) { return f64_bits(f64_mul_ordered(f64_value(a), f64_value(b))); }
OPS_INLINE uint64_t f64_div(uint64_t a, uint64_t b) { return f64_bits(f64_value(a) / f64_value(b)); }

/* ---- min/max: NaN wins (quieted), and -0 < +0 ---------------------------------
 * Equal operands differ at most in the sign of a zero: OR of the bits picks -0
 * for min, AND picks +0 for max. A NaN result is the first NaN operand made
 * quiet: canonical in, canonical out. */
OPS_INLINE uint32_t f32_min(uint32_t a, uint32_t b)
{
    if (f32_is_nan(a)) return a | F32_QUIET;
    if (f32_is_nan(b)) return b | F32_QUIET;
    float x = f32_value(a), y = f32_value(b);
    if (x == y) return a | b;
    return x < y ? a : b;
}

OPS_INLINE uint32_t f32_max(uint32_t a, uint32_t b)
{
    if (f32_is_nan(a)) return a | F32_QUIET;
    if (f32_is_nan(b)) return b | F32_QUIET;
    float x = f32_value(a), y = f32_value(b);
    if (x == y) return a & b;
    return x > y ? a : b;
}

OPS_INLINE uint64_t f64_min(uint64_t a, uint64_t b)
{
    if (f64_is_nan(a)) return a | F64_QUIET;
    if (f64_is_nan(b)) return b | F64_QUIET;
    double x = f64_value(a), y = f64_value(b);
    if (x == y) return a | b;
    return x < y ? a : b;
}

OPS_INLINE uint64_t f64_max(uint64_t a, uint64_t b)
{
    if (f64_is_nan(a)) return a | F64_QUIET;
    if (f64_is_nan(b)) return b | F64_QUIET;
    double x = f64_value(a), y = f64_value(b);
    if (x == y) return a & b;
    return x > y ? a : b;
}

/* ---- integer width conversions --------------------------------------------------- */

OPS_INLINE uint32_t i32_wrap_i64(uint64_t a) { return (uint32_t)a; }
OPS_INLINE uint64_t i64_extend_i32_s(uint32_t a) { return (uint64_t)(int64_t)(int32_t)a; }
OPS_INLINE uint64_t i64_extend_i32_u(uint32_t a) { return a; }
OPS_INLINE uint32_t i32_extend8_s(uint32_t a) { return (uint32_t)(int32_t)(int8_t)(uint8_t)a; }
OPS_INLINE uint32_t i32_extend16_s(uint32_t a) { return (uint32_t)(int32_t)(int16_t)(uint16_t)a; }
OPS_INLINE uint64_t i64_extend8_s(uint64_t a) { return (uint64_t)(int64_t)(int8_t)(uint8_t)a; }
OPS_INLINE uint64_t i64_extend16_s(uint64_t a) { return (uint64_t)(int64_t)(int16_t)(uint16_t)a; }
OPS_INLINE uint64_t i64_extend32_s(uint64_t a) { return (uint64_t)(int64_t)(int32_t)(uint32_t)a; }

/* ---- float -> integer, trapping ---------------------------------------------------
 * Each range test is written on the open interval (lo, hi) of values whose
 * truncation fits: lo and hi are exactly representable in the source type
 * where they matter, so the boundaries are exact. NaN fails every test, so
 * it is checked first to give the spec's distinct trap. */

#define TRUNC_CHECKED(SRC_VALUE, SRC_NAN, LO_EXCL, HI_EXCL, CAST)            \
    do {                                                                     \
        if (SRC_NAN) { *trap = TRAP_INVALID_CONVERSION; return 0; }          \
        if (!((SRC_VALUE) > (LO_EXCL) && (SRC_VALUE) < (HI_EXCL))) {         \
            *trap = TRAP_INT_OVERFLOW;                                       \
            return 0;                                                        \
        }                                                                    \
        return CAST(SRC_VALUE);                                              \
    } while (0)

#define CAST_I32_S(x) ((uint32_t)(int32_t)(x))
#define CAST_U32(x) ((uint32_t)(x))
#define CAST_I64_S(x) ((uint64_t)(int64_t)(x))
#define CAST_U64(x) ((uint64_t)(x))

/* f32 has no value strictly between -2^31 - 256 and -2^31, so "> -2^31 - 1"
 * cannot be written in f32: use ">= -2^31" via the next lower float. */
OPS_INLINE uint32_t i32_trunc_f32_s(uint32_t a, int *trap)
{
    float x = f32_value(a);
    TRUNC_CHECKED(x, f32_is_nan(a), -2147483904.0f, 2147483648.0f, CAST_I32_S);
}
OPS_INLINE uint32_t i32_trunc_f32_u(uint32_t a, int *trap)
{
    float x = f32_value(a);
    TRUNC_CHECKED(x, f32_is_nan(a), -1.0f, 4294967296.0f, CAST_U32);
}
OPS_INLINE uint32_t i32_trunc_f64_s(uint64_t a, int *trap)
{
    double x = f64_value(a);
    TRUNC_CHECKED(x, f64_is_nan(a), -2147483649.0, 2147483648.0, CAST_I32_S);
}
OPS_INLINE uint32_t i32_trunc_f64_u(uint64_t a, int *trap)
{
    double x = f64_value(a);
    TRUNC_CHECKED(x, f64_is_nan(a), -1.0, 4294967296.0, CAST_U32);
}
/* -2^63 is the lowest valid input; the next lower f32 is -2^63 - 2^40. */
OPS_INLINE uint64_t i64_trunc_f32_s(uint32_t a, int *trap)
{
    float x = f32_value(a);
    TRUNC_CHECKED(x, f32_is_nan(a), -9223373136366403584.0f, 9223372036854775808.0f, CAST_I64_S);
}
OPS_INLINE uint64_t i64_trunc_f32_u(uint32_t a, int *trap)
{
    float x = f32_value(a);
    TRUNC_CHECKED(x, f32_is_nan(a), -1.0f, 18446744073709551616.0f, CAST_U64);
}
/* The next lower double below -2^63 is -2^63 - 2048. */
OPS_INLINE uint64_t i64_trunc_f64_s(uint64_t a, int *trap)
{
    double x = f64_value(a);
    TRUNC_CHECKED(x, f64_is_nan(a), -9223372036854777856.0, 9223372036854775808.0, CAST_I64_S);
}
OPS_INLINE uint64_t i64_trunc_f64_u(uint64_t a, int *trap)
{
    double x = f64_value(a);
    TRUNC_CHECKED(x, f64_is_nan(a), -1.0, 18446744073709551616.0, CAST_U64);
}

/* ---- float -> integer, saturating: NaN -> 0, out of range -> the nearest bound -- */

#define TRUNC_SATURATING(SRC_VALUE, SRC_NAN, LO_EXCL, HI_EXCL, MIN, MAX, CAST) \
    do {                                                                       \
        if (SRC_NAN) return 0;                                                 \
        if (!((SRC_VALUE) > (LO_EXCL))) return (MIN);                         \
        if (!((SRC_VALUE) < (HI_EXCL))) return (MAX);                          \
        return CAST(SRC_VALUE);                                                \
    } while (0)

OPS_INLINE uint32_t i32_trunc_sat_f32_s(uint32_t a)
{
    float x = f32_value(a);
    TRUNC_SATURATING(x, f32_is_nan(a), -2147483904.0f, 2147483648.0f, 0x80000000u, 0x7FFFFFFFu, CAST_I32_S);
}
OPS_INLINE uint32_t i32_trunc_sat_f32_u(uint32_t a)
{
    float x = f32_value(a);
    TRUNC_SATURATING(x, f32_is_nan(a), -1.0f, 4294967296.0f, 0u, UINT32_MAX, CAST_U32);
}
OPS_INLINE uint32_t i32_trunc_sat_f64_s(uint64_t a)
{
    double x = f64_value(a);
    TRUNC_SATURATING(x, f64_is_nan(a), -2147483649.0, 2147483648.0, 0x80000000u, 0x7FFFFFFFu, CAST_I32_S);
}
OPS_INLINE uint32_t i32_trunc_sat_f64_u(uint64_t a)
{
    double x = f64_value(a);
    TRUNC_SATURATING(x, f64_is_nan(a), -1.0, 4294967296.0, 0u, UINT32_MAX, CAST_U32);
}
OPS_INLINE uint64_t i64_trunc_sat_f32_s(uint32_t a)
{
    float x = f32_value(a);
    TRUNC_SATURATING(x, f32_is_nan(a), -9223373136366403584.0f, 9223372036854775808.0f,
                     F64_SIGN, (uint64_t)INT64_MAX, CAST_I64_S);
}
OPS_INLINE uint64_t i64_trunc_sat_f32_u(uint32_t a)
{
    float x = f32_value(a);
    TRUNC_SATURATING(x, f32_is_nan(a), -1.0f, 18446744073709551616.0f, 0u, UINT64_MAX, CAST_U64);
}
OPS_INLINE uint64_t i64_trunc_sat_f64_s(uint64_t a)
{
    double x = f64_value(a);
    TRUNC_SATURATING(x, f64_is_nan(a), -9223372036854777856.0, 9223372036854775808.0,
                     F64_SIGN, (uint64_t)INT64_MAX, CAST_I64_S);
}
OPS_INLINE uint64_t i64_trunc_sat_f64_u(uint64_t a)
{
    double x = f64_value(a);
    TRUNC_SATURATING(x, f64_is_nan(a), -1.0, 18446744073709551616.0, 0u, UINT64_MAX, CAST_U64);
}

#undef TRUNC_CHECKED
#undef TRUNC_SATURATING
#undef CAST_I32_S
#undef CAST_U32
#undef CAST_I64_S
#undef CAST_U64

/* ---- integer -> float: one correctly rounded (nearest-even) conversion ----------
 * u64 does not go through the compiler's unsigned conversion, whose code varies
 * between compilers: values >= 2^63 are halved first, keeping the dropped bit
 * as a sticky bit so that the single rounding of the signed conversion is still
 * the correct one, then doubled exactly. */
OPS_INLINE uint32_t f32_convert_i32_s(uint32_t a) { return f32_bits((float)(int32_t)a); }
OPS_INLINE uint32_t f32_convert_i32_u(uint32_t a) { return f32_bits((float)(int64_t)a); }
OPS_INLINE uint32_t f32_convert_i64_s(uint64_t a) { return f32_bits((float)(int64_t)a); }
OPS_INLINE uint32_t f32_convert_i64_u(uint64_t a)
{
    if (!(a & F64_SIGN)) return f32_bits((float)(int64_t)a);
    float half = (float)(int64_t)((a >> 1) | (a & 1));
    return f32_bits(half * 2.0f);
}
OPS_INLINE uint64_t f64_convert_i32_s(uint32_t a) { return f64_bits((double)(int32_t)a); }
OPS_INLINE uint64_t f64_convert_i32_u(uint32_t a) { return f64_bits((double)a); }
OPS_INLINE uint64_t f64_convert_i64_s(uint64_t a) { return f64_bits((double)(int64_t)a); }
OPS_INLINE uint64_t f64_convert_i64_u(uint64_t a)
{
    if (!(a & F64_SIGN)) return f64_bits((double)(int64_t)a);
    double half = (double)(int64_t)((a >> 1) | (a & 1));
    return f64_bits(half * 2.0);
}

/* ---- float <-> float: NaNs keep sign and top payload bits, made quiet ----------- */

OPS_INLINE uint32_t f32_demote_f64(uint64_t a)
{
    if (f64_is_nan(a))
        return (uint32_t)((a & F64_SIGN) >> 32) | F32_EXP | F32_QUIET |
               (uint32_t)((a & 0x000FFFFFFFFFFFFFull) >> 29);
    return f32_bits((float)f64_value(a));
}

OPS_INLINE uint64_t f64_promote_f32(uint32_t a)
{
    if (f32_is_nan(a))
        return ((uint64_t)(a & F32_SIGN) << 32) | F64_EXP | F64_QUIET |
               ((uint64_t)(a & 0x007FFFFFu) << 29);
    return f64_bits((double)f32_value(a));
}

/* ---- reinterpretations: floats already travel as bits --------------------------- */

OPS_INLINE uint32_t i32_reinterpret_f32(uint32_t a) { return a; }
OPS_INLINE uint64_t i64_reinterpret_f64(uint64_t a) { return a; }
OPS_INLINE uint32_t f32_reinterpret_i32(uint32_t a) { return a; }
OPS_INLINE uint64_t f64_reinterpret_i64(uint64_t a) { return a; }

/* ---- memory: little-endian, unaligned ------------------------------------------ */

OPS_INLINE uint32_t mem_read_u8(const uint8_t *p) { return *p; }
OPS_INLINE uint32_t mem_read_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
OPS_INLINE uint32_t mem_read_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
OPS_INLINE uint64_t mem_read_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Stores write the low `width` bytes of the value (width is a constant after
 * inlining, so the switch disappears). */
OPS_INLINE void mem_write(uint8_t *p, uint64_t value, unsigned width)
{
    switch (width) {
    case 1: { uint8_t v = (uint8_t)value; memcpy(p, &v, 1); break; }
    case 2: { uint16_t v = (uint16_t)value; memcpy(p, &v, 2); break; }
    case 4: { uint32_t v = (uint32_t)value; memcpy(p, &v, 4); break; }
    default: memcpy(p, &value, 8); break;
    }
}

OPS_INLINE uint32_t i32_load(const uint8_t *p) { return mem_read_u32(p); }
OPS_INLINE uint64_t i64_load(const uint8_t *p) { return mem_read_u64(p); }
OPS_INLINE uint32_t f32_load(const uint8_t *p) { return mem_read_u32(p); }
OPS_INLINE uint64_t f64_load(const uint8_t *p) { return mem_read_u64(p); }
OPS_INLINE uint32_t i32_load8_s(const uint8_t *p) { return i32_extend8_s(mem_read_u8(p)); }
OPS_INLINE uint32_t i32_load8_u(const uint8_t *p) { return mem_read_u8(p); }
OPS_INLINE uint32_t i32_load16_s(const uint8_t *p) { return i32_extend16_s(mem_read_u16(p)); }
OPS_INLINE uint32_t i32_load16_u(const uint8_t *p) { return mem_read_u16(p); }
OPS_INLINE uint64_t i64_load8_s(const uint8_t *p) { return i64_extend8_s(mem_read_u8(p)); }
OPS_INLINE uint64_t i64_load8_u(const uint8_t *p) { return mem_read_u8(p); }
OPS_INLINE uint64_t i64_load16_s(const uint8_t *p) { return i64_extend16_s(mem_read_u16(p)); }
OPS_INLINE uint64_t i64_load16_u(const uint8_t *p) { return mem_read_u16(p); }
OPS_INLINE uint64_t i64_load32_s(const uint8_t *p) { return i64_extend32_s(mem_read_u32(p)); }
OPS_INLINE uint64_t i64_load32_u(const uint8_t *p) { return mem_read_u32(p); }

/* ==========================================================================
 * Row bindings: opcodes.def row NAME -> the function above.
 *
 * The C preprocessor cannot lower-case a token, so the handlers generated from
 * opcodes.def (interp_numeric.inc, interp_memory.inc) call OPS_<NAME>, and
 * these lines say which function that is and whether it takes the trap
 * out-parameter. Every numeric binding takes (a, b, trap) and drops what its
 * function does not use. A row without a binding fails to compile.
 * ========================================================================== */

#define OPS_I32_EQZ(a, b, trap) i32_eqz(a)
#define OPS_I32_EQ(a, b, trap) i32_eq(a, b)
#define OPS_I32_NE(a, b, trap) i32_ne(a, b)
#define OPS_I32_LT_S(a, b, trap) i32_lt_s(a, b)
#define OPS_I32_LT_U(a, b, trap) i32_lt_u(a, b)
#define OPS_I32_GT_S(a, b, trap) i32_gt_s(a, b)
#define OPS_I32_GT_U(a, b, trap) i32_gt_u(a, b)
#define OPS_I32_LE_S(a, b, trap) i32_le_s(a, b)
#define OPS_I32_LE_U(a, b, trap) i32_le_u(a, b)
#define OPS_I32_GE_S(a, b, trap) i32_ge_s(a, b)
#define OPS_I32_GE_U(a, b, trap) i32_ge_u(a, b)
#define OPS_I64_EQZ(a, b, trap) i64_eqz(a)
#define OPS_I64_EQ(a, b, trap) i64_eq(a, b)
#define OPS_I64_NE(a, b, trap) i64_ne(a, b)
#define OPS_I64_LT_S(a, b, trap) i64_lt_s(a, b)
#define OPS_I64_LT_U(a, b, trap) i64_lt_u(a, b)
#define OPS_I64_GT_S(a, b, trap) i64_gt_s(a, b)
#define OPS_I64_GT_U(a, b, trap) i64_gt_u(a, b)
#define OPS_I64_LE_S(a, b, trap) i64_le_s(a, b)
#define OPS_I64_LE_U(a, b, trap) i64_le_u(a, b)
#define OPS_I64_GE_S(a, b, trap) i64_ge_s(a, b)
#define OPS_I64_GE_U(a, b, trap) i64_ge_u(a, b)
#define OPS_F32_EQ(a, b, trap) f32_eq(a, b)
#define OPS_F32_NE(a, b, trap) f32_ne(a, b)
#define OPS_F32_LT(a, b, trap) f32_lt(a, b)
#define OPS_F32_GT(a, b, trap) f32_gt(a, b)
#define OPS_F32_LE(a, b, trap) f32_le(a, b)
#define OPS_F32_GE(a, b, trap) f32_ge(a, b)
#define OPS_F64_EQ(a, b, trap) f64_eq(a, b)
#define OPS_F64_NE(a, b, trap) f64_ne(a, b)
#define OPS_F64_LT(a, b, trap) f64_lt(a, b)
#define OPS_F64_GT(a, b, trap) f64_gt(a, b)
#define OPS_F64_LE(a, b, trap) f64_le(a, b)
#define OPS_F64_GE(a, b, trap) f64_ge(a, b)

#define OPS_I32_CLZ(a, b, trap) i32_clz(a)
#define OPS_I32_CTZ(a, b, trap) i32_ctz(a)
#define OPS_I32_POPCNT(a, b, trap) i32_popcnt(a)
#define OPS_I32_ADD(a, b, trap) i32_add(a, b)
#define OPS_I32_SUB(a, b, trap) i32_sub(a, b)
#define OPS_I32_MUL(a, b, trap) i32_mul(a, b)
#define OPS_I32_DIV_S(a, b, trap) i32_div_s(a, b, trap)
#define OPS_I32_DIV_U(a, b, trap) i32_div_u(a, b, trap)
#define OPS_I32_REM_S(a, b, trap) i32_rem_s(a, b, trap)
#define OPS_I32_REM_U(a, b, trap) i32_rem_u(a, b, trap)
#define OPS_I32_AND(a, b, trap) i32_and(a, b)
#define OPS_I32_OR(a, b, trap) i32_or(a, b)
#define OPS_I32_XOR(a, b, trap) i32_xor(a, b)
#define OPS_I32_SHL(a, b, trap) i32_shl(a, b)
#define OPS_I32_SHR_S(a, b, trap) i32_shr_s(a, b)
#define OPS_I32_SHR_U(a, b, trap) i32_shr_u(a, b)
#define OPS_I32_ROTL(a, b, trap) i32_rotl(a, b)
#define OPS_I32_ROTR(a, b, trap) i32_rotr(a, b)
#define OPS_I64_CLZ(a, b, trap) i64_clz(a)
#define OPS_I64_CTZ(a, b, trap) i64_ctz(a)
#define OPS_I64_POPCNT(a, b, trap) i64_popcnt(a)
#define OPS_I64_ADD(a, b, trap) i64_add(a, b)
#define OPS_I64_SUB(a, b, trap) i64_sub(a, b)
#define OPS_I64_MUL(a, b, trap) i64_mul(a, b)
#define OPS_I64_DIV_S(a, b, trap) i64_div_s(a, b, trap)
#define OPS_I64_DIV_U(a, b, trap) i64_div_u(a, b, trap)
#define OPS_I64_REM_S(a, b, trap) i64_rem_s(a, b, trap)
#define OPS_I64_REM_U(a, b, trap) i64_rem_u(a, b, trap)
#define OPS_I64_AND(a, b, trap) i64_and(a, b)
#define OPS_I64_OR(a, b, trap) i64_or(a, b)
#define OPS_I64_XOR(a, b, trap) i64_xor(a, b)
#define OPS_I64_SHL(a, b, trap) i64_shl(a, b)
#define OPS_I64_SHR_S(a, b, trap) i64_shr_s(a, b)
#define OPS_I64_SHR_U(a, b, trap) i64_shr_u(a, b)
#define OPS_I64_ROTL(a, b, trap) i64_rotl(a, b)
#define OPS_I64_ROTR(a, b, trap) i64_rotr(a, b)

#define OPS_F32_ABS(a, b, trap) f32_abs(a)
#define OPS_F32_NEG(a, b, trap) f32_neg(a)
#define OPS_F32_CEIL(a, b, trap) f32_ceil(a)
#define OPS_F32_FLOOR(a, b, trap) f32_floor(a)
#define OPS_F32_TRUNC(a, b, trap) f32_trunc(a)
#define OPS_F32_NEAREST(a, b, trap) f32_nearest(a)
#define OPS_F32_SQRT(a, b, trap) f32_sqrt(a)
#define OPS_F32_ADD(a, b, trap) f32_add(a, b)
#define OPS_F32_SUB(a, b, trap) f32_sub(a, b)
#define OPS_F32_MUL(a, b, trap) f32_mul(a, b)
#define OPS_F32_DIV(a, b, trap) f32_div(a, b)
#define OPS_F32_MIN(a, b, trap) f32_min(a, b)
#define OPS_F32_MAX(a, b, trap) f32_max(a, b)
#define OPS_F32_COPYSIGN(a, b, trap) f32_copysign(a, b)
#define OPS_F64_ABS(a, b, trap) f64_abs(a)
#define OPS_F64_NEG(a, b, trap) f64_neg(a)
#define OPS_F64_CEIL(a, b, trap) f64_ceil(a)
#define OPS_F64_FLOOR(a, b, trap) f64_floor(a)
#define OPS_F64_TRUNC(a, b, trap) f64_trunc(a)
#define OPS_F64_NEAREST(a, b, trap) f64_nearest(a)
#define OPS_F64_SQRT(a, b, trap) f64_sqrt(a)
#define OPS_F64_ADD(a, b, trap) f64_add(a, b)
#define OPS_F64_SUB(a, b, trap) f64_sub(a, b)
#define OPS_F64_MUL(a, b, trap) f64_mul(a, b)
#define OPS_F64_DIV(a, b, trap) f64_div(a, b)
#define OPS_F64_MIN(a, b, trap) f64_min(a, b)
#define OPS_F64_MAX(a, b, trap) f64_max(a, b)
#define OPS_F64_COPYSIGN(a, b, trap) f64_copysign(a, b)

#define OPS_I32_WRAP_I64(a, b, trap) i32_wrap_i64(a)
#define OPS_I32_TRUNC_F32_S(a, b, trap) i32_trunc_f32_s(a, trap)
#define OPS_I32_TRUNC_F32_U(a, b, trap) i32_trunc_f32_u(a, trap)
#define OPS_I32_TRUNC_F64_S(a, b, trap) i32_trunc_f64_s(a, trap)
#define OPS_I32_TRUNC_F64_U(a, b, trap) i32_trunc_f64_u(a, trap)
#define OPS_I64_EXTEND_I32_S(a, b, trap) i64_extend_i32_s(a)
#define OPS_I64_EXTEND_I32_U(a, b, trap) i64_extend_i32_u(a)
#define OPS_I64_TRUNC_F32_S(a, b, trap) i64_trunc_f32_s(a, trap)
#define OPS_I64_TRUNC_F32_U(a, b, trap) i64_trunc_f32_u(a, trap)
#define OPS_I64_TRUNC_F64_S(a, b, trap) i64_trunc_f64_s(a, trap)
#define OPS_I64_TRUNC_F64_U(a, b, trap) i64_trunc_f64_u(a, trap)
#define OPS_F32_CONVERT_I32_S(a, b, trap) f32_convert_i32_s(a)
#define OPS_F32_CONVERT_I32_U(a, b, trap) f32_convert_i32_u(a)
#define OPS_F32_CONVERT_I64_S(a, b, trap) f32_convert_i64_s(a)
#define OPS_F32_CONVERT_I64_U(a, b, trap) f32_convert_i64_u(a)
#define OPS_F32_DEMOTE_F64(a, b, trap) f32_demote_f64(a)
#define OPS_F64_CONVERT_I32_S(a, b, trap) f64_convert_i32_s(a)
#define OPS_F64_CONVERT_I32_U(a, b, trap) f64_convert_i32_u(a)
#define OPS_F64_CONVERT_I64_S(a, b, trap) f64_convert_i64_s(a)
#define OPS_F64_CONVERT_I64_U(a, b, trap) f64_convert_i64_u(a)
#define OPS_F64_PROMOTE_F32(a, b, trap) f64_promote_f32(a)
#define OPS_I32_REINTERPRET_F32(a, b, trap) i32_reinterpret_f32(a)
#define OPS_I64_REINTERPRET_F64(a, b, trap) i64_reinterpret_f64(a)
#define OPS_F32_REINTERPRET_I32(a, b, trap) f32_reinterpret_i32(a)
#define OPS_F64_REINTERPRET_I64(a, b, trap) f64_reinterpret_i64(a)
#define OPS_I32_EXTEND8_S(a, b, trap) i32_extend8_s(a)
#define OPS_I32_EXTEND16_S(a, b, trap) i32_extend16_s(a)
#define OPS_I64_EXTEND8_S(a, b, trap) i64_extend8_s(a)
#define OPS_I64_EXTEND16_S(a, b, trap) i64_extend16_s(a)
#define OPS_I64_EXTEND32_S(a, b, trap) i64_extend32_s(a)
#define OPS_I32_TRUNC_SAT_F32_S(a, b, trap) i32_trunc_sat_f32_s(a)
#define OPS_I32_TRUNC_SAT_F32_U(a, b, trap) i32_trunc_sat_f32_u(a)
#define OPS_I32_TRUNC_SAT_F64_S(a, b, trap) i32_trunc_sat_f64_s(a)
#define OPS_I32_TRUNC_SAT_F64_U(a, b, trap) i32_trunc_sat_f64_u(a)
#define OPS_I64_TRUNC_SAT_F32_S(a, b, trap) i64_trunc_sat_f32_s(a)
#define OPS_I64_TRUNC_SAT_F32_U(a, b, trap) i64_trunc_sat_f32_u(a)
#define OPS_I64_TRUNC_SAT_F64_S(a, b, trap) i64_trunc_sat_f64_s(a)
#define OPS_I64_TRUNC_SAT_F64_U(a, b, trap) i64_trunc_sat_f64_u(a)

/* Loads: OPS_<NAME>(p) reads the guest bytes at p. Stores need no binding:
 * they write the low (1 << ALIGN_LOG2) bytes of the slot (mem_write). */
#define OPS_I32_LOAD(p) i32_load(p)
#define OPS_I64_LOAD(p) i64_load(p)
#define OPS_F32_LOAD(p) f32_load(p)
#define OPS_F64_LOAD(p) f64_load(p)
#define OPS_I32_LOAD8_S(p) i32_load8_s(p)
#define OPS_I32_LOAD8_U(p) i32_load8_u(p)
#define OPS_I32_LOAD16_S(p) i32_load16_s(p)
#define OPS_I32_LOAD16_U(p) i32_load16_u(p)
#define OPS_I64_LOAD8_S(p) i64_load8_s(p)
#define OPS_I64_LOAD8_U(p) i64_load8_u(p)
#define OPS_I64_LOAD16_S(p) i64_load16_s(p)
#define OPS_I64_LOAD16_U(p) i64_load16_u(p)
#define OPS_I64_LOAD32_S(p) i64_load32_s(p)
#define OPS_I64_LOAD32_U(p) i64_load32_u(p)

#endif /* ASYNCWASM_OPS_NUMERIC_H */
