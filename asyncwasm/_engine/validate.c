/* validate.c -- the spec's operand/control-stack algorithm over each
 * function body, driving compile.c in the same pass (the module-level
 * rules come first, from validate_module.c).
 * https://webassembly.github.io/spec/core/valid/index.html
 * https://webassembly.github.io/spec/core/appendix/algorithm.html
 *
 * Rules:
 * - The operand stack holds value types; VT_NONE is the spec's "Unknown"
 *   that pops from the polymorphic bottom of an unreachable frame produce.
 * - A value at operand height h (in slots) has its home in frame slot
 *   nlocal_slots + h (compile numbering, compile.h), but may be elsewhere:
 *   each stack entry records where (cg_value.loc), so every pop tells the
 *   slot an instruction names as its operand. Which instructions leave
 *   values away from home, and when they must be copied home, is decided
 *   in compile.c ("Operand folding"); this file calls it at the points
 *   that rule names (pushes, pops, block boundaries, calls, branches).
 * - Errors start with the spec testsuite's wording, then detail. A body
 *   error found here may hide a malformed body later in the module (the
 *   spec decodes everything first); see report_first_malformed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "reader.h"

/* ---- instruction tables (from opcodes.def) -------------------------------------- */

/* Index: the opcode byte, 0x100 + sub-opcode for 0xFC instructions, and
 * 0x200 + sub-opcode for 0xFD (SIMD) ones. */
#define FC(sub) (0x100 + (sub))
#define FD(sub) (0x200 + (sub))
#define NINSTR FD(256)

typedef struct {
    uint16_t op;
    uint8_t in1, in2, out; /* in1 == VT_NONE: no such numeric instruction */
} numeric_row;

static const numeric_row numeric_rows[NINSTR] = {
#define NUMERIC(NAME, PREFIX, CODE, TEXT, IN1, IN2, OUT) \
    [(PREFIX) ? FC(CODE) : (CODE)] = {OP_##NAME, VT_##IN1, VT_##IN2, VT_##OUT},
#include "opcodes.def"
};

typedef struct {
    uint16_t op;
    uint16_t any; /* its LOAD_ANY/STORE_ANY row, for any other memory than the fast one */
    uint16_t m64; /* its LOAD_M64/STORE_M64 row, for memory 0 when it is a memory64 */
    uint8_t type;
    uint8_t align; /* natural alignment, log2 */
} memop_row;

static const memop_row memop_rows[0x3F - 0x28] = {
#define LOAD(NAME, CODE, TEXT, TYPE, ALIGN) \
    [(CODE) - 0x28] = {OP_##NAME, OP_##NAME##_X, OP_##NAME##_M64, VT_##TYPE, ALIGN},
#define STORE(NAME, CODE, TEXT, TYPE, ALIGN) \
    [(CODE) - 0x28] = {OP_##NAME, OP_##NAME##_X, OP_##NAME##_M64, VT_##TYPE, ALIGN},
#include "opcodes.def"
};

static const char *const instr_names[NINSTR] = {
    [0x00] = "unreachable", [0x01] = "nop", [0x02] = "block", [0x03] = "loop", [0x04] = "if",
    [0x05] = "else", [0x0B] = "end", [0x0C] = "br", [0x0D] = "br_if", [0x0E] = "br_table",
    [0x0F] = "return", [0x10] = "call", [0x11] = "call_indirect", [0x1A] = "drop",
    [0x06] = "try", [0x07] = "catch", [0x08] = "throw", [0x09] = "rethrow", [0x0A] = "throw_ref",
    [0x12] = "return_call", [0x13] = "return_call_indirect", [0x14] = "call_ref",
    [0x15] = "return_call_ref", [0x18] = "delegate", [0x19] = "catch_all", [0x1F] = "try_table",
    [0x1B] = "select", [0x1C] = "select", [0x20] = "local.get", [0x21] = "local.set",
    [0x22] = "local.tee", [0x23] = "global.get", [0x24] = "global.set", [0x25] = "table.get",
    [0x26] = "table.set", [0x3F] = "memory.size", [0x40] = "memory.grow", [0x41] = "i32.const",
    [0x42] = "i64.const", [0x43] = "f32.const", [0x44] = "f64.const", [0xD0] = "ref.null",
    [0xD1] = "ref.is_null", [0xD2] = "ref.func", [FC(8)] = "memory.init", [FC(9)] = "data.drop",
    [FC(10)] = "memory.copy", [FC(11)] = "memory.fill", [FC(12)] = "table.init",
    [FC(13)] = "elem.drop", [FC(14)] = "table.copy", [FC(15)] = "table.grow",
    [FC(16)] = "table.size", [FC(17)] = "table.fill",
#define NUMERIC(NAME, PREFIX, CODE, TEXT, IN1, IN2, OUT) [(PREFIX) ? FC(CODE) : (CODE)] = TEXT,
#define LOAD(NAME, CODE, TEXT, TYPE, ALIGN) [CODE] = TEXT,
#define STORE(NAME, CODE, TEXT, TYPE, ALIGN) [CODE] = TEXT,
#define SIMD(NAME, CODE, TEXT, OPERANDS) [FD(CODE)] = TEXT,
#include "opcodes.def"
};

/* Stable one-element type lists for single-value block types. */
static const uint8_t one_type[] = {VT_I32, VT_I64, VT_F32, VT_F64, VT_V128, VT_FUNCREF, VT_EXTERNREF, VT_EXNREF,
                                   VT_NULLEXNREF, VT_REF_EXN, VT_REF_NOEXN};

static const uint8_t *single_type(uint8_t t) {
    for (size_t i = 0; i < sizeof one_type; i++)
        if (one_type[i] == t)
            return &one_type[i];
    return NULL;
}

/* ---- validator state ----------------------------------------------------------------- */

typedef struct {
    wasm_module *m;
    wasm_error *err;
    codegen cg;

    /* the function being compiled */
    uint32_t func;
    wasm_reader r;
    const uint8_t *instr; /* start of the current instruction */
    uint8_t *local_types;
    uint32_t *local_slot;
    uint32_t nlocals, locals_cap;
    uint32_t nlocal_slots;
    /* "inits": a local of a non-defaultable type ((ref exn)) is unset until
     * a local.set/tee; the block that set it forgets that at its end (and
     * at else, catch). `inits` lists the locals set, innermost last. */
    bool *local_unset;
    uint32_t *inits, ninits;
    uint32_t unset_cap, inits_cap;

    /* operand stack */
    cg_value *stack;
    uint32_t height, stack_cap;
    uint32_t slot_height, max_slot_height;

    /* control stack */
    ctrl_frame *ctrl;
    uint32_t depth, ctrl_cap;

    uint32_t *targets; /* br_table scratch */
    uint32_t targets_cap;
} validator;

#define TOP(v) (&(v)->ctrl[(v)->depth - 1])

static bool nomem(validator *v) {
    return wasm_error_set(v->err, ERR_NOMEM, reader_offset(&v->r, v->instr), v->func,
                          "out of memory while compiling");
}

/* Returns `buf` grown (doubling) to hold `need` items of `item` bytes,
 * or NULL (error set, `buf` still owned by the caller). */
static void *grow_buf(validator *v, void *buf, uint32_t *cap, size_t need, size_t item) {
    if (need <= *cap)
        return buf;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = n > UINT32_MAX ? NULL : realloc(buf, n * item);
    if (!p) {
        nomem(v);
        return NULL;
    }
    *cap = (uint32_t)n;
    return p;
}

#define GROW(v, field, capfield, need)                                                    \
    ((need) <= (v)->capfield ||                                                          \
     ((v)->field = grow_buf((v), (v)->field, &(v)->capfield, (need), sizeof *(v)->field)) != NULL)

/* ---- errors -------------------------------------------------------------------------------- */

static const char *instr_name(const validator *v) {
    const uint8_t *p = v->instr;
    unsigned idx = p[0];
    if (idx == 0xFC || idx == 0xFD) {
        wasm_reader r = v->r; /* re-read the sub-opcode; errors impossible, it was read before */
        wasm_error scratch;
        uint32_t sub = NINSTR;
        r.p = p + 1;
        r.err = &scratch;
        if (!rd_u32(&r, &sub) || sub >= (idx == 0xFC ? 18u : 256u))
            return idx == 0xFC ? "0xfc instruction" : "0xfd instruction";
        idx = idx == 0xFC ? FC(sub) : FD(sub);
    }
    return instr_names[idx] ? instr_names[idx] : "instruction";
}

static bool invalid(validator *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool invalid(validator *v, const char *fmt, ...) {
    wasm_error *e = v->err;
    e->kind = ERR_INVALID;
    e->offset = reader_offset(&v->r, v->instr);
    e->func = v->func;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

static const char *type_or_any(uint8_t t) { return t == VT_NONE ? "any value" : valtype_name(t); }

static bool type_mismatch(validator *v, uint8_t want, uint8_t found) {
    return invalid(v, "type mismatch in %s: expected %s, found %s", instr_name(v), type_or_any(want),
                   valtype_name(found));
}

static bool stack_empty(validator *v, uint8_t want) {
    return invalid(v, "type mismatch in %s: expected %s, found nothing", instr_name(v), type_or_any(want));
}

/* ---- operand stack ------------------------------------------------------------------------- */

/* The frame slot of the value just popped (= where the next push goes). */
static inline uint32_t slot_here(const validator *v) { return v->nlocal_slots + v->slot_height; }

/* Pushes a value of type t that is at `loc` (CG_NONE: at its home). */
static inline bool push_at(validator *v, uint8_t t, uint32_t loc) {
    if (!GROW(v, stack, stack_cap, (size_t)v->height + 1))
        return false;
    /* Compile numbering (compile.h) needs homes below CG_MAX_HOME. */
    if (slot_here(v) >= CG_MAX_HOME)
        return invalid(v, "function needs too many value slots");
    cg_value *e = &v->stack[v->height];
    e->type = t;
    e->home = slot_here(v);
    e->loc = loc == CG_NONE ? e->home : loc;
    cg_note_push(&v->cg, e, v->height);
    v->height++;
    v->slot_height += valtype_slots(t);
    if (v->slot_height > v->max_slot_height)
        v->max_slot_height = v->slot_height;
    return true;
}

static inline bool push(validator *v, uint8_t t) { return push_at(v, t, CG_NONE); }

/* Pops a value of type `want` (VT_NONE: any type) into *got, whose type is
 * VT_NONE for the Unknown of a polymorphic stack (located at its would-be
 * home; only dead code sees one). */
static inline bool pop_val(validator *v, uint8_t want, cg_value *got) {
    ctrl_frame *f = TOP(v);
    if (v->height == f->height) {
        got->type = VT_NONE;
        got->home = got->loc = slot_here(v);
        return f->unreachable || stack_empty(v, want);
    }
    const cg_value *e = &v->stack[--v->height];
    v->slot_height -= valtype_slots(e->type);
    cg_note_pop(&v->cg, e);
    *got = *e;
    return want == VT_NONE || e->type == VT_NONE || valtype_matches(e->type, want) ||
           type_mismatch(v, want, e->type);
}

static inline bool pop_any(validator *v, uint8_t want, uint8_t *got) {
    cg_value val;
    if (!pop_val(v, want, &val))
        return false;
    *got = val.type;
    return true;
}

static inline bool pop(validator *v, uint8_t want) {
    cg_value val;
    return pop_val(v, want, &val);
}

/* Cuts the stack back to `height` values (a frame's base). */
static void truncate_stack(validator *v, uint32_t height, uint32_t slot_height) {
    while (v->height > height)
        cg_note_pop(&v->cg, &v->stack[--v->height]);
    v->slot_height = slot_height;
}

/* The top min(n, values in the current frame) entries: those that exist. */
static cg_value *top_values(validator *v, uint32_t n, uint32_t *count) {
    uint32_t avail = v->height - TOP(v)->height;
    *count = n < avail ? n : avail;
    return &v->stack[v->height - *count];
}

/* Copies the top n values home, when they exist (F3, F4). */
static void materialize_top(validator *v, uint32_t n) {
    uint32_t k;
    cg_value *vals = top_values(v, n, &k);
    cg_materialize(&v->cg, vals, k);
}

/* The values just popped, in stack order (meaningful only in live code,
 * where every pop took a real entry). */
static cg_value *popped_values(validator *v) { return v->stack ? v->stack + v->height : NULL; }

/* Pushes back the n values of types `types` just popped, staying where
 * they are: a br_if's fall-through, the end of a block that is not a
 * join point. */
static void repush_values(validator *v, const uint8_t *types, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        cg_value *e = &v->stack[v->height];
        e->type = types[i];
        cg_note_push(&v->cg, e, v->height);
        v->height++;
        v->slot_height += valtype_slots(types[i]);
    }
}

static bool pop_types(validator *v, const uint8_t *types, uint32_t n) {
    for (uint32_t i = n; i-- > 0;)
        if (!pop(v, types[i]))
            return false;
    return true;
}

static bool push_types(validator *v, const uint8_t *types, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (!push(v, types[i]))
            return false;
    return true;
}

/* Checks, without popping, that the top of the stack matches `types`. */
static bool peek_types(validator *v, const uint8_t *types, uint32_t n) {
    const ctrl_frame *f = TOP(v);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t from_top = n - i; /* 1 = top */
        if (v->height - f->height < from_top) {
            if (!f->unreachable)
                return stack_empty(v, types[i]);
            continue;
        }
        uint8_t t = v->stack[v->height - from_top].type;
        if (t != VT_NONE && !valtype_matches(t, types[i]))
            return type_mismatch(v, types[i], t);
    }
    return true;
}

/* After an unconditional branch: the rest of the block is unreachable. */
static void set_unreachable(validator *v) {
    ctrl_frame *f = TOP(v);
    truncate_stack(v, f->height, f->slot_height);
    f->unreachable = true;
    v->cg.dead = true;
}

/* ---- control stack ------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *params, *results;
    uint32_t nparams, nresults;
    uint32_t param_slots, result_slots;
} blocktype;

static bool read_valtype(validator *v, uint8_t *out) {
    const char *unsupported = NULL;
    if (!rd_valtype(&v->r, out, &unsupported))
        return false;
    return !unsupported || invalid(v, "%s: a type in %s", unsupported, instr_name(v));
}

/* https://webassembly.github.io/spec/core/binary/instructions.html#control-instructions */
static bool read_blocktype(validator *v, blocktype *bt) {
    memset(bt, 0, sizeof *bt);
    if (v->r.p < v->r.end && *v->r.p == 0x40) {
        v->r.p++;
        return true;
    }
    if (v->r.p < v->r.end && (*v->r.p & 0xC0) == 0x40) {
        uint8_t t;
        if (!read_valtype(v, &t))
            return false;
        bt->results = single_type(t);
        bt->nresults = 1;
        bt->result_slots = valtype_slots(t);
        return true;
    }
    int64_t idx;
    if (!rd_s33(&v->r, &idx))
        return false;
    if (idx < 0 || idx >= v->m->ntypes)
        return invalid(v, "unknown type %lld: block type index out of range", (long long)idx);
    const wasm_functype *ft = &v->m->types[idx];
    *bt = (blocktype){ft->params, ft->results, ft->nparams, ft->nresults, ft->param_slots, ft->result_slots};
    return true;
}

/* Opens a block whose params are already on the stack (checked by the caller). */
static bool push_ctrl(validator *v, uint8_t kind, const blocktype *bt) {
    if (!GROW(v, ctrl, ctrl_cap, (size_t)v->depth + 1))
        return false;
    ctrl_frame *f = &v->ctrl[v->depth++];
    f->kind = kind;
    f->unreachable = false;
    f->height = v->height - bt->nparams;
    f->slot_height = v->slot_height - bt->param_slots;
    f->params = bt->params, f->nparams = bt->nparams, f->param_slots = bt->param_slots;
    f->results = bt->results, f->nresults = bt->nresults, f->result_slots = bt->result_slots;
    cg_label_init(&f->label);
    cg_label_init(&f->else_label);
    f->offset = reader_offset(&v->r, v->instr);
    f->region = v->depth > 1 ? f[-1].region : CG_NONE; /* try_table and try open their own */
    f->own_region = CG_NONE;
    f->exn_slot = CG_NONE;
    f->catch_all = false;
    f->init_height = v->ninits;
    return true;
}

/* Forgets the locals set since the frame f opened. */
static void reset_locals(validator *v, const ctrl_frame *f) {
    while (v->ninits > f->init_height)
        v->local_unset[v->inits[--v->ninits]] = true;
}

/* The block's results must be exactly what is left on its stack. */
static bool check_frame_end(validator *v, const uint8_t *types, uint32_t n) {
    if (!pop_types(v, types, n))
        return false;
    const ctrl_frame *f = TOP(v);
    if (v->height != f->height)
        return invalid(v, "type mismatch in %s: %u value(s) left on the stack at the end of the block",
                       instr_name(v), v->height - f->height);
    return true;
}

/* ---- instructions: control ---------------------------------------------------------------- */

static bool op_block(validator *v, uint8_t kind) {
    blocktype bt;
    if (!read_blocktype(v, &bt))
        return false;
    cg_value cond;
    if (kind == CTRL_IF && !pop_val(v, VT_I32, &cond))
        return false;
    if (!peek_types(v, bt.params, bt.nparams))
        return false;
    /* F3: nothing refers to a local across the block; params at home. */
    cg_flush_local_refs(&v->cg, v->stack, v->height);
    materialize_top(v, bt.nparams);
    if (!pop_types(v, bt.params, bt.nparams) || !push_types(v, bt.params, bt.nparams) ||
        !push_ctrl(v, kind, &bt))
        return false;
    ctrl_frame *f = TOP(v);
    if (kind == CTRL_LOOP) {
        cg_place_loop(&v->cg, &f->label);
    } else if (kind == CTRL_IF) {
        cg_jump_cond(&v->cg, false, &cond, &f->else_label);
    }
    return true;
}

static bool op_else(validator *v) {
    ctrl_frame *f = TOP(v);
    if (f->kind != CTRL_IF)
        return reader_fail(&v->r, ERR_MALFORMED, v->instr, "END opcode expected: else without if");
    materialize_top(v, f->nresults); /* F3: the end is a join point */
    if (!check_frame_end(v, f->results, f->nresults))
        return false;
    cg_jump(&v->cg, &f->label); /* then arm done: skip the else arm */
    v->cg.dead = true;
    cg_place_label(&v->cg, &f->else_label);
    f->kind = CTRL_ELSE;
    f->unreachable = false;
    reset_locals(v, f);
    truncate_stack(v, f->height, f->slot_height);
    return push_types(v, f->params, f->nparams);
}

/* Returns true with *done set at the function's final end. */
static bool op_end(validator *v, bool *done) {
    ctrl_frame *f = TOP(v);
    /* F3: results go home where code arrives by a jump too. */
    bool join = f->label.waiting != CG_NONE || f->else_label.waiting != CG_NONE;
    if (join)
        materialize_top(v, f->nresults);
    if (!check_frame_end(v, f->results, f->nresults))
        return false;
    if (f->kind == CTRL_IF) { /* no else: the missing arm passes the params through */
        if (f->nparams != f->nresults || !valtypes_match(f->params, f->results, f->nparams))
            return invalid(v, "type mismatch in if: without else, the block type must be [t1*] -> [t2*] "
                              "with t1* matching t2*");
    }
    switch (f->kind) {
    case CTRL_FUNC:
        cg_return(&v->cg, popped_values(v), f->nresults);
        *done = true;
        return true;
    case CTRL_LOOP:
        break; /* its label is the header */
    case CTRL_IF:
        cg_place_label(&v->cg, &f->label);
        cg_place_label(&v->cg, &f->else_label);
        break;
    case CTRL_TRY_TABLE:
    case CTRL_TRY: /* a try without catches: its body ends here */
        cg_try_end(&v->cg, f->own_region);
        cg_place_label(&v->cg, &f->label);
        break;
    default:
        cg_place_label(&v->cg, &f->label);
        break;
    }
    const uint8_t *results = f->results;
    uint32_t n = f->nresults;
    truncate_stack(v, f->height, f->slot_height);
    reset_locals(v, f);
    v->depth--;
    if (join || v->cg.dead)
        return push_types(v, results, n);
    repush_values(v, results, n); /* straight-line code: values stay where they are */
    return true;
}

static bool read_label(validator *v, uint32_t *depth) {
    if (!rd_u32(&v->r, depth))
        return false;
    if (*depth >= v->depth)
        return invalid(v, "unknown label %u in %s: only %u enclosing block(s)", *depth, instr_name(v),
                       v->depth);
    return true;
}

/* Moves the n branch values `vals` to the target and jumps (F5). */
static void emit_branch(validator *v, ctrl_frame *t, cg_value *vals, uint32_t n) {
    if (t->kind == CTRL_FUNC) {
        cg_return(&v->cg, vals, n);
        return;
    }
    cg_move_values(&v->cg, v->nlocal_slots + t->slot_height, vals, n);
    cg_jump(&v->cg, &t->label);
}

static bool op_br(validator *v) {
    uint32_t l, n, slots;
    if (!read_label(v, &l))
        return false;
    ctrl_frame *t = &v->ctrl[v->depth - 1 - l];
    const uint8_t *types = ctrl_label_types(t, &n, &slots);
    if (!pop_types(v, types, n))
        return false;
    emit_branch(v, t, popped_values(v), n);
    set_unreachable(v);
    return true;
}

/* Whether branching to t with `vals` needs no copies. */
static bool branch_in_place(const validator *v, const ctrl_frame *t, const cg_value *vals, uint32_t n) {
    if (t->kind == CTRL_FUNC)
        return false;
    uint32_t dst = v->nlocal_slots + t->slot_height;
    for (uint32_t i = 0; i < n; i++) {
        if (vals[i].loc != dst)
            return false;
        dst += valtype_slots(vals[i].type);
    }
    return true;
}

static bool op_br_if(validator *v) {
    uint32_t l, n, slots;
    cg_value cond;
    if (!read_label(v, &l) || !pop_val(v, VT_I32, &cond))
        return false;
    ctrl_frame *t = &v->ctrl[v->depth - 1 - l];
    const uint8_t *types = ctrl_label_types(t, &n, &slots);
    if (!pop_types(v, types, n))
        return false;
    if (v->cg.dead)
        return push_types(v, types, n);
    cg_value *vals = popped_values(v);
    if (branch_in_place(v, t, vals, n)) {
        cg_jump_cond(&v->cg, true, &cond, &t->label);
    } else {
        cg_label skip;
        cg_label_init(&skip);
        cg_jump_cond(&v->cg, false, &cond, &skip);
        emit_branch(v, t, vals, n);
        cg_place_label(&v->cg, &skip);
    }
    repush_values(v, types, n); /* the fall-through keeps them where they are */
    return true;
}

static bool op_br_table(validator *v) {
    uint32_t n;
    if (!rd_len(&v->r, &n))
        return false;
    if (!GROW(v, targets, targets_cap, (size_t)n + 1))
        return false;
    for (uint32_t i = 0; i <= n; i++)
        if (!read_label(v, &v->targets[i]))
            return false;
    cg_value idx;
    if (!pop_val(v, VT_I32, &idx))
        return false;
    uint32_t arity, slots;
    ctrl_frame *dflt = &v->ctrl[v->depth - 1 - v->targets[n]];
    const uint8_t *types = ctrl_label_types(dflt, &arity, &slots);
    for (uint32_t i = 0; i <= n; i++) {
        uint32_t ni, si;
        const uint8_t *ti = ctrl_label_types(&v->ctrl[v->depth - 1 - v->targets[i]], &ni, &si);
        if (ni != arity)
            return invalid(v, "type mismatch in br_table: label %u carries %u value(s), the default %u",
                           v->targets[i], ni, arity);
        if (!peek_types(v, ti, ni))
            return false;
    }
    materialize_top(v, arity); /* the landing pads copy from the homes */
    if (!pop_types(v, types, arity))
        return false;
    cg_br_table(&v->cg, idx.loc, v->targets, n + 1, v->ctrl, v->depth, slot_here(v), v->nlocal_slots);
    set_unreachable(v);
    return true;
}

static bool op_return(validator *v) {
    const ctrl_frame *fn = &v->ctrl[0];
    if (!pop_types(v, fn->results, fn->nresults))
        return false;
    cg_return(&v->cg, popped_values(v), fn->nresults);
    set_unreachable(v);
    return true;
}

/* ---- instructions: calls, tail calls ---------------------------------------------------- */

/* Pops a call's arguments, first copied home (F4); *base is the first one's. */
static bool call_with(validator *v, const wasm_functype *ft, uint32_t *base) {
    materialize_top(v, ft->nparams);
    if (!pop_types(v, ft->params, ft->nparams))
        return false;
    *base = slot_here(v);
    return true;
}

/* Emits a call (op with its operands) to a function of type ft; a tail
 * call returns the callee's results, which must be the function's, and
 * nothing after it runs (engine.h "Tail calls"). */
static bool emit_call(validator *v, uint32_t op, uint32_t nops, const uint32_t *ops, const wasm_functype *ft,
                      bool tail) {
    if (!tail) {
        uint32_t *w = cg_emit(&v->cg, op, nops);
        if (w)
            memcpy(w, ops, sizeof *w * nops);
        return push_types(v, ft->results, ft->nresults);
    }
    const ctrl_frame *fn = &v->ctrl[0];
    if (ft->nresults != fn->nresults || !valtypes_match(ft->results, fn->results, ft->nresults))
        return invalid(v, "type mismatch in %s: the callee's results are not the function's", instr_name(v));
    cg_emit_terminal(&v->cg, op, nops, ops);
    set_unreachable(v);
    return true;
}

/* call f, or the tail call return_call f. */
static bool op_call(validator *v, bool tail) {
    uint32_t f, base;
    if (!rd_u32(&v->r, &f))
        return false;
    if (f >= v->m->nfuncs)
        return invalid(v, "unknown function %u in %s", f, instr_name(v));
    const wasm_functype *ft = &v->m->types[v->m->funcs[f].typeidx];
    if (!call_with(v, ft, &base))
        return false;
    uint32_t ops[2] = {f, base};
    uint32_t op = tail ? OP_RETURN_CALL : f >= v->m->nimported_funcs ? OP_CALL_DEFINED : OP_CALL;
    return emit_call(v, op, 2, ops, ft, tail);
}

/* A table64's i64 index operand (at `loc`, home `home`), narrowed for the
 * table instructions, which take u32 indices: INDEX64 saturates it into its
 * home (every index >= 2^32-1 is out of bounds of any table the engine can
 * hold, so it traps as the full value would). Returns the slot to name. */
static uint32_t table_index(validator *v, bool addr64, uint32_t loc, uint32_t home) {
    if (!addr64)
        return loc;
    cg_emit2(&v->cg, OP_INDEX64, home, loc);
    return home;
}

/* call_indirect y x, or the tail call return_call_indirect y x. */
static bool op_call_indirect(validator *v, bool tail) {
    uint32_t y, x, base;
    if (!rd_u32(&v->r, &y) || !rd_u32(&v->r, &x))
        return false;
    if (x >= v->m->ntables)
        return invalid(v, "unknown table %u in %s", x, instr_name(v));
    if (v->m->tables[x].elem != VT_FUNCREF)
        return invalid(v, "type mismatch in %s: table %u holds %s, not funcref", instr_name(v), x,
                       valtype_name(v->m->tables[x].elem));
    if (y >= v->m->ntypes)
        return invalid(v, "unknown type %u in %s", y, instr_name(v));
    const wasm_functype *ft = &v->m->types[y];
    bool x64 = v->m->tables[x].limits.addr64;
    cg_value elem;
    if (!pop_val(v, x64 ? VT_I64 : VT_I32, &elem) || !call_with(v, ft, &base))
        return false;
    uint32_t ops[4] = {y, x, table_index(v, x64, elem.loc, elem.home), base};
    return emit_call(v, tail ? OP_RETURN_CALL_INDIRECT : OP_CALL_INDIRECT, 4, ops, ft, tail);
}

/* ---- instructions: exceptions ----------------------------------------------------------- */

#include "validate_exception.inc"

/* ---- instructions: parametric, variables ------------------------------------------------ */

static bool op_select(validator *v, bool typed) {
    uint8_t t = VT_NONE;
    if (typed) {
        uint32_t n;
        if (!rd_len(&v->r, &n))
            return false;
        if (n != 1)
            return invalid(v, "invalid result arity in select: %u types, must be 1", n);
        if (!read_valtype(v, &t))
            return false;
    }
    cg_value cond, a, b;
    if (!pop_val(v, VT_I32, &cond) || !pop_val(v, t, &b) || !pop_val(v, typed ? t : b.type, &a))
        return false;
    uint8_t t1 = b.type, t2 = a.type;
    if (!typed) {
        if (valtype_is_ref(t1) || valtype_is_ref(t2))
            return invalid(v, "type mismatch in select: operands are references; use a typed select");
        if (t1 != t2 && t1 != VT_NONE && t2 != VT_NONE)
            return type_mismatch(v, t1, t2);
        t = t1 != VT_NONE ? t1 : t2;
    }
    uint32_t ops[4] = {a.home, a.loc, b.loc, cond.loc};
    cg_emit_result(&v->cg, t == VT_V128 ? OP_SELECT128 : OP_SELECT, 4, ops);
    return push(v, t);
}

static bool read_local(validator *v, uint32_t *x) {
    if (!rd_u32(&v->r, x))
        return false;
    if (*x >= v->nlocals)
        return invalid(v, "unknown local %u in %s: the function has %u", *x, instr_name(v), v->nlocals);
    return true;
}

static bool op_local(validator *v, uint8_t op) {
    uint32_t x;
    if (!read_local(v, &x))
        return false;
    uint8_t t = v->local_types[x];
    uint32_t slot = v->local_slot[x];
    if (op == 0x20 && v->local_unset[x])
        return invalid(v, "uninitialized local %u: local.get of a %s local before any local.set", x,
                       valtype_name(t));
    if (op == 0x20) /* local.get: no code, the value stays in the local (F1) */
        return push_at(v, t, slot);
    cg_value val;
    if (!pop_val(v, t, &val))
        return false;
    if (v->local_unset[x]) {
        v->local_unset[x] = false;
        v->inits[v->ninits++] = x; /* at most once per local: fits nlocals entries */
    }
    uint32_t loc = cg_local_set(&v->cg, v->stack, v->height, &val, slot);
    return op == 0x21 || push_at(v, t, loc); /* local.tee keeps the value (F8) */
}

static bool op_global(validator *v, uint8_t op) {
    uint32_t x;
    if (!rd_u32(&v->r, &x))
        return false;
    if (x >= v->m->nglobals)
        return invalid(v, "unknown global %u in %s", x, instr_name(v));
    const wasm_globaltype *gt = &v->m->globals[x].type;
    bool wide = gt->type == VT_V128;
    if (op == 0x23) {
        uint32_t ops[2] = {slot_here(v), x};
        cg_emit_result(&v->cg, wide ? OP_GLOBAL_GET128 : OP_GLOBAL_GET, 2, ops);
        return push(v, gt->type);
    }
    if (!gt->mutable_)
        return invalid(v, "global is immutable: global.set %u", x);
    cg_value val;
    if (!pop_val(v, gt->type, &val))
        return false;
    cg_emit2(&v->cg, wide ? OP_GLOBAL_SET128 : OP_GLOBAL_SET, x, val.loc);
    return true;
}

/* ---- instructions: tables, references --------------------------------------------------- */

static bool read_table(validator *v, uint32_t *x) {
    if (!rd_u32(&v->r, x))
        return false;
    if (*x >= v->m->ntables)
        return invalid(v, "unknown table %u in %s", *x, instr_name(v));
    return true;
}

static bool read_elem(validator *v, uint32_t *x) {
    if (!rd_u32(&v->r, x))
        return false;
    if (*x >= v->m->nelems)
        return invalid(v, "unknown elem segment %u in %s", *x, instr_name(v));
    return true;
}

static bool op_table_get_set(validator *v, uint8_t op) {
    uint32_t x;
    if (!read_table(v, &x))
        return false;
    uint8_t t = v->m->tables[x].elem;
    bool x64 = v->m->tables[x].limits.addr64;
    cg_value idx, val;
    if (op == 0x25) { /* table.get */
        if (!pop_val(v, x64 ? VT_I64 : VT_I32, &idx))
            return false;
        uint32_t ops[3] = {idx.home, table_index(v, x64, idx.loc, idx.home), x};
        cg_emit_result(&v->cg, OP_TABLE_GET, 3, ops);
        return push(v, t);
    }
    if (!pop_val(v, t, &val) || !pop_val(v, x64 ? VT_I64 : VT_I32, &idx))
        return false;
    cg_emit3(&v->cg, OP_TABLE_SET, x, table_index(v, x64, idx.loc, idx.home), val.loc);
    return true;
}

static bool op_ref_null(validator *v) {
    uint8_t t;
    const char *unsupported = NULL;
    if (!rd_heaptype(&v->r, &t, &unsupported))
        return false;
    if (unsupported)
        return invalid(v, "%s: the heap type of ref.null", unsupported);
    uint32_t dst = slot_here(v);
    cg_emit_result(&v->cg, OP_REF_NULL, 1, &dst);
    return push(v, t);
}

static bool op_ref_is_null(validator *v) {
    cg_value ref;
    if (!pop_val(v, VT_NONE, &ref))
        return false;
    if (ref.type != VT_NONE && !valtype_is_ref(ref.type))
        return invalid(v, "type mismatch in ref.is_null: expected a reference, found %s",
                       valtype_name(ref.type));
    uint32_t ops[2] = {ref.home, ref.loc};
    cg_emit_result(&v->cg, OP_REF_IS_NULL, 2, ops);
    return push(v, VT_I32);
}

static bool op_ref_func(validator *v) {
    uint32_t f;
    if (!rd_u32(&v->r, &f))
        return false;
    if (f >= v->m->nfuncs)
        return invalid(v, "unknown function %u in ref.func", f);
    if (!v->m->declared_refs[f])
        return invalid(v, "undeclared function reference: function %u appears in no element "
                          "segment, export or global", f);
    uint32_t ops[2] = {slot_here(v), f};
    cg_emit_result(&v->cg, OP_REF_FUNC, 2, ops);
    return push(v, VT_FUNCREF);
}

/* ---- instructions: memory ------------------------------------------------------------------ */

/* A memory index. */
static bool check_memory(validator *v, uint32_t x) {
    if (x >= v->m->nmemories)
        return invalid(v, "unknown memory %u in %s: the module has %u", x, instr_name(v), v->m->nmemories);
    return true;
}

static bool read_memory(validator *v, uint32_t *x) {
    return rd_u32(&v->r, x) && check_memory(v, *x);
}

/* The type of memory x's addresses: i64 for a memory64. */
static uint8_t memory_addr_type(const validator *v, uint32_t x) {
    return v->m->memories[x].limits.addr64 ? VT_I64 : VT_I32;
}

/* Whether memory x is reached by the fast instructions (the rows without
 * _X), which use the interpreter's cached memory: memory 0 with 32-bit
 * addresses. Any other memory goes through the _X rows, which name it,
 * but for the loads and stores of memory 0 as a memory64 (the M64 rows,
 * on the cached memory as well). */
static bool fast_memory(const validator *v, uint32_t x) {
    return x == 0 && !v->m->memories[0].limits.addr64;
}

/* https://webassembly.github.io/spec/core/binary/instructions.html#memory-instructions
 * Flags: the alignment, and bit 6 when a memory index follows; the offset
 * is a u64, which a memory32 bounds to 2^32-1. */
static bool read_memarg(validator *v, uint32_t natural, uint32_t *mem, uint64_t *offset) {
    const uint8_t *at = v->r.p;
    uint32_t flags;
    *mem = 0;
    if (!rd_u32(&v->r, &flags))
        return false;
    if (flags >= 0x80)
        return reader_fail(&v->r, ERR_MALFORMED, at, "malformed memop flags 0x%x", flags);
    if (((flags & 0x40) && !rd_u32(&v->r, mem)) || !rd_leb_u(&v->r, 64, offset) || !check_memory(v, *mem))
        return false;
    uint32_t align = flags & 0x3F;
    if (align > natural)
        return invalid(v, "alignment must not be larger than natural: %s with 2**%u, natural 2**%u",
                       instr_name(v), align, natural);
    if (*offset > UINT32_MAX && memory_addr_type(v, *mem) == VT_I32)
        return invalid(v, "offset out of range: %s with offset %llu, memory %u has 32-bit addresses",
                       instr_name(v), (unsigned long long)*offset, *mem);
    return true;
}

/* A SIMD load or store of any memory but the fast one: the _X row `xop`
 * names the memory, the access row `op` and the 64-bit offset; `extra` is
 * a lane index (lane rows). A load's operands are (dst, addr, [vec,] ...)
 * with dst the address's home, a store's (addr, value, ...). */
static void emit_access_x(validator *v, uint32_t xop, bool load, const cg_value *addr, const uint32_t *more,
                          uint32_t nmore, uint32_t mem, uint32_t op, uint64_t offset, bool lane,
                          uint32_t lane_index) {
    uint32_t ops[9], n = 0;
    if (load)
        ops[n++] = addr->home;
    ops[n++] = addr->loc;
    for (uint32_t i = 0; i < nmore; i++)
        ops[n++] = more[i];
    ops[n++] = mem;
    ops[n++] = op;
    ops[n++] = (uint32_t)offset;
    ops[n++] = (uint32_t)(offset >> 32);
    if (lane)
        ops[n++] = lane_index;
    if (load) {
        cg_emit_result(&v->cg, xop, n, ops);
    } else {
        uint32_t *w = cg_emit(&v->cg, xop, n);
        if (w)
            memcpy(w, ops, sizeof *w * n);
    }
}

static bool op_memop(validator *v, uint8_t op) {
    const memop_row *row = &memop_rows[op - 0x28];
    uint32_t mem;
    uint64_t offset;
    if (!read_memarg(v, row->align, &mem, &offset))
        return false;
    uint8_t at = memory_addr_type(v, mem);
    bool fast = fast_memory(v, mem), m64 = mem == 0 && !fast; /* memory 0, a memory64 */
    cg_value addr, val;
    if (op >= 0x36) { /* store */
        if (!pop_val(v, row->type, &val) || !pop_val(v, at, &addr))
            return false;
        if (fast) {
            cg_store(&v->cg, row->op, &addr, &val, (uint32_t)offset);
        } else if (m64) {
            cg_store_m64(&v->cg, row->m64, &addr, &val, offset);
        } else {
            uint32_t *w = cg_emit(&v->cg, row->any, 5);
            if (w)
                w[0] = addr.loc, w[1] = val.loc, w[2] = mem, w[3] = (uint32_t)offset, w[4] = (uint32_t)(offset >> 32);
        }
        return true;
    }
    if (!pop_val(v, at, &addr))
        return false;
    if (fast) {
        cg_load(&v->cg, row->op, &addr, (uint32_t)offset);
    } else if (m64) {
        cg_load_m64(&v->cg, row->m64, &addr, offset);
    } else {
        uint32_t ops[5] = {addr.home, addr.loc, mem, (uint32_t)offset, (uint32_t)(offset >> 32)};
        cg_emit_result(&v->cg, row->any, 5, ops);
    }
    return push(v, row->type);
}

static bool op_memory_size_grow(validator *v, uint8_t op) {
    uint32_t x;
    if (!read_memory(v, &x))
        return false;
    uint8_t at = memory_addr_type(v, x);
    bool fast = fast_memory(v, x);
    if (op == 0x3F) {
        uint32_t ops[2] = {slot_here(v), x};
        cg_emit_result(&v->cg, fast ? OP_MEMORY_SIZE : OP_MEMORY_SIZE_X, fast ? 1 : 2, ops);
        return push(v, at);
    }
    cg_value delta;
    if (!pop_val(v, at, &delta))
        return false;
    uint32_t ops[3] = {delta.home, delta.loc, x};
    cg_emit_result(&v->cg, fast ? OP_MEMORY_GROW : OP_MEMORY_GROW_X, fast ? 2 : 3, ops);
    return push(v, at);
}

/* Pops three operands of types t[0..2] (d, s, n style); loc[i] is where
 * operand i is, home[i] its home. */
static bool pop3(validator *v, const uint8_t t[3], uint32_t loc[3], uint32_t home[3]) {
    cg_value x;
    for (int i = 2; i >= 0; i--) {
        if (!pop_val(v, t[i], &x))
            return false;
        loc[i] = x.loc;
        if (home)
            home[i] = x.home;
    }
    return true;
}

/* The smaller of two address types: the type of a length between them. */
static uint8_t min_addr_type(uint8_t a, uint8_t b) { return a == VT_I64 && b == VT_I64 ? VT_I64 : VT_I32; }

/* memory.init and data.drop are malformed without a data count section.
 * A module with no data segments at all needs none: its bodies name no
 * valid segment anyway, and the testsuite (converted from text, where the
 * rule does not apply) expects "unknown data segment" there. */
static bool need_datacount(validator *v) {
    if (!v->m->has_datacount && v->m->ndatas > 0)
        return reader_fail(&v->r, ERR_MALFORMED, v->instr, "data count section required for %s",
                           instr_name(v));
    return true;
}

static bool check_data_index(validator *v, uint32_t x) {
    if (x >= (v->m->has_datacount ? v->m->datacount : v->m->ndatas))
        return invalid(v, "unknown data segment %u in %s", x, instr_name(v));
    return true;
}

/* ---- instructions: 0xFC prefix ---------------------------------------------------------------- */

static bool op_numeric(validator *v, const numeric_row *row);

static bool op_prefix_fc(validator *v) {
    uint32_t sub, x, y, d[3];
    if (!rd_u32(&v->r, &sub))
        return false;
    if (sub < 8)
        return op_numeric(v, &numeric_rows[FC(sub)]);
    switch (sub) {
    case 8: { /* memory.init x memory: [at i32 i32] -> [] */
        if (!rd_u32(&v->r, &x) || !rd_u32(&v->r, &y) || !need_datacount(v) || !check_memory(v, y) ||
            !check_data_index(v, x))
            return false;
        uint8_t t[3] = {memory_addr_type(v, y), VT_I32, VT_I32};
        if (!pop3(v, t, d, NULL))
            return false;
        if (fast_memory(v, y)) {
            cg_emit4(&v->cg, OP_MEMORY_INIT, x, d[0], d[1], d[2]);
        } else {
            uint32_t *w = cg_emit(&v->cg, OP_MEMORY_INIT_X, 5);
            if (w)
                w[0] = x, w[1] = d[0], w[2] = d[1], w[3] = d[2], w[4] = y;
        }
        return true;
    }
    case 9: /* data.drop x */
        if (!rd_u32(&v->r, &x) || !need_datacount(v) || !check_data_index(v, x))
            return false;
        cg_emit1(&v->cg, OP_DATA_DROP, x);
        return true;
    case 10: { /* memory.copy dst-memory src-memory: [at_dst at_src min(at_dst, at_src)] -> [] */
        if (!read_memory(v, &x) || !read_memory(v, &y))
            return false;
        uint8_t tx = memory_addr_type(v, x), ty = memory_addr_type(v, y), t[3] = {tx, ty, min_addr_type(tx, ty)};
        if (!pop3(v, t, d, NULL))
            return false;
        if (fast_memory(v, x) && fast_memory(v, y)) {
            cg_emit3(&v->cg, OP_MEMORY_COPY, d[0], d[1], d[2]);
        } else {
            uint32_t *w = cg_emit(&v->cg, OP_MEMORY_COPY_X, 5);
            if (w)
                w[0] = d[0], w[1] = d[1], w[2] = d[2], w[3] = x, w[4] = y;
        }
        return true;
    }
    case 11: { /* memory.fill memory: [at i32 at] -> [] */
        if (!read_memory(v, &x))
            return false;
        uint8_t t[3] = {memory_addr_type(v, x), VT_I32, memory_addr_type(v, x)};
        if (!pop3(v, t, d, NULL))
            return false;
        if (fast_memory(v, x))
            cg_emit3(&v->cg, OP_MEMORY_FILL, d[0], d[1], d[2]);
        else
            cg_emit4(&v->cg, OP_MEMORY_FILL_X, d[0], d[1], d[2], x);
        return true;
    }
    case 12: { /* table.init elem table: [at i32 i32] -> [] */
        if (!rd_u32(&v->r, &y) || !read_table(v, &x))
            return false;
        if (y >= v->m->nelems)
            return invalid(v, "unknown elem segment %u in table.init", y);
        if (!valtype_matches(v->m->elems[y].elemtype, v->m->tables[x].elem))
            return invalid(v, "type mismatch in table.init: elem segment %u holds %s, table %u %s", y,
                           valtype_name(v->m->elems[y].elemtype), x, valtype_name(v->m->tables[x].elem));
        bool x64 = v->m->tables[x].limits.addr64;
        uint8_t t[3] = {x64 ? VT_I64 : VT_I32, VT_I32, VT_I32};
        uint32_t home[3];
        if (!pop3(v, t, d, home))
            return false;
        d[0] = table_index(v, x64, d[0], home[0]);
        uint32_t *w = cg_emit(&v->cg, OP_TABLE_INIT, 5);
        if (w)
            w[0] = x, w[1] = y, w[2] = d[0], w[3] = d[1], w[4] = d[2];
        return true;
    }
    case 13: /* elem.drop x */
        if (!read_elem(v, &x))
            return false;
        cg_emit1(&v->cg, OP_ELEM_DROP, x);
        return true;
    case 14: { /* table.copy dst src: [at_dst at_src min(at_dst, at_src)] -> [] */
        if (!read_table(v, &x) || !read_table(v, &y))
            return false;
        if (!valtype_matches(v->m->tables[y].elem, v->m->tables[x].elem))
            return invalid(v, "type mismatch in table.copy: table %u holds %s, table %u %s", x,
                           valtype_name(v->m->tables[x].elem), y, valtype_name(v->m->tables[y].elem));
        uint8_t tx = v->m->tables[x].limits.addr64 ? VT_I64 : VT_I32;
        uint8_t ty = v->m->tables[y].limits.addr64 ? VT_I64 : VT_I32;
        uint8_t t[3] = {tx, ty, min_addr_type(tx, ty)};
        uint32_t home[3];
        if (!pop3(v, t, d, home))
            return false;
        for (int i = 0; i < 3; i++)
            d[i] = table_index(v, t[i] == VT_I64, d[i], home[i]);
        uint32_t *w = cg_emit(&v->cg, OP_TABLE_COPY, 5);
        if (w)
            w[0] = x, w[1] = y, w[2] = d[0], w[3] = d[1], w[4] = d[2];
        return true;
    }
    case 15: { /* table.grow x: [t at] -> [at] */
        cg_value delta, init;
        if (!read_table(v, &x))
            return false;
        bool x64 = v->m->tables[x].limits.addr64;
        if (!pop_val(v, x64 ? VT_I64 : VT_I32, &delta) || !pop_val(v, v->m->tables[x].elem, &init))
            return false;
        uint32_t ops[4] = {init.home, init.loc, table_index(v, x64, delta.loc, delta.home), x};
        cg_emit_result(&v->cg, OP_TABLE_GROW, 4, ops);
        if (x64) { /* the old size or -1, as an i64 */
            uint32_t widen[2] = {init.home, init.home};
            cg_emit_result(&v->cg, OP_GROW64, 2, widen);
        }
        return push(v, x64 ? VT_I64 : VT_I32);
    }
    case 16: { /* table.size x: [] -> [at] */
        if (!read_table(v, &x))
            return false;
        bool x64 = v->m->tables[x].limits.addr64;
        uint32_t ops[2] = {slot_here(v), x};
        cg_emit_result(&v->cg, OP_TABLE_SIZE, 2, ops);
        if (x64) {
            uint32_t widen[2] = {ops[0], ops[0]};
            cg_emit_result(&v->cg, OP_I64_EXTEND_I32_U, 2, widen);
        }
        return push(v, x64 ? VT_I64 : VT_I32);
    }
    case 17: { /* table.fill x: [at t at] -> [] */
        cg_value n, val, start;
        if (!read_table(v, &x))
            return false;
        bool x64 = v->m->tables[x].limits.addr64;
        uint8_t at = x64 ? VT_I64 : VT_I32;
        if (!pop_val(v, at, &n) || !pop_val(v, v->m->tables[x].elem, &val) || !pop_val(v, at, &start))
            return false;
        cg_emit4(&v->cg, OP_TABLE_FILL, x, table_index(v, x64, start.loc, start.home), val.loc,
                 table_index(v, x64, n.loc, n.home));
        return true;
    }
    default:
        return reader_fail(&v->r, ERR_MALFORMED, v->instr, "illegal opcode 0xfc %u", sub);
    }
}

/* ---- instructions: numeric ------------------------------------------------------------------ */

static bool op_numeric(validator *v, const numeric_row *row) {
    cg_value a, b;
    bool binary = row->in2 != VT_NONE;
    if ((binary && !pop_val(v, row->in2, &b)) || !pop_val(v, row->in1, &a))
        return false;
    if (binary) {
        cg_binary(&v->cg, row->op, &a, &b);
    } else {
        uint32_t ops[2] = {a.home, a.loc};
        cg_emit_result(&v->cg, row->op, 2, ops);
    }
    return push(v, row->out);
}

/* A constant is a pool slot (F1); CONST32/CONST64 only when the pool is full. */
static bool push_const(validator *v, uint8_t type, uint64_t bits) {
    uint32_t loc = v->cg.dead ? CG_NONE : cg_const(&v->cg, bits);
    if (loc != CG_NONE)
        return push_at(v, type, loc);
    uint32_t ops[3] = {slot_here(v), (uint32_t)bits, (uint32_t)(bits >> 32)};
    bool wide = type == VT_I64 || type == VT_F64;
    cg_emit_result(&v->cg, wide ? OP_CONST64 : OP_CONST32, wide ? 3 : 2, ops);
    return push(v, type);
}

static bool op_const(validator *v, uint8_t op) {
    switch (op) {
    case 0x41: {
        int32_t x;
        return rd_s32(&v->r, &x) && push_const(v, VT_I32, (uint32_t)x);
    }
    case 0x42: {
        int64_t x;
        return rd_s64(&v->r, &x) && push_const(v, VT_I64, (uint64_t)x);
    }
    case 0x43: {
        uint32_t x;
        return rd_fixed32(&v->r, &x) && push_const(v, VT_F32, x);
    }
    default: {
        uint64_t x;
        return rd_fixed64(&v->r, &x) && push_const(v, VT_F64, x);
    }
    }
}

/* ---- function bodies ------------------------------------------------------------------------- */

static bool read_local_type(validator *v, uint8_t *out) {
    const uint8_t *at = v->r.p;
    const char *unsupported = NULL;
    if (!rd_valtype(&v->r, out, &unsupported))
        return false;
    if (unsupported)
        return wasm_error_set(v->err, ERR_INVALID, reader_offset(&v->r, at), v->func, "%s: a local's type",
                              unsupported);
    return true;
}

/* https://webassembly.github.io/spec/core/binary/modules.html#binary-local
 * Two passes over the local groups: sum (and check) first, then fill. */
static bool read_locals(validator *v, const wasm_functype *ft) {
    wasm_reader *r = &v->r;
    const uint8_t *at = r->p;
    uint32_t ngroups;
    uint64_t declared = 0;
    if (!rd_len(r, &ngroups))
        return false;
    const uint8_t *groups = r->p;
    for (uint32_t i = 0; i < ngroups; i++) {
        uint32_t n;
        uint8_t t;
        const char *unsupported;
        if (!rd_u32(r, &n) || !rd_valtype(r, &t, &unsupported))
            return false;
        declared += n;
    }
    if (declared > WASM_MAX_LOCALS)
        return reader_fail(r, ERR_MALFORMED, at, "too many locals: %llu declared, at most %u supported",
                           (unsigned long long)declared, WASM_MAX_LOCALS);
    size_t total = (size_t)ft->nparams + declared;
    if (total > v->locals_cap) {
        uint32_t cap = v->locals_cap, slot_cap = v->locals_cap;
        uint8_t *types = grow_buf(v, v->local_types, &cap, total, 1);
        if (!types)
            return false;
        v->local_types = types;
        uint32_t *slots = grow_buf(v, v->local_slot, &slot_cap, total, sizeof *v->local_slot);
        if (!slots)
            return false;
        v->local_slot = slots;
        v->locals_cap = cap;
    }
    if (!GROW(v, local_unset, unset_cap, total) || !GROW(v, inits, inits_cap, total))
        return false;
    uint32_t k = 0, slot = 0;
    for (; k < ft->nparams; k++) {
        v->local_types[k] = ft->params[k];
        v->local_unset[k] = false;
        v->local_slot[k] = slot;
        slot += valtype_slots(ft->params[k]);
    }
    r->p = groups;
    for (uint32_t i = 0; i < ngroups; i++) {
        uint32_t n;
        uint8_t t;
        if (!rd_u32(r, &n) || !read_local_type(v, &t))
            return false;
        for (uint32_t j = 0; j < n; j++, k++) {
            v->local_types[k] = t;
            v->local_unset[k] = !valtype_defaultable(t);
            v->local_slot[k] = slot;
            slot += valtype_slots(t);
        }
    }
    v->nlocals = (uint32_t)total;
    v->nlocal_slots = slot;
    return true;
}

static bool body_ran_out(validator *v) {
    wasm_body_ran_out(v->m, &v->r);
    return false;
}

/* A function's weighted instruction count stays below this, so that charge
 * words (uint32) and chain arithmetic cannot wrap whatever the cost table. */
#define MAX_FUNC_COST 0x7FFFFFFFu

/* The fuel weight of the instruction at v->r.p: 1, or its cost table entry.
 * A 0xFC or 0xFD sub-opcode is peeked with a scratch error: if it is
 * malformed, the real read reports it right after. */
static uint32_t instr_cost(const validator *v) {
    const uint16_t *costs = v->m->costs;
    if (costs == NULL)
        return 1;
    uint8_t op = *v->r.p;
    if (op != 0xFC && op != 0xFD)
        return costs[op];
    wasm_error scratch;
    wasm_reader peek = v->r;
    peek.err = &scratch;
    peek.p++;
    uint32_t sub;
    if (!rd_u32(&peek, &sub))
        return 1;
    return costs[(op == 0xFC ? 256 : 512) + (sub < 256 ? sub : 255)];
}

#include "validate_simd.inc"

static bool compile_instructions(validator *v) {
    wasm_reader *r = &v->r;
    codegen *cg = &v->cg;
    bool done = false;
    while (!done) {
        if (r->p >= r->end)
            return body_ran_out(v);
        v->instr = r->p;
        cg->wasm_offset = (uint32_t)(r->p - r->base);
        cg_count(cg, instr_cost(v));
        if (cg->count > MAX_FUNC_COST)
            return invalid(v, "function too costly to meter with this cost table");
        uint8_t op = *r->p++;
        bool ok;
        switch (op) {
        case 0x00:
            cg_unreachable(cg);
            set_unreachable(v);
            ok = true;
            break;
        case 0x01: ok = true; break;
        case 0x02: ok = op_block(v, CTRL_BLOCK); break;
        case 0x03: ok = op_block(v, CTRL_LOOP); break;
        case 0x04: ok = op_block(v, CTRL_IF); break;
        case 0x05: ok = op_else(v); break;
        case 0x0B: ok = op_end(v, &done); break;
        case 0x0C: ok = op_br(v); break;
        case 0x0D: ok = op_br_if(v); break;
        case 0x0E: ok = op_br_table(v); break;
        case 0x0F: ok = op_return(v); break;
        case 0x10: ok = op_call(v, false); break;
        case 0x11: ok = op_call_indirect(v, false); break;
        case 0x12: ok = op_call(v, true); break;
        case 0x13: ok = op_call_indirect(v, true); break;
        case 0x06: ok = op_try(v); break;
        case 0x07: ok = op_catch(v, false); break;
        case 0x19: ok = op_catch(v, true); break;
        case 0x18: ok = op_delegate(v, &done); break;
        case 0x08: ok = op_throw(v); break;
        case 0x09: ok = op_rethrow(v); break;
        case 0x0A: ok = op_throw_ref(v); break;
        case 0x1F: ok = op_try_table(v); break;
        case 0x14: case 0x15: case 0xD4: case 0xD5: case 0xD6:
            ok = invalid(v, MSG_TYPED_REFS ": %s", instr_name(v));
            break;
        case 0xD3: case 0xFB: ok = invalid(v, MSG_GC ": opcode 0x%02x", op); break;
        case 0x1A: ok = pop(v, VT_NONE); break;
        case 0x1B: ok = op_select(v, false); break;
        case 0x1C: ok = op_select(v, true); break;
        case 0x20: case 0x21: case 0x22: ok = op_local(v, op); break;
        case 0x23: case 0x24: ok = op_global(v, op); break;
        case 0x25: case 0x26: ok = op_table_get_set(v, op); break;
        case 0x3F: case 0x40: ok = op_memory_size_grow(v, op); break;
        case 0x41: case 0x42: case 0x43: case 0x44: ok = op_const(v, op); break;
        case 0xD0: ok = op_ref_null(v); break;
        case 0xD1: ok = op_ref_is_null(v); break;
        case 0xD2: ok = op_ref_func(v); break;
        case 0xFC: ok = op_prefix_fc(v); break;
        case 0xFD: ok = op_prefix_fd(v); break;
        default:
            if (op >= 0x28 && op <= 0x3E)
                ok = op_memop(v, op);
            else if (op >= 0x45 && op <= 0xC4)
                ok = op_numeric(v, &numeric_rows[op]);
            else
                ok = reader_fail(r, ERR_MALFORMED, v->instr, "illegal opcode 0x%02x", op);
        }
        if (!ok)
            return false;
    }
    if (r->p != r->end)
        return reader_fail(r, ERR_MALFORMED, r->p, "section size mismatch: %zu byte(s) after the final end",
                           (size_t)(r->end - r->p));
    return true;
}

static bool compile_function(validator *v, uint32_t fidx) {
    wasm_module *m = v->m;
    wasm_func *fn = &m->funcs[fidx];
    const wasm_functype *ft = &m->types[fn->typeidx];
    wasm_code *c = &fn->code;
    const uint8_t *body = m->bytes + c->body_offset;
    v->func = fidx;
    v->r = (wasm_reader){.base = m->bytes, .p = body, .end = body + c->body_len, .err = v->err, .func = fidx};
    v->instr = body;
    if (!read_locals(v, ft))
        return false;

    v->height = v->slot_height = v->max_slot_height = 0;
    v->depth = v->ninits = 0;
    blocktype bt = {.results = ft->results, .nresults = ft->nresults, .result_slots = ft->result_slots};
    if (!cg_func_begin(&v->cg, (uint32_t)(v->r.p - m->bytes), ft->param_slots, v->nlocal_slots))
        return nomem(v);
    if (!push_ctrl(v, CTRL_FUNC, &bt))
        return false;
    if (!compile_instructions(v))
        return false;
    /* push_at kept every home below CG_MAX_HOME: the slot counts fit. */
    if (!cg_func_end(&v->cg, c, v->local_types, v->nlocals, ft->param_slots, v->max_slot_height))
        return nomem(v);
    return true;
}

/* ---- driver ------------------------------------------------------------------------------------ */

/* The spec decodes the whole module before validating: after a validation
 * error, a malformed body from function `from` on takes precedence. */
static void report_first_malformed(const wasm_module *m, uint32_t from, wasm_error *err) {
    wasm_error e;
    for (uint32_t i = from; i < m->nfuncs; i++) {
        if (wasm_skim_body(m, i, &e) != 0) {
            *err = e;
            return;
        }
    }
}

static void validator_free(validator *v) {
    cg_free(&v->cg);
    free(v->local_types);
    free(v->local_slot);
    free(v->local_unset);
    free(v->inits);
    free(v->stack);
    free(v->ctrl);
    free(v->targets);
}

int wasm_validate_and_compile(wasm_module *m, wasm_error *err) {
    validator v;
    memset(&v, 0, sizeof v);
    memset(err, 0, sizeof *err);
    err->func = -1;
    v.m = m;
    v.err = err;
    cg_init(&v.cg);
    bool ok = wasm_validate_module(m, err);
    uint32_t func = m->nimported_funcs; /* bodies before this one are known well-formed */
    for (; ok && func < m->nfuncs; func++)
        if (!compile_function(&v, func))
            break;
    if (ok && func < m->nfuncs)
        ok = false;
    if (!ok && err->kind == ERR_INVALID)
        report_first_malformed(m, func, err);
    validator_free(&v);
    return ok ? 0 : -1;
}
