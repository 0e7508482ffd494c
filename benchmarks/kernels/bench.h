/*
 * bench.h: shared helpers for the benchmark kernels.
 *
 * The kernels are built twice from the same source: for wasm32-freestanding
 * (no libc at all) and natively with gcc.  So nothing here may depend on a
 * C library; only the compiler's freestanding headers are used.
 *
 * Every kernel exports `int32_t run(int32_t n)`: n scales the work and the
 * result is a checksum that must be identical on every engine for the same n.
 * A negative result means n was out of the kernel's supported range.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

/* The exported entry point; default visibility so the native shared library
 * exports it too (the wasm build exports it with -Wl,--export=run). */
#define BENCH_EXPORT __attribute__((visibility("default")))

/* Returned by run() when n is outside the range the kernel's static buffers
 * can hold (the wasm build has no allocator, so sizes are fixed). */
#define BENCH_BAD_N (-1)

/* xorshift32 (Marsaglia 2003): a tiny deterministic PRNG whose exact
 * sequence is easy to reproduce in Python. The state must never be 0. */
static inline uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* FNV-1a style step used to fold many values into one 32-bit checksum. */
static inline uint32_t mix32(uint32_t hash, uint32_t value)
{
    return (hash ^ value) * 0x01000193u;
}

#define MIX_SEED 0x811C9DC5u

#endif /* BENCH_H */
