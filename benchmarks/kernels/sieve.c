/*
 * sieve: sieve of Eratosthenes over [0, n) with one byte per number.
 * Measures tight loops with byte loads/stores and strided writes.
 * Checksum: prime count mixed with the sum of all primes (mod 2^32).
 */
#include "bench.h"

#define SIEVE_MAX (1 << 24) /* 16 Mi numbers, 16 MiB of flags */

static uint8_t composite[SIEVE_MAX];

BENCH_EXPORT int32_t run(int32_t n)
{
    if (n < 0 || n > SIEVE_MAX)
        return BENCH_BAD_N;
    uint32_t limit = (uint32_t)n;

    /* Reset what a previous call left behind. */
    for (uint32_t i = 0; i < limit; i++)
        composite[i] = 0;

    for (uint32_t i = 2; i * i < limit; i++) {
        if (composite[i])
            continue;
        for (uint32_t j = i * i; j < limit; j += i)
            composite[j] = 1;
    }

    uint32_t count = 0, sum = 0;
    for (uint32_t i = 2; i < limit; i++) {
        if (!composite[i]) {
            count++;
            sum += i;
        }
    }
    return (int32_t)mix32(mix32(MIX_SEED, count), sum);
}
