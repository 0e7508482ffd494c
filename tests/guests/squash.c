/* squash: an LZ77 + canonical Huffman compressor and decompressor.
 *
 * The "larger real program" of the WASI tests: the same source is built
 * for wasm32-wasi (zig cc) and natively (gcc), both are run on the same
 * inputs, and their outputs must match byte for byte.
 *
 *   squash c [IN [OUT]]     compress IN (default/"-": stdin) to OUT (stdout)
 *   squash d [IN [OUT]]     decompress
 *   squash t FILE...        round-trip each FILE in memory, print a summary
 *
 * Environment: SQUASH_CHAIN (1-4096, default 64) is the match search depth.
 * Exit status: 0 ok, 1 I/O error or corrupt input, 2 usage.
 *
 * Format (all integers little-endian):
 *   "SQZ1", u32 size, u32 crc32 of the original, then a bit stream (LSB
 *   first): 286 litlen code lengths and 30 distance code lengths, 4 bits
 *   each, then the symbols. Literals 0-255, 256 ends the stream, 257-285 are
 *   lengths 3-258 and the distance codes 0-29 cover 1-32768, with extra
 *   bits as in DEFLATE (RFC 1951, 3.2.5). Code lengths are at most 15.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "SQZ1"
#define NLIT 286
#define NDIST 30
#define MAXBITS 15
#define WINDOW 32768
#define MIN_MATCH 3
#define MAX_MATCH 258
#define HASH_BITS 15
#define END_OF_STREAM 256

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                      35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* ---- byte buffers ------------------------------------------------------ */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Buf;

static void die(const char *what) {
    fprintf(stderr, "squash: %s\n", what);
    exit(1);
}

static void buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data) die("out of memory");
    b->data = data;
    b->cap = cap;
}

static void buf_push(Buf *b, uint8_t byte) {
    buf_reserve(b, 1);
    b->data[b->len++] = byte;
}

static void buf_u32(Buf *b, uint32_t v) {
    for (int i = 0; i < 4; i++) buf_push(b, (uint8_t)(v >> (8 * i)));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc32(const uint8_t *data, size_t len) {
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* ---- bit I/O ------------------------------------------------------------ */

typedef struct {
    Buf *out;
    uint32_t acc;
    int n;
} BitWriter;

static void put_bits(BitWriter *w, uint32_t value, int count) {
    w->acc |= value << w->n;
    w->n += count;
    while (w->n >= 8) {
        buf_push(w->out, (uint8_t)w->acc);
        w->acc >>= 8;
        w->n -= 8;
    }
}

static void flush_bits(BitWriter *w) {
    if (w->n > 0) buf_push(w->out, (uint8_t)w->acc);
    w->acc = 0;
    w->n = 0;
}

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    uint32_t acc;
    int n;
} BitReader;

/* Returns -1 past the end of the input (a truncated stream). */
static int get_bits(BitReader *r, int count) {
    while (r->n < count) {
        if (r->pos >= r->len) return -1;
        r->acc |= (uint32_t)r->data[r->pos++] << r->n;
        r->n += 8;
    }
    int value = (int)(r->acc & ((1u << count) - 1));
    r->acc >>= count;
    r->n -= count;
    return value;
}

/* ---- Huffman codes ------------------------------------------------------ */

typedef struct {
    uint32_t freq;
    int left, right; /* children; -1 for a leaf */
} Node;

static void depths(const Node *nodes, int i, int depth, uint8_t *lengths, int nsym) {
    if (i < nsym) {
        lengths[i] = (uint8_t)(depth ? depth : 1);
        return;
    }
    depths(nodes, nodes[i].left, depth + 1, lengths, nsym);
    depths(nodes, nodes[i].right, depth + 1, lengths, nsym);
}

/* Code lengths for the frequencies, at most MAXBITS: build the Huffman tree
 * with a simple O(n^2) two-minimum search (n <= 286), and if it is too deep
 * flatten the frequencies and try again. Deterministic: ties go to the
 * lowest index. */
static void build_lengths(const uint32_t *freq_in, int nsym, uint8_t *lengths) {
    uint32_t freq[NLIT];
    memcpy(freq, freq_in, sizeof(uint32_t) * (size_t)nsym);
    for (;;) {
        Node nodes[2 * NLIT];
        int alive[2 * NLIT], nalive = 0, nnodes = nsym;
        memset(lengths, 0, (size_t)nsym);
        for (int i = 0; i < nsym; i++) {
            nodes[i].freq = freq[i];
            nodes[i].left = nodes[i].right = -1;
            if (freq[i]) alive[nalive++] = i;
        }
        if (nalive == 0) return;
        if (nalive == 1) {
            lengths[alive[0]] = 1;
            return;
        }
        while (nalive > 1) {
            int a = 0, b = 1;
            if (nodes[alive[b]].freq < nodes[alive[a]].freq) a = 1, b = 0;
            for (int k = 2; k < nalive; k++) {
                uint32_t f = nodes[alive[k]].freq;
                if (f < nodes[alive[a]].freq) b = a, a = k;
                else if (f < nodes[alive[b]].freq) b = k;
            }
            Node *parent = &nodes[nnodes];
            parent->freq = nodes[alive[a]].freq + nodes[alive[b]].freq;
            parent->left = alive[a];
            parent->right = alive[b];
            int hi = a > b ? a : b, lo = a > b ? b : a;
            alive[lo] = nnodes++;
            alive[hi] = alive[--nalive];
        }
        depths(nodes, alive[0], 0, lengths, nsym);
        int max = 0;
        for (int i = 0; i < nsym; i++) max = lengths[i] > max ? lengths[i] : max;
        if (max <= MAXBITS) return;
        for (int i = 0; i < nsym; i++) freq[i] = freq[i] ? (freq[i] >> 1) | 1 : 0;
    }
}

/* Canonical codes (RFC 1951, 3.2.2), bit-reversed for an LSB-first stream. */
static void build_codes(const uint8_t *lengths, int nsym, uint16_t *codes) {
    uint16_t count[MAXBITS + 1] = {0}, next[MAXBITS + 2];
    for (int i = 0; i < nsym; i++) count[lengths[i]]++;
    count[0] = 0;
    next[1] = 0;
    for (int bits = 1; bits <= MAXBITS; bits++) next[bits + 1] = (uint16_t)((next[bits] + count[bits]) << 1);
    for (int i = 0; i < nsym; i++) {
        int len = lengths[i];
        if (!len) continue;
        uint16_t code = next[len]++, reversed = 0;
        for (int k = 0; k < len; k++) reversed = (uint16_t)(reversed << 1 | ((code >> k) & 1));
        codes[i] = reversed;
    }
}

typedef struct {
    uint16_t count[MAXBITS + 1];
    uint16_t symbol[NLIT];
} Decoder;

/* Returns 0, or -1 when the lengths over-subscribe the code space. */
static int build_decoder(Decoder *d, const uint8_t *lengths, int nsym) {
    uint16_t offs[MAXBITS + 1];
    memset(d->count, 0, sizeof d->count);
    for (int i = 0; i < nsym; i++) d->count[lengths[i]]++;
    int left = 1;
    for (int len = 1; len <= MAXBITS; len++) {
        left = (left << 1) - d->count[len];
        if (left < 0) return -1;
    }
    offs[1] = 0;
    for (int len = 1; len < MAXBITS; len++) offs[len + 1] = (uint16_t)(offs[len] + d->count[len]);
    for (int i = 0; i < nsym; i++)
        if (lengths[i]) d->symbol[offs[lengths[i]]++] = (uint16_t)i;
    return 0;
}

/* One symbol, reading the code MSB-first bit by bit (puff.c's method). */
static int decode_symbol(BitReader *r, const Decoder *d) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= MAXBITS; len++) {
        int bit = get_bits(r, 1);
        if (bit < 0) return -1;
        code |= bit;
        int count = d->count[len];
        if (code - count < first) return d->symbol[index + (code - first)];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -2;
}

/* ---- LZ77 --------------------------------------------------------------- */

typedef struct {
    uint16_t litlen; /* literal byte, or match length */
    uint16_t dist;   /* 0 for a literal */
} Token;

static int code_for(const uint16_t *base, int n, int value) {
    int i = n - 1;
    while (base[i] > value) i--;
    return i;
}

static size_t lz77(const uint8_t *in, size_t n, Token *tokens, int chain) {
    int32_t *head = malloc(sizeof(int32_t) << HASH_BITS);
    int32_t *prev = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!head || !prev) die("out of memory");
    for (size_t i = 0; i < ((size_t)1 << HASH_BITS); i++) head[i] = -1;
    size_t ntok = 0, i = 0;
    while (i < n) {
        int best_len = 0, best_dist = 0;
        if (i + MIN_MATCH <= n) {
            uint32_t h = ((uint32_t)in[i] << 10 ^ (uint32_t)in[i + 1] << 5 ^ in[i + 2]) & ((1u << HASH_BITS) - 1);
            int max = n - i < MAX_MATCH ? (int)(n - i) : MAX_MATCH;
            int32_t cand = head[h];
            for (int depth = 0; cand >= 0 && depth < chain && i - (size_t)cand <= WINDOW; depth++) {
                int len = 0;
                while (len < max && in[cand + len] == in[i + len]) len++;
                if (len > best_len) {
                    best_len = len;
                    best_dist = (int)(i - (size_t)cand);
                    if (len == max) break;
                }
                cand = prev[cand];
            }
            prev[i] = head[h];
            head[h] = (int32_t)i;
        }
        if (best_len >= MIN_MATCH) {
            tokens[ntok++] = (Token){(uint16_t)best_len, (uint16_t)best_dist};
            /* Index the positions the match covers, for later matches. */
            for (size_t k = i + 1; k < i + (size_t)best_len && k + MIN_MATCH <= n; k++) {
                uint32_t h = ((uint32_t)in[k] << 10 ^ (uint32_t)in[k + 1] << 5 ^ in[k + 2]) & ((1u << HASH_BITS) - 1);
                prev[k] = head[h];
                head[h] = (int32_t)k;
            }
            i += (size_t)best_len;
        } else {
            tokens[ntok++] = (Token){in[i], 0};
            i++;
        }
    }
    free(head);
    free(prev);
    return ntok;
}

/* ---- compress / decompress ------------------------------------------------ */

static void compress(const uint8_t *in, size_t n, Buf *out, int chain) {
    Token *tokens = malloc(sizeof(Token) * (n ? n : 1));
    if (!tokens) die("out of memory");
    size_t ntok = lz77(in, n, tokens, chain);

    uint32_t lit_freq[NLIT] = {0}, dist_freq[NDIST] = {0};
    for (size_t t = 0; t < ntok; t++) {
        if (tokens[t].dist == 0) {
            lit_freq[tokens[t].litlen]++;
        } else {
            lit_freq[257 + code_for(len_base, 29, tokens[t].litlen)]++;
            dist_freq[code_for(dist_base, 30, tokens[t].dist)]++;
        }
    }
    lit_freq[END_OF_STREAM]++;
    uint8_t lit_len[NLIT], dist_len[NDIST];
    uint16_t lit_code[NLIT] = {0}, dist_code[NDIST] = {0};
    build_lengths(lit_freq, NLIT, lit_len);
    build_lengths(dist_freq, NDIST, dist_len);
    build_codes(lit_len, NLIT, lit_code);
    build_codes(dist_len, NDIST, dist_code);

    for (int i = 0; i < 4; i++) buf_push(out, (uint8_t)MAGIC[i]);
    buf_u32(out, (uint32_t)n);
    buf_u32(out, crc32(in, n));
    BitWriter w = {out, 0, 0};
    for (int i = 0; i < NLIT; i++) put_bits(&w, lit_len[i], 4);
    for (int i = 0; i < NDIST; i++) put_bits(&w, dist_len[i], 4);
    for (size_t t = 0; t < ntok; t++) {
        Token tok = tokens[t];
        if (tok.dist == 0) {
            put_bits(&w, lit_code[tok.litlen], lit_len[tok.litlen]);
            continue;
        }
        int lc = code_for(len_base, 29, tok.litlen), dc = code_for(dist_base, 30, tok.dist);
        put_bits(&w, lit_code[257 + lc], lit_len[257 + lc]);
        put_bits(&w, (uint32_t)(tok.litlen - len_base[lc]), len_extra[lc]);
        put_bits(&w, dist_code[dc], dist_len[dc]);
        put_bits(&w, (uint32_t)(tok.dist - dist_base[dc]), dist_extra[dc]);
    }
    put_bits(&w, lit_code[END_OF_STREAM], lit_len[END_OF_STREAM]);
    flush_bits(&w);
    free(tokens);
}

/* Returns NULL on success, else what is wrong with the input. */
static const char *decompress(const uint8_t *in, size_t n, Buf *out) {
    if (n < 12 || memcmp(in, MAGIC, 4) != 0) return "not a squash stream (bad magic)";
    uint32_t size = get_u32(in + 4), crc = get_u32(in + 8);
    BitReader r = {in + 12, n - 12, 0, 0, 0};
    uint8_t lit_len[NLIT], dist_len[NDIST];
    for (int i = 0; i < NLIT; i++) {
        int v = get_bits(&r, 4);
        if (v < 0) return "truncated header";
        lit_len[i] = (uint8_t)v;
    }
    for (int i = 0; i < NDIST; i++) {
        int v = get_bits(&r, 4);
        if (v < 0) return "truncated header";
        dist_len[i] = (uint8_t)v;
    }
    static Decoder lit, dist;
    if (build_decoder(&lit, lit_len, NLIT) || build_decoder(&dist, dist_len, NDIST)) return "bad code lengths";
    buf_reserve(out, size);
    size_t start = out->len;
    for (;;) {
        int sym = decode_symbol(&r, &lit);
        if (sym < 0) return sym == -1 ? "truncated data" : "bad literal/length code";
        if (sym < 256) {
            buf_push(out, (uint8_t)sym);
            continue;
        }
        if (sym == END_OF_STREAM) break;
        if (sym - 257 >= 29) return "bad length symbol";
        int extra = get_bits(&r, len_extra[sym - 257]);
        int dsym = decode_symbol(&r, &dist);
        if (extra < 0 || dsym == -1) return "truncated data";
        if (dsym < 0 || dsym >= 30) return "bad distance code";
        int dextra = get_bits(&r, dist_extra[dsym]);
        if (dextra < 0) return "truncated data";
        size_t len = len_base[sym - 257] + (size_t)extra, d = dist_base[dsym] + (size_t)dextra;
        if (d > out->len - start) return "distance too far back";
        buf_reserve(out, len);
        for (size_t k = 0; k < len; k++, out->len++) out->data[out->len] = out->data[out->len - d];
    }
    if (out->len - start != size) return "size mismatch";
    if (crc32(out->data + start, size) != crc) return "checksum mismatch";
    return NULL;
}

/* ---- files ---------------------------------------------------------------- */

static int read_all(const char *path, Buf *b) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "squash: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t got;
    do {
        buf_reserve(b, 65536);
        got = fread(b->data + b->len, 1, 65536, f);
        b->len += got;
    } while (got > 0);
    int failed = ferror(f);
    if (f != stdin) fclose(f);
    if (failed) {
        fprintf(stderr, "squash: %s: read error\n", path);
        return -1;
    }
    return 0;
}

static int write_all(const char *path, const Buf *b) {
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "squash: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t done = fwrite(b->data, 1, b->len, f);
    int failed = done != b->len || (f == stdout ? fflush(f) : fclose(f)) != 0;
    if (failed) {
        fprintf(stderr, "squash: %s: write error\n", path);
        return -1;
    }
    return 0;
}

static int usage(void) {
    fputs("usage: squash c|d [IN [OUT]]\n       squash t FILE...\n", stderr);
    return 2;
}

int main(int argc, char **argv) {
    int chain = 64;
    const char *env = getenv("SQUASH_CHAIN");
    if (env) {
        chain = atoi(env);
        if (chain < 1 || chain > 4096) {
            fprintf(stderr, "squash: SQUASH_CHAIN must be 1-4096, not %s\n", env);
            return 2;
        }
    }
    if (argc < 2 || strlen(argv[1]) != 1) return usage();
    char mode = argv[1][0];
    if (mode == 't') {
        if (argc < 3) return usage();
        int status = 0;
        for (int i = 2; i < argc; i++) {
            Buf in = {0}, packed = {0}, unpacked = {0};
            if (read_all(argv[i], &in)) {
                status = 1;
                continue;
            }
            compress(in.data, in.len, &packed, chain);
            const char *problem = decompress(packed.data, packed.len, &unpacked);
            int same = !problem && unpacked.len == in.len && (in.len == 0 || memcmp(in.data, unpacked.data, in.len) == 0);
            printf("%s: %zu -> %zu bytes (%zu.%zu%%), crc32 %08x, %s\n", argv[i], in.len, packed.len,
                   in.len ? packed.len * 100 / in.len : 0, in.len ? packed.len * 1000 / in.len % 10 : 0,
                   crc32(in.data, in.len), same ? "round trip ok" : "ROUND TRIP FAILED");
            if (!same) status = 1;
            free(in.data);
            free(packed.data);
            free(unpacked.data);
        }
        return status;
    }
    if ((mode != 'c' && mode != 'd') || argc > 4) return usage();
    const char *src = argc > 2 ? argv[2] : "-", *dst = argc > 3 ? argv[3] : "-";
    Buf in = {0}, out = {0};
    if (read_all(src, &in)) return 1;
    if (mode == 'c') {
        compress(in.data, in.len, &out, chain);
    } else {
        const char *problem = decompress(in.data, in.len, &out);
        if (problem) {
            fprintf(stderr, "squash: %s: corrupt input: %s\n", src, problem);
            return 1;
        }
    }
    if (write_all(dst, &out)) return 1;
    free(in.data);
    free(out.data);
    return 0;
}
