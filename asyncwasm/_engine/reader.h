/* reader.h -- bounds-checked byte, LEB128 and name reading for the front end
 * (decode.c, validate.c).
 *
 * Rules:
 * - Every read checks against r->end; running off it is
 *   "unexpected end of section or function" (the spec interpreter's wording).
 * - LEB128 follows the spec's vuN/vsN exactly: at most ceil(N/7) bytes
 *   ("integer representation too long"), and the unused bits of the last
 *   byte must be zero (unsigned) or copies of the sign bit (signed)
 *   ("integer too large"). Padded encodings (0x80 0x00 ...) are valid.
 * - A failed read fills r->err and returns false; callers just propagate.
 */
#ifndef ASYNCWASM_READER_H
#define ASYNCWASM_READER_H

#include "engine.h"

typedef struct wasm_reader {
    const uint8_t *base; /* module start: error offsets are relative to it */
    const uint8_t *p;    /* next byte to read */
    const uint8_t *end;  /* first byte the reader may not read */
    wasm_error *err;
    int64_t func;        /* function index reported with errors, or -1 */
} wasm_reader;

#define MSG_UNEXPECTED_END "unexpected end of section or function"

/* module.c: fill *err (message formatted like printf). */
void wasm_error_setf(wasm_error *err, int kind, size_t offset, int64_t func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* module.c: like wasm_error_setf, at byte `at` of the reader's module. */
void reader_failf(const wasm_reader *r, int kind, const uint8_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Both evaluate to false, visibly to the compiler, so that callers can
 * write `return reader_fail(...)` from functions that report success. */
#define wasm_error_set(...) (wasm_error_setf(__VA_ARGS__), false)
#define reader_fail(...) (reader_failf(__VA_ARGS__), false)

/* module.c: strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
bool wasm_utf8_valid(const uint8_t *s, size_t n);

/* module.c: value and reference types of the Wasm 3.0 binary format.
 * https://webassembly.github.io/spec/core/binary/types.html#reference-types
 * The one-byte forms, and (ref null func|extern|exn) spelled out with the
 * 0x63 prefix, are what the engine runs: *out is their VT_* byte (v128
 * included: callers refuse it while SIMD is missing). Types that only
 * typed function references or GC can express are read in full, but then
 * *unsupported names the feature (a "<feature> is not supported yet"
 * message) and *out is VT_NONE; a caller reports it as a validation error.
 * Anything else is malformed: false, error set. */
bool rd_valtype(wasm_reader *r, uint8_t *out, const char **unsupported);
/* The same for reference types only ("malformed reference type" otherwise). */
bool rd_reftype(wasm_reader *r, uint8_t *out, const char **unsupported);
/* A heap type (ref.null's immediate): the reference type it makes nullable. */
bool rd_heaptype(wasm_reader *r, uint8_t *out, const char **unsupported);

#define MSG_TYPED_REFS "typed function references is not supported yet"
#define MSG_GC "GC is not supported yet"
#define MSG_RELAXED_SIMD "relaxed SIMD is not supported yet"
/* Relaxed SIMD's 0xFD sub-opcodes (none has immediates). */
#define FD_RELAXED_FIRST 0x100u
#define FD_RELAXED_LAST 0x113u

static inline size_t reader_offset(const wasm_reader *r, const uint8_t *at) {
    return (size_t)(at - r->base);
}

static inline bool reader_eof(const wasm_reader *r) { return r->p >= r->end; }

static inline bool reader_fail_eof(const wasm_reader *r) {
    return reader_fail(r, ERR_MALFORMED, r->end, MSG_UNEXPECTED_END);
}

static inline bool rd_byte(wasm_reader *r, uint8_t *out) {
    if (r->p >= r->end)
        return reader_fail_eof(r);
    *out = *r->p++;
    return true;
}

static inline bool rd_skip(wasm_reader *r, size_t n) {
    if ((size_t)(r->end - r->p) < n)
        return reader_fail_eof(r);
    r->p += n;
    return true;
}

/* Unsigned LEB128 of at most `bits` bits (the spec's vuN). */
static inline bool rd_leb_u(wasm_reader *r, int bits, uint64_t *out) {
    uint64_t result = 0;
    unsigned shift = 0;
    for (int n = bits;; n -= 7, shift += 7) {
        if (n <= 0)
            return reader_fail(r, ERR_MALFORMED, r->p, "integer representation too long");
        if (r->p >= r->end)
            return reader_fail_eof(r);
        uint8_t b = *r->p++;
        if (n < 7 && (b & 0x7Fu) >= (1u << n))
            return reader_fail(r, ERR_MALFORMED, r->p - 1, "integer too large");
        result |= (uint64_t)(b & 0x7Fu) << shift;
        if (!(b & 0x80)) {
            *out = result;
            return true;
        }
    }
}

/* Signed LEB128 of at most `bits` bits (the spec's vsN), sign-extended. */
static inline bool rd_leb_s(wasm_reader *r, int bits, int64_t *out) {
    uint64_t result = 0;
    unsigned shift = 0;
    for (int n = bits;; n -= 7) {
        if (n <= 0)
            return reader_fail(r, ERR_MALFORMED, r->p, "integer representation too long");
        if (r->p >= r->end)
            return reader_fail_eof(r);
        uint8_t b = *r->p++;
        if (n < 7) {
            uint8_t mask = (uint8_t)((0xFFu << (n - 1)) & 0x7Fu);
            if ((b & mask) != 0 && (b & mask) != mask)
                return reader_fail(r, ERR_MALFORMED, r->p - 1, "integer too large");
        }
        result |= (uint64_t)(b & 0x7Fu) << shift;
        shift += 7;
        if (!(b & 0x80)) {
            if (shift < 64 && (b & 0x40))
                result |= ~(uint64_t)0 << shift;
            *out = (int64_t)result;
            return true;
        }
    }
}

static inline bool rd_u32(wasm_reader *r, uint32_t *out) {
    if (r->p < r->end && *r->p < 0x80) { /* fast path: one byte */
        *out = *r->p++;
        return true;
    }
    uint64_t v;
    if (!rd_leb_u(r, 32, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

static inline bool rd_s32(wasm_reader *r, int32_t *out) {
    if (r->p < r->end && *r->p < 0x80) {
        uint8_t b = *r->p++;
        *out = (b & 0x40) ? (int32_t)b - 0x80 : (int32_t)b;
        return true;
    }
    int64_t v;
    if (!rd_leb_s(r, 32, &v))
        return false;
    *out = (int32_t)v; /* in range: rd_leb_s checked the unused bits */
    return true;
}

static inline bool rd_s33(wasm_reader *r, int64_t *out) { return rd_leb_s(r, 33, out); }

static inline bool rd_s64(wasm_reader *r, int64_t *out) {
    if (r->p < r->end && *r->p < 0x80) {
        uint8_t b = *r->p++;
        *out = (b & 0x40) ? (int64_t)b - 0x80 : (int64_t)b;
        return true;
    }
    return rd_leb_s(r, 64, out);
}

static inline bool rd_fixed32(wasm_reader *r, uint32_t *out) {
    if (r->end - r->p < 4)
        return reader_fail_eof(r);
    const uint8_t *p = r->p;
    *out = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    r->p += 4;
    return true;
}

static inline bool rd_fixed64(wasm_reader *r, uint64_t *out) {
    uint32_t lo, hi;
    if (!rd_fixed32(r, &lo) || !rd_fixed32(r, &hi))
        return false;
    *out = (uint64_t)hi << 32 | lo;
    return true;
}

/* A length or vector count (the spec's len32): a u32 that must not exceed
 * the bytes left, counted from the start of the LEB itself as the spec
 * interpreter does ("length out of bounds"). Also what keeps allocations
 * sized by counts proportional to the input. */
static inline bool rd_len(wasm_reader *r, uint32_t *out) {
    const uint8_t *at = r->p;
    if (!rd_u32(r, out))
        return false;
    if ((size_t)*out > (size_t)(r->end - at))
        return reader_fail(r, ERR_MALFORMED, at, "length out of bounds");
    return true;
}

/* A name: length, then that many bytes of valid UTF-8. */
static inline bool rd_name(wasm_reader *r, wasm_name *out) {
    const uint8_t *at = r->p;
    uint32_t n;
    if (!rd_len(r, &n))
        return false;
    const uint8_t *s = r->p;
    if (!rd_skip(r, n))
        return false;
    if (!wasm_utf8_valid(s, n))
        return reader_fail(r, ERR_MALFORMED, at, "malformed UTF-8 encoding");
    out->ptr = (const char *)s;
    out->len = n;
    return true;
}

#endif /* ASYNCWASM_READER_H */
