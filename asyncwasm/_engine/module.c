/* module.c -- what every front-end stage shares: freeing a module, the
 * process-wide function-type table, names for diagnostics, error filling
 * and UTF-8 checking. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"

/* ---- errors ---------------------------------------------------------------- */

static void error_vset(wasm_error *err, int kind, size_t offset, int64_t func, const char *fmt,
                       va_list ap) {
    err->kind = kind;
    err->offset = offset;
    err->func = func;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
}

void wasm_error_setf(wasm_error *err, int kind, size_t offset, int64_t func, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, kind, offset, func, fmt, ap);
    va_end(ap);
}

void reader_failf(const wasm_reader *r, int kind, const uint8_t *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(r->err, kind, reader_offset(r, at), r->func, fmt, ap);
    va_end(ap);
}

/* ---- UTF-8 ------------------------------------------------------------------- */

/* https://webassembly.github.io/spec/core/binary/values.html#names
 * Table 3-7 of the Unicode standard: well-formed byte sequences. */
bool wasm_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            len = 3;
            if (b == 0xE0)
                lo = 0xA0; /* overlong */
            else if (b == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (b >= 0xF0 && b <= 0xF4) {
            len = 4;
            if (b == 0xF0)
                lo = 0x90; /* overlong */
            else if (b == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* ---- value and reference types ------------------------------------------------ */

/* Heap types are s33: abstract ones are negative (their one-byte form),
 * a type index is >= 0. */
enum {
    HT_NOEXN = 0x74, HT_NOFUNC = 0x73, HT_NOEXTERN = 0x72, HT_NONE = 0x71, HT_FUNC = 0x70,
    HT_EXTERN = 0x6F, HT_ANY = 0x6E, HT_EQ = 0x6D, HT_I31 = 0x6C, HT_STRUCT = 0x6B, HT_ARRAY = 0x6A,
    HT_EXN = 0x69,
};

/* The heap types only GC brings (noexn, exn's bottom, comes with exceptions). */
static bool is_gc_heaptype(uint8_t b) {
    return (b >= HT_ARRAY && b <= HT_ANY) || (b >= HT_NONE && b <= HT_NOFUNC);
}

bool rd_heaptype(wasm_reader *r, uint8_t *out, const char **unsupported) {
    const uint8_t *at = r->p;
    int64_t ht;
    if (!rd_s33(r, &ht))
        return false;
    *out = VT_NONE;
    if (ht >= 0) {
        *unsupported = MSG_TYPED_REFS;
        return true;
    }
    uint8_t b = (uint8_t)(ht + 0x80);
    if (ht < -0x40 || (b != HT_FUNC && b != HT_EXTERN && b != HT_EXN && b != HT_NOEXN && !is_gc_heaptype(b)))
        return reader_fail(r, ERR_MALFORMED, at, "malformed reference type: heap type %lld", (long long)ht);
    if (is_gc_heaptype(b))
        *unsupported = MSG_GC;
    else
        *out = b; /* funcref, externref, exnref, nullexnref have the heap type's byte */
    return true;
}

/* The byte b, just read at `at`, starts a reference type: finish reading it. */
static bool rd_reftype_rest(wasm_reader *r, uint8_t b, uint8_t *out, const char **unsupported) {
    *out = VT_NONE;
    switch (b) {
    case VT_FUNCREF: case VT_EXTERNREF: case VT_EXNREF: case VT_NULLEXNREF:
        *out = b;
        return true;
    case 0x63: /* (ref null ht) */
        return rd_heaptype(r, out, unsupported);
    case 0x64: { /* (ref ht): non-nullable; exception handling brings (ref exn) and (ref noexn) */
        uint8_t ht;
        if (!rd_heaptype(r, &ht, unsupported))
            return false;
        if (ht == VT_EXNREF || ht == VT_NULLEXNREF) {
            *out = ht == VT_EXNREF ? VT_REF_EXN : VT_REF_NOEXN;
            return true;
        }
        *out = VT_NONE;
        *unsupported = MSG_TYPED_REFS;
        return true;
    }
    default: /* only GC shorthands (anyref, nullfuncref, ...) remain */
        *unsupported = MSG_GC;
        return true;
    }
}

static bool starts_reftype(uint8_t b) {
    return b == VT_FUNCREF || b == VT_EXTERNREF || b == VT_EXNREF || b == VT_NULLEXNREF || b == 0x63 ||
           b == 0x64 || is_gc_heaptype(b);
}

bool rd_valtype(wasm_reader *r, uint8_t *out, const char **unsupported) {
    const uint8_t *at = r->p;
    uint8_t b;
    if (!rd_byte(r, &b))
        return false;
    switch (b) {
    case VT_I32: case VT_I64: case VT_F32: case VT_F64: case VT_V128:
        *out = b;
        return true;
    }
    if (!starts_reftype(b))
        return reader_fail(r, ERR_MALFORMED, at, "malformed value type 0x%02x", b);
    return rd_reftype_rest(r, b, out, unsupported);
}

bool rd_reftype(wasm_reader *r, uint8_t *out, const char **unsupported) {
    const uint8_t *at = r->p;
    uint8_t b;
    if (!rd_byte(r, &b))
        return false;
    if (!starts_reftype(b))
        return reader_fail(r, ERR_MALFORMED, at, "malformed reference type 0x%02x", b);
    return rd_reftype_rest(r, b, out, unsupported);
}

/* ---- freeing ------------------------------------------------------------------ */

/* code, srcmap and local_types share one allocation (cg_func_end). */
static void code_free(wasm_code *c) {
    free(c->code);
    memset(c, 0, sizeof *c);
}

static void const_expr_free(wasm_const_expr *e) {
    if (e->kind == CONST_SEQUENCE)
        free(e->ops);
    e->ops = NULL;
    e->nops = 0;
}

void wasm_module_free(wasm_module *m) {
    if (!m)
        return;
    for (uint32_t i = m->nimported_globals; m->globals && i < m->nglobals; i++)
        const_expr_free(&m->globals[i].init);
    for (uint32_t i = m->nimported_tables; m->tables && i < m->ntables; i++)
        const_expr_free(&m->tables[i].init);
    for (uint32_t i = 0; m->elems && i < m->nelems; i++) {
        const_expr_free(&m->elems[i].offset);
        for (uint32_t k = 0; m->elems[i].items && k < m->elems[i].count; k++)
            const_expr_free(&m->elems[i].items[k]);
    }
    for (uint32_t i = 0; m->datas && i < m->ndatas; i++)
        const_expr_free(&m->datas[i].offset);
    if (m->types)
        for (uint32_t i = 0; i < m->ntypes; i++)
            free(m->types[i].params); /* params and results share one block */
    free(m->types);
    free(m->imports);
    if (m->funcs)
        for (uint32_t i = 0; i < m->nfuncs; i++)
            code_free(&m->funcs[i].code);
    free(m->funcs);
    free(m->tables);
    free(m->memories);
    free(m->globals);
    free(m->exports);
    if (m->elems)
        for (uint32_t i = 0; i < m->nelems; i++)
            free(m->elems[i].items);
    free(m->elems);
    free(m->datas);
    free(m->customs);
    free(m->tags);
    free(m->declared_refs);
    free(m->bytes);
    memset(m, 0, sizeof *m);
}

/* ---- function-type interning ---------------------------------------------------- */

/* An open-addressing hash set of signatures, process-wide and never freed:
 * the same signature gets the same id in every module, so call_indirect
 * across instances compares two integers. A mutex guards it (on top of the
 * GIL) so that modules can be decoded with the GIL released. */
typedef struct {
    uint8_t *sig; /* params then results; NULL marks an empty bucket */
    uint32_t np, nr;
    uint32_t hash;
    uint32_t id;
} functype_entry;

static functype_entry *ft_buckets;
static uint32_t ft_cap; /* power of two */
static uint32_t ft_count;

static uint32_t ft_hash(const uint8_t *params, uint32_t np, const uint8_t *results, uint32_t nr) {
    uint32_t h = 2166136261u; /* FNV-1a */
    h = (h ^ np) * 16777619u;
    for (uint32_t i = 0; i < np; i++)
        h = (h ^ params[i]) * 16777619u;
    h = (h ^ nr) * 16777619u;
    for (uint32_t i = 0; i < nr; i++)
        h = (h ^ results[i]) * 16777619u;
    return h;
}

static bool ft_grow(void) {
    uint32_t cap = ft_cap ? ft_cap * 2 : 64;
    functype_entry *nb = calloc(cap, sizeof *nb);
    if (!nb)
        return false;
    for (uint32_t i = 0; i < ft_cap; i++) {
        if (!ft_buckets[i].sig)
            continue;
        uint32_t j = ft_buckets[i].hash & (cap - 1);
        while (nb[j].sig)
            j = (j + 1) & (cap - 1);
        nb[j] = ft_buckets[i];
    }
    free(ft_buckets);
    ft_buckets = nb;
    ft_cap = cap;
    return true;
}

static pthread_mutex_t ft_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t intern_locked(const uint8_t *params, uint32_t np, const uint8_t *results, uint32_t nr) {
    if ((ft_count + 1) * 2 > ft_cap && !ft_grow())
        return UINT32_MAX;
    uint32_t h = ft_hash(params, np, results, nr);
    uint32_t j = h & (ft_cap - 1);
    for (; ft_buckets[j].sig; j = (j + 1) & (ft_cap - 1)) {
        functype_entry *e = &ft_buckets[j];
        if (e->hash == h && e->np == np && e->nr == nr && (np == 0 || memcmp(e->sig, params, np) == 0) &&
            (nr == 0 || memcmp(e->sig + np, results, nr) == 0))
            return e->id;
    }
    uint8_t *sig = malloc((size_t)np + nr + 1); /* +1: never malloc(0), sig is the "used" mark */
    if (!sig)
        return UINT32_MAX;
    if (np)
        memcpy(sig, params, np);
    if (nr)
        memcpy(sig + np, results, nr);
    ft_buckets[j] = (functype_entry){.sig = sig, .np = np, .nr = nr, .hash = h, .id = ft_count};
    return ft_count++;
}

/* Returns UINT32_MAX when out of memory. */
uint32_t functype_intern(const uint8_t *params, uint32_t np, const uint8_t *results, uint32_t nr) {
    pthread_mutex_lock(&ft_lock);
    uint32_t id = intern_locked(params, np, results, nr);
    pthread_mutex_unlock(&ft_lock);
    return id;
}

/* ---- names -------------------------------------------------------------------------- */

/* Wasm instructions keep their text-format name; internal-only instructions
 * show their opcodes.def NAME in capitals, so a dump tells them apart. */
static const char *const op_names[OP__COUNT] = {
#define INTERNAL(NAME, OPERANDS) [OP_##NAME] = #NAME,
#define LOAD(NAME, CODE, TEXT, TYPE, ALIGN) [OP_##NAME] = TEXT,
#define STORE(NAME, CODE, TEXT, TYPE, ALIGN) [OP_##NAME] = TEXT,
#define NUMERIC(NAME, PREFIX, CODE, TEXT, IN1, IN2, OUT) [OP_##NAME] = TEXT,
#define SIMD(NAME, CODE, TEXT, OPERANDS) [OP_##NAME] = TEXT,
#include "opcodes.def"
};

const char *wasm_op_name(enum wasm_op op) {
    if ((unsigned)op >= OP__COUNT)
        return "<bad opcode>";
    return op_names[op];
}

const char *valtype_name(uint8_t t) {
    switch (t) {
    case VT_I32: return "i32";
    case VT_I64: return "i64";
    case VT_F32: return "f32";
    case VT_F64: return "f64";
    case VT_V128: return "v128";
    case VT_FUNCREF: return "funcref";
    case VT_EXTERNREF: return "externref";
    case VT_EXNREF: return "exnref";
    case VT_NULLEXNREF: return "nullexnref";
    case VT_REF_EXN: return "(ref exn)";
    case VT_REF_NOEXN: return "(ref noexn)";
    case VT_NONE: return "none";
    default: return "<bad type>";
    }
}
