/* decode.c -- bytes -> wasm_module: the WebAssembly 3.0 binary format.
 * https://webassembly.github.io/spec/core/binary/index.html
 * What the engine cannot run yet (GC, typed function references, relaxed
 * SIMD) is a validation error "<feature> is not supported yet".
 *
 * Strategy:
 * - One decode_<section> function per section, each reading with the module
 *   reader and checked afterwards against the section's declared size. Like
 *   the spec interpreter, a section's contents are read against the end of
 *   the module, not of the section, so truncated vectors report the same
 *   error the testsuite expects; the size check then catches any overrun.
 * - Function bodies are only located here; validate.c decodes them while it
 *   validates and compiles (one pass), and asks wasm_skim_body (below) to
 *   tell malformed bodies from invalid ones when it finds an error.
 * - A few problems the spec classifies as validation errors are visible only
 *   while decoding (non-constant constant expressions). They are
 *   deferred: the first one is reported after the whole module decoded, so
 *   a malformed module is always reported as malformed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "reader.h"

typedef struct {
    wasm_module *m;
    wasm_reader r;       /* over the whole module */
    wasm_error deferred; /* first validation-class problem met while decoding */
    bool has_deferred;
    bool built[EXTERN_KINDS]; /* index space of EXTERN_* allocated */
    uint32_t ndefined_funcs; /* function section count */
    uint32_t ncode;          /* code section count */
    uint32_t ncustoms_cap;
} decoder;

static bool defer_invalid(decoder *d, const uint8_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a validation error to report once decoding is complete. */
static bool defer_invalid(decoder *d, const uint8_t *at, const char *fmt, ...) {
    if (d->has_deferred)
        return true;
    d->has_deferred = true;
    d->deferred.kind = ERR_INVALID;
    d->deferred.offset = reader_offset(&d->r, at);
    d->deferred.func = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->deferred.message, sizeof d->deferred.message, fmt, ap);
    va_end(ap);
    return true;
}

static bool fail(decoder *d, const uint8_t *at, const char *msg) {
    return reader_fail(&d->r, ERR_MALFORMED, at, "%s", msg);
}

static bool nomem(decoder *d) {
    return reader_fail(&d->r, ERR_NOMEM, d->r.p, "out of memory while decoding");
}

/* calloc for `n` items whose count came from the input (already checked
 * against the input length by rd_len, so n * size cannot overflow). */
static void *alloc_items(decoder *d, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p)
        nomem(d);
    return p;
}

/* ---- types ------------------------------------------------------------------ */

/* https://webassembly.github.io/spec/core/binary/types.html#value-types
 * A type the engine cannot run yet (typed references, GC) is a deferred
 * validation error. */
static bool decode_valtype(decoder *d, uint8_t *out) {
    const uint8_t *at = d->r.p;
    const char *unsupported = NULL;
    if (!rd_valtype(&d->r, out, &unsupported))
        return false;
    return !unsupported || defer_invalid(d, at, "%s: value type 0x%02x", unsupported, *at);
}

/* https://webassembly.github.io/spec/core/binary/types.html#reference-types */
static bool decode_reftype(decoder *d, uint8_t *out) {
    const uint8_t *at = d->r.p;
    const char *unsupported = NULL;
    if (!rd_reftype(&d->r, out, &unsupported))
        return false;
    return !unsupported || defer_invalid(d, at, "%s: reference type 0x%02x", unsupported, *at);
}

/* https://webassembly.github.io/spec/core/binary/types.html#limits
 * Flags 0 (min) and 1 (min, max) for 32-bit addresses, 4 and 5 for 64-bit
 * ones (memory64). */
static bool decode_limits(decoder *d, wasm_limits *out) {
    const uint8_t *at = d->r.p;
    uint8_t flags;
    if (!rd_byte(&d->r, &flags))
        return false;
    if (flags != 0 && flags != 1 && flags != 4 && flags != 5)
        return reader_fail(&d->r, ERR_MALFORMED, at, "malformed limits flags 0x%02x", flags);
    out->has_max = flags & 1;
    out->addr64 = flags & 4;
    out->max = 0;
    return rd_leb_u(&d->r, 64, &out->min) && (!out->has_max || rd_leb_u(&d->r, 64, &out->max));
}

static bool decode_const_expr(decoder *d, wasm_const_expr *out);

/* https://webassembly.github.io/spec/core/binary/types.html#table-types
 * A definition may add an initializer for its elements (0x40 0x00 first). */
static bool decode_tabletype(decoder *d, wasm_tabletype *out, bool definition) {
    out->init = (wasm_const_expr){.kind = CONST_REF_NULL};
    if (definition && d->r.p < d->r.end && *d->r.p == 0x40) {
        const uint8_t *at = d->r.p++;
        uint8_t zero;
        if (!rd_byte(&d->r, &zero))
            return false;
        if (zero != 0)
            return fail(d, at, "malformed table type");
        out->has_init = true;
    }
    if (!decode_reftype(d, &out->elem) || !decode_limits(d, &out->limits))
        return false;
    out->init.type = out->elem;
    return !out->has_init || decode_const_expr(d, &out->init);
}

/* https://webassembly.github.io/spec/core/binary/types.html#tag-types */
static bool decode_tagtype(decoder *d, wasm_tagtype *out) {
    const uint8_t *at = d->r.p;
    uint8_t attribute;
    if (!rd_byte(&d->r, &attribute))
        return false;
    if (attribute != 0)
        return fail(d, at, "malformed tag attribute");
    return rd_u32(&d->r, &out->typeidx);
}

/* https://webassembly.github.io/spec/core/binary/types.html#global-types */
static bool decode_globaltype(decoder *d, wasm_globaltype *out) {
    if (!decode_valtype(d, &out->type))
        return false;
    const uint8_t *at = d->r.p;
    uint8_t mut;
    if (!rd_byte(&d->r, &mut))
        return false;
    if (mut > 1)
        return fail(d, at, "malformed mutability");
    out->mutable_ = mut == 1;
    return true;
}

/* ---- constant expressions ------------------------------------------------------ */

/* Skims the immediates of the instruction whose opcode byte(s) `op` (and
 * `sub` for 0xFC) were just read, checking only the binary format.
 * Tracks block nesting in *depth. Returns false with the reader's error
 * set; `unknown` is set when it stopped at an instruction whose encoding
 * it does not know (GC): that is not malformed, just not skimmable. */
typedef struct {
    wasm_reader *r;
    bool has_datacount;
    uint32_t depth; /* open blocks, including the function or expression */
    bool unknown;   /* stopped at a 0xFB (GC) instruction */
} skimmer;

static bool skim_u32s(skimmer *s, int n) {
    uint32_t v;
    for (int i = 0; i < n; i++)
        if (!rd_u32(s->r, &v))
            return false;
    return true;
}

static bool skim_valtype(skimmer *s) {
    uint8_t t;
    const char *unsupported = NULL;
    return rd_valtype(s->r, &t, &unsupported);
}

static bool skim_blocktype(skimmer *s) {
    if (s->r->p < s->r->end && (*s->r->p == 0x40 || (*s->r->p & 0xC0) == 0x40)) {
        if (*s->r->p == 0x40) {
            s->r->p++;
            return true;
        }
        return skim_valtype(s);
    }
    int64_t idx;
    return rd_s33(s->r, &idx);
}

/* https://webassembly.github.io/spec/core/binary/instructions.html#memory-instructions
 * The flags hold the alignment; bit 6 says a memory index follows. */
static bool skim_memarg(skimmer *s) {
    const uint8_t *at = s->r->p;
    uint32_t flags;
    uint64_t offset;
    if (!rd_u32(s->r, &flags))
        return false;
    if (flags >= 0x80)
        return reader_fail(s->r, ERR_MALFORMED, at, "malformed memop flags 0x%x", flags);
    return (!(flags & 0x40) || skim_u32s(s, 1)) && rd_leb_u(s->r, 64, &offset);
}

/* try_table's catch clauses: kind, then a tag (catch, catch_ref) and a label. */
static bool skim_catches(skimmer *s) {
    uint32_t n;
    if (!rd_len(s->r, &n))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *at = s->r->p;
        uint8_t kind;
        if (!rd_byte(s->r, &kind))
            return false;
        if (kind > 3)
            return reader_fail(s->r, ERR_MALFORMED, at, "malformed catch clause 0x%02x", kind);
        if (!skim_u32s(s, kind < 2 ? 2 : 1))
            return false;
    }
    return true;
}

static bool skim_fc(skimmer *s, const uint8_t *at) {
    uint32_t sub;
    if (!rd_u32(s->r, &sub))
        return false;
    switch (sub) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
        return true;
    case 8: /* memory.init data memory */
    case 9: /* data.drop */
        if (!s->has_datacount)
            return reader_fail(s->r, ERR_MALFORMED, at, "data count section required");
        return skim_u32s(s, sub == 8 ? 2 : 1);
    case 10: return skim_u32s(s, 2); /* memory.copy: two memories */
    case 11: return skim_u32s(s, 1); /* memory.fill */
    case 12: case 14: return skim_u32s(s, 2);               /* table.init, table.copy */
    case 13: case 15: case 16: case 17: return skim_u32s(s, 1);
    default:
        return reader_fail(s->r, ERR_MALFORMED, at, "illegal opcode 0xfc %u", sub);
    }
}

/* The immediates after each 0xFD sub-opcode (0: no such instruction). */
enum { FD_NONE = 1, FD_LANE, FD_MEMARG, FD_MEMARG_LANE, FD_BYTES16 };
static const uint8_t fd_immediates[256] = {
#define SIMD_OP(NAME, CODE, TEXT, FUNC, IN1, IN2, OUT) [CODE] = FD_NONE,
#define SIMD_TERNARY(NAME, CODE, TEXT, FUNC) [CODE] = FD_NONE,
#define SIMD_LANE_OP(NAME, CODE, TEXT, FUNC, IN1, IN2, OUT, LANES) [CODE] = FD_LANE,
#define SIMD_LOAD(NAME, CODE, TEXT, FUNC, ALIGN_LOG2) [CODE] = FD_MEMARG,
#define SIMD_STORE(NAME, CODE, TEXT, ALIGN_LOG2) [CODE] = FD_MEMARG,
#define SIMD_LOAD_LANE(NAME, CODE, TEXT, ALIGN_LOG2) [CODE] = FD_MEMARG_LANE,
#define SIMD_STORE_LANE(NAME, CODE, TEXT, ALIGN_LOG2) [CODE] = FD_MEMARG_LANE,
#define SIMD_CONST(NAME, CODE, TEXT) [CODE] = FD_BYTES16,
#define SIMD_SHUFFLE(NAME, CODE, TEXT) [CODE] = FD_BYTES16,
#include "opcodes.def"
};

/* The immediates of 0xFD instruction `sub` (already read, at `at`). */
static bool skim_fd(skimmer *s, const uint8_t *at, uint32_t sub) {
    if (sub >= FD_RELAXED_FIRST && sub <= FD_RELAXED_LAST)
        return true; /* validate.c refuses relaxed SIMD as not supported yet */
    switch (sub < 256 ? fd_immediates[sub] : 0) {
    case FD_NONE: return true;
    case FD_LANE: return rd_skip(s->r, 1);
    case FD_MEMARG: return skim_memarg(s);
    case FD_MEMARG_LANE: return skim_memarg(s) && rd_skip(s->r, 1);
    case FD_BYTES16: return rd_skip(s->r, 16);
    default: return reader_fail(s->r, ERR_MALFORMED, at, "illegal opcode 0xfd %u", sub);
    }
}

/* One instruction, opcode byte `op` already read at `at`.
 * https://webassembly.github.io/spec/core/binary/instructions.html */
static bool skim_instr(skimmer *s, uint8_t op, const uint8_t *at) {
    wasm_reader *r = s->r;
    switch (op) {
    case 0x02: case 0x03: case 0x04: case 0x06: /* block, loop, if, try */
        s->depth++;
        return skim_blocktype(s);
    case 0x1F: /* try_table */
        s->depth++;
        return skim_blocktype(s) && skim_catches(s);
    case 0x0B:
        s->depth--;
        return true;
    case 0x18: /* delegate l: ends its try */
        s->depth--;
        return skim_u32s(s, 1);
    case 0x00: case 0x01: case 0x05: case 0x0A: case 0x0F: case 0x19: case 0x1A: case 0x1B:
    case 0xD1: case 0xD3: case 0xD4:
        return true;
    case 0x07: case 0x08: case 0x09: case 0x0C: case 0x0D: case 0x10: case 0x12: case 0x14: case 0x15:
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x24: case 0x25: case 0x26: case 0x3F: case 0x40:
    case 0xD2: case 0xD5: case 0xD6:
        return skim_u32s(s, 1);
    case 0x11: case 0x13:
        return skim_u32s(s, 2);
    case 0x0E: { /* br_table: n targets, then the default */
        uint32_t n;
        if (!rd_len(r, &n))
            return false;
        for (uint64_t i = 0; i <= n; i++)
            if (!skim_u32s(s, 1))
                return false;
        return true;
    }
    case 0x1C: {
        uint32_t n;
        if (!rd_len(r, &n))
            return false;
        for (uint32_t i = 0; i < n; i++)
            if (!skim_valtype(s))
                return false;
        return true;
    }
    case 0x41: {
        int32_t v;
        return rd_s32(r, &v);
    }
    case 0x42: {
        int64_t v;
        return rd_s64(r, &v);
    }
    case 0x43: return rd_skip(r, 4);
    case 0x44: return rd_skip(r, 8);
    case 0xD0: {
        uint8_t t;
        const char *unsupported = NULL;
        return rd_heaptype(r, &t, &unsupported);
    }
    case 0xFC:
        return skim_fc(s, at);
    case 0xFB:
        s->unknown = true;
        return reader_fail(r, ERR_INVALID, at, MSG_GC ": 0xfb-prefixed instruction");
    case 0xFD: {
        uint32_t sub;
        return rd_u32(r, &sub) && skim_fd(s, at, sub);
    }
    default:
        if (op >= 0x28 && op <= 0x3E)
            return skim_memarg(s);
        if (op >= 0x45 && op <= 0xC4)
            return true; /* numeric, no immediates */
        return reader_fail(r, ERR_MALFORMED, at, "illegal opcode 0x%02x", op);
    }
}

/* Appends one instruction to the sequence being built in *out. */
static bool const_push(decoder *d, wasm_const_expr *out, wasm_const_expr op) {
    if ((out->nops & (out->nops - 1)) == 0) { /* 0, 1, 2, 4...: grow by doubling */
        wasm_const_expr *ops = realloc(out->ops, sizeof *ops * (out->nops ? out->nops * 2 : 1));
        if (!ops)
            return nomem(d);
        out->ops = ops;
    }
    out->ops[out->nops++] = op;
    return true;
}

/* The extended-constant operations (i32/i64 add, sub, mul), by opcode. */
static uint8_t const_binop(uint8_t op) {
    switch (op) {
    case 0x6A: return CONST_I32_ADD;
    case 0x6B: return CONST_I32_SUB;
    case 0x6C: return CONST_I32_MUL;
    case 0x7C: return CONST_I64_ADD;
    case 0x7D: return CONST_I64_SUB;
    case 0x7E: return CONST_I64_MUL;
    default: return CONST_SEQUENCE; /* none */
    }
}

/* https://webassembly.github.io/spec/core/valid/instructions.html#constant-expressions
 * The constant instructions are kept in order (one instruction is stored
 * as itself, more as a CONST_SEQUENCE); validate.c types them. Anything
 * else is a (deferred) validation error. */
static bool decode_const_expr(decoder *d, wasm_const_expr *out) {
    wasm_reader *r = &d->r;
    skimmer s = {.r = r, .has_datacount = true, .depth = 1};
    bool non_const = false;
    memset(out, 0, sizeof *out);
    out->kind = CONST_SEQUENCE; /* freeable as such while it is built */
    for (;;) {
        const uint8_t *at = r->p;
        uint8_t op;
        if (!rd_byte(r, &op))
            return false;
        if (op == 0x0B && s.depth == 1)
            break;
        wasm_const_expr item = {.kind = const_binop(op)};
        bool ok = true;
        switch (op) {
        case 0x41: {
            int32_t v = 0;
            ok = rd_s32(r, &v);
            item = (wasm_const_expr){.kind = CONST_I32, .type = VT_I32, .bits = {(uint32_t)v, 0}};
            break;
        }
        case 0x42: {
            int64_t v = 0;
            ok = rd_s64(r, &v);
            item = (wasm_const_expr){.kind = CONST_I64, .type = VT_I64, .bits = {(uint64_t)v, 0}};
            break;
        }
        case 0x43: {
            uint32_t v = 0;
            ok = rd_fixed32(r, &v);
            item = (wasm_const_expr){.kind = CONST_F32, .type = VT_F32, .bits = {v, 0}};
            break;
        }
        case 0x44: {
            uint64_t v = 0;
            ok = rd_fixed64(r, &v);
            item = (wasm_const_expr){.kind = CONST_F64, .type = VT_F64, .bits = {v, 0}};
            break;
        }
        case 0xD0: {
            uint8_t t = VT_NONE;
            const char *unsupported = NULL;
            ok = rd_heaptype(r, &t, &unsupported) &&
                 (!unsupported || defer_invalid(d, at, "%s: ref.null heap type", unsupported));
            item = (wasm_const_expr){.kind = CONST_REF_NULL, .type = t};
            break;
        }
        case 0xD2: {
            uint32_t f = 0;
            ok = rd_u32(r, &f);
            item = (wasm_const_expr){.kind = CONST_REF_FUNC, .type = VT_FUNCREF, .index = f};
            break;
        }
        case 0x23: {
            uint32_t g = 0;
            ok = rd_u32(r, &g);
            /* The type is the global's; validate.c checks the index first. */
            item = (wasm_const_expr){.kind = CONST_GLOBAL_GET, .type = VT_NONE, .index = g};
            break;
        }
        case 0xFD: { /* v128.const is 0xFD 12, then 16 bytes */
            uint32_t sub;
            uint64_t lo, hi;
            if (!rd_u32(r, &sub))
                return false;
            if (sub != 12) {
                if (!non_const)
                    defer_invalid(d, at, "constant expression required: opcode 0xfd %u", sub);
                non_const = true;
                if (!skim_fd(&s, at, sub))
                    return false;
                continue;
            }
            if (!rd_fixed64(r, &lo) || !rd_fixed64(r, &hi))
                return false;
            item = (wasm_const_expr){.kind = CONST_V128, .type = VT_V128, .bits = {lo, hi}};
            break;
        }
        case 0xFB:
            return reader_fail(r, ERR_INVALID, at, MSG_GC ": 0xfb-prefixed instruction");
        default:
            if (item.kind != CONST_SEQUENCE)
                break; /* an extended-constant operation */
            if (!non_const)
                defer_invalid(d, at, "constant expression required: opcode 0x%02x", op);
            non_const = true;
            if (!skim_instr(&s, op, at))
                return false;
            continue;
        }
        if (!ok || !const_push(d, out, item))
            return false;
    }
    if (out->nops == 1) { /* the usual case: the one instruction itself */
        wasm_const_expr *ops = out->ops;
        *out = ops[0];
        free(ops);
    }
    return true;
}

/* ---- index spaces ------------------------------------------------------------------ */

/* Allocates the index space of `kind` (imports first, then `ndefined`
 * definitions) the first time it is needed. */
static bool build_space(decoder *d, int kind, uint32_t ndefined) {
    wasm_module *m = d->m;
    if (d->built[kind])
        return true;
    d->built[kind] = true;
    uint32_t nimp = 0;
    for (uint32_t i = 0; i < m->nimports; i++)
        nimp += m->imports[i].kind == kind;
    size_t total = (size_t)nimp + ndefined;
    uint32_t k = 0;
    switch (kind) {
    case EXTERN_FUNC:
        if (!(m->funcs = alloc_items(d, total, sizeof *m->funcs)))
            return false;
        m->nfuncs = (uint32_t)total, m->nimported_funcs = nimp;
        for (uint32_t i = 0; i < m->nimports; i++)
            if (m->imports[i].kind == EXTERN_FUNC)
                m->funcs[k++] = (wasm_func){.typeidx = m->imports[i].desc.typeidx, .imported = true};
        break;
    case EXTERN_TABLE:
        if (!(m->tables = alloc_items(d, total, sizeof *m->tables)))
            return false;
        m->ntables = (uint32_t)total, m->nimported_tables = nimp;
        for (uint32_t i = 0; i < m->nimports; i++)
            if (m->imports[i].kind == EXTERN_TABLE)
                m->tables[k++] = m->imports[i].desc.table;
        break;
    case EXTERN_MEMORY:
        if (!(m->memories = alloc_items(d, total, sizeof *m->memories)))
            return false;
        m->nmemories = (uint32_t)total, m->nimported_memories = nimp;
        for (uint32_t i = 0; i < m->nimports; i++)
            if (m->imports[i].kind == EXTERN_MEMORY)
                m->memories[k++] = m->imports[i].desc.memory;
        break;
    case EXTERN_GLOBAL:
        if (!(m->globals = alloc_items(d, total, sizeof *m->globals)))
            return false;
        m->nglobals = (uint32_t)total, m->nimported_globals = nimp;
        for (uint32_t i = 0; i < m->nimports; i++)
            if (m->imports[i].kind == EXTERN_GLOBAL)
                m->globals[k++] = (wasm_global){.type = m->imports[i].desc.global, .imported = true};
        break;
    case EXTERN_TAG:
        if (!(m->tags = alloc_items(d, total, sizeof *m->tags)))
            return false;
        m->ntags = (uint32_t)total, m->nimported_tags = nimp;
        for (uint32_t i = 0; i < m->nimports; i++)
            if (m->imports[i].kind == EXTERN_TAG)
                m->tags[k++] = m->imports[i].desc.tag;
        break;
    }
    return true;
}

/* ---- sections ------------------------------------------------------------------------ */

/* https://webassembly.github.io/spec/core/binary/modules.html#custom-section
 * Read within the section's bounds: the payload is whatever follows the name. */
static bool decode_custom(decoder *d, uint32_t size) {
    wasm_module *m = d->m;
    wasm_reader sub = d->r;
    /* rd_len allows a size up to the LEB's own length past the module end. */
    bool cut_off = size > (size_t)(d->r.end - d->r.p);
    const uint8_t *end = cut_off ? d->r.end : d->r.p + size;
    sub.end = end;
    wasm_custom c;
    if (!rd_name(&sub, &c.name))
        return false;
    if (cut_off)
        return reader_fail_eof(&sub);
    c.bytes = sub.p;
    c.len = (uint32_t)(end - sub.p);
    if (m->ncustoms == d->ncustoms_cap) {
        uint32_t cap = d->ncustoms_cap ? d->ncustoms_cap * 2 : 4;
        wasm_custom *nc = realloc(m->customs, cap * sizeof *nc);
        if (!nc)
            return nomem(d);
        m->customs = nc;
        d->ncustoms_cap = cap;
    }
    m->customs[m->ncustoms++] = c;
    d->r.p = end;
    return true;
}

/* GC's type forms (rec, sub, struct, array), read for their binary form
 * only: the module is refused (deferred) as not supported.
 * https://webassembly.github.io/spec/core/binary/types.html#composite-types */
enum { FORM_FUNC = -0x20, FORM_STRUCT = -0x21, FORM_ARRAY = -0x22, FORM_SUB = -0x30, FORM_SUB_FINAL = -0x31,
       FORM_REC = -0x32 };

static bool skim_fieldtype(decoder *d) {
    uint8_t t;
    const char *unsupported = NULL;
    if (d->r.p < d->r.end && (*d->r.p == 0x78 || *d->r.p == 0x77)) /* packed i8, i16 */
        d->r.p++;
    else if (!rd_valtype(&d->r, &t, &unsupported))
        return false;
    const uint8_t *at = d->r.p;
    uint8_t mut;
    if (!rd_byte(&d->r, &mut))
        return false;
    return mut <= 1 || fail(d, at, "malformed mutability");
}

/* A composite type: func, struct or array. */
static bool skim_comptype(decoder *d, int64_t form, const uint8_t *at) {
    uint32_t n;
    uint8_t t;
    const char *unsupported = NULL;
    if (form == FORM_ARRAY)
        return skim_fieldtype(d);
    if (form != FORM_STRUCT && form != FORM_FUNC)
        return reader_fail(&d->r, ERR_MALFORMED, at, "malformed type 0x%02x", *at);
    for (int vec = 0; vec < (form == FORM_FUNC ? 2 : 1); vec++) {
        if (!rd_len(&d->r, &n))
            return false;
        for (uint32_t k = 0; k < n; k++)
            if (form == FORM_FUNC ? !rd_valtype(&d->r, &t, &unsupported) : !skim_fieldtype(d))
                return false;
    }
    return true;
}

/* A subtype: sub or sub final (supertype indices, then a composite type), or a composite type. */
static bool skim_subtype(decoder *d, int64_t form, const uint8_t *at) {
    uint32_t n, x;
    if (form != FORM_SUB && form != FORM_SUB_FINAL)
        return skim_comptype(d, form, at);
    if (!rd_len(&d->r, &n))
        return false;
    for (uint32_t k = 0; k < n; k++)
        if (!rd_u32(&d->r, &x))
            return false;
    const uint8_t *comp_at = d->r.p;
    int64_t comp;
    return rd_leb_s(&d->r, 7, &comp) && skim_comptype(d, comp, comp_at);
}

/* A recursive type: rec (a vector of subtypes), or one subtype. */
static bool skim_gc_type(decoder *d, int64_t form, const uint8_t *at) {
    uint32_t n;
    if (form != FORM_REC)
        return skim_subtype(d, form, at);
    if (!rd_len(&d->r, &n))
        return false;
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *sub_at = d->r.p;
        int64_t sub;
        if (!rd_leb_s(&d->r, 7, &sub) || !skim_subtype(d, sub, sub_at))
            return false;
    }
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#type-section */
static bool decode_type(decoder *d) {
    wasm_module *m = d->m;
    uint32_t n;
    if (!rd_len(&d->r, &n) || !(m->types = alloc_items(d, n, sizeof *m->types)))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        wasm_functype *ft = &m->types[i];
        m->ntypes = i + 1; /* freeable from here on */
        const uint8_t *at = d->r.p;
        int64_t form; /* the spec reads it as a signed 7-bit LEB128 */
        if (!rd_leb_s(&d->r, 7, &form))
            return false;
        if (form == FORM_ARRAY || form == FORM_STRUCT || form == FORM_SUB || form == FORM_SUB_FINAL ||
            form == FORM_REC) {
            if (!(ft->params = malloc(1)) || !skim_gc_type(d, form, at))
                return ft->params ? false : nomem(d);
            ft->results = ft->params;
            defer_invalid(d, at, MSG_GC ": type 0x%02x (array, struct, rec or sub)", *at);
            continue;
        }
        if (form != FORM_FUNC)
            return reader_fail(&d->r, ERR_MALFORMED, at, "malformed function type 0x%02x", *at);
        /* Params and results share one block owned through `params`. */
        uint32_t np, nr;
        if (!rd_len(&d->r, &np))
            return false;
        if (!(ft->params = malloc((size_t)np + 1)))
            return nomem(d);
        for (uint32_t k = 0; k < np; k++)
            if (!decode_valtype(d, &ft->params[k]))
                return false;
        if (!rd_len(&d->r, &nr))
            return false;
        uint8_t *block = realloc(ft->params, (size_t)np + nr + 1);
        if (!block)
            return nomem(d);
        ft->params = block;
        ft->results = block + np;
        for (uint32_t k = 0; k < nr; k++)
            if (!decode_valtype(d, &ft->results[k]))
                return false;
        ft->nparams = np;
        ft->nresults = nr;
        for (uint32_t k = 0; k < np; k++)
            ft->param_slots += valtype_slots(ft->params[k]);
        for (uint32_t k = 0; k < nr; k++)
            ft->result_slots += valtype_slots(ft->results[k]);
        ft->id = functype_intern(ft->params, np, ft->results, nr);
        if (ft->id == UINT32_MAX)
            return nomem(d);
    }
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#import-section */
static bool decode_import(decoder *d) {
    wasm_module *m = d->m;
    uint32_t n;
    if (!rd_len(&d->r, &n) || !(m->imports = alloc_items(d, n, sizeof *m->imports)))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        wasm_import *im = &m->imports[i];
        if (!rd_name(&d->r, &im->module) || !rd_name(&d->r, &im->name))
            return false;
        const uint8_t *at = d->r.p;
        if (!rd_byte(&d->r, &im->kind))
            return false;
        bool ok;
        switch (im->kind) {
        case EXTERN_FUNC: ok = rd_u32(&d->r, &im->desc.typeidx); break;
        case EXTERN_TABLE: ok = decode_tabletype(d, &im->desc.table, false); break;
        case EXTERN_MEMORY: ok = decode_limits(d, &im->desc.memory.limits); break;
        case EXTERN_GLOBAL: ok = decode_globaltype(d, &im->desc.global); break;
        case EXTERN_TAG: ok = decode_tagtype(d, &im->desc.tag); break;
        default: return reader_fail(&d->r, ERR_MALFORMED, at, "malformed import kind %u", im->kind);
        }
        if (!ok)
            return false;
        m->nimports = i + 1;
    }
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#function-section */
static bool decode_function(decoder *d) {
    uint32_t n;
    if (!rd_len(&d->r, &n) || !build_space(d, EXTERN_FUNC, n))
        return false;
    d->ndefined_funcs = n;
    wasm_func *defined = d->m->funcs + d->m->nimported_funcs;
    for (uint32_t i = 0; i < n; i++)
        if (!rd_u32(&d->r, &defined[i].typeidx))
            return false;
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#table-section */
static bool decode_table(decoder *d) {
    uint32_t n;
    if (!rd_len(&d->r, &n) || !build_space(d, EXTERN_TABLE, n))
        return false;
    wasm_tabletype *defined = d->m->tables + d->m->nimported_tables;
    for (uint32_t i = 0; i < n; i++)
        if (!decode_tabletype(d, &defined[i], true))
            return false;
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#memory-section */
static bool decode_memory(decoder *d) {
    uint32_t n;
    if (!rd_len(&d->r, &n) || !build_space(d, EXTERN_MEMORY, n))
        return false;
    wasm_memtype *defined = d->m->memories + d->m->nimported_memories;
    for (uint32_t i = 0; i < n; i++)
        if (!decode_limits(d, &defined[i].limits))
            return false;
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#tag-section */
static bool decode_tag(decoder *d) {
    uint32_t n;
    if (!rd_len(&d->r, &n) || !build_space(d, EXTERN_TAG, n))
        return false;
    wasm_tagtype *defined = d->m->tags + d->m->nimported_tags;
    for (uint32_t i = 0; i < n; i++)
        if (!decode_tagtype(d, &defined[i]))
            return false;
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#global-section */
static bool decode_global(decoder *d) {
    uint32_t n;
    if (!rd_len(&d->r, &n) || !build_space(d, EXTERN_GLOBAL, n))
        return false;
    wasm_global *defined = d->m->globals + d->m->nimported_globals;
    for (uint32_t i = 0; i < n; i++)
        if (!decode_globaltype(d, &defined[i].type) || !decode_const_expr(d, &defined[i].init))
            return false;
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#export-section */
static bool decode_export(decoder *d) {
    wasm_module *m = d->m;
    uint32_t n;
    if (!rd_len(&d->r, &n) || !(m->exports = alloc_items(d, n, sizeof *m->exports)))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        wasm_export *ex = &m->exports[i];
        if (!rd_name(&d->r, &ex->name))
            return false;
        const uint8_t *at = d->r.p;
        if (!rd_byte(&d->r, &ex->kind))
            return false;
        if (ex->kind > EXTERN_TAG)
            return reader_fail(&d->r, ERR_MALFORMED, at, "malformed export kind %u", ex->kind);
        if (!rd_u32(&d->r, &ex->index))
            return false;
        m->nexports = i + 1;
    }
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#start-section */
static bool decode_start(decoder *d) {
    d->m->has_start = true;
    return rd_u32(&d->r, &d->m->start);
}

/* Element items given as function indices (encodings 0-3). */
static bool decode_elem_funcidxs(decoder *d, wasm_elem *e) {
    if (!rd_len(&d->r, &e->count) || !(e->items = alloc_items(d, e->count, sizeof *e->items)))
        return false;
    for (uint32_t k = 0; k < e->count; k++) {
        uint32_t f;
        if (!rd_u32(&d->r, &f))
            return false;
        e->items[k] = (wasm_const_expr){.kind = CONST_REF_FUNC, .type = VT_FUNCREF, .index = f};
    }
    return true;
}

/* Element items given as constant expressions (encodings 4-7). */
static bool decode_elem_exprs(decoder *d, wasm_elem *e) {
    if (!rd_len(&d->r, &e->count) || !(e->items = alloc_items(d, e->count, sizeof *e->items)))
        return false;
    for (uint32_t k = 0; k < e->count; k++)
        if (!decode_const_expr(d, &e->items[k]))
            return false;
    return true;
}

static bool decode_elemkind(decoder *d, uint8_t *out) {
    const uint8_t *at = d->r.p;
    uint8_t b;
    if (!rd_byte(&d->r, &b))
        return false;
    if (b != 0x00)
        return reader_fail(&d->r, ERR_MALFORMED, at, "malformed element kind 0x%02x", b);
    *out = VT_FUNCREF;
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#element-section
 * Flag bits: 0 = passive/declarative (else active), 1 = explicit table
 * (active) or declarative (passive), 2 = items are expressions. */
static bool decode_elem(decoder *d) {
    wasm_module *m = d->m;
    uint32_t n;
    if (!rd_len(&d->r, &n) || !(m->elems = alloc_items(d, n, sizeof *m->elems)))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        wasm_elem *e = &m->elems[i];
        m->nelems = i + 1;
        const uint8_t *at = d->r.p;
        uint32_t flags;
        if (!rd_u32(&d->r, &flags))
            return false;
        if (flags > 7)
            return reader_fail(&d->r, ERR_MALFORMED, at, "malformed elements segment kind %u", flags);
        bool passive_or_declarative = flags & 1, explicit = flags & 2, exprs = flags & 4;
        e->elemtype = VT_FUNCREF;
        if (!passive_or_declarative) {
            e->mode = SEG_ACTIVE;
            if (explicit && !rd_u32(&d->r, &e->table))
                return false;
            if (!decode_const_expr(d, &e->offset))
                return false;
        } else {
            e->mode = explicit ? SEG_DECLARATIVE : SEG_PASSIVE;
        }
        /* Encodings 0 and 4 imply funcref; the others spell the type out. */
        if (passive_or_declarative || explicit) {
            bool ok = exprs ? decode_reftype(d, &e->elemtype) : decode_elemkind(d, &e->elemtype);
            if (!ok)
                return false;
        }
        if (!(exprs ? decode_elem_exprs(d, e) : decode_elem_funcidxs(d, e)))
            return false;
    }
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#data-count-section */
static bool decode_datacount(decoder *d) {
    d->m->has_datacount = true;
    return rd_u32(&d->r, &d->m->datacount);
}

/* https://webassembly.github.io/spec/core/binary/modules.html#code-section
 * Bodies are located only; validate.c decodes them. */
static bool decode_code(decoder *d) {
    wasm_module *m = d->m;
    uint32_t n;
    if (!rd_len(&d->r, &n) || !build_space(d, EXTERN_FUNC, 0))
        return false;
    d->ncode = n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t size;
        if (!rd_len(&d->r, &size))
            return false;
        const uint8_t *body = d->r.p;
        if (!rd_skip(&d->r, size))
            return false;
        if (i < d->ndefined_funcs) {
            wasm_code *c = &m->funcs[m->nimported_funcs + i].code;
            c->body_offset = (uint32_t)reader_offset(&d->r, body);
            c->body_len = size;
        }
    }
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#data-section */
static bool decode_data(decoder *d) {
    wasm_module *m = d->m;
    uint32_t n;
    if (!rd_len(&d->r, &n) || !(m->datas = alloc_items(d, n, sizeof *m->datas)))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        wasm_data *ds = &m->datas[i];
        m->ndatas = i + 1; /* freeable from here on */
        const uint8_t *at = d->r.p;
        uint32_t flags;
        if (!rd_u32(&d->r, &flags))
            return false;
        switch (flags) {
        case 0:
            ds->mode = SEG_ACTIVE;
            if (!decode_const_expr(d, &ds->offset))
                return false;
            break;
        case 1:
            ds->mode = SEG_PASSIVE;
            break;
        case 2:
            ds->mode = SEG_ACTIVE;
            if (!rd_u32(&d->r, &ds->memory) || !decode_const_expr(d, &ds->offset))
                return false;
            break;
        default:
            return reader_fail(&d->r, ERR_MALFORMED, at, "malformed data segment kind %u", flags);
        }
        if (!rd_len(&d->r, &ds->len))
            return false;
        ds->bytes = d->r.p;
        if (!rd_skip(&d->r, ds->len))
            return false;
    }
    return true;
}

/* ---- name section (lenient) --------------------------------------------------------- */

/* https://webassembly.github.io/spec/core/appendix/custom.html#name-section
 * Debug information only: anything wrong and the whole section is ignored. */
static bool parse_name_section(wasm_module *m, const wasm_custom *c, bool apply) {
    wasm_error scratch;
    wasm_reader r = {.base = m->bytes, .p = c->bytes, .end = c->bytes + c->len, .err = &scratch, .func = -1};
    uint8_t last_id = 0;
    bool first = true;
    while (!reader_eof(&r)) {
        uint8_t id;
        uint32_t size;
        if (!rd_byte(&r, &id) || !rd_len(&r, &size) || size > (size_t)(r.end - r.p))
            return false;
        if (!first && id <= last_id)
            return false; /* subsections are ordered and unique */
        first = false;
        last_id = id;
        wasm_reader sub = r;
        sub.end = r.p + size;
        r.p = sub.end;
        if (id == 0) {
            wasm_name name;
            if (!rd_name(&sub, &name) || !reader_eof(&sub))
                return false;
            if (apply)
                m->module_name = name;
        } else if (id == 1) {
            uint32_t n;
            if (!rd_len(&sub, &n))
                return false;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t idx;
                wasm_name name;
                if (!rd_u32(&sub, &idx) || !rd_name(&sub, &name))
                    return false;
                if (apply && idx < m->nfuncs)
                    m->funcs[idx].name = name;
            }
            if (!reader_eof(&sub))
                return false;
        }
    }
    return true;
}

static void decode_names(wasm_module *m) {
    for (uint32_t i = 0; i < m->ncustoms; i++) {
        const wasm_custom *c = &m->customs[i];
        if (c->name.len == 4 && memcmp(c->name.ptr, "name", 4) == 0) {
            if (parse_name_section(m, c, false))
                parse_name_section(m, c, true);
            return; /* only the first name section counts */
        }
    }
}

/* ---- module ------------------------------------------------------------------------------ */

/* Section ids in the order they must appear (tag sits after memory,
 * datacount before code). */
static int section_rank(uint8_t id) {
    static const int rank[14] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 11, 6};
    return rank[id];
}

static bool decode_section(decoder *d, uint8_t id) {
    switch (id) {
    case 1: return decode_type(d);
    case 2: return decode_import(d);
    case 3: return decode_function(d);
    case 4: return decode_table(d);
    case 5: return decode_memory(d);
    case 6: return decode_global(d);
    case 7: return decode_export(d);
    case 8: return decode_start(d);
    case 9: return decode_elem(d);
    case 10: return decode_code(d);
    case 11: return decode_data(d);
    case 12: return decode_datacount(d);
    case 13: return decode_tag(d);
    }
    return false; /* unreachable: ids are checked by the caller */
}

/* https://webassembly.github.io/spec/core/binary/modules.html#binary-module */
static bool decode_header(decoder *d) {
    static const uint8_t magic[4] = {0x00, 0x61, 0x73, 0x6D};
    static const uint8_t version[4] = {0x01, 0x00, 0x00, 0x00};
    wasm_reader *r = &d->r;
    size_t avail = (size_t)(r->end - r->p);
    if (avail < 4)
        return reader_fail(r, ERR_MALFORMED, r->end, "unexpected end: no magic header");
    if (memcmp(r->p, magic, 4) != 0)
        return reader_fail(r, ERR_MALFORMED, r->p, "magic header not detected");
    if (avail < 8)
        return reader_fail(r, ERR_MALFORMED, r->end, "unexpected end: no binary version");
    if (memcmp(r->p + 4, version, 4) != 0)
        return reader_fail(r, ERR_MALFORMED, r->p + 4, "unknown binary version");
    r->p += 8;
    return true;
}

static bool decode_sections(decoder *d) {
    wasm_reader *r = &d->r;
    int last_rank = 0;
    while (!reader_eof(r)) {
        const uint8_t *id_at = r->p;
        uint8_t id = *r->p++;
        if (id > 13)
            return reader_fail(r, ERR_MALFORMED, id_at, "malformed section id %u", id);
        uint32_t size;
        if (!rd_len(r, &size))
            return false;
        const uint8_t *start = r->p;
        if (id == 0) {
            if (!decode_custom(d, size))
                return false;
            continue;
        }
        if (section_rank(id) <= last_rank)
            return reader_fail(r, ERR_MALFORMED, id_at,
                               "unexpected content after last section: section %u out of order "
                               "or repeated", id);
        last_rank = section_rank(id);
        if (!decode_section(d, id))
            return false;
        if ((size_t)(r->p - start) != size)
            return reader_fail(r, ERR_MALFORMED, start,
                               "section size mismatch: section %u declares %u bytes, used %zu",
                               id, size, (size_t)(r->p - start));
    }
    return true;
}

/* Cross-section counts, checked once everything is read (as the spec does). */
static bool check_counts(decoder *d) {
    wasm_module *m = d->m;
    if (d->ndefined_funcs != d->ncode)
        return reader_fail(&d->r, ERR_MALFORMED, d->r.end,
                           "function and code section have inconsistent lengths (%u and %u)",
                           d->ndefined_funcs, d->ncode);
    if (m->has_datacount && m->datacount != m->ndatas)
        return reader_fail(&d->r, ERR_MALFORMED, d->r.end,
                           "data count and data section have inconsistent lengths (%u and %u)",
                           m->datacount, m->ndatas);
    return true;
}

int wasm_decode(const uint8_t *bytes, size_t len, wasm_module *m, wasm_error *err) {
    memset(m, 0, sizeof *m);
    memset(err, 0, sizeof *err);
    err->func = -1;
    if (len > UINT32_MAX) {
        wasm_error_setf(err, ERR_MALFORMED, 0, -1, "length out of bounds: module larger than 4 GiB");
        return -1;
    }
    m->bytes = malloc(len ? len : 1);
    if (!m->bytes) {
        wasm_error_setf(err, ERR_NOMEM, 0, -1, "out of memory copying the module");
        return -1;
    }
    if (len)
        memcpy(m->bytes, bytes, len);
    m->len = len;

    decoder d = {.m = m, .r = {.base = m->bytes, .p = m->bytes, .end = m->bytes + len, .err = err, .func = -1}};
    bool ok = decode_header(&d) && decode_sections(&d) && build_space(&d, EXTERN_FUNC, 0) &&
              build_space(&d, EXTERN_TABLE, 0) && build_space(&d, EXTERN_MEMORY, 0) &&
              build_space(&d, EXTERN_GLOBAL, 0) && build_space(&d, EXTERN_TAG, 0) && check_counts(&d);
    if (!ok)
        return -1;
    if (d.has_deferred) {
        /* Malformed bodies outrank the deferred validation error. */
        for (uint32_t i = m->nimported_funcs; i < m->nfuncs; i++)
            if (wasm_skim_body(m, i, err) != 0)
                return -1;
        *err = d.deferred;
        return -1;
    }
    decode_names(m);
    return 0;
}

/* ---- body skimming (for validate.c's error path) ---------------------------------------- */

void wasm_body_ran_out(const wasm_module *m, const wasm_reader *r) {
    const uint8_t *module_end = m->bytes + m->len;
    if (r->end == module_end)
        reader_fail_eof(r);
    else if (*r->end == 0x0B)
        reader_failf(r, ERR_MALFORMED, r->end,
                     "section size mismatch: the function's final end lies past its declared size");
    else
        reader_failf(r, ERR_MALFORMED, r->end, "END opcode expected at the end of the function body");
}

int wasm_skim_body(const wasm_module *m, uint32_t func, wasm_error *err) {
    const wasm_code *c = &m->funcs[func].code;
    const uint8_t *body = m->bytes + c->body_offset, *body_end = body + c->body_len;
    wasm_reader r = {.base = m->bytes, .p = body, .end = body_end, .err = err, .func = func};
    /* Same rule as validate.c's need_datacount. */
    skimmer s = {.r = &r, .has_datacount = m->has_datacount || m->ndatas == 0, .depth = 1};

    /* Locals: https://webassembly.github.io/spec/core/binary/modules.html#binary-local */
    uint32_t ngroups;
    uint64_t total = 0;
    const uint8_t *locals_at = r.p;
    if (!rd_len(&r, &ngroups))
        return -1;
    for (uint32_t i = 0; i < ngroups; i++) {
        uint32_t n;
        if (!rd_u32(&r, &n) || !skim_valtype(&s))
            return -1;
        total += n;
    }
    if (total > WASM_MAX_LOCALS) {
        reader_failf(&r, ERR_MALFORMED, locals_at, "too many locals");
        return -1;
    }

    while (s.depth > 0) {
        const uint8_t *at = r.p;
        if (reader_eof(&r)) {
            wasm_body_ran_out(m, &r);
            return -1;
        }
        uint8_t op = *r.p++;
        if (!skim_instr(&s, op, at))
            return s.unknown ? 0 : -1;
    }
    if (!reader_eof(&r)) {
        reader_failf(&r, ERR_MALFORMED, r.p, "section size mismatch: bytes after the function's end");
        return -1;
    }
    return 0;
}

/* ---- diagnostics -------------------------------------------------------------------------- */

size_t wasm_section_offset(const wasm_module *m, uint8_t id) {
    wasm_error scratch;
    wasm_reader r = {.base = m->bytes, .p = m->bytes + 8, .end = m->bytes + m->len, .err = &scratch, .func = -1};
    if (m->len < 8)
        return 0;
    while (!reader_eof(&r)) {
        uint8_t sid;
        uint32_t size;
        if (!rd_byte(&r, &sid) || !rd_u32(&r, &size) || size > (size_t)(r.end - r.p))
            return 0;
        if (sid == id)
            return reader_offset(&r, r.p);
        r.p += size;
    }
    return 0;
}
