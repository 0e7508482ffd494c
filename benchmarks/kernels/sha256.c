/*
 * sha256: SHA-256 (FIPS 180-4) of an n-byte message.
 * Measures 32-bit integer ALU work: rotates, shifts, adds, big-endian loads.
 * The message is a 64 KiB xorshift32-generated block repeated to n bytes,
 * so the buffer stays small while n can be large. Checksum: the eight digest
 * words folded with mix32 (Python checks it against hashlib).
 */
#include "bench.h"

#define BLOCK_BYTES 64
#define PATTERN_BYTES 65536 /* a multiple of BLOCK_BYTES */
#define SHA256_MAX_N 0x40000000

static uint8_t pattern[PATTERN_BYTES];

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, unsigned r)
{
    return (x >> r) | (x << (32 - r));
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void compress(uint32_t state[8], const uint8_t block[BLOCK_BYTES])
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t choose = (e & f) ^ (~e & g);
        uint32_t temp1 = h + big_s1 + choose + round_constants[t] + w[t];
        uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
        uint32_t temp2 = big_s0 + majority;
        h = g;
        g = f;
        f = e;
        e = d + temp1;
        d = c;
        c = b;
        b = a;
        a = temp1 + temp2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

static void fill_pattern(void)
{
    uint32_t rng = 0x9E3779B9u;
    for (uint32_t i = 0; i < PATTERN_BYTES; i++)
        pattern[i] = (uint8_t)(xorshift32(&rng) >> 24);
}

BENCH_EXPORT int32_t run(int32_t n)
{
    if (n < 0 || n > SHA256_MAX_N)
        return BENCH_BAD_N;
    uint32_t length = (uint32_t)n;
    uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    fill_pattern();

    /* Full blocks come straight from the pattern: PATTERN_BYTES is a
     * multiple of BLOCK_BYTES, so a block never wraps around its end. */
    uint32_t done = 0;
    for (; length - done >= BLOCK_BYTES; done += BLOCK_BYTES)
        compress(state, pattern + done % PATTERN_BYTES);

    /* Final block(s): the tail, the 0x80 marker, zeros, the bit length. */
    uint8_t tail[2 * BLOCK_BYTES];
    uint32_t tail_len = length - done;
    for (uint32_t i = 0; i < 2 * BLOCK_BYTES; i++)
        tail[i] = 0;
    for (uint32_t i = 0; i < tail_len; i++)
        tail[i] = pattern[(done + i) % PATTERN_BYTES];
    tail[tail_len] = 0x80;
    uint32_t tail_blocks = tail_len + 1 + 8 <= BLOCK_BYTES ? 1 : 2;
    uint64_t bit_length = (uint64_t)length * 8;
    uint8_t *len_field = tail + tail_blocks * BLOCK_BYTES - 8;
    store_be32(len_field, (uint32_t)(bit_length >> 32));
    store_be32(len_field + 4, (uint32_t)bit_length);
    for (uint32_t blk = 0; blk < tail_blocks; blk++)
        compress(state, tail + blk * BLOCK_BYTES);

    uint32_t hash = MIX_SEED;
    for (int i = 0; i < 8; i++)
        hash = mix32(hash, state[i]);
    return (int32_t)hash;
}
