/* ops_check.c -- unit tests of asyncwasm/_engine/ops_numeric.h edge cases.
 *
 * Build and run (from the repository root):
 *   gcc -std=gnu11 -O2 -Wall -Wextra -Iasyncwasm/_engine $(python3-config --includes) tests/c/ops_check.c -lm -o /tmp/ops_check && /tmp/ops_check
 *
 * Every value is compared as a bit pattern, so -0 vs +0 and NaN payloads
 * count. Exit status 0 when every check passes; each failure prints its line.
 */
#include <inttypes.h>
#include <stdio.h>

#include "ops_numeric.h"

static int checks, failures;

static void check_u64(int line, const char *what, uint64_t got, uint64_t want)
{
    checks++;
    if (got != want) {
        failures++;
        printf("ops_check.c:%d: %s: got 0x%016" PRIx64 ", want 0x%016" PRIx64 "\n", line, what, got, want);
    }
}

static void check_true(int line, const char *what, int ok)
{
    checks++;
    if (!ok) {
        failures++;
        printf("ops_check.c:%d: %s: false\n", line, what);
    }
}

#define EQ(expr, want) check_u64(__LINE__, #expr, (uint64_t)(expr), (uint64_t)(want))
#define TRUE(expr) check_true(__LINE__, #expr, (expr))

/* The result and the trap kind of a trapping function. */
#define TRAPS(call_with_trap, want_kind)                                            \
    do {                                                                            \
        int trap = TRAP_NONE;                                                       \
        (void)(call_with_trap);                                                     \
        check_u64(__LINE__, #call_with_trap " trap kind", (uint64_t)trap, (want_kind)); \
    } while (0)
#define RETURNS(call_with_trap, want)                                               \
    do {                                                                            \
        int trap = TRAP_NONE;                                                       \
        uint64_t got_ = (uint64_t)(call_with_trap);                                 \
        check_u64(__LINE__, #call_with_trap " trap kind", (uint64_t)trap, TRAP_NONE); \
        check_u64(__LINE__, #call_with_trap, got_, (uint64_t)(want));               \
    } while (0)

static uint32_t F(float x) { return f32_bits(x); }
static uint64_t D(double x) { return f64_bits(x); }

/* NaN classes of the spec: canonical = only the quiet bit in the payload;
 * arithmetic = quiet bit set. */
static int f32_canonical(uint32_t b) { return (b & 0x7FFFFFFFu) == 0x7FC00000u; }
static int f32_arithmetic(uint32_t b) { return (b & 0x7FC00000u) == 0x7FC00000u; }
static int f64_canonical(uint64_t b) { return (b & 0x7FFFFFFFFFFFFFFFull) == 0x7FF8000000000000ull; }
static int f64_arithmetic(uint64_t b) { return (b & 0x7FF8000000000000ull) == 0x7FF8000000000000ull; }

#define F32_CANON 0x7FC00000u
#define F32_SNAN 0x7FA00000u  /* signalling, payload 0x200000 */
#define F32_QNAN_PAYLOAD 0x7FC12345u
#define F64_CANON 0x7FF8000000000000ull
#define F64_SNAN 0x7FF4000000000000ull
#define F32_NEG_ZERO 0x80000000u
#define F64_NEG_ZERO 0x8000000000000000ull
#define F32_INF 0x7F800000u
#define F64_INF 0x7FF0000000000000ull

static void test_nan_propagation(void)
{
    /* Arithmetic on NaN yields an arithmetic NaN; on canonical NaNs, canonical. */
    TRUE(f32_canonical(f32_add(F32_CANON, F(1.0f))));
    TRUE(f32_canonical(f32_mul(F(2.0f), F32_CANON)));
    TRUE(f32_arithmetic(f32_add(F32_SNAN, F(1.0f))));
    TRUE(f32_arithmetic(f32_div(F32_QNAN_PAYLOAD, F(3.0f))));
    TRUE(f64_canonical(f64_sub(F64_CANON, D(1.0))));
    TRUE(f64_arithmetic(f64_add(F64_SNAN, D(1.0))));
    /* Invalid operations produce a canonical NaN. */
    TRUE(f32_canonical(f32_sub(F32_INF, F32_INF)));
    TRUE(f32_canonical(f32_div(F(0.0f), F(0.0f))));
    TRUE(f64_canonical(f64_mul(D(0.0), F64_INF)));
    TRUE(f32_canonical(f32_sqrt(F(-1.0f))));
    TRUE(f64_canonical(f64_sqrt(D(-2.0))));
    EQ(f64_sqrt(F64_NEG_ZERO), F64_NEG_ZERO);
    EQ(f32_sqrt(F(4.0f)), F(2.0f));
    /* Rounding ops and sqrt quiet a NaN, keeping canonical ones canonical. */
    EQ(f32_ceil(F32_SNAN), F32_SNAN | 0x00400000u);
    EQ(f32_floor(F32_CANON | 0x80000000u), F32_CANON | 0x80000000u);
    EQ(f32_trunc(F32_QNAN_PAYLOAD), F32_QNAN_PAYLOAD);
    EQ(f32_nearest(F32_SNAN), F32_SNAN | 0x00400000u);
    EQ(f64_nearest(F64_SNAN), F64_SNAN | 0x0008000000000000ull);
    EQ(f64_ceil(F64_CANON), F64_CANON);
    TRUE(f32_arithmetic(f32_sqrt(F32_SNAN)));
    TRUE(f64_canonical(f64_sqrt(F64_CANON)));
    /* abs/neg/copysign are bit operations: a signalling NaN stays signalling. */
    EQ(f32_neg(F32_SNAN), F32_SNAN | 0x80000000u);
    EQ(f32_abs(F32_SNAN | 0x80000000u), F32_SNAN);
    EQ(f32_copysign(F32_SNAN, F(-1.0f)), F32_SNAN | 0x80000000u);
    EQ(f64_neg(F64_SNAN), F64_SNAN | F64_NEG_ZERO);
    EQ(f64_abs(F64_NEG_ZERO), 0);
    EQ(f64_copysign(D(2.0), F64_CANON | F64_NEG_ZERO), D(-2.0));
    EQ(f32_reinterpret_i32(F32_SNAN), F32_SNAN);
    EQ(f64_reinterpret_i64(F64_SNAN), F64_SNAN);
    /* Comparisons: NaN is unordered, -0 == +0. */
    EQ(f32_eq(F32_CANON, F32_CANON), 0);
    EQ(f32_ne(F32_CANON, F32_CANON), 1);
    EQ(f32_lt(F32_CANON, F(1.0f)), 0);
    EQ(f32_ge(F(1.0f), F32_CANON), 0);
    EQ(f64_eq(F64_NEG_ZERO, 0), 1);
    EQ(f64_lt(F64_NEG_ZERO, 0), 0);
    EQ(f64_le(D(-1.0), D(-1.0)), 1);
}

static void test_min_max(void)
{
    EQ(f32_min(F32_NEG_ZERO, 0), F32_NEG_ZERO);
    EQ(f32_min(0, F32_NEG_ZERO), F32_NEG_ZERO);
    EQ(f32_max(F32_NEG_ZERO, 0), 0);
    EQ(f32_max(0, F32_NEG_ZERO), 0);
    EQ(f64_min(F64_NEG_ZERO, 0), F64_NEG_ZERO);
    EQ(f64_min(0, F64_NEG_ZERO), F64_NEG_ZERO);
    EQ(f64_max(F64_NEG_ZERO, 0), 0);
    EQ(f64_max(0, F64_NEG_ZERO), 0);
    EQ(f32_min(F(-1.0f), F(2.0f)), F(-1.0f));
    EQ(f32_max(F(-1.0f), F(2.0f)), F(2.0f));
    EQ(f64_min(F64_INF | F64_NEG_ZERO, D(3.0)), F64_INF | F64_NEG_ZERO);
    EQ(f64_max(F64_INF, D(3.0)), F64_INF);
    /* NaN in either position wins and comes out quiet. */
    EQ(f32_min(F32_CANON, F(1.0f)), F32_CANON);
    EQ(f32_min(F(1.0f), F32_CANON), F32_CANON);
    EQ(f32_max(F(1.0f), F32_SNAN), F32_SNAN | 0x00400000u);
    EQ(f32_max(F32_NEG_ZERO, F32_CANON | 0x80000000u), F32_CANON | 0x80000000u);
    EQ(f64_min(F64_SNAN, D(1.0)), F64_SNAN | 0x0008000000000000ull);
    EQ(f64_max(D(-1.0), F64_CANON), F64_CANON);
    TRUE(f64_canonical(f64_min(F64_CANON, F64_CANON | F64_NEG_ZERO)));
}

static void test_rounding(void)
{
    /* nearest: ties to even, sign of zero kept. */
    EQ(f32_nearest(F(0.5f)), F(0.0f));
    EQ(f32_nearest(F(-0.5f)), F32_NEG_ZERO);
    EQ(f32_nearest(F(1.5f)), F(2.0f));
    EQ(f32_nearest(F(2.5f)), F(2.0f));
    EQ(f32_nearest(F(-2.5f)), F(-2.0f));
    EQ(f32_nearest(F(3.5f)), F(4.0f));
    EQ(f32_nearest(F(0.49999997f)), F(0.0f));
    EQ(f32_nearest(F(-3.7f)), F(-4.0f));
    EQ(f32_nearest(F(8388607.5f)), F(8388608.0f)); /* 2^23 - 0.5 */
    EQ(f32_nearest(F(8388609.0f)), F(8388609.0f));
    EQ(f32_nearest(F32_NEG_ZERO), F32_NEG_ZERO);
    EQ(f32_nearest(F32_INF | 0x80000000u), F32_INF | 0x80000000u);
    EQ(f64_nearest(D(0.5)), D(0.0));
    EQ(f64_nearest(D(-0.5)), F64_NEG_ZERO);
    EQ(f64_nearest(D(2.5)), D(2.0));
    EQ(f64_nearest(D(-1.5)), D(-2.0));
    EQ(f64_nearest(D(4503599627370495.5)), D(4503599627370496.0)); /* 2^52 - 0.5 */
    EQ(f64_nearest(D(4503599627370497.0)), D(4503599627370497.0));
    EQ(f64_nearest(D(0.49999999999999994)), D(0.0));
    /* ceil/floor/trunc, including results that round to a signed zero. */
    EQ(f32_ceil(F(-0.5f)), F32_NEG_ZERO);
    EQ(f32_ceil(F(0.2f)), F(1.0f));
    EQ(f32_ceil(F(-1.5f)), F(-1.0f));
    EQ(f32_floor(F(-0.5f)), F(-1.0f));
    EQ(f32_floor(F32_NEG_ZERO), F32_NEG_ZERO);
    EQ(f32_floor(F(1.99f)), F(1.0f));
    EQ(f32_trunc(F(-0.7f)), F32_NEG_ZERO);
    EQ(f32_trunc(F(-1.7f)), F(-1.0f));
    EQ(f32_trunc(F(16777215.0f)), F(16777215.0f));
    EQ(f64_ceil(D(-0.9)), F64_NEG_ZERO);
    EQ(f64_ceil(D(4503599627370495.5)), D(4503599627370496.0));
    EQ(f64_floor(D(-4503599627370495.5)), D(-4503599627370496.0));
    EQ(f64_floor(D(0.1)), D(0.0));
    EQ(f64_trunc(D(-0.1)), F64_NEG_ZERO);
    EQ(f64_trunc(D(1e300)), D(1e300));
    EQ(f64_floor(F64_INF), F64_INF);
}

static void test_trapping_float_to_int(void)
{
    /* i32 from f32: valid range [-2^31, 2^31). */
    RETURNS(i32_trunc_f32_s(F(-2147483648.0f), &trap), 0x80000000u);
    RETURNS(i32_trunc_f32_s(F(2147483520.0f), &trap), 2147483520u);
    RETURNS(i32_trunc_f32_s(F(-1.9f), &trap), 0xFFFFFFFFu);
    RETURNS(i32_trunc_f32_s(F32_NEG_ZERO, &trap), 0);
    TRAPS(i32_trunc_f32_s(F(2147483648.0f), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f32_s(F(-2147483904.0f), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f32_s(F32_INF, &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f32_s(F32_CANON, &trap), TRAP_INVALID_CONVERSION);
    TRAPS(i32_trunc_f32_s(F32_SNAN | 0x80000000u, &trap), TRAP_INVALID_CONVERSION);
    /* u32 from f32: (-1, 2^32). */
    RETURNS(i32_trunc_f32_u(F(-0.99f), &trap), 0);
    RETURNS(i32_trunc_f32_u(F(4294967040.0f), &trap), 4294967040u);
    TRAPS(i32_trunc_f32_u(F(-1.0f), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f32_u(F(4294967296.0f), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f32_u(F32_CANON, &trap), TRAP_INVALID_CONVERSION);
    /* i32 from f64: (-2^31 - 1, 2^31). */
    RETURNS(i32_trunc_f64_s(D(2147483647.9), &trap), 2147483647u);
    RETURNS(i32_trunc_f64_s(D(-2147483648.9), &trap), 0x80000000u);
    TRAPS(i32_trunc_f64_s(D(2147483648.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f64_s(D(-2147483649.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f64_s(F64_CANON, &trap), TRAP_INVALID_CONVERSION);
    /* u32 from f64: (-1, 2^32). */
    RETURNS(i32_trunc_f64_u(D(4294967295.9), &trap), 4294967295u);
    RETURNS(i32_trunc_f64_u(D(-0.9), &trap), 0);
    TRAPS(i32_trunc_f64_u(D(4294967296.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f64_u(D(-1.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i32_trunc_f64_u(F64_INF | F64_NEG_ZERO, &trap), TRAP_INT_OVERFLOW);
    /* i64 from f32: [-2^63, 2^63). */
    RETURNS(i64_trunc_f32_s(F(-9223372036854775808.0f), &trap), 0x8000000000000000ull);
    RETURNS(i64_trunc_f32_s(F(9223371487098961920.0f), &trap), 9223371487098961920ull);
    TRAPS(i64_trunc_f32_s(F(9223372036854775808.0f), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i64_trunc_f32_s(F(-9223373136366403584.0f), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i64_trunc_f32_s(F32_CANON, &trap), TRAP_INVALID_CONVERSION);
    /* u64 from f32: (-1, 2^64). */
    RETURNS(i64_trunc_f32_u(F(18446742974197923840.0f), &trap), 18446742974197923840ull);
    RETURNS(i64_trunc_f32_u(F(-0.9f), &trap), 0);
    TRAPS(i64_trunc_f32_u(F(18446744073709551616.0f), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i64_trunc_f32_u(F(-1.0f), &trap), TRAP_INT_OVERFLOW);
    /* i64 from f64: [-2^63, 2^63). */
    RETURNS(i64_trunc_f64_s(D(-9223372036854775808.0), &trap), 0x8000000000000000ull);
    RETURNS(i64_trunc_f64_s(D(9223372036854774784.0), &trap), 9223372036854774784ull);
    TRAPS(i64_trunc_f64_s(D(9223372036854775808.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i64_trunc_f64_s(D(-9223372036854777856.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i64_trunc_f64_s(F64_SNAN, &trap), TRAP_INVALID_CONVERSION);
    /* u64 from f64: (-1, 2^64). */
    RETURNS(i64_trunc_f64_u(D(18446744073709549568.0), &trap), 18446744073709549568ull);
    RETURNS(i64_trunc_f64_u(D(-0.9999999999999999), &trap), 0);
    TRAPS(i64_trunc_f64_u(D(18446744073709551616.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i64_trunc_f64_u(D(-1.0), &trap), TRAP_INT_OVERFLOW);
    TRAPS(i64_trunc_f64_u(F64_INF, &trap), TRAP_INT_OVERFLOW);
}

static void test_saturating_float_to_int(void)
{
    EQ(i32_trunc_sat_f32_s(F32_CANON), 0);
    EQ(i32_trunc_sat_f32_s(F(2147483648.0f)), 0x7FFFFFFFu);
    EQ(i32_trunc_sat_f32_s(F(2147483520.0f)), 2147483520u);
    EQ(i32_trunc_sat_f32_s(F(-2147483648.0f)), 0x80000000u);
    EQ(i32_trunc_sat_f32_s(F(-2147483904.0f)), 0x80000000u);
    EQ(i32_trunc_sat_f32_s(F32_INF | 0x80000000u), 0x80000000u);
    EQ(i32_trunc_sat_f32_u(F(-1.0f)), 0);
    EQ(i32_trunc_sat_f32_u(F(-0.9f)), 0);
    EQ(i32_trunc_sat_f32_u(F(4294967296.0f)), 0xFFFFFFFFu);
    EQ(i32_trunc_sat_f32_u(F(4294967040.0f)), 4294967040u);
    EQ(i32_trunc_sat_f32_u(F32_SNAN), 0);
    EQ(i32_trunc_sat_f64_s(D(2147483647.9)), 0x7FFFFFFFu);
    EQ(i32_trunc_sat_f64_s(D(2147483648.0)), 0x7FFFFFFFu);
    EQ(i32_trunc_sat_f64_s(D(-2147483648.9)), 0x80000000u);
    EQ(i32_trunc_sat_f64_s(D(-2147483649.0)), 0x80000000u);
    EQ(i32_trunc_sat_f64_s(F64_CANON | F64_NEG_ZERO), 0);
    EQ(i32_trunc_sat_f64_u(D(4294967295.9)), 0xFFFFFFFFu);
    EQ(i32_trunc_sat_f64_u(D(1e20)), 0xFFFFFFFFu);
    EQ(i32_trunc_sat_f64_u(D(-1e20)), 0);
    EQ(i64_trunc_sat_f32_s(F(9223372036854775808.0f)), 0x7FFFFFFFFFFFFFFFull);
    EQ(i64_trunc_sat_f32_s(F(-9223372036854775808.0f)), 0x8000000000000000ull);
    EQ(i64_trunc_sat_f32_s(F(-9223373136366403584.0f)), 0x8000000000000000ull);
    EQ(i64_trunc_sat_f32_s(F32_CANON), 0);
    EQ(i64_trunc_sat_f32_u(F(18446744073709551616.0f)), UINT64_MAX);
    EQ(i64_trunc_sat_f32_u(F(18446742974197923840.0f)), 18446742974197923840ull);
    EQ(i64_trunc_sat_f32_u(F(-5.0f)), 0);
    EQ(i64_trunc_sat_f64_s(D(9223372036854774784.0)), 9223372036854774784ull);
    EQ(i64_trunc_sat_f64_s(D(9223372036854775808.0)), 0x7FFFFFFFFFFFFFFFull);
    EQ(i64_trunc_sat_f64_s(D(-9223372036854777856.0)), 0x8000000000000000ull);
    EQ(i64_trunc_sat_f64_s(F64_INF), 0x7FFFFFFFFFFFFFFFull);
    EQ(i64_trunc_sat_f64_u(D(18446744073709549568.0)), 18446744073709549568ull);
    EQ(i64_trunc_sat_f64_u(D(18446744073709551616.0)), UINT64_MAX);
    EQ(i64_trunc_sat_f64_u(F64_SNAN), 0);
    EQ(i64_trunc_sat_f64_u(F64_INF | F64_NEG_ZERO), 0);
}

static void test_div_rem(void)
{
    TRAPS(i32_div_s(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i32_div_u(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i32_rem_s(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i32_rem_u(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i32_div_s(0x80000000u, 0xFFFFFFFFu, &trap), TRAP_INT_OVERFLOW);
    RETURNS(i32_rem_s(0x80000000u, 0xFFFFFFFFu, &trap), 0);
    RETURNS(i32_div_s((uint32_t)-7, 2, &trap), (uint32_t)-3);
    RETURNS(i32_rem_s((uint32_t)-7, 2, &trap), (uint32_t)-1);
    RETURNS(i32_rem_s(7, (uint32_t)-2, &trap), 1);
    RETURNS(i32_div_s(0x80000000u, 2, &trap), 0xC0000000u);
    RETURNS(i32_div_u(0x80000000u, 2, &trap), 0x40000000u);
    RETURNS(i32_rem_u(0xFFFFFFFFu, 10, &trap), 5);
    TRAPS(i64_div_s(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i64_div_u(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i64_rem_s(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i64_rem_u(1, 0, &trap), TRAP_INT_DIV_ZERO);
    TRAPS(i64_div_s(0x8000000000000000ull, UINT64_MAX, &trap), TRAP_INT_OVERFLOW);
    RETURNS(i64_rem_s(0x8000000000000000ull, UINT64_MAX, &trap), 0);
    RETURNS(i64_div_s((uint64_t)-7, 2, &trap), (uint64_t)-3);
    RETURNS(i64_rem_s((uint64_t)-7, 2, &trap), (uint64_t)-1);
    RETURNS(i64_div_u(UINT64_MAX, 2, &trap), 0x7FFFFFFFFFFFFFFFull);
    RETURNS(i64_rem_u(UINT64_MAX, 10, &trap), 5);
}

static void test_bits_and_shifts(void)
{
    EQ(i32_clz(0), 32);
    EQ(i32_ctz(0), 32);
    EQ(i64_clz(0), 64);
    EQ(i64_ctz(0), 64);
    EQ(i32_clz(1), 31);
    EQ(i32_ctz(0x80000000u), 31);
    EQ(i64_clz(1), 63);
    EQ(i64_ctz(0x8000000000000000ull), 63);
    EQ(i32_popcnt(0), 0);
    EQ(i32_popcnt(0xFFFFFFFFu), 32);
    EQ(i32_popcnt(0x80008001u), 3);
    EQ(i64_popcnt(UINT64_MAX), 64);
    EQ(i64_popcnt(0x8000000000000001ull), 2);
    /* Shift and rotate counts are taken modulo the width. */
    EQ(i32_shl(1, 32), 1);
    EQ(i32_shl(1, 33), 2);
    EQ(i32_shr_u(0x80000000u, 31), 1);
    EQ(i32_shr_s(0x80000000u, 31), 0xFFFFFFFFu);
    EQ(i32_shr_s(0x80000000u, 32), 0x80000000u);
    EQ(i32_shr_s(0x40000000u, 30), 1);
    EQ(i64_shl(1, 64), 1);
    EQ(i64_shr_s(0x8000000000000000ull, 63), UINT64_MAX);
    EQ(i64_shr_s(0x8000000000000000ull, 64 + 4), 0xF800000000000000ull);
    EQ(i64_shr_u(0x8000000000000000ull, 63), 1);
    EQ(i32_rotl(0x80000001u, 1), 3);
    EQ(i32_rotl(0x12345678u, 0), 0x12345678u);
    EQ(i32_rotl(0x12345678u, 32), 0x12345678u);
    EQ(i32_rotl(0x12345678u, 36), 0x23456781u);
    EQ(i32_rotl(0x12345678u, 0xFFFFFFFFu), i32_rotr(0x12345678u, 1));
    EQ(i32_rotr(1, 1), 0x80000000u);
    EQ(i32_rotr(0x12345678u, 4), 0x81234567u);
    EQ(i64_rotl(0x8000000000000001ull, 1), 3);
    EQ(i64_rotl(0x0123456789ABCDEFull, 64 + 8), 0x23456789ABCDEF01ull);
    EQ(i64_rotr(1, 1), 0x8000000000000000ull);
    EQ(i64_rotr(0x0123456789ABCDEFull, 0), 0x0123456789ABCDEFull);
    /* Wrapping arithmetic. */
    EQ(i32_add(0xFFFFFFFFu, 1), 0);
    EQ(i32_sub(0, 1), 0xFFFFFFFFu);
    EQ(i32_mul(0x80000000u, 2), 0);
    EQ(i64_mul(0x8000000000000000ull, 0xFFFFFFFFFFFFFFFFull), 0x8000000000000000ull);
    EQ(i32_lt_s(0x80000000u, 0), 1);
    EQ(i32_lt_u(0x80000000u, 0), 0);
    EQ(i64_ge_s(0, 0x8000000000000000ull), 1);
}

static void test_int_to_float(void)
{
    /* u64 -> f32 needs one rounding: 2^63 + 2^39 + 1 is just above the tie
     * between 2^63 and 2^63 + 2^40; rounding through f64 first would give 2^63. */
    EQ(f32_convert_i64_u(0x8000008000000001ull), 0x5F000001u);
    EQ(f32_convert_i64_u(0x8000008000000000ull), 0x5F000000u); /* exact tie: even */
    EQ(f32_convert_i64_u(0x8000018000000000ull), 0x5F000002u); /* tie from odd: up */
    EQ(f32_convert_i64_u(UINT64_MAX), 0x5F800000u);           /* 2^64 */
    EQ(f32_convert_i64_u(0x7FFFFFFFFFFFFFFFull), 0x5F000000u);
    EQ(f32_convert_i64_u(0xFFFFFF7FFFFFFFFFull), 0x5F7FFFFFu); /* just below the tie to 2^64 */
    EQ(f32_convert_i64_u(0), 0);
    EQ(f32_convert_i64_u(16777217), F(16777216.0f));
    EQ(f32_convert_i64_s(0x0020000020000001ull), 0x5A000001u); /* above a tie: up */
    EQ(f32_convert_i64_s(0x8000000000000000ull), 0xDF000000u);
    EQ(f32_convert_i64_s((uint64_t)-1), F(-1.0f));
    EQ(f32_convert_i32_u(0xFFFFFFFFu), 0x4F800000u);
    EQ(f32_convert_i32_u(16777217), F(16777216.0f));
    EQ(f32_convert_i32_u(16777219), F(16777220.0f));
    EQ(f32_convert_i32_s(0x80000000u), F(-2147483648.0f));
    EQ(f64_convert_i64_u(UINT64_MAX), D(18446744073709551616.0));
    EQ(f64_convert_i64_u(0x8000000000000401ull), 0x43E0000000000001ull);
    EQ(f64_convert_i64_u(0x8000000000000400ull), 0x43E0000000000000ull);
    EQ(f64_convert_i64_u(0x8000000000000C00ull), 0x43E0000000000002ull);
    EQ(f64_convert_i64_s(0x8000000000000000ull), D(-9223372036854775808.0));
    EQ(f64_convert_i64_s(0x0020000000000001ull), D(9007199254740992.0)); /* tie: even */
    EQ(f64_convert_i32_u(0xFFFFFFFFu), D(4294967295.0));
    EQ(f64_convert_i32_s(0xFFFFFFFFu), D(-1.0));
}

static void test_float_to_float(void)
{
    EQ(f32_demote_f64(F64_CANON), F32_CANON);
    EQ(f32_demote_f64(F64_CANON | F64_NEG_ZERO), F32_CANON | 0x80000000u);
    TRUE(f32_arithmetic(f32_demote_f64(0x7FF0000000000001ull)));
    TRUE(f32_arithmetic(f32_demote_f64(F64_SNAN)));
    EQ(f32_demote_f64(D(1e300)), F32_INF);
    EQ(f32_demote_f64(D(-1e300)), F32_INF | 0x80000000u);
    EQ(f32_demote_f64(0x3FF0000010000000ull), F(1.0f));  /* 1 + 2^-24: tie, even */
    EQ(f32_demote_f64(0x3FF0000030000000ull), 0x3F800002u); /* 1 + 3*2^-24: tie, up */
    EQ(f32_demote_f64(F64_NEG_ZERO), F32_NEG_ZERO);
    EQ(f32_demote_f64(D(1e-50)), 0);
    EQ(f64_promote_f32(F32_CANON), F64_CANON);
    EQ(f64_promote_f32(F32_SNAN), 0x7FFC000000000000ull);
    EQ(f64_promote_f32(F32_QNAN_PAYLOAD | 0x80000000u), 0xFFF82468A0000000ull);
    EQ(f64_promote_f32(F(1.5f)), D(1.5));
    EQ(f64_promote_f32(0x00000001u), D(1.401298464324817e-45));
}

static void test_extend_and_memory(void)
{
    EQ(i64_extend_i32_s(0x80000000u), 0xFFFFFFFF80000000ull);
    EQ(i64_extend_i32_u(0x80000000u), 0x80000000ull);
    EQ(i32_wrap_i64(0x123456789ull), 0x23456789u);
    EQ(i32_extend8_s(0x80), 0xFFFFFF80u);
    EQ(i32_extend8_s(0x1234567Fu), 0x7F);
    EQ(i32_extend16_s(0x8000), 0xFFFF8000u);
    EQ(i32_extend16_s(0xFFFF7FFFu), 0x7FFF);
    EQ(i64_extend8_s(0xFF), UINT64_MAX);
    EQ(i64_extend16_s(0x12348000ull), 0xFFFFFFFFFFFF8000ull);
    EQ(i64_extend32_s(0x7FFFFFFFull | 0xFF00000000ull), 0x7FFFFFFFull);
    EQ(i64_extend32_s(0x80000000ull), 0xFFFFFFFF80000000ull);

    uint8_t mem[16] = {0xFF, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x86, 0, 0, 0, 0, 0, 0, 0, 0};
    EQ(i32_load8_s(mem), 0xFFFFFFFFu);
    EQ(i32_load8_u(mem), 0xFF);
    EQ(i32_load16_s(mem), 0xFFFF80FFu);
    EQ(i32_load16_u(mem + 1), 0x0180);
    EQ(i32_load(mem + 1), 0x03020180u); /* unaligned, little-endian */
    EQ(i64_load(mem), 0x86050403020180FFull);
    EQ(i64_load8_s(mem + 7), 0xFFFFFFFFFFFFFF86ull);
    EQ(i64_load16_s(mem + 6), 0xFFFFFFFFFFFF8605ull);
    EQ(i64_load32_s(mem + 4), 0xFFFFFFFF86050403ull);
    EQ(i64_load32_u(mem + 4), 0x86050403ull);
    mem_write(mem + 9, 0x1122334455667788ull, 1);
    EQ(mem[9], 0x88);
    EQ(mem[10], 0);
    mem_write(mem + 9, 0x1122334455667788ull, 2);
    EQ(i32_load16_u(mem + 9), 0x7788);
    EQ(mem[11], 0);
    mem_write(mem + 8, 0x1122334455667788ull, 4);
    EQ(i64_load(mem + 8), 0x55667788ull);
    mem_write(mem + 8, 0x1122334455667788ull, 8);
    EQ(i64_load(mem + 8), 0x1122334455667788ull);
    mem_write(mem, F32_SNAN, 4);
    EQ(f32_load(mem), F32_SNAN);
}

int main(void)
{
    test_nan_propagation();
    test_min_max();
    test_rounding();
    test_trapping_float_to_int();
    test_saturating_float_to_int();
    test_div_rem();
    test_bits_and_shifts();
    test_int_to_float();
    test_float_to_float();
    test_extend_and_memory();
    printf("ops_check: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
