/* validate_module.c -- the module-level validation rules: index spaces,
 * limits, tags, constant expressions, segments, exports, the start function.
 * https://webassembly.github.io/spec/core/valid/modules.html
 * validate.c runs these before it validates and compiles the bodies.
 *
 * Rules:
 * - Errors start with the spec testsuite's wording, then detail; items that
 *   keep no byte offset of their own report their section's.
 * - Memories and tables have an address type (limits.addr64): i64 for a
 *   memory64/table64, whose limits and segment offsets are checked with it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "reader.h"

typedef struct {
    wasm_module *m;
    wasm_error *err;
} checker;

static bool module_invalid(checker *c, size_t offset, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool module_invalid(checker *c, size_t offset, const char *fmt, ...) {
    wasm_error *e = c->err;
    e->kind = ERR_INVALID;
    e->offset = offset;
    e->func = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

static bool nomem(checker *c) { return wasm_error_set(c->err, ERR_NOMEM, 0, -1, "out of memory"); }

static size_t name_offset(const wasm_module *m, wasm_name n) {
    return (size_t)((const uint8_t *)n.ptr - m->bytes);
}

/* https://webassembly.github.io/spec/core/valid/types.html#limits
 * A memory32 has at most 2^16 pages, a memory64 2^48; a table32 at most
 * 2^32-1 elements, a table64 any u64. */
static bool check_limits(checker *c, const wasm_limits *l, bool memory, const char *what, uint32_t index,
                         size_t offset) {
    unsigned long long min = l->min, max = l->max;
    if (memory && !l->addr64 && (min > WASM_MAX_PAGES || (l->has_max && max > WASM_MAX_PAGES)))
        return module_invalid(c, offset, "memory size must be at most 65536 pages (4GiB): %s %u", what, index);
    if (memory && l->addr64 && (min > WASM_MAX_PAGES64 || (l->has_max && max > WASM_MAX_PAGES64)))
        return module_invalid(c, offset, "memory size must be at most 2^48 pages: %s %u", what, index);
    if (!memory && !l->addr64 && (min > UINT32_MAX || (l->has_max && max > UINT32_MAX)))
        return module_invalid(c, offset, "table size must be at most 2^32-1 elements: %s %u", what, index);
    if (l->has_max && min > max)
        return module_invalid(c, offset, "size minimum must not be greater than maximum: %s %u has %llu > %llu",
                              what, index, min, max);
    return true;
}

/* A tag's type must be a function type without results. */
static bool check_tagtype(checker *c, const wasm_tagtype *t, const char *what, uint32_t index, size_t offset) {
    if (t->typeidx >= c->m->ntypes)
        return module_invalid(c, offset, "unknown type %u: %s %u", t->typeidx, what, index);
    if (c->m->types[t->typeidx].nresults != 0)
        return module_invalid(c, offset, "non-empty tag result type: %s %u has type %u", what, index, t->typeidx);
    return true;
}

/* Where a constant expression sits, for messages (formatted only on error). */
typedef struct {
    const char *fmt; /* printf format taking `a` then `b` */
    uint32_t a, b;
    size_t offset;
    uint32_t nglobals; /* globals it may read: the preceding ones in a global's initializer */
} const_site;

static bool const_invalid(checker *c, const const_site *site, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool const_invalid(checker *c, const const_site *site, const char *fmt, ...) {
    char rule[128], what[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    snprintf(what, sizeof what, site->fmt, site->a, site->b);
    return module_invalid(c, site->offset, "%s in %s", rule, what);
}

/* The value type one constant instruction pushes, or VT_NONE (error set). */
static uint8_t const_value_type(checker *c, const wasm_const_expr *e, const const_site *site) {
    const wasm_module *m = c->m;
    if (e->kind == CONST_GLOBAL_GET) {
        if (e->index >= site->nglobals) {
            const_invalid(c, site, "unknown global %u", e->index);
            return VT_NONE;
        }
        if (m->globals[e->index].type.mutable_) {
            const_invalid(c, site, "constant expression required: it reads mutable global %u", e->index);
            return VT_NONE;
        }
        return m->globals[e->index].type.type;
    }
    if (e->kind == CONST_REF_FUNC && e->index >= m->nfuncs) {
        const_invalid(c, site, "unknown function %u", e->index);
        return VT_NONE;
    }
    return e->type;
}

/* https://webassembly.github.io/spec/core/valid/instructions.html#constant-expressions
 * One value-producing instruction, or (extended constants) a sequence
 * typed on a stack, that leaves exactly one value of type `want`. */
static bool check_const(checker *c, const wasm_const_expr *e, uint8_t want, const const_site *site) {
    const wasm_const_expr *ops = e->kind == CONST_SEQUENCE ? e->ops : e;
    uint32_t nops = e->kind == CONST_SEQUENCE ? e->nops : 1;
    uint8_t small[16], *stack = nops <= sizeof small ? small : malloc(nops); /* height <= nops */
    if (!stack)
        return nomem(c);
    uint32_t height = 0;
    bool ok = true;
    for (uint32_t i = 0; ok && i < nops; i++) {
        const wasm_const_expr *op = &ops[i];
        if (op->kind >= CONST_I32_ADD && op->kind <= CONST_I64_MUL) {
            uint8_t t = op->kind <= CONST_I32_MUL ? VT_I32 : VT_I64;
            if (height < 2 || stack[height - 1] != t || stack[height - 2] != t) {
                ok = const_invalid(c, site, "type mismatch: %s operation needs two %s values", valtype_name(t),
                                   valtype_name(t));
                break;
            }
            height--;
            continue;
        }
        uint8_t t = const_value_type(c, op, site);
        ok = t != VT_NONE;
        stack[height++] = t;
    }
    if (ok && height != 1)
        ok = const_invalid(c, site, "type mismatch: the constant expression leaves %u values, must leave one",
                           height);
    if (ok && !valtype_matches(stack[0], want))
        ok = const_invalid(c, site, "type mismatch: must be %s, the constant expression is %s", valtype_name(want),
                           valtype_name(stack[0]));
    if (stack != small)
        free(stack);
    return ok;
}

static bool check_imports(checker *c) {
    wasm_module *m = c->m;
    for (uint32_t i = 0; i < m->nimports; i++) {
        const wasm_import *im = &m->imports[i];
        size_t at = name_offset(m, im->module);
        bool ok = true;
        if (im->kind == EXTERN_FUNC && im->desc.typeidx >= m->ntypes)
            ok = module_invalid(c, at, "unknown type %u: import %u", im->desc.typeidx, i);
        else if (im->kind == EXTERN_TABLE)
            ok = check_limits(c, &im->desc.table.limits, false, "imported table", i, at);
        else if (im->kind == EXTERN_MEMORY)
            ok = check_limits(c, &im->desc.memory.limits, true, "imported memory", i, at);
        else if (im->kind == EXTERN_TAG)
            ok = check_tagtype(c, &im->desc.tag, "import", i, at);
        if (!ok)
            return false;
    }
    return true;
}

static bool check_definitions(checker *c) {
    wasm_module *m = c->m;
    size_t funcs_at = wasm_section_offset(m, 3);
    for (uint32_t i = m->nimported_funcs; i < m->nfuncs; i++)
        if (m->funcs[i].typeidx >= m->ntypes)
            return module_invalid(c, funcs_at, "unknown type %u: function %u", m->funcs[i].typeidx, i);
    size_t tables_at = wasm_section_offset(m, 4);
    for (uint32_t i = m->nimported_tables; i < m->ntables; i++) {
        const wasm_tabletype *t = &m->tables[i];
        const_site site = {"the initializer of table %u", i, 0, tables_at, m->nimported_globals};
        if (!check_limits(c, &t->limits, false, "table", i, tables_at) ||
            (t->has_init && !check_const(c, &t->init, t->elem, &site)))
            return false;
        if (!t->has_init && !valtype_defaultable(t->elem))
            return module_invalid(c, tables_at, "type mismatch: table %u of %s needs an initializer "
                                  "(non-defaultable element type)", i, valtype_name(t->elem));
    }
    size_t mems_at = wasm_section_offset(m, 5);
    for (uint32_t i = m->nimported_memories; i < m->nmemories; i++)
        if (!check_limits(c, &m->memories[i].limits, true, "memory", i, mems_at))
            return false;
    size_t tags_at = wasm_section_offset(m, 13);
    for (uint32_t i = m->nimported_tags; i < m->ntags; i++)
        if (!check_tagtype(c, &m->tags[i], "tag", i, tags_at))
            return false;
    return true;
}

/* A global's initializer reads only the globals before it (imported or not). */
static bool check_globals(checker *c) {
    wasm_module *m = c->m;
    const_site site = {"the initializer of global %u", 0, 0, wasm_section_offset(m, 6), 0};
    for (uint32_t i = m->nimported_globals; i < m->nglobals; i++) {
        site.a = site.nglobals = i;
        if (!check_const(c, &m->globals[i].init, m->globals[i].type.type, &site))
            return false;
    }
    return true;
}

static bool check_elems(checker *c) {
    wasm_module *m = c->m;
    size_t at = wasm_section_offset(m, 9);
    for (uint32_t i = 0; i < m->nelems; i++) {
        const wasm_elem *e = &m->elems[i];
        if (e->mode == SEG_ACTIVE) {
            if (e->table >= m->ntables)
                return module_invalid(c, at, "unknown table %u in elem segment %u", e->table, i);
            const_site site = {"the offset of elem segment %u", i, 0, at, m->nglobals};
            if (!check_const(c, &e->offset, m->tables[e->table].limits.addr64 ? VT_I64 : VT_I32, &site))
                return false;
            if (!valtype_matches(e->elemtype, m->tables[e->table].elem))
                return module_invalid(c, at, "type mismatch: elem segment %u holds %s, table %u %s", i,
                                      valtype_name(e->elemtype), e->table, valtype_name(m->tables[e->table].elem));
        }
        const_site site = {"item %u of elem segment %u", 0, i, at, m->nglobals};
        for (uint32_t k = 0; k < e->count; k++) {
            site.a = k;
            if (!check_const(c, &e->items[k], e->elemtype, &site))
                return false;
        }
    }
    return true;
}

static bool check_datas(checker *c) {
    wasm_module *m = c->m;
    for (uint32_t i = 0; i < m->ndatas; i++) {
        const wasm_data *d = &m->datas[i];
        size_t at = (size_t)(d->bytes - m->bytes);
        if (d->mode != SEG_ACTIVE)
            continue;
        if (d->memory >= m->nmemories)
            return module_invalid(c, at, "unknown memory %u in data segment %u", d->memory, i);
        const_site site = {"the offset of data segment %u", i, 0, at, m->nglobals};
        if (!check_const(c, &d->offset, m->memories[d->memory].limits.addr64 ? VT_I64 : VT_I32, &site))
            return false;
    }
    return true;
}

/* Marks the functions a constant expression names with ref.func. */
static void note_refs(wasm_module *m, const wasm_const_expr *e) {
    const wasm_const_expr *ops = e->kind == CONST_SEQUENCE ? e->ops : e;
    uint32_t nops = e->kind == CONST_SEQUENCE ? e->nops : 1;
    for (uint32_t i = 0; i < nops; i++)
        if (ops[i].kind == CONST_REF_FUNC && ops[i].index < m->nfuncs)
            m->declared_refs[ops[i].index] = 1;
}

/* C.refs: functions that ref.func may name in a body. */
static bool collect_declared_refs(checker *c) {
    wasm_module *m = c->m;
    free(m->declared_refs);
    m->declared_refs = calloc(m->nfuncs ? m->nfuncs : 1, 1);
    if (!m->declared_refs)
        return nomem(c);
    for (uint32_t i = 0; i < m->nelems; i++)
        for (uint32_t k = 0; k < m->elems[i].count; k++)
            note_refs(m, &m->elems[i].items[k]);
    for (uint32_t i = m->nimported_globals; i < m->nglobals; i++)
        note_refs(m, &m->globals[i].init);
    for (uint32_t i = m->nimported_tables; i < m->ntables; i++)
        note_refs(m, &m->tables[i].init);
    for (uint32_t i = 0; i < m->nexports; i++) /* indices checked later, by check_exports */
        if (m->exports[i].kind == EXTERN_FUNC && m->exports[i].index < m->nfuncs)
            m->declared_refs[m->exports[i].index] = 1;
    return true;
}

static uint32_t name_hash(wasm_name n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n.len; i++)
        h = (h ^ (uint8_t)n.ptr[i]) * 16777619u;
    return h;
}

static bool check_exports(checker *c) {
    wasm_module *m = c->m;
    static const char *const kinds[EXTERN_KINDS] = {"function", "table", "memory", "global", "tag"};
    const uint32_t limits[EXTERN_KINDS] = {m->nfuncs, m->ntables, m->nmemories, m->nglobals, m->ntags};
    for (uint32_t i = 0; i < m->nexports; i++) {
        const wasm_export *ex = &m->exports[i];
        if (ex->index >= limits[ex->kind])
            return module_invalid(c, name_offset(m, ex->name), "unknown %s %u in export %u", kinds[ex->kind],
                                  ex->index, i);
    }
    /* Duplicate names: an open-addressing set of export indices. */
    uint32_t cap = 16;
    while (cap < (uint64_t)m->nexports * 2)
        cap *= 2;
    uint32_t *set = malloc(cap * sizeof *set);
    if (!set)
        return nomem(c);
    memset(set, 0xFF, cap * sizeof *set);
    bool ok = true;
    for (uint32_t i = 0; ok && i < m->nexports; i++) {
        wasm_name n = m->exports[i].name;
        uint32_t j = name_hash(n) & (cap - 1);
        for (; set[j] != UINT32_MAX; j = (j + 1) & (cap - 1)) {
            wasm_name o = m->exports[set[j]].name;
            if (o.len == n.len && memcmp(o.ptr, n.ptr, n.len) == 0) {
                ok = module_invalid(c, name_offset(m, n), "duplicate export name \"%.*s\"",
                                    (int)(n.len > 64 ? 64 : n.len), n.ptr);
                break;
            }
        }
        set[j] = i;
    }
    free(set);
    return ok;
}

static bool check_start(checker *c) {
    wasm_module *m = c->m;
    if (!m->has_start)
        return true;
    size_t at = wasm_section_offset(m, 8);
    if (m->start >= m->nfuncs)
        return module_invalid(c, at, "unknown function %u as the start function", m->start);
    const wasm_functype *ft = &m->types[m->funcs[m->start].typeidx];
    if (ft->nparams || ft->nresults)
        return module_invalid(c, at, "start function %u must have type [] -> []", m->start);
    return true;
}

bool wasm_validate_module(wasm_module *m, wasm_error *err) {
    checker c = {m, err};
    return check_imports(&c) && check_definitions(&c) && check_globals(&c) && check_elems(&c) &&
           check_datas(&c) && collect_declared_refs(&c) && check_exports(&c) && check_start(&c);
}
