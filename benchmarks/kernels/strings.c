/*
 * strings: C string and memory routines on short strings.
 * Measures byte loops and small-call overhead, as in parsers and servers.
 *
 * The wasm build is freestanding, so the routines are written here, the
 * plain byte-at-a-time way; the build passes -fno-builtin (and gcc
 * -fno-tree-loop-distribute-patterns) so neither compiler swaps them for
 * a libc call or a bulk-memory instruction: both builds run these loops.
 *
 * Each of the n iterations: make a word with k_memset and a random letter,
 * k_memcpy it into a ring of 64 slots, k_strlen it, k_strcmp it against an
 * older slot, k_strchr for a letter, and append it to a line buffer with a
 * k_strlen-based strcat (flushing the line when full).
 */
#include "bench.h"

#define SLOT_COUNT 64
#define SLOT_BYTES 128
#define LINE_BYTES 1024
#define WORD_MIN 8
#define WORD_SPREAD 112 /* words are WORD_MIN .. WORD_MIN+WORD_SPREAD-1 long */

static char slots[SLOT_COUNT][SLOT_BYTES];
static char word[SLOT_BYTES];
static char line[LINE_BYTES];

static void *k_memset(void *dst, int byte, size_t count)
{
    unsigned char *d = dst;
    while (count--)
        *d++ = (unsigned char)byte;
    return dst;
}

static void *k_memcpy(void *restrict dst, const void *restrict src, size_t count)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (count--)
        *d++ = *s++;
    return dst;
}

static size_t k_strlen(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return (size_t)(p - s);
}

static int k_strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (int)(unsigned char)*a - (int)(unsigned char)*b;
}

static const char *k_strchr(const char *s, int c)
{
    for (; *s; s++) {
        if (*s == (char)c)
            return s;
    }
    return NULL;
}

static uint32_t sign_code(int v)
{
    return v < 0 ? 0u : (v == 0 ? 1u : 2u);
}

BENCH_EXPORT int32_t run(int32_t n)
{
    if (n < 0)
        return BENCH_BAD_N;
    uint32_t rng = 0x6C078965u;
    uint32_t hash = MIX_SEED;
    k_memset(slots, 0, sizeof slots);
    k_memset(line, 0, sizeof line);

    for (int32_t iter = 0; iter < n; iter++) {
        uint32_t r = xorshift32(&rng);
        size_t len = WORD_MIN + r % WORD_SPREAD;
        k_memset(word, 'a' + (int)((r >> 8) % 26), len);
        word[(r >> 16) % len] = (char)('a' + (r >> 24) % 26);
        word[len] = '\0';

        char *slot = slots[iter & (SLOT_COUNT - 1)];
        k_memcpy(slot, word, len + 1);
        hash = mix32(hash, (uint32_t)k_strlen(slot));

        const char *older = slots[(iter + 17) & (SLOT_COUNT - 1)];
        hash = mix32(hash, sign_code(k_strcmp(slot, older)));

        const char *found = k_strchr(slot, 'a' + (int)(r % 26));
        hash = mix32(hash, found ? (uint32_t)(found - slot) : 0xFFFFFFFFu);

        size_t used = k_strlen(line);
        if (used + len + 1 > LINE_BYTES) {
            hash = mix32(hash, (uint32_t)used);
            k_memset(line, 0, LINE_BYTES);
            used = 0;
        }
        k_memcpy(line + used, slot, len + 1);
    }
    return (int32_t)mix32(hash, (uint32_t)k_strlen(line));
}
