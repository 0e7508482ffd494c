/* simd_check.c -- runs every function of asyncwasm/_engine/ops_simd.h (every
 * row of opcodes_simd.def) over the same inputs and prints one digest line
 * per instruction. Built twice, with and without
 * -DASYNCWASM_NO_SIMD_INTRINSICS, the two outputs must be identical: the
 * SSE2 and portable forms agree bit for bit (tests/c/test_simd_check.py).
 *
 *   gcc -std=gnu11 -O2 -Wall -Wextra -Iasyncwasm/_engine $(python3-config --includes) \
 *       tests/c/simd_check.c -lm -o /tmp/simd_check && /tmp/simd_check [-v NAME]
 *
 * Inputs: lanes drawn from edge values of every shape (zeros, extremes,
 * NaNs with payloads, signalling NaNs, infinities, subnormals, halves for
 * rounding, conversion limits) mixed with random bits, from a fixed seed.
 * -v NAME prints every input and result of instruction NAME instead.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ops_simd.h"

#define ROUNDS 4000

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t next64(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static const uint32_t special32[] = {
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu,
    0x3F800000u, 0xBF800000u, 0x3F000000u, 0xBF000000u, 0x3FC00000u, 0x40200000u, 0x80000000u,
    0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x7FA00001u, 0xFFA12345u, 0x7FC0DEADu,
    0x00000001u, 0x807FFFFFu, 0x4EFFFFFFu, 0x4F000000u, 0xCF000000u, 0xCF000001u, 0x4F800000u,
    0x4B000000u, 0x4AFFFFFFu, 0x4B7FFFFFu, 0x7F7FFFFFu, 0x00FF00FFu, 0x80808080u, 0x7F7F7F7Fu,
};
static const uint64_t special64[] = {
    0, 1, 0x8000000000000000ull, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull,
    0x3FF0000000000000ull, 0xBFF0000000000000ull, 0x3FE0000000000000ull, 0xBFE8000000000000ull,
    0x7FF0000000000000ull, 0xFFF0000000000000ull, 0x7FF8000000000000ull, 0xFFF8000000000000ull,
    0x7FF4000000000001ull, 0x7FF8DEADBEEF0000ull, 0x0000000000000001ull, 0x41DFFFFFFFC00000ull,
    0x41E0000000000000ull, 0xC1E0000000200000ull, 0x41EFFFFFFFFFFFFFull, 0x4330000000000000ull,
    0x432FFFFFFFFFFFFFull, 0x47EFFFFFE0000000ull, 0x47EFFFFFF0000000ull, 0x3810000000000000ull,
    0x36A0000000000000ull, 0x7FEFFFFFFFFFFFFFull, 0x4000000000000001ull,
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t any32(void)
{
    uint64_t r = next64();
    return (r & 3) ? special32[(r >> 8) % COUNT(special32)] : (uint32_t)(r >> 32);
}

static uint64_t any64(void)
{
    uint64_t r = next64();
    switch (r & 7) {
    case 0: case 1: case 2: return special64[(r >> 8) % COUNT(special64)];
    case 3: return (uint64_t)any32() | (uint64_t)any32() << 32;
    case 4: return (uint64_t)(int64_t)(int32_t)any32();
    default: return next64();
    }
}

static v128 any_v128(void)
{
    v128 v;
    uint64_t r = next64();
    for (int i = 0; i < 4; i++) v.u32[i] = any32();
    if (r & 1) v.u64[0] = any64();
    if (r & 2) v.u64[1] = any64();
    if ((r & 12) == 12) { /* byte-level edge values */
        for (int i = 0; i < 16; i++) {
            uint64_t b = next64();
            if (b & 1) v.u8[i] = (uint8_t)special32[(b >> 8) % 12];
        }
    }
    return v;
}

/* ---- digests ------------------------------------------------------------------------- */

static const char *verbose_name;
static uint64_t digest;

static void fold(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) digest = (digest ^ b[i]) * 0x100000001B3ull;
}

static void show(const char *name, const v128 *in, int nin, const void *out, size_t nout)
{
    if (!verbose_name || strcmp(verbose_name, name) != 0) return;
    for (int k = 0; k < nin; k++)
        printf("%s%016" PRIx64 "%016" PRIx64, k ? " " : "", in[k].u64[1], in[k].u64[0]);
    uint64_t o[2] = {0, 0};
    memcpy(o, out, nout);
    printf(" -> %016" PRIx64 "%016" PRIx64 "\n", o[1], o[0]);
}

static void finish(const char *name)
{
    if (!verbose_name) printf("%s %016" PRIx64 "\n", name, digest);
    digest = 0xCBF29CE484222325ull;
}

/* Scalar operands of each type, as their slot bit patterns. */
#define ARG_V128() any_v128()
#define ARG_I32() any32()
#define ARG_I64() any64()
#define ARG_F32() any32()
#define ARG_F64() any64()
#define ARG_NONE() 0
#define AS_V128(x) (x)
#define AS_I32(x) ((v128){.u64 = {(x), 0}})
#define AS_I64(x) ((v128){.u64 = {(x), 0}})
#define AS_F32(x) ((v128){.u64 = {(x), 0}})
#define AS_F64(x) ((v128){.u64 = {(x), 0}})
#define AS_NONE(x) ((v128){.u64 = {0, 0}})
#define TYPE_V128 v128
#define TYPE_I32 uint32_t
#define TYPE_I64 uint64_t
#define TYPE_F32 uint32_t
#define TYPE_F64 uint64_t
#define TYPE_NONE int
#define CALL_NONE(F, A, B) F(A)
#define CALL_V128(F, A, B) F(A, B)
#define CALL_I32(F, A, B) F(A, B)
#define CALL_I64(F, A, B) F(A, B)
#define CALL_F32(F, A, B) F(A, B)
#define CALL_F64(F, A, B) F(A, B)
#define LANE_CALL_NONE(F, A, B, L) F(A, L)
#define LANE_CALL_I32(F, A, B, L) F(A, B, L)
#define LANE_CALL_I64(F, A, B, L) F(A, B, L)
#define LANE_CALL_F32(F, A, B, L) F(A, B, L)
#define LANE_CALL_F64(F, A, B, L) F(A, B, L)

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "-v") == 0) verbose_name = argv[2];
    digest = 0xCBF29CE484222325ull;

#define SIMD_OP(NAME, CODE, TEXT, FUNC, IN1, IN2, OUT)                                 \
    rng_state = 0x9E3779B97F4A7C15ull ^ (CODE);                                        \
    for (int round = 0; round < ROUNDS; round++) {                                     \
        TYPE_##IN1 a = ARG_##IN1();                                                    \
        TYPE_##IN2 b = ARG_##IN2();                                                    \
        (void)b;                                                                       \
        TYPE_##OUT r = CALL_##IN2(FUNC, a, b);                                         \
        v128 in[2] = {AS_##IN1(a), AS_##IN2(b)};                                       \
        fold(&r, sizeof r);                                                            \
        show(TEXT, in, 2, &r, sizeof r);                                               \
    }                                                                                  \
    finish(TEXT);

#define SIMD_LANE_OP(NAME, CODE, TEXT, FUNC, IN1, IN2, OUT, LANES)                     \
    rng_state = 0x9E3779B97F4A7C15ull ^ (CODE);                                        \
    for (int round = 0; round < ROUNDS; round++) {                                     \
        TYPE_##IN1 a = ARG_##IN1();                                                    \
        TYPE_##IN2 b = ARG_##IN2();                                                    \
        (void)b;                                                                       \
        uint32_t lane = (uint32_t)(round % (LANES));                                   \
        TYPE_##OUT r = LANE_CALL_##IN2(FUNC, a, b, lane);                              \
        v128 in[2] = {AS_##IN1(a), AS_##IN2(b)};                                       \
        fold(&r, sizeof r);                                                            \
        show(TEXT, in, 2, &r, sizeof r);                                               \
    }                                                                                  \
    finish(TEXT);

#define SIMD_TERNARY(NAME, CODE, TEXT, FUNC)                                           \
    rng_state = 0x9E3779B97F4A7C15ull ^ (CODE);                                        \
    for (int round = 0; round < ROUNDS; round++) {                                     \
        v128 in[3] = {any_v128(), any_v128(), any_v128()};                             \
        v128 r = FUNC(in[0], in[1], in[2]);                                            \
        fold(&r, sizeof r);                                                            \
        show(TEXT, in, 3, &r, sizeof r);                                               \
    }                                                                                  \
    finish(TEXT);

#define SIMD_LOAD(NAME, CODE, TEXT, FUNC, ALIGN_LOG2)                                  \
    rng_state = 0x9E3779B97F4A7C15ull ^ (CODE);                                        \
    for (int round = 0; round < ROUNDS; round++) {                                     \
        v128 in[1] = {any_v128()};                                                     \
        v128 r = FUNC(in[0].u8);                                                       \
        fold(&r, sizeof r);                                                            \
        show(TEXT, in, 1, &r, sizeof r);                                               \
    }                                                                                  \
    finish(TEXT);

#define SIMD_LOAD_LANE(NAME, CODE, TEXT, ALIGN_LOG2)                                   \
    rng_state = 0x9E3779B97F4A7C15ull ^ (CODE);                                        \
    for (int round = 0; round < ROUNDS; round++) {                                     \
        v128 in[2] = {any_v128(), any_v128()};                                         \
        uint32_t lane = (uint32_t)round % (16u >> (ALIGN_LOG2));                       \
        v128 r = v128_load_lane(in[0], in[1].u8, lane, 1u << (ALIGN_LOG2));            \
        fold(&r, sizeof r);                                                            \
        show(TEXT, in, 2, &r, sizeof r);                                               \
    }                                                                                  \
    finish(TEXT);

#define SIMD_STORE_LANE(NAME, CODE, TEXT, ALIGN_LOG2)                                  \
    rng_state = 0x9E3779B97F4A7C15ull ^ (CODE);                                        \
    for (int round = 0; round < ROUNDS; round++) {                                     \
        v128 in[2] = {any_v128(), any_v128()};                                         \
        v128 r = in[1];                                                                \
        uint32_t lane = (uint32_t)round % (16u >> (ALIGN_LOG2));                       \
        v128_store_lane(r.u8, in[0], lane, 1u << (ALIGN_LOG2));                        \
        fold(&r, sizeof r);                                                            \
        show(TEXT, in, 2, &r, sizeof r);                                               \
    }                                                                                  \
    finish(TEXT);

#define SIMD_SHUFFLE(NAME, CODE, TEXT)                                                 \
    rng_state = 0x9E3779B97F4A7C15ull ^ (CODE);                                        \
    for (int round = 0; round < ROUNDS; round++) {                                     \
        v128 in[3] = {any_v128(), any_v128(), any_v128()};                             \
        for (int i = 0; i < 16; i++) in[2].u8[i] &= 31;                                \
        v128 r = i8x16_shuffle(in[0], in[1], in[2].u32);                               \
        fold(&r, sizeof r);                                                            \
        show(TEXT, in, 3, &r, sizeof r);                                               \
    }                                                                                  \
    finish(TEXT);

#include "opcodes.def"
    return 0;
}
