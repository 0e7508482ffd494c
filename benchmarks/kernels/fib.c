/*
 * fib: naive doubly recursive Fibonacci.
 * Measures call/return overhead; run(n) makes 2*F(n+1)-1 calls.
 * Arithmetic is unsigned so large n wraps instead of overflowing (no UB).
 */
#include "bench.h"

static uint32_t fib(int32_t n)
{
    if (n < 2)
        return (uint32_t)n;
    return fib(n - 1) + fib(n - 2);
}

BENCH_EXPORT int32_t run(int32_t n)
{
    if (n < 0 || n > 60)
        return BENCH_BAD_N;
    return (int32_t)fib(n);
}
