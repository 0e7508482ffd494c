/* compile.h -- private interface of the front end: what validate.c (which
 * walks a body, checks types and decides what to emit) needs from compile.c
 * (which writes internal code, resolves labels and counts fuel), plus the
 * decode.c helper both use on the error path.
 *
 * Invariants the emitter keeps:
 * - While `dead` is set (code after br/return/unreachable, ...) nothing is
 *   written; a label that some emitted jump targets revives the code.
 * - Every internal instruction gets one srcmap pair, in code order.
 * - Fuel (engine.h "Fuel"): code is cut into chains, straight-line runs
 *   that end at every jump, return and trap; entering a chain pays its
 *   Wasm instruction count from the entry point to the chain's end. Charge
 *   words are patched at the end of the function (cg_func_end), when every
 *   chain's length is known.
 */
#ifndef ASYNCWASM_COMPILE_H
#define ASYNCWASM_COMPILE_H

#include "engine.h"

/* Locals per function beyond which a body is rejected ("too many locals").
 * The spec allows 2^32-1; real toolchains stay far below, and each local
 * costs the interpreter a slot that must be zeroed at every call. */
#define WASM_MAX_LOCALS 50000u

#define CG_NONE UINT32_MAX

/* validate_module.c: the module-level rules (everything but the bodies).
 * Returns false with *err filled. */
bool wasm_validate_module(wasm_module *m, wasm_error *err);

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
 * forward ones collect the target words of the jumps that wait for them in
 * `waiting`, a list threaded through those very words (each holds the
 * index of the next, CG_NONE ends it). Every target word is followed by the
 * jump's charge word: what entering the label costs, the Wasm instructions
 * from `start` (the count at the label) to the end of chain `chain`. */
typedef struct {
    uint32_t pos;
    uint32_t waiting;
    uint32_t chain;
    uint32_t start;
} cg_label;

/* ---- operand folding (compile.c, "Operand folding", has the rules) ------- */

/* Slot operands while a function compiles ("compile numbering"): params and
 * locals are their final slots; an operand-stack home is nlocal_slots +
 * height and moves up by the pool's and the hidden slots' sizes when the
 * function ends; CG_CONST | k is entry k of the constant pool; CG_EXTRA | k
 * is hidden slot k, right after the pool (a legacy catch's exception: below
 * every operand-stack home, so no callee frame, which starts at one, ever
 * overlaps it); CG_RESULT | i is the final slot i itself (a return's
 * destinations, which may lie past the locals). cg_func_end rewrites every
 * slot operand to its final slot. Homes stay below CG_MAX_HOME, so the tags
 * never meet a home. */
#define CG_EXTRA 0x40000000u /* CG_EXTRA | k: hidden slot k, after the pool (exceptions) */
#define CG_CONST 0x80000000u
#define CG_RESULT 0xC0000000u
#define CG_TAG_MASK 0xC0000000u
#define CG_MAX_HOME 0x3FFFFE00u
/* Pool entries per function (each costs one slot copy per call). */
#define CG_MAX_CONSTS 256u

/* One entry of the validator's operand stack. */
typedef struct {
    uint8_t type;  /* value type; VT_NONE for the Unknown of a polymorphic stack */
    uint32_t home; /* the slot this stack position owns */
    uint32_t loc;  /* where the value is: home, a local's slot, or CG_CONST | k */
} cg_value;

/* CTRL_TRY is a legacy try in its body, CTRL_CATCH the same after its
 * first catch/catch_all (what rethrow may name). */
enum { CTRL_FUNC, CTRL_BLOCK, CTRL_LOOP, CTRL_IF, CTRL_ELSE, CTRL_TRY_TABLE, CTRL_TRY, CTRL_CATCH };

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
    uint32_t region;       /* try region covering the code now compiled in this frame, or CG_NONE */
    uint32_t own_region;   /* CTRL_TRY_TABLE/TRY/CATCH: the region it opened (CG_NONE when dead) */
    uint32_t exn_slot;     /* CTRL_TRY/CATCH: CG_EXTRA | k, where a catch keeps the exception */
    bool catch_all;        /* CTRL_CATCH: it has its catch_all */
    uint32_t init_height;  /* validation: locals set before the frame opened (validate.c "inits") */
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
    /* Fuel chains (compile.c "Fuel"). */
    uint32_t count;          /* Wasm instructions compiled in live code so far */
    uint32_t chain;          /* the chain being compiled (meaningful while live) */
    uint32_t *chain_end;     /* per chain: `count` at its end, CG_NONE while open */
    uint32_t nchains, chain_end_cap;
    uint32_t *fixups;        /* triples (charge word, chain, start count) */
    uint32_t nfixups, fixups_cap; /* triples */
    /* Operand folding state of the function being compiled. */
    uint32_t nparam_slots;
    uint32_t nlocal_slots;   /* params + declared locals */
    bool entry_code;         /* still in the straight-line code at function entry */
    uint32_t result_word;    /* operand word 0 (the result slot) of the last instruction
                                when it may be retargeted or fused, else CG_NONE */
    uint32_t last_instr;     /* where the last instruction starts; CG_NONE after a label */
    uint32_t prev_instr;     /* where the one before it starts; CG_NONE after a label */
    uint32_t *local_refs;    /* per local slot: stack entries whose loc is that slot */
    uint8_t *local_written;  /* per local slot: written since entry (entry_code only) */
    uint32_t local_refs_cap, local_written_cap;
    uint32_t nrefs;          /* sum of local_refs */
    uint32_t min_ref;        /* no stack entry below this index refers to a local */
    uint64_t *consts;        /* the constant pool (slot bit patterns) */
    uint32_t nconsts;
    bool pool_wide;          /* some entry is a v128's low half (cg_const128) */
    uint32_t *pool_map;      /* at the end: entry k's index in the frame's pool, or CG_NONE */
    uint32_t npool;          /* at the end: entries the code still reads (compile.c "Immediate operands") */
    uint32_t *const_hash;    /* open addressing: pool index + 1, 0 = empty */
    /* br_table scratch: landing pad of each label depth, CG_NONE if none yet */
    uint32_t *pad_at_depth;
    uint32_t pad_cap;
    uint32_t *pending;       /* (word, depth) pairs of targets that need a pad */
    uint32_t pending_cap;    /* pairs */
    /* Exception handlers of the function (engine.h "Exceptions"). */
    wasm_try_region *regions;
    uint32_t nregions, regions_cap;
    wasm_catch *catches;
    uint32_t ncatches, catches_cap;
    uint32_t nextra;         /* hidden slots (CG_EXTRA) in use */
    /* Pairs (compile_pairs.inc): per code word, whether code can enter there
     * other than by falling through. */
    uint8_t *entry;
    uint32_t entry_cap;
} codegen;

void cg_init(codegen *cg);
void cg_free(codegen *cg);
bool cg_grow(codegen *cg, uint32_t words);

/* Starts a function whose params take nparam_slots slots and params and
 * locals nlocal_slots: empties the buffers and emits the entry FUEL. */
bool cg_func_begin(codegen *cg, uint32_t wasm_offset, uint32_t nparam_slots, uint32_t nlocal_slots);
/* Patches the charge words, relocates slot operands past the constant pool
 * and fills out->code, srcmap, local_types and frame_init, all in one
 * allocation owned by out->code (wasm_module_free frees it), plus the slot
 * counts. max_stack_slots is the deepest operand stack, in slots. */
bool cg_func_end(codegen *cg, wasm_code *out, const uint8_t *local_types, uint32_t nlocals,
                 uint32_t nparam_slots, uint32_t max_stack_slots);

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
    cg->prev_instr = cg->last_instr;
    cg->last_instr = cg->len;
    uint32_t *w = cg->code + cg->len;
    w[0] = op;
    cg->len += nops + 1;
    cg->result_word = CG_NONE;
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

/* Emits an instruction whose operand word 0 is its one result slot (the
 * home of the value pushed next) and whose other operands are read before
 * that slot is written: such an instruction may later be retargeted by
 * local.set/local.tee or fused into a conditional jump. */
void cg_emit_result(codegen *cg, uint32_t op, uint32_t nops, const uint32_t *operands);

/* Counts one Wasm instruction of fuel weight `cost` (1 without a cost
 * table) into the chain being compiled. */
static inline void cg_count(codegen *cg, uint32_t cost) {
    if (!cg->dead)
        cg->count += cost;
}

static inline void cg_label_init(cg_label *l) {
    l->pos = CG_NONE;
    l->waiting = CG_NONE;
    l->chain = CG_NONE;
    l->start = 0;
}

/* ---- operand stack bookkeeping (called by validate.c's push and pop) ---- */

static inline bool cg_is_local(const codegen *cg, uint32_t loc) { return loc < cg->nlocal_slots; }

/* Stack entry `index` now holds `val`. */
static inline void cg_note_push(codegen *cg, const cg_value *val, uint32_t index) {
    if (cg_is_local(cg, val->loc)) {
        cg->local_refs[val->loc]++;
        cg->nrefs++;
        if (index < cg->min_ref)
            cg->min_ref = index;
    }
}

/* `val` left the stack (popped, dropped, or cut off by a branch). */
static inline void cg_note_pop(codegen *cg, const cg_value *val) {
    if (cg_is_local(cg, val->loc)) {
        cg->local_refs[val->loc]--;
        cg->nrefs--;
    }
}

/* The location of a constant with this slot bit pattern (i32/f32 zero-
 * extended): CG_CONST | k, or CG_NONE when the pool is full. */
uint32_t cg_const(codegen *cg, uint64_t bits);
/* The same for a v128: two consecutive pool entries, low half first. */
uint32_t cg_const128(codegen *cg, uint64_t lo, uint64_t hi);

/* Copies every value of vals[0, n) that is not at home to its home. */
void cg_materialize(codegen *cg, cg_value *vals, uint32_t n);
/* Copies every stack entry of stack[0, height) that refers to a local to
 * its home: before code that may write locals behind the entries' back. */
void cg_flush_local_refs(codegen *cg, cg_value *stack, uint32_t height);
/* local.set/local.tee: `val` (just popped; the stack is stack[0, height))
 * goes to local slot `slot`. Returns where the value is afterwards, for
 * local.tee to push: where it was, or `slot` when it never got there. */
uint32_t cg_local_set(codegen *cg, cg_value *stack, uint32_t height, const cg_value *val, uint32_t slot);

/* A binary numeric operation (op a NUMERIC row) of a and b (just popped),
 * result at a's home; fused with the instruction before it when F9 allows. */
void cg_binary(codegen *cg, uint32_t op, const cg_value *a, const cg_value *b);

/* A unary operation of a (just popped), result at a's home; fused with the
 * instruction before it when an opcodes_simd.def SIMD_CHAIN_UNARY row
 * says so (F9). */
void cg_unary(codegen *cg, uint32_t op, const cg_value *a);

/* A load (op a LOAD row) of the address `addr` (just popped) into its home,
 * or a store of `value` (just popped) there. */
void cg_load(codegen *cg, uint32_t op, const cg_value *addr, uint32_t offset);
void cg_store(codegen *cg, uint32_t op, const cg_value *addr, const cg_value *value, uint32_t offset);
/* The same for the LOAD_M64/STORE_M64 rows (memory 0 a memory64): a 64-bit offset. */
void cg_load_m64(codegen *cg, uint32_t op, const cg_value *addr, uint64_t offset);
void cg_store_m64(codegen *cg, uint32_t op, const cg_value *addr, const cg_value *value, uint64_t offset);

/* Copies n values to consecutive homes from dst on (a branch's target
 * frame), lowest first; dst is at or below every home among them. */
void cg_move_values(codegen *cg, uint32_t dst, const cg_value *vals, uint32_t n);
/* JUMP to l. The code after it is dead until a label that something jumps
 * to (the caller marks it dead, or places such a label). */
void cg_jump(codegen *cg, cg_label *l);
/* UNREACHABLE (the code after it is dead). */
void cg_unreachable(codegen *cg);
/* Jumps to l when `cond` (an i32 just popped) is nonzero (when_true) or
 * zero; fuses the comparison that produced it when possible. */
void cg_jump_cond(codegen *cg, bool when_true, const cg_value *cond, cg_label *l);
/* Binds l here and patches the jumps waiting for it; revives dead code when
 * jumps wait for l (a new chain starts). */
void cg_place_label(codegen *cg, cg_label *l);
/* Binds a loop header here: back edges are emitted later. */
void cg_place_loop(codegen *cg, cg_label *l);
/* Copies the n result values to slots [0, ...), then RETURN. */
void cg_return(codegen *cg, const cg_value *vals, uint32_t n);
/* The operand that names final slot i (a return's destinations). */
uint32_t cg_result_slot(const codegen *cg, uint32_t i);
/* An instruction after which nothing runs (THROW, THROW_REF): the chain ends. */
void cg_emit_terminal(codegen *cg, uint32_t op, uint32_t nops, const uint32_t *operands);

/* ---- exception handling (compile.c "Exceptions") ------------------------- */

/* Opens a try region here, whose `next` is the region `next`; CG_NONE
 * when the code is dead (nothing in it can throw). With `inline_pads`
 * (try_table), the landing pads of its clauses (cg_catch) follow in the
 * code, jumped over, and the region starts after them (cg_try_body). */
uint32_t cg_try_begin(codegen *cg, uint32_t next, bool inline_pads);
void cg_try_body(codegen *cg, uint32_t region);
/* The try body ends here (no effect for CG_NONE). */
void cg_try_end(codegen *cg, uint32_t region);
/* Adds a clause to `region`: exceptions of `tag` (WASM_CATCH_ALL: any)
 * put their payload at slot `dst` and their reference at `exn_dst`
 * (WASM_NO_SLOT: nowhere), then go to l (NULL: the function's return).
 * Pads are written in dead code too (a legacy catch follows a jump). */
void cg_catch(codegen *cg, uint32_t region, uint32_t tag, uint32_t dst, uint32_t exn_dst, cg_label *l);
/* Region `region` (CG_NONE: none) covers no handler: it passes exceptions on to `next`. */
void cg_region_next(codegen *cg, uint32_t region, uint32_t next);

/* br_table over `ctrl` (the validator's stack, `depth` frames, innermost
 * last): targets[i] are label depths (the default last, ntargets in all),
 * the branch values are at their homes from slot `src` on, the index is at
 * `idx`. `base` is nlocal_slots (frame heights are relative to it). */
void cg_br_table(codegen *cg, uint32_t idx, const uint32_t *targets, uint32_t ntargets,
                 ctrl_frame *ctrl, uint32_t depth, uint32_t src, uint32_t base);

#endif /* ASYNCWASM_COMPILE_H */
