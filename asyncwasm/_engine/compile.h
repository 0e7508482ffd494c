/* compile.h -- private interface of the front end: what validate.c (which
 * walks a body, checks types and decides what to emit) needs from compile.c
 * (which writes internal code, resolves labels and counts fuel), plus the
 * decode.c helper both use on the error path.
 *
 * Invariants the emitter keeps:
 * - While `dead` is set (code after br/return/unreachable, ...) nothing is
 *   written; a label that some emitted jump targets revives the code.
 * - Every internal instruction gets one srcmap pair, in code order.
 * - An open fuel region is a FUEL whose operand counts the Wasm
 *   instructions compiled since; it is patched when the next region opens.
 */
#ifndef ASYNCWASM_COMPILE_H
#define ASYNCWASM_COMPILE_H

#include "engine.h"

/* Locals per function beyond which a body is rejected ("too many locals").
 * The spec allows 2^32-1; real toolchains stay far below, and each local
 * costs the interpreter a slot that must be zeroed at every call. */
#define WASM_MAX_LOCALS 50000u

#define CG_NONE UINT32_MAX

/* decode.c: re-reads body `func` checking only the binary format. Returns
 * -1 with *err set when the body is malformed, else 0. validate.c calls it
 * after a validation error, because the spec decodes the whole module
 * before validating anything: malformed wins over invalid. */
int wasm_skim_body(const wasm_module *m, uint32_t func, wasm_error *err);

struct wasm_reader;
/* decode.c: reports a body that ended before its final `end` (r->end is
 * the body's end). The spec reads on past the body, so the error depends
 * on what follows: nothing is an early end; an `end` byte means the
 * declared size was short; anything else is a missing END. */
void wasm_body_ran_out(const wasm_module *m, const struct wasm_reader *r);

/* decode.c: module byte offset of the contents of the first section with
 * this id, or 0 when absent. For diagnostics about items that keep no
 * offset of their own (limits, constant expressions). */
size_t wasm_section_offset(const wasm_module *m, uint8_t id);

/* A branch target. Backward targets (loops) have `pos` when created;
 * forward ones collect the operand words of the jumps that wait for them
 * in `chain`, a list threaded through those very words (each holds the
 * index of the next, CG_NONE ends it). */
typedef struct {
    uint32_t pos;
    uint32_t chain;
} cg_label;

enum { CTRL_FUNC, CTRL_BLOCK, CTRL_LOOP, CTRL_IF, CTRL_ELSE };

/* One entry of the validator's control stack. */
typedef struct {
    uint8_t kind;          /* CTRL_* */
    bool unreachable;      /* validation: operand stack is polymorphic */
    uint32_t height;       /* operand-stack height (values) below the params */
    uint32_t slot_height;  /* the same height in slots */
    const uint8_t *params, *results;
    uint32_t nparams, nresults;
    uint32_t param_slots, result_slots;
    cg_label label;        /* where a branch to this frame goes */
    cg_label else_label;   /* CTRL_IF: where a false condition goes */
    size_t offset;         /* module byte offset of the opening instruction */
} ctrl_frame;

/* A branch carries a loop's params, or a block's results. */
static inline const uint8_t *ctrl_label_types(const ctrl_frame *f, uint32_t *n, uint32_t *slots) {
    if (f->kind == CTRL_LOOP) {
        *n = f->nparams, *slots = f->param_slots;
        return f->params;
    }
    *n = f->nresults, *slots = f->result_slots;
    return f->results;
}

typedef struct codegen {
    uint32_t *code;
    uint32_t len, cap;       /* words */
    uint32_t *srcmap;        /* pairs (code offset, module offset) */
    uint32_t nsrc, srccap;   /* pairs */
    uint32_t wasm_offset;    /* module offset of the instruction being compiled */
    bool dead;
    bool oom;
    uint32_t fuel_word;      /* operand word of the open region's FUEL, or CG_NONE */
    uint32_t fuel_end;       /* code length right after that FUEL */
    uint32_t fuel_count;     /* Wasm instructions in the open region */
    /* br_table scratch: landing pad of each label depth, CG_NONE if none yet */
    uint32_t *pad_at_depth;
    uint32_t pad_cap;
    uint32_t *pending;       /* (word, depth) pairs of targets that need a pad */
    uint32_t pending_cap;    /* pairs */
} codegen;

void cg_init(codegen *cg);
void cg_free(codegen *cg);
bool cg_grow(codegen *cg, uint32_t words);

/* Starts a function: empties the buffers and opens the entry fuel region. */
void cg_func_begin(codegen *cg, uint32_t wasm_offset);
/* Closes the last region and fills out->code, srcmap and local_types, all
 * three in one allocation owned by out->code (wasm_module_free frees it). */
bool cg_func_end(codegen *cg, wasm_code *out, const uint8_t *local_types, uint32_t nlocals);

/* Appends opcode `op` with `nops` operand words; returns where the operands
 * go, or NULL when dead (or out of memory, which also makes it dead). */
static inline uint32_t *cg_emit(codegen *cg, uint32_t op, uint32_t nops) {
    if (cg->dead)
        return NULL;
    if ((cg->cap - cg->len < nops + 1 || cg->nsrc == cg->srccap) && !cg_grow(cg, nops + 1))
        return NULL;
    cg->srcmap[2 * cg->nsrc] = cg->len;
    cg->srcmap[2 * cg->nsrc + 1] = cg->wasm_offset;
    cg->nsrc++;
    uint32_t *w = cg->code + cg->len;
    w[0] = op;
    cg->len += nops + 1;
    return w + 1;
}

static inline void cg_emit1(codegen *cg, uint32_t op, uint32_t a) {
    uint32_t *w = cg_emit(cg, op, 1);
    if (w)
        w[0] = a;
}
static inline void cg_emit2(codegen *cg, uint32_t op, uint32_t a, uint32_t b) {
    uint32_t *w = cg_emit(cg, op, 2);
    if (w)
        w[0] = a, w[1] = b;
}
static inline void cg_emit3(codegen *cg, uint32_t op, uint32_t a, uint32_t b, uint32_t c) {
    uint32_t *w = cg_emit(cg, op, 3);
    if (w)
        w[0] = a, w[1] = b, w[2] = c;
}
static inline void cg_emit4(codegen *cg, uint32_t op, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    uint32_t *w = cg_emit(cg, op, 4);
    if (w)
        w[0] = a, w[1] = b, w[2] = c, w[3] = d;
}

/* Counts one Wasm instruction into the open fuel region. */
static inline void cg_count(codegen *cg) {
    if (!cg->dead)
        cg->fuel_count++;
}

static inline void cg_label_init(cg_label *l) {
    l->pos = CG_NONE;
    l->chain = CG_NONE;
}

/* Copies n values (types given) from slots starting at src to slots
 * starting at dst, lowest first; nothing when dst == src. */
void cg_copy_values(codegen *cg, uint32_t dst, uint32_t src, const uint8_t *types, uint32_t n);
/* JUMP to l; JUMP_IF/JUMP_UNLESS cond to l. */
void cg_jump(codegen *cg, cg_label *l);
void cg_jump_cond(codegen *cg, uint32_t op, uint32_t cond, cg_label *l);
/* How cg_place_label treats the position it binds. */
enum {
    LABEL_LOCAL,  /* compiler-made skip target inside one Wasm instruction: no region */
    LABEL_TARGET, /* a Wasm label: a fuel region starts here if anything jumps to it */
    LABEL_REGION, /* a fuel region starts here whenever the code is live */
};
/* Binds l here and patches the jumps waiting for it. Revives dead code when
 * jumps wait for l; opens a fuel region as `how` says. */
void cg_place_label(codegen *cg, cg_label *l, int how);
/* Opens a fuel region here if live (an if's then arm). */
void cg_open_region(codegen *cg);
/* Loop header: a region every back edge lands on. */
void cg_place_loop(codegen *cg, cg_label *l);
/* Copies n result values from src to slots [0, ...), then RETURN. */
void cg_return(codegen *cg, uint32_t src, const uint8_t *types, uint32_t n);

/* br_table over `ctrl` (the validator's stack, `depth` frames, innermost
 * last): targets[i] are label depths (the default last, ntargets in all),
 * the branch values start at slot `src`, the index is in slot `idx`.
 * `base` is nlocal_slots (frame heights are relative to it). */
void cg_br_table(codegen *cg, uint32_t idx, const uint32_t *targets, uint32_t ntargets,
                 ctrl_frame *ctrl, uint32_t depth, uint32_t src, uint32_t base);

#endif /* ASYNCWASM_COMPILE_H */
