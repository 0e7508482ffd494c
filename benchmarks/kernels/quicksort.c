/*
 * quicksort: sort n xorshift32-generated u32 values in place.
 * Measures compares, swaps, branches and recursion.
 * Hoare partition around the middle element; the smaller side recurses and
 * the larger side loops, so the recursion depth stays O(log n).
 * Checksum: every element, in order, folded with mix32; -2 if not sorted.
 */
#include "bench.h"

#define QUICKSORT_MAX (1 << 21)
#define NOT_SORTED (-2)

static uint32_t values[QUICKSORT_MAX];

/* Sorts a[lo..hi] (inclusive bounds). */
static void quicksort(uint32_t *a, int32_t lo, int32_t hi)
{
    while (lo < hi) {
        uint32_t pivot = a[lo + (hi - lo) / 2];
        int32_t i = lo - 1, j = hi + 1;
        for (;;) {
            do
                i++;
            while (a[i] < pivot);
            do
                j--;
            while (a[j] > pivot);
            if (i >= j)
                break;
            uint32_t tmp = a[i];
            a[i] = a[j];
            a[j] = tmp;
        }
        /* Now a[lo..j] <= pivot <= a[j+1..hi]. */
        if (j - lo < hi - j) {
            quicksort(a, lo, j);
            lo = j + 1;
        } else {
            quicksort(a, j + 1, hi);
            hi = j;
        }
    }
}

BENCH_EXPORT int32_t run(int32_t n)
{
    if (n < 0 || n > QUICKSORT_MAX)
        return BENCH_BAD_N;
    uint32_t rng = 0x2545F491u;
    for (int32_t i = 0; i < n; i++)
        values[i] = xorshift32(&rng);

    quicksort(values, 0, n - 1);

    uint32_t hash = MIX_SEED;
    for (int32_t i = 0; i < n; i++) {
        if (i > 0 && values[i - 1] > values[i])
            return NOT_SORTED;
        hash = mix32(hash, values[i]);
    }
    return (int32_t)hash;
}
