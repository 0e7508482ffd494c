/*
 * matmul: C = A * B for n x n matrices of f64, naive i-k-j order.
 * Measures f64 multiply-add and indexed memory access.
 * The inputs are small exact binary fractions, generated from the indices,
 * and the operation order is fixed, so the result is bit-identical on every
 * IEEE-754 engine (and in Python). Checksum: the bit pattern of every
 * element of C, folded with mix32, so any rounding difference shows.
 */
#include "bench.h"

#define MATMUL_MAX 512

static double mat_a[MATMUL_MAX * MATMUL_MAX];
static double mat_b[MATMUL_MAX * MATMUL_MAX];
static double mat_c[MATMUL_MAX * MATMUL_MAX];

static void fill_inputs(int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        for (int32_t j = 0; j < n; j++) {
            mat_a[i * n + j] = (double)((i * 7 + j * 3) % 17) / 16.0 - 0.5;
            mat_b[i * n + j] = (double)((i * 5 + j * 11) % 13) / 8.0 - 0.75;
            mat_c[i * n + j] = 0.0;
        }
    }
}

static void multiply(int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        double *c_row = &mat_c[i * n];
        for (int32_t k = 0; k < n; k++) {
            double a_ik = mat_a[i * n + k];
            const double *b_row = &mat_b[k * n];
            for (int32_t j = 0; j < n; j++)
                c_row[j] += a_ik * b_row[j];
        }
    }
}

BENCH_EXPORT int32_t run(int32_t n)
{
    if (n < 1 || n > MATMUL_MAX)
        return BENCH_BAD_N;
    fill_inputs(n);
    multiply(n);

    uint32_t hash = MIX_SEED;
    for (int32_t idx = 0; idx < n * n; idx++) {
        union {
            double value;
            uint64_t bits;
        } pun = {mat_c[idx]};
        hash = mix32(hash, (uint32_t)pun.bits ^ (uint32_t)(pun.bits >> 32));
    }
    return (int32_t)hash;
}
