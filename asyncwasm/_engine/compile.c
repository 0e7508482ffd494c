/* compile.c -- the emitter: internal code for one function at a time,
 * driven by validate.c. See engine.h "Internal code" for the format and
 * compile.h for the interface.
 *
 * Strategy:
 * - One growable code buffer and srcmap, reused for every function and
 *   copied out at the end of each; no allocation per instruction.
 * - Forward jumps wait on their label in a list threaded through their own
 *   operand words and are patched when the label is placed; backward jumps
 *   (loops) know their target at once.
 * - Fuel: each jump carries what entering its target costs, patched at the
 *   end of the function (below, "Fuel").
 * - Operand folding (below): values are named where they are, so
 *   local.get and constants cost no instruction, local.set retargets the
 *   instruction that computed its value, and a comparison feeding br_if/if
 *   becomes one conditional jump.
 * - Fusion (below, F9-F12): common neighbours become one instruction (an
 *   operation feeding the next, an add/copy/load before a conditional jump,
 *   a load feeding an operation, a store of a computed value), from the
 *   opcodes.def rows that list them.
 * - Step-tests (compile_steps.inc): a byte walk's step and the load-test
 *   after it become one instruction.
 * - Pairs (compile_pairs.inc): last, two neighbouring instructions that a
 *   PAIR row lists run in one dispatch.
 * - Immediate operands (compile_immediate.inc): at the end, a constant
 *   operand of the hottest integer operations and conditional jumps goes
 *   into the code word itself, and the pool keeps only the constants the
 *   code still reads from their slots.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"

void cg_init(codegen *cg) {
    memset(cg, 0, sizeof *cg);
    cg->result_word = CG_NONE;
}

void cg_free(codegen *cg) {
    free(cg->code);
    free(cg->srcmap);
    free(cg->local_refs);
    free(cg->local_written);
    free(cg->chain_end);
    free(cg->fixups);
    free(cg->consts);
    free(cg->const_hash);
    free(cg->pool_map);
    free(cg->pad_at_depth);
    free(cg->pending);
    free(cg->regions);
    free(cg->catches);
    free(cg->entry);
    cg_init(cg);
}

/* Out of memory: stop emitting for the rest of the function. */
static bool cg_oom(codegen *cg) {
    cg->oom = true;
    cg->dead = true;
    return false;
}

/* Doubles *cap (starting at `first`) until it holds `need` items. */
static bool grow_array(void **arr, uint32_t *cap, size_t need, size_t item, uint32_t first) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    if (n > UINT32_MAX)
        return false;
    void *p = realloc(*arr, n * item);
    if (!p)
        return false;
    *arr = p;
    *cap = (uint32_t)n;
    return true;
}

bool cg_grow(codegen *cg, uint32_t words) {
    if (cg->oom)
        return false;
    void *code = cg->code, *srcmap = cg->srcmap;
    uint32_t srcmap_words = cg->srccap * 2;
    bool ok = grow_array(&code, &cg->cap, (size_t)cg->len + words, sizeof(uint32_t), 1024);
    cg->code = code;
    if (ok && cg->nsrc == cg->srccap) {
        ok = grow_array(&srcmap, &srcmap_words, (size_t)cg->nsrc * 2 + 2, sizeof(uint32_t), 512);
        cg->srcmap = srcmap;
        cg->srccap = srcmap_words / 2;
    }
    return ok || cg_oom(cg);
}

void cg_emit_result(codegen *cg, uint32_t op, uint32_t nops, const uint32_t *operands) {
    uint32_t *w = cg_emit(cg, op, nops);
    if (!w)
        return;
    memcpy(w, operands, sizeof *w * nops);
    cg->result_word = (uint32_t)(w - cg->code);
}

/* Removes the last instruction, which starts at code word `at`. */
static void unemit_last(codegen *cg, uint32_t at) {
    cg->len = at;
    cg->nsrc--;
    cg->result_word = CG_NONE;
    cg->last_instr = cg->prev_instr;
    cg->prev_instr = CG_NONE;
}

/* ---- Fuel -------------------------------------------------------------------------
 * A chain is a straight run of code: it ends at every jump (taken or not),
 * br_table, return and trap, and nothing leaves it in between (calls come
 * back). Whoever enters a chain pays, before anything of it runs, for the
 * Wasm instructions from the entry point to the chain's end: the function's
 * entry FUEL, CALL (the callee's entry FUEL), and every jump, one charge
 * word per way it can go (taken, and for conditional jumps not taken).
 * Labels placed in live code join the chain that falls into them, so code
 * that merely falls through never pays twice, and no instruction is spent
 * on fuel at all except at the function's entry.
 *
 * Charge words are not known when emitted (chains end later), so each one
 * gets a fixup (word, chain, start count): at the end of the function the
 * word becomes chain_end[chain] - start. */

/* Records that charge word `word` pays for chain `chain` from `start` on. */
static void add_fixup(codegen *cg, uint32_t word, uint32_t chain, uint32_t start) {
    if (cg->nfixups == cg->fixups_cap) {
        void *p = cg->fixups;
        uint32_t words = cg->fixups_cap * 3;
        if (!grow_array(&p, &words, (size_t)cg->nfixups * 3 + 3, sizeof(uint32_t), 96)) {
            cg_oom(cg);
            return;
        }
        cg->fixups = p;
        cg->fixups_cap = words / 3;
    }
    uint32_t *fx = &cg->fixups[3 * cg->nfixups++];
    fx[0] = word, fx[1] = chain, fx[2] = start;
}

/* Starts a new chain here. */
static void new_chain(codegen *cg) {
    void *p = cg->chain_end;
    if (!grow_array(&p, &cg->chain_end_cap, (size_t)cg->nchains + 1, sizeof(uint32_t), 64)) {
        cg_oom(cg);
        return;
    }
    cg->chain_end = p;
    cg->chain = cg->nchains++;
    cg->chain_end[cg->chain] = CG_NONE;
}

/* The chain being compiled ends with the instruction just emitted. */
static void end_chain(codegen *cg) {
    if (!cg->dead && !cg->oom)
        cg->chain_end[cg->chain] = cg->count;
}

/* Code at this position may now be reached by a jump. */
static void mark_join(codegen *cg) {
    cg->result_word = CG_NONE;
    cg->last_instr = CG_NONE;
    cg->prev_instr = CG_NONE;
    cg->entry_code = false;
}

/* ---- functions ------------------------------------------------------------------- */

/* Forgets the previous function's constant pool (only the used hash slots). */
static void clear_pool(codegen *cg);

bool cg_func_begin(codegen *cg, uint32_t wasm_offset, uint32_t nparam_slots, uint32_t nlocal_slots) {
    cg->len = 0;
    cg->nsrc = 0;
    cg->last_instr = CG_NONE;
    cg->prev_instr = CG_NONE;
    cg->dead = false;
    cg->oom = false;
    cg->count = 0;
    cg->nchains = 0;
    cg->nfixups = 0;
    cg->wasm_offset = wasm_offset;
    cg->result_word = CG_NONE;
    cg->nparam_slots = nparam_slots;
    cg->nlocal_slots = nlocal_slots;
    cg->nrefs = 0;
    cg->min_ref = 0;
    cg->nregions = 0;
    cg->ncatches = 0;
    cg->nextra = 0;
    cg->pool_wide = false;
    clear_pool(cg);
    void *refs = cg->local_refs, *written = cg->local_written;
    bool ok = grow_array(&refs, &cg->local_refs_cap, nlocal_slots, sizeof *cg->local_refs, 64);
    cg->local_refs = refs;
    ok = ok && grow_array(&written, &cg->local_written_cap, nlocal_slots, 1, 64);
    cg->local_written = written;
    if (!ok)
        return cg_oom(cg);
    if (nlocal_slots) {
        memset(cg->local_refs, 0, sizeof *cg->local_refs * nlocal_slots);
        memset(cg->local_written, 0, nlocal_slots);
    }
    new_chain(cg);
    uint32_t *w = cg_emit(cg, OP_FUEL, 1); /* the entry: pays for chain 0 */
    if (w)
        add_fixup(cg, (uint32_t)(w - cg->code), cg->chain, 0);
    cg->entry_code = true;
    return !cg->oom;
}

/* ---- slot relocation ----------------------------------------------------------------
 * While a function compiles, its operand-stack slots are numbered from
 * nlocal_slots and its pool entries are CG_CONST | k (the pool's size is not
 * known before the end). The final frame puts the pool between the locals
 * and the operand stack (engine.h), so every slot operand is rewritten once,
 * found through the operand letters of opcodes.def. */

#define SLOT_LETTERS_NONE "ss" /* unary numeric: dst, a */
#define SLOT_LETTERS_I32 "sss" /* binary numeric: dst, a, b */
#define SLOT_LETTERS_I64 "sss"
#define SLOT_LETTERS_F32 "sss"
#define SLOT_LETTERS_F64 "sss"
static const char *const operand_letters[OP__COUNT] = {
#define INTERNAL(NAME, OPERANDS) [OP_##NAME] = OPERANDS,
#define LOAD(NAME, CODE, TEXT, TYPE, ALIGN) [OP_##NAME] = "ssi",
#define STORE(NAME, CODE, TEXT, TYPE, ALIGN) [OP_##NAME] = "ssi",
#define NUMERIC(NAME, PREFIX, CODE, TEXT, IN1, IN2, OUT) [OP_##NAME] = SLOT_LETTERS_##IN2,
#include "opcodes.def"
};

static bool is_pool(uint32_t loc) { return (loc & CG_TAG_MASK) == CG_CONST; }

/* The final slot of a slot operand (compile numbering, compile.h), once
 * compact_pool has placed the pool. */
static uint32_t final_slot(const codegen *cg, uint32_t x) {
    switch (x & CG_TAG_MASK) {
    case CG_RESULT: return x & ~CG_TAG_MASK;
    case CG_CONST: return cg->nlocal_slots + cg->pool_map[x & ~CG_TAG_MASK];
    case CG_EXTRA: return cg->nlocal_slots + cg->npool + (x & ~CG_TAG_MASK);
    default: return x >= cg->nlocal_slots ? x + cg->npool + cg->nextra : x;
    }
}

static void relocate_slots(codegen *cg) {
    uint32_t *code = cg->code;
    for (uint32_t pc = 0; pc < cg->len;) {
        uint32_t w = pc + 1;
        for (const char *l = operand_letters[code[pc]]; *l; l++) {
            if (*l == 's') {
                uint32_t x = code[w];
                code[w] = final_slot(cg, x);
                w++;
            } else if (*l == '*') {
                w += 2 * (code[pc + 2] + 1); /* BR_TABLE: n + 1 (target, charge) pairs */
            } else {
                w += *l == 'L' ? 2 : 1;
            }
        }
        pc = w;
    }
}

#include "compile_pairs.inc"
#include "compile_immediate.inc"
#include "compile_steps.inc"

bool cg_func_end(codegen *cg, wasm_code *out, const uint8_t *local_types, uint32_t nlocals,
                 uint32_t nparam_slots, uint32_t max_stack_slots) {
    end_chain(cg);
    if (cg->oom)
        return false;
    for (uint32_t i = 0; i < cg->nfixups; i++) {
        const uint32_t *fx = &cg->fixups[3 * i];
        uint32_t end = cg->chain_end[fx[1]];
        cg->code[fx[0]] = end == CG_NONE ? 0 : end - fx[2];
    }
    immediate_operands(cg);
    load_test_forms(cg);
    if (!step_tests(cg))
        return cg_oom(cg);
    compact_pool(cg);
    relocate_slots(cg);
    if (!pair_instructions(cg))
        return cg_oom(cg);
    for (uint32_t i = 0; i < cg->ncatches; i++) {
        wasm_catch *c = &cg->catches[i];
        if (c->dst != WASM_NO_SLOT)
            c->dst = final_slot(cg, c->dst);
        if (c->exn_dst != WASM_NO_SLOT)
            c->exn_dst = final_slot(cg, c->exn_dst);
    }
    uint32_t nzero = cg->nlocal_slots - nparam_slots;
    size_t code_bytes = ((size_t)cg->len * sizeof(uint32_t) + 7) & ~(size_t)7;
    uint32_t ninit = nzero + cg->npool;
    /* at least one init block (engine.h frame_init), zeros after the pool */
    size_t frame_init_bytes = (size_t)(ninit > WASM_INIT_BLOCK ? ninit : WASM_INIT_BLOCK) * sizeof(uint64_t);
    size_t init_bytes = frame_init_bytes;
    size_t regions_bytes = (size_t)cg->nregions * sizeof(wasm_try_region);
    size_t catches_bytes = (size_t)cg->ncatches * sizeof(wasm_catch);
    size_t srcmap_bytes = (size_t)cg->nsrc * 2 * sizeof(uint32_t);
    uint8_t *block = malloc(code_bytes + init_bytes + regions_bytes + catches_bytes + srcmap_bytes + nlocals);
    if (!block)
        return cg_oom(cg);
    /* Regions and catches first: their alignment (4) holds after the 8-aligned parts. */
    uint8_t *handlers = block + code_bytes + init_bytes;
    out->regions = cg->nregions ? memcpy(handlers, cg->regions, regions_bytes) : NULL;
    out->nregions = cg->nregions;
    out->catches = cg->ncatches ? memcpy(handlers + regions_bytes, cg->catches, catches_bytes) : NULL;
    out->ncatches = cg->ncatches;
    init_bytes += regions_bytes + catches_bytes; /* the srcmap and the local types come after */
    uint64_t *init = (uint64_t *)(block + code_bytes);
    memcpy(block, cg->code, (size_t)cg->len * sizeof(uint32_t));
    memset(init, 0, frame_init_bytes);
    for (uint32_t k = 0; k < cg->nconsts; k++)
        if (cg->pool_map[k] != CG_NONE)
            init[nzero + cg->pool_map[k]] = cg->consts[k];
    memcpy(block + code_bytes + init_bytes, cg->srcmap, srcmap_bytes);
    if (nlocals)
        memcpy(block + code_bytes + init_bytes + srcmap_bytes, local_types, nlocals);
    out->code = (uint32_t *)block;
    out->code_len = cg->len;
    out->frame_init = init;
    out->srcmap = (uint32_t *)(block + code_bytes + init_bytes);
    out->srcmap_len = cg->nsrc;
    out->local_types = block + code_bytes + init_bytes + srcmap_bytes;
    out->nlocals = nlocals;
    out->nparam_slots = nparam_slots;
    out->nlocal_slots = cg->nlocal_slots;
    out->nconst_slots = cg->npool;
    out->ninit_slots = ninit;
    out->max_slots = cg->nlocal_slots + cg->npool + max_stack_slots + cg->nextra;
    out->call_reach = ninit <= WASM_INIT_BLOCK ? (size_t)out->max_slots * sizeof(uint64_t) : SIZE_MAX;
    return true;
}

/* ---- labels and jumps --------------------------------------------------------------- */

/* Points target word `word` (followed by its charge word) at l, or queues
 * it until l is placed. */
static void set_target(codegen *cg, uint32_t word, cg_label *l) {
    if (l->pos != CG_NONE) {
        cg->code[word] = l->pos;
        add_fixup(cg, word + 1, l->chain, l->start);
    } else {
        cg->code[word] = l->waiting;
        l->waiting = word;
    }
}

void cg_jump(codegen *cg, cg_label *l) {
    uint32_t *w = cg_emit(cg, OP_JUMP, 2);
    if (!w)
        return;
    set_target(cg, (uint32_t)(w - cg->code), l);
    end_chain(cg);
}

void cg_unreachable(codegen *cg) {
    cg_emit(cg, OP_UNREACHABLE, 0);
    end_chain(cg);
}

void cg_emit_terminal(codegen *cg, uint32_t op, uint32_t nops, const uint32_t *operands) {
    uint32_t *w = cg_emit(cg, op, nops);
    if (!w)
        return;
    memcpy(w, operands, sizeof *w * nops);
    end_chain(cg);
}

/* ---- Exceptions ---------------------------------------------------------------------
 * A try region is a range of code whose exceptions its catch clauses see
 * (engine.h "Exceptions"). Each clause has a landing pad the unwinder
 * continues at: a JUMP to the handler's label, so that entering the
 * handler pays its chain's fuel like any branch (and a run stops on the
 * pad, resumably, when it does not fit), or a RETURN for the function's
 * label. A try_table's pads follow a SKIP at its start, which jumps over
 * them (it is in the same chain: nothing is charged); a legacy catch's pad
 * sits in the dead code right before the catch body. Regions opened in
 * dead code do not exist: nothing there can throw. */

uint32_t cg_try_begin(codegen *cg, uint32_t next, bool inline_pads) {
    if (cg->dead || cg->oom)
        return CG_NONE;
    void *p = cg->regions;
    if (!grow_array(&p, &cg->regions_cap, (size_t)cg->nregions + 1, sizeof *cg->regions, 8)) {
        cg_oom(cg);
        return CG_NONE;
    }
    cg->regions = p;
    uint32_t r = cg->nregions++;
    cg->regions[r] = (wasm_try_region){.start = cg->len, .end = cg->len, .next = next};
    if (inline_pads)
        cg_emit1(cg, OP_SKIP, 0); /* its length is patched by cg_try_body */
    return r;
}

void cg_try_body(codegen *cg, uint32_t region) {
    if (region == CG_NONE || cg->oom)
        return;
    wasm_try_region *r = &cg->regions[region];
    cg->code[r->start + 1] = cg->len - (r->start + 2); /* the SKIP's operand: the pads' words */
    r->start = r->end = cg->len;
}

void cg_try_end(codegen *cg, uint32_t region) {
    if (region != CG_NONE && !cg->oom)
        cg->regions[region].end = cg->len;
}

void cg_region_next(codegen *cg, uint32_t region, uint32_t next) {
    if (region != CG_NONE && !cg->oom)
        cg->regions[region].next = next;
}

void cg_catch(codegen *cg, uint32_t region, uint32_t tag, uint32_t dst, uint32_t exn_dst, cg_label *l) {
    if (region == CG_NONE || cg->oom)
        return;
    void *p = cg->catches;
    if (!grow_array(&p, &cg->catches_cap, (size_t)cg->ncatches + 1, sizeof *cg->catches, 8)) {
        cg_oom(cg);
        return;
    }
    cg->catches = p;
    bool dead = cg->dead;
    cg->dead = false; /* a pad is reached by the unwinder only */
    uint32_t pad = cg->len;
    if (l == NULL) {
        cg_emit(cg, OP_RETURN, 0);
    } else {
        uint32_t *w = cg_emit(cg, OP_JUMP, 2);
        if (w)
            set_target(cg, (uint32_t)(w - cg->code), l);
    }
    cg->dead = dead || cg->oom;
    cg->catches[cg->ncatches++] =
        (wasm_catch){.region = region, .tag = tag, .dst = dst, .exn_dst = exn_dst, .pad = pad};
}

/* Binds l at the current position, in the current chain. */
static void bind_label(codegen *cg, cg_label *l) {
    mark_join(cg);
    l->pos = cg->len;
    l->chain = cg->chain;
    l->start = cg->count;
}

void cg_place_label(codegen *cg, cg_label *l) {
    if (cg->oom || l->waiting == CG_NONE)
        return; /* nothing jumps here: the code stays as it is, live or dead */
    if (cg->dead) { /* only jumps reach this point: a new chain */
        cg->dead = false;
        new_chain(cg);
    }
    bind_label(cg, l);
    for (uint32_t w = l->waiting; w != CG_NONE;) {
        uint32_t next = cg->code[w];
        cg->code[w] = l->pos;
        add_fixup(cg, w + 1, l->chain, l->start);
        w = next;
    }
    l->waiting = CG_NONE;
}

void cg_place_loop(codegen *cg, cg_label *l) {
    if (!cg->dead)
        bind_label(cg, l);
}

/* ---- Operand folding ------------------------------------------------------------------
 * The validator's operand stack records where each value is (cg_value.loc),
 * and instructions name their operands by those locations:
 *
 *   local.get x           emits nothing: the value's loc is x's slot;
 *   i32/i64/f32/f64.const emits nothing: the loc is a constant-pool slot,
 *                         filled from wasm_code.frame_init at every call;
 *   local.set/tee x       retargets the instruction that computed the value
 *                         to write x itself, else one COPY;
 *   compare; br_if/if     one JUMP_IF_<cmp> a b (i32 compares and eqz).
 *
 * Invariants:
 *   F1. A loc is the value's home, a local's slot, or a pool entry. Pool
 *       slots never change while the function runs; a local's slot does, so
 *       a value that refers to local x is valid only until x is written.
 *   F2. Every write of a local x happens in local.set/tee; if some stack
 *       entry refers to x then, all entries that refer to locals are first
 *       copied home (cg_flush_local_refs). min_ref makes this linear: an
 *       entry is scanned at most once per push.
 *   F3. Refs never cross control flow: block/loop/if starts flush every
 *       local ref and materialize the params (a loop's back edges and an
 *       if's else arm find them at home); an end that is a join point, and
 *       else, materialize the results. So F2's copies are always emitted in
 *       straight-line code, before the write they protect.
 *   F4. Calls materialize their arguments (the callee frame starts at the
 *       first argument's home). The callee cannot reach the caller's locals
 *       or pool, which lie below, so refs to them survive a call.
 *   F5. Branches copy each value from its loc to the target's homes, lowest
 *       first; targets lie at or below the values' homes and locals and pool
 *       slots are never targets, so no copy overwrites a later source. A
 *       return (targets [0, n)) materializes first when a source below n
 *       could be overwritten.
 *   F6. result_word is set only by cg_emit_result and cleared by every other
 *       emit and every label, so it names the last instruction, and only when
 *       code falls through from it. A popped value at home whose home equals
 *       code[result_word] is that instruction's result, and nothing else
 *       reads it: local.set/tee and a single-value return retarget that
 *       instruction's result slot; br_if/if absorb an i32 comparison; a
 *       load or store absorbs the i32.add of its address (LOAD_SUM,
 *       STORE_SUM). Handlers of such instructions read all operands before
 *       writing the result (interp.c), so the result may overwrite an
 *       operand, for example x = x + 1.
 *   F7. Declared locals are zero at entry: in the straight-line code from
 *       the function's entry (entry_code, cleared at the first label), a
 *       local.set of a zero constant to a local not yet written is dropped.
 *   F8. local.tee x copies the value to x but leaves it where it was (its
 *       home, another local, the pool): both hold it, and later readers
 *       need not wait for the copy. Only a retargeted value lives in x.
 *   F9. A binary operation whose operand is the last instruction's result
 *       (F6), where both form an opcodes.def CHAIN row, replaces that
 *       instruction by the chain: dst = SECOND(FIRST(a, b), c) (CHAIN1: a
 *       unary FIRST, and SECOND an integer operation that commutes). The first's
 *       operands are read later than before, but no instruction ran in
 *       between, so they still hold the same values.
 *   F10. An i32.add right before a conditional jump (no label between)
 *       joins it: ADD_<jump> d, p, q, <the jump's operands> adds first,
 *       then tests, so the test sees the sum as before. The handler puts
 *       d back when the jump's charge does not fit, so that resuming
 *       re-executes the pair from the start (engine.h "Fuel"). A COPY
 *       right before a conditional jump joins it the same way (COPY_<jump>);
 *       it needs no putting back, as repeating it copies the same value.
 *       So does a load (LOAD_JUMP rows), put back like the add; the fused
 *       instruction keeps the load's module offset, for its trap. (A COPY
 *       joined to a following i32.add, and a LOAD_SUM joined to a jump,
 *       measured slower: the strlen loop they shorten is bound by the
 *       latency of its counter slot, not by dispatch.) An i32.add right
 *       before a RETURN becomes ADD_RETURN in place (it keeps the add's
 *       srcmap entry; neither can trap).
 *   F11. A load whose result (F6) is the right operand of a binary
 *       operation (either operand when it commutes) with an opcodes.def
 *       LOAD_OP row joins it: dst = OP(x, LOAD(addr)). The fused instruction
 *       traps like the load, before anything is written, and keeps the
 *       load's module offset for the trap report.
 *   F12. A store of the last instruction's result (F6), a binary operation
 *       or chain with an opcodes.def STORE_OF row, becomes that row: the
 *       value goes to memory only (nothing else reads its home). The
 *       operation's operands are read at the store, with nothing between.
 *   F13. When the instruction before such a store's operation loaded one of
 *       its operands (a, or a chain's c) from the very address and offset
 *       stored to, into an operand-stack home nothing else reads, the three
 *       become an opcodes.def RMW row: one bounds check (the load's; the
 *       store to the same bytes cannot fail after it), the loaded value in
 *       a register. It keeps the load's module offset for the trap. So
 *       do a binary operation, a LOAD_OP row (F11) taking its result as x
 *       and loading from the address stored to, and the store (RMW_CHAIN:
 *       c[i] = a * b + c[i]), at the LOAD_OP's module offset.
 *   F14. A chain (F9) whose a the instruction before its first operation
 *       loaded into an operand-stack home nothing else reads becomes, with
 *       that load, an opcodes.def LOAD_CHAIN row (v += x * dt as one
 *       instruction). It keeps the load's module offset for the trap. */

enum { POOL_HASH_SIZE = 2 * CG_MAX_CONSTS }; /* a power of two, at most half full */

static uint32_t pool_hash(uint64_t bits) {
    return (uint32_t)((bits * 0x9E3779B97F4A7C15ull) >> 40) & (POOL_HASH_SIZE - 1);
}

/* Empties the hash slots in reverse insertion order: each entry's probe
 * sequence then still finds it, since it only crossed older entries. */
static void clear_pool(codegen *cg) {
    for (uint32_t k = cg->nconsts; k-- > 0;) {
        uint32_t h = pool_hash(cg->consts[k]);
        while (cg->const_hash[h] != k + 1)
            h = (h + 1) & (POOL_HASH_SIZE - 1);
        cg->const_hash[h] = 0;
    }
    cg->nconsts = 0;
}

/* Allocates the pool at first use; false when out of memory (the caller
 * then emits a CONST instead). */
static bool pool_ready(codegen *cg) {
    if (cg->const_hash)
        return true;
    cg->const_hash = calloc(POOL_HASH_SIZE, sizeof *cg->const_hash);
    cg->consts = malloc(sizeof *cg->consts * CG_MAX_CONSTS);
    cg->pool_map = malloc(sizeof *cg->pool_map * CG_MAX_CONSTS);
    if (!cg->const_hash || !cg->consts || !cg->pool_map) {
        free(cg->const_hash), free(cg->consts), free(cg->pool_map);
        cg->const_hash = NULL, cg->consts = NULL, cg->pool_map = NULL;
        return false;
    }
    return true;
}

/* Appends `bits` to the pool. Every entry is hashed, duplicates too (a
 * v128 half may repeat a scalar), so that clear_pool finds each one. */
static uint32_t pool_append(codegen *cg, uint64_t bits) {
    uint32_t h = pool_hash(bits);
    while (cg->const_hash[h])
        h = (h + 1) & (POOL_HASH_SIZE - 1);
    cg->consts[cg->nconsts++] = bits;
    cg->const_hash[h] = cg->nconsts;
    return CG_CONST | (cg->nconsts - 1);
}

uint32_t cg_const(codegen *cg, uint64_t bits) {
    if (!pool_ready(cg))
        return CG_NONE;
    for (uint32_t h = pool_hash(bits); cg->const_hash[h]; h = (h + 1) & (POOL_HASH_SIZE - 1))
        if (cg->consts[cg->const_hash[h] - 1] == bits)
            return CG_CONST | (cg->const_hash[h] - 1);
    if (cg->nconsts == CG_MAX_CONSTS)
        return CG_NONE;
    return pool_append(cg, bits);
}

uint32_t cg_const128(codegen *cg, uint64_t lo, uint64_t hi) {
    if (!pool_ready(cg))
        return CG_NONE;
    for (uint32_t k = 0; k + 1 < cg->nconsts; k++) /* few per function: a linear search */
        if (cg->consts[k] == lo && cg->consts[k + 1] == hi)
            return cg->pool_wide = true, CG_CONST | k;
    if (cg->nconsts + 2 > CG_MAX_CONSTS)
        return CG_NONE;
    cg->pool_wide = true;
    uint32_t loc = pool_append(cg, lo);
    pool_append(cg, hi);
    return loc;
}

/* A COPY right after a COPY (no label between) extends it into a COPY2. */
static void emit_copy(codegen *cg, uint8_t type, uint32_t dst, uint32_t src) {
    uint32_t last = cg->last_instr;
    if (type != VT_V128 && !cg->dead && last != CG_NONE && cg->code[last] == OP_COPY &&
        last + 3 == cg->len && (cg->cap - cg->len >= 2 || cg_grow(cg, 2))) {
        cg->code[last] = OP_COPY2;
        cg->code[cg->len++] = dst;
        cg->code[cg->len++] = src;
        return;
    }
    cg_emit2(cg, type == VT_V128 ? OP_COPY128 : OP_COPY, dst, src);
}

void cg_materialize(codegen *cg, cg_value *vals, uint32_t n) {
    if (cg->dead)
        return;
    for (uint32_t i = 0; i < n; i++) {
        cg_value *val = &vals[i];
        if (val->loc == val->home)
            continue;
        emit_copy(cg, val->type, val->home, val->loc);
        cg_note_pop(cg, val);
        val->loc = val->home;
    }
}

void cg_flush_local_refs(codegen *cg, cg_value *stack, uint32_t height) {
    if (cg->dead)
        return; /* the refs stay counted until they are popped */
    for (uint32_t i = cg->min_ref; cg->nrefs && i < height; i++)
        if (cg_is_local(cg, stack[i].loc))
            cg_materialize(cg, &stack[i], 1);
    cg->min_ref = height;
}

/* Whether loc is a pool entry holding zero bits (two entries for a v128). */
static bool is_zero_const(const codegen *cg, uint32_t loc, uint8_t type) {
    uint32_t k = loc & ~CG_TAG_MASK;
    return (loc & CG_TAG_MASK) == CG_CONST && cg->consts[k] == 0 && (type != VT_V128 || cg->consts[k + 1] == 0);
}

uint32_t cg_local_set(codegen *cg, cg_value *stack, uint32_t height, const cg_value *val, uint32_t slot) {
    if (cg->dead)
        return slot;
    if (cg->local_refs[slot])
        cg_flush_local_refs(cg, stack, height); /* F2; clears result_word if it copies */
    if (val->loc == slot)
        return slot; /* local.get x; local.set x */
    if (cg->entry_code) { /* F7 */
        bool fresh = slot >= cg->nparam_slots && !cg->local_written[slot];
        cg->local_written[slot] = 1;
        if (fresh && is_zero_const(cg, val->loc, val->type))
            return val->loc;
    }
    if (val->loc == val->home && cg->result_word != CG_NONE && cg->code[cg->result_word] == val->home) {
        cg->code[cg->result_word] = slot; /* F6 */
        cg->result_word = CG_NONE;
        return slot;
    }
    emit_copy(cg, val->type, slot, val->loc);
    return val->loc; /* F8 */
}

void cg_move_values(codegen *cg, uint32_t dst, const cg_value *vals, uint32_t n) {
    if (cg->dead)
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (vals[i].loc != dst)
            emit_copy(cg, vals[i].type, dst, vals[i].loc);
        dst += valtype_slots(vals[i].type);
    }
}

/* RETURN, absorbing an i32.add right before it (F10). */
static void emit_return(codegen *cg) {
    uint32_t last = cg->last_instr;
    if (!cg->dead && last != CG_NONE && last + 4 == cg->len && cg->code[last] == OP_I32_ADD) {
        cg->code[last] = OP_ADD_RETURN;
        cg->result_word = CG_NONE;
        return;
    }
    cg_emit(cg, OP_RETURN, 0);
}

uint32_t cg_result_slot(const codegen *cg, uint32_t i) {
    return i < cg->nlocal_slots ? i : CG_RESULT | i;
}

/* The lowest final slot a local or pool location can get: the pool is
 * placed (and shrunk) only when the function ends. */
static uint32_t lowest_slot(const codegen *cg, uint32_t loc) {
    return is_pool(loc) ? cg->nlocal_slots : final_slot(cg, loc);
}

void cg_return(codegen *cg, const cg_value *vals, uint32_t n) {
    if (cg->dead)
        return;
    uint32_t slots = 0;
    for (uint32_t i = 0; i < n; i++)
        slots += valtype_slots(vals[i].type);
    uint32_t rw = cg->result_word;
    if (n == 1 && vals[0].loc == vals[0].home && rw != CG_NONE && cg->code[rw] == vals[0].home) {
        cg->code[rw] = cg_result_slot(cg, 0); /* F6: compute the result in place */
        emit_return(cg);
        end_chain(cg);
        return;
    }
    /* F5: when writing a result could clobber another value's location,
     * every value goes home first. Only the code changes, never `vals`: a
     * br_if's fall-through still finds its values where they were. */
    bool via_home = false;
    for (uint32_t i = 0; n > 1 && i < n; i++)
        via_home = via_home || (vals[i].loc != vals[i].home && lowest_slot(cg, vals[i].loc) < slots);
    for (uint32_t i = 0; via_home && i < n; i++)
        if (vals[i].loc != vals[i].home)
            emit_copy(cg, vals[i].type, vals[i].home, vals[i].loc);
    /* A value already in its result slot needs no copy; where a home or a
     * pool entry will end up is not known yet, so those are always copied. */
    for (uint32_t i = 0, dst = 0; i < n; dst += valtype_slots(vals[i].type), i++) {
        uint32_t src = via_home ? vals[i].home : vals[i].loc;
        if (src == vals[i].home || is_pool(src) || final_slot(cg, src) != dst)
            emit_copy(cg, vals[i].type, cg_result_slot(cg, dst), src);
    }
    emit_return(cg);
    end_chain(cg);
}

/* ---- chains (F9) ---- */

typedef struct {
    uint16_t op, first, second;
    bool right; /* CHAIN_R: the first's result is the second's right operand */
} chain_row;

static const chain_row chain_rows[] = {
#define CHAIN(NAME, FIRST, SECOND, TYPE) {OP_##NAME, OP_##FIRST, OP_##SECOND, false},
#define CHAIN_R(NAME, FIRST, SECOND, TYPE) {OP_##NAME, OP_##FIRST, OP_##SECOND, true},
#include "opcodes.def"
};

/* Integer operations whose operands may swap: a chained value on the right
 * uses the CHAIN row of the other side. */
static const bool int_commutes[OP__COUNT] = {
    [OP_I32_ADD] = true, [OP_I32_MUL] = true, [OP_I32_AND] = true, [OP_I32_OR] = true,
    [OP_I32_XOR] = true, [OP_I64_ADD] = true, [OP_I64_MUL] = true, [OP_I64_AND] = true,
    [OP_I64_OR] = true,  [OP_I64_XOR] = true,
};

/* Lookup in O(1) while compiling: every opcode that occurs in a chain row
 * gets a small index (chain_index, 0 = none), and chain_table[right][first]
 * [second] is the row's opcode (0 = no such chain). Built once. */
enum { CHAIN_MAX_OPS = 64 };
static uint8_t chain_index[OP__COUNT];
static uint16_t chain_table[2][CHAIN_MAX_OPS][CHAIN_MAX_OPS];
static pthread_once_t chain_once = PTHREAD_ONCE_INIT;

static uint8_t chain_index_of(uint32_t op, uint8_t *next) {
    if (!chain_index[op] && *next < CHAIN_MAX_OPS)
        chain_index[op] = (*next)++;
    return chain_index[op];
}

static void build_chain_table(void) {
    uint8_t next = 1;
    for (size_t i = 0; i < sizeof chain_rows / sizeof chain_rows[0]; i++) {
        const chain_row *r = &chain_rows[i];
        uint8_t f = chain_index_of(r->first, &next), s = chain_index_of(r->second, &next);
        if (f && s)
            chain_table[r->right][f][s] = r->op;
    }
}

/* CHAIN1 rows (a unary first), found by linear search: they are few. */
static const chain_row chain1_rows[] = {
#define CHAIN1(NAME, FIRST, SECOND, TYPE) {OP_##NAME, OP_##FIRST, OP_##SECOND, false},
#include "opcodes.def"
};

static uint32_t chain1_op(uint32_t first, uint32_t second) {
    for (size_t i = 0; i < sizeof chain1_rows / sizeof chain1_rows[0]; i++)
        if (chain1_rows[i].first == first && chain1_rows[i].second == second)
            return chain1_rows[i].op;
    return 0;
}

/* The chain for `first` feeding `second` on that side, or 0. */
static uint32_t chain_op(uint32_t first, uint32_t second, bool right) {
    uint8_t f = chain_index[first], s = chain_index[second];
    return f && s ? chain_table[right][f][s] : 0;
}

/* ---- a load feeding an operation (F11) ---- */

/* Per NUMERIC row: the LOAD row whose value it may take, and its LOAD_OP
 * and LOAD_SUM_OP forms (0 = none). */
static const uint16_t load_op_load[OP__COUNT] = {
#define LOAD_OP(NAME, LOAD, OP, TYPE, ALIGN_LOG2) [OP_##OP] = OP_##LOAD,
#define SIMD_LOAD_OP(NAME, OP, FUNC) [OP_##OP] = OP_V128_LOAD,
#include "opcodes.def"
};
static const uint16_t load_op_plain[OP__COUNT] = {
#define LOAD_OP(NAME, LOAD, OP, TYPE, ALIGN_LOG2) [OP_##OP] = OP_##NAME,
#define SIMD_LOAD_OP(NAME, OP, FUNC) [OP_##OP] = OP_##NAME,
#include "opcodes.def"
};
static const uint16_t load_op_sum[OP__COUNT] = {
#define LOAD_SUM_OP(NAME, LOAD, OP, TYPE, ALIGN_LOG2) [OP_##OP] = OP_##NAME,
#include "opcodes.def"
};

static const uint16_t load_op_m64[OP__COUNT] = {
#define LOAD_OP_M64(NAME, LOAD, OP, TYPE, ALIGN_LOG2) [OP_##OP] = OP_##NAME,
#include "opcodes.def"
};
static const uint16_t load_op_sum_m64[OP__COUNT] = {
#define LOAD_SUM_OP_M64(NAME, LOAD, OP, TYPE, ALIGN_LOG2) [OP_##OP] = OP_##NAME,
#include "opcodes.def"
};
/* The LOAD_M64 row of each LOAD row. */
static const uint16_t m64_form[OP__COUNT] = {
#define LOAD_M64(NAME, BASE, TYPE, ALIGN_LOG2) [OP_##BASE] = OP_##NAME,
#include "opcodes.def"
};

/* The LOAD_SUM_M64/STORE_SUM_M64 form of each LOAD_M64/STORE_M64 row that has one. */
static const uint16_t sum_m64_form[OP__COUNT] = {
#define LOAD_SUM_M64(NAME, BASE, TYPE, ALIGN_LOG2) [OP_##BASE##_M64] = OP_##NAME,
#define STORE_SUM_M64(NAME, BASE, TYPE, ALIGN_LOG2) [OP_##BASE##_M64] = OP_##NAME,
#include "opcodes.def"
};

/* The LOAD_SUM/STORE_SUM form of each LOAD/STORE row that has one. */
static const uint16_t sum_form[OP__COUNT] = {
#define LOAD_SUM(NAME, BASE, TYPE, ALIGN_LOG2) [OP_##BASE] = OP_##NAME,
#define STORE_SUM(NAME, BASE, TYPE, ALIGN_LOG2) [OP_##BASE] = OP_##NAME,
#define SIMD_LOAD_SUM(NAME, BASE, FUNC, ALIGN_LOG2) [OP_##BASE] = OP_##NAME,
#define SIMD_STORE_SUM(NAME, BASE) [OP_##BASE] = OP_##NAME,
#include "opcodes.def"
};

/* Replaces the last instruction, a load whose result (home `t`) is op's
 * operand, by op's LOAD_OP/LOAD_SUM_OP/LOAD_OP_M64 form reading x; false
 * when there is none. The fused instruction keeps the load's module offset,
 * as it traps where the load would. */
static bool fuse_load(codegen *cg, uint32_t op, uint32_t dst, uint32_t x) {
    uint32_t rw = cg->result_word, load = cg->code[rw - 1];
    bool plain = load == load_op_load[op] && load_op_plain[op];
    bool sum = !plain && load_op_load[op] && load == sum_form[load_op_load[op]] && load_op_sum[op];
    uint32_t m64_load = load_op_load[op] ? m64_form[load_op_load[op]] : 0;
    bool m64 = !plain && !sum && load_op_m64[op] && load == m64_load;
    bool sum_m64 = !plain && !sum && !m64 && load_op_sum_m64[op] && load == sum_m64_form[m64_load];
    uint32_t fused = plain ? load_op_plain[op] : sum ? load_op_sum[op] : m64 ? load_op_m64[op] : load_op_sum_m64[op];
    if (!plain && !sum && !m64 && !sum_m64)
        return false;
    /* the load's words after its result: addr, offset (plain), a, b, offset
     * (sum), addr, offset low, offset high (m64) or a, b, offset low,
     * offset high (sum_m64) */
    uint32_t n = plain ? 4 : sum_m64 ? 6 : 5;
    uint32_t ops[6] = {dst, x, cg->code[rw + 1], cg->code[rw + 2], n > 4 ? cg->code[rw + 3] : 0,
                       n > 5 ? cg->code[rw + 4] : 0};
    uint32_t here = cg->wasm_offset;
    cg->wasm_offset = cg->srcmap[2 * (cg->nsrc - 1) + 1];
    unemit_last(cg, rw - 1);
    cg_emit_result(cg, fused, n, ops);
    cg->wasm_offset = here;
    return true;
}

/* F13, F14: the result slot of the instruction before the last when it is
 * the LOAD row `load` into an operand-stack home (read by the last one
 * only, and nothing in between), else CG_NONE. */
static uint32_t loaded_temp(const codegen *cg, uint32_t load) {
    uint32_t ld = cg->prev_instr;
    if (ld == CG_NONE || ld + 4 != cg->last_instr || cg->code[ld] != load)
        return CG_NONE;
    uint32_t t = cg->code[ld + 1];
    return t < cg->nlocal_slots || (t & CG_TAG_MASK) ? CG_NONE : t;
}

/* F13, F14: replaces the last two instructions by `op` with the n operand
 * words, at the module offset of the one that can trap (`trapping`: 2 the
 * one before the last, 1 the last). */
static void replace_last_two(codegen *cg, uint32_t op, const uint32_t *words, uint32_t n, uint32_t trapping) {
    uint32_t here = cg->wasm_offset, ld = cg->prev_instr;
    cg->wasm_offset = cg->srcmap[2 * (cg->nsrc - trapping) + 1];
    unemit_last(cg, cg->last_instr);
    unemit_last(cg, ld);
    cg_emit_result(cg, op, n, words);
    cg->wasm_offset = here;
}

/* LOAD_CHAIN rows (F14): the CHAIN row `chain` with its a loaded by LOAD. */
typedef struct {
    uint16_t op, chain, load;
} load_chain_row;

static const load_chain_row load_chain_rows[] = {
#define LOAD_CHAIN(NAME, CHAIN, LOAD, FIRST, SECOND, TYPE, ALIGN_LOG2) {OP_##NAME, OP_##CHAIN, OP_##LOAD},
#define LOAD_CHAIN_R(NAME, CHAIN, LOAD, FIRST, SECOND, TYPE, ALIGN_LOG2) {OP_##NAME, OP_##CHAIN, OP_##LOAD},
#include "opcodes.def"
};

/* F14: ops (dst, a, b, c) is the chain about to replace the last
 * instruction. When the one before it loaded a into an operand-stack home
 * read only there, both become the LOAD_CHAIN row, which keeps the load's
 * module offset (only the load can trap). */
static bool fuse_load_chain(codegen *cg, uint32_t chain, const uint32_t *ops) {
    for (size_t i = 0; i < sizeof load_chain_rows / sizeof load_chain_rows[0]; i++) {
        const load_chain_row *row = &load_chain_rows[i];
        if (row->chain != chain)
            continue;
        uint32_t t = loaded_temp(cg, row->load), ld = cg->prev_instr;
        if (t == CG_NONE || ops[1] != t || ops[2] == t || ops[3] == t)
            return false;
        uint32_t words[5] = {ops[0], cg->code[ld + 2], cg->code[ld + 3], ops[2], ops[3]};
        replace_last_two(cg, row->op, words, 5, 2);
        return true;
    }
    return false;
}

void cg_binary(codegen *cg, uint32_t op, const cg_value *a, const cg_value *b) {
    if (cg->dead)
        return;
    pthread_once(&chain_once, build_chain_table);
    uint32_t rw = cg->result_word;
    if (rw != CG_NONE && chain_index[op]) {
        uint32_t t = cg->code[rw], first = cg->code[rw - 1];
        bool left = a->loc == a->home && a->home == t;
        bool right = !left && b->loc == b->home && b->home == t;
        uint32_t chain = 0, c = 0;
        if (left) {
            chain = chain_op(first, op, false), c = b->loc;
        } else if (right) {
            chain = chain_op(first, op, true), c = a->loc;
            if (!chain && int_commutes[op])
                chain = chain_op(first, op, false);
        }
        if (chain) {
            uint32_t ops[4] = {a->home, cg->code[rw + 1], cg->code[rw + 2], c};
            if (fuse_load_chain(cg, chain, ops)) /* F14 */
                return;
            unemit_last(cg, rw - 1);
            cg_emit_result(cg, chain, 4, ops);
            return;
        }
    }
    if (rw != CG_NONE && int_commutes[op]) { /* F9, a unary first */
        uint32_t t = cg->code[rw];
        bool left = a->loc == a->home && a->home == t;
        bool right = !left && b->loc == b->home && b->home == t;
        uint32_t chain = left || right ? chain1_op(cg->code[rw - 1], op) : 0;
        if (chain) {
            uint32_t ops[3] = {a->home, cg->code[rw + 1], left ? b->loc : a->loc};
            unemit_last(cg, rw - 1);
            cg_emit_result(cg, chain, 3, ops);
            return;
        }
    }
    if (rw != CG_NONE && load_op_load[op]) { /* F11 */
        uint32_t t = cg->code[rw];
        if (b->loc == b->home && b->home == t && fuse_load(cg, op, a->home, a->loc))
            return;
        if (int_commutes[op] && a->loc == a->home && a->home == t && fuse_load(cg, op, a->home, b->loc))
            return;
    }
    uint32_t ops[3] = {a->home, a->loc, b->loc};
    cg_emit_result(cg, op, 3, ops);
}

/* SIMD_CHAIN_UNARY rows (F9 for two unary operations), found by linear
 * search: they are few. */
static const chain_row unary_chain_rows[] = {
#define SIMD_CHAIN_UNARY(NAME, FIRST, SECOND, FUNC1, FUNC2) {OP_##NAME, OP_##FIRST, OP_##SECOND, false},
#include "opcodes.def"
};

void cg_unary(codegen *cg, uint32_t op, const cg_value *a) {
    if (cg->dead)
        return;
    uint32_t rw = cg->result_word;
    if (rw != CG_NONE && a->loc == a->home && cg->code[rw] == a->home) {
        for (size_t i = 0; i < sizeof unary_chain_rows / sizeof unary_chain_rows[0]; i++) {
            const chain_row *row = &unary_chain_rows[i];
            if (row->first == cg->code[rw - 1] && row->second == op) {
                uint32_t ops[2] = {a->home, cg->code[rw + 1]};
                unemit_last(cg, rw - 1);
                cg_emit_result(cg, row->op, 2, ops);
                return;
            }
        }
    }
    uint32_t ops[2] = {a->home, a->loc};
    cg_emit_result(cg, op, 2, ops);
}

/* Whether `addr` was computed by the last instruction, an i32.add that can
 * fold into the access `op` (F6); then removes that add, leaving its two
 * operands in sum[]. */
static bool take_address_sum(codegen *cg, uint32_t op, const cg_value *addr, uint32_t sum[2]) {
    uint32_t rw = cg->result_word, add = sum_m64_form[op] ? OP_I64_ADD : OP_I32_ADD;
    if (!(sum_form[op] || sum_m64_form[op]) || addr->loc != addr->home || rw == CG_NONE ||
        cg->code[rw] != addr->home || cg->code[rw - 1] != add)
        return false;
    sum[0] = cg->code[rw + 1];
    sum[1] = cg->code[rw + 2];
    unemit_last(cg, rw - 1);
    return true;
}

void cg_load(codegen *cg, uint32_t op, const cg_value *addr, uint32_t offset) {
    if (cg->dead)
        return;
    uint32_t sum[2];
    if (take_address_sum(cg, op, addr, sum)) {
        uint32_t ops[4] = {addr->home, sum[0], sum[1], offset};
        cg_emit_result(cg, sum_form[op], 4, ops);
    } else {
        uint32_t ops[3] = {addr->home, addr->loc, offset};
        cg_emit_result(cg, op, 3, ops);
    }
}

/* A LOAD_M64 row `op` (memory 0 a memory64), the i64.add of its address
 * folded in where its LOAD_SUM_M64 form can take it. */
void cg_load_m64(codegen *cg, uint32_t op, const cg_value *addr, uint64_t offset) {
    if (cg->dead)
        return;
    uint32_t sum[2];
    if (take_address_sum(cg, op, addr, sum)) {
        uint32_t ops[5] = {addr->home, sum[0], sum[1], (uint32_t)offset, (uint32_t)(offset >> 32)};
        cg_emit_result(cg, sum_m64_form[op], 5, ops);
    } else {
        uint32_t ops[4] = {addr->home, addr->loc, (uint32_t)offset, (uint32_t)(offset >> 32)};
        cg_emit_result(cg, op, 4, ops);
    }
}

/* A STORE_M64 row `op`, the same way. */
void cg_store_m64(codegen *cg, uint32_t op, const cg_value *addr, const cg_value *value, uint64_t offset) {
    if (cg->dead)
        return;
    uint32_t sum[2];
    bool summed = take_address_sum(cg, op, addr, sum);
    uint32_t *w = cg_emit(cg, summed ? sum_m64_form[op] : op, summed ? 5 : 4);
    if (!w)
        return;
    if (summed)
        w[0] = sum[0], w[1] = sum[1], w[2] = value->loc, w[3] = (uint32_t)offset, w[4] = (uint32_t)(offset >> 32);
    else
        w[0] = addr->loc, w[1] = value->loc, w[2] = (uint32_t)offset, w[3] = (uint32_t)(offset >> 32);
}

/* The store row STORE of the value of row OP, found by linear search:
 * there are few, and only a store right after such an OP looks (F12). */
typedef struct {
    uint16_t op, store, producer;
} store_of_row;

static const store_of_row store_of_rows[] = {
#define STORE_OF(NAME, STORE, OP, TYPE, ALIGN_LOG2) {OP_##NAME, OP_##STORE, OP_##OP},
#define STORE_OF_CHAIN(NAME, STORE, CHAIN, FIRST, SECOND, TYPE, ALIGN_LOG2) {OP_##NAME, OP_##STORE, OP_##CHAIN},
#define STORE_OF_CHAIN_R(NAME, STORE, CHAIN, FIRST, SECOND, TYPE, ALIGN_LOG2) {OP_##NAME, OP_##STORE, OP_##CHAIN},
#define SIMD_STORE_OF(NAME, OP, FUNC) {OP_##NAME, OP_V128_STORE, OP_##OP},
#include "opcodes.def"
};

static uint32_t store_of(uint32_t store, uint32_t producer) {
    for (size_t i = 0; i < sizeof store_of_rows / sizeof store_of_rows[0]; i++)
        if (store_of_rows[i].store == store && store_of_rows[i].producer == producer)
            return store_of_rows[i].op;
    return 0;
}

/* RMW rows (F13): the STORE_OF row `of`, the LOAD row that loaded its
 * operand word `pos` (1 = a, 3 = a chain's c) from the address it stores to. */
typedef struct {
    uint16_t op, of, load, pos;
} rmw_row;

static const rmw_row rmw_rows[] = {
#define RMW(NAME, OF, LOAD, OP, TYPE, ALIGN_LOG2) {OP_##NAME, OP_##OF, OP_##LOAD, 1},
#define RMW_CHAIN_R(NAME, OF, LOAD, FIRST, SECOND, TYPE, ALIGN_LOG2) {OP_##NAME, OP_##OF, OP_##LOAD, 3},
#include "opcodes.def"
};

/* F13: ops (n words: addr, operands, offset) is the STORE_OF row `of` about
 * to replace the last instruction. When the one before it is the load of
 * one of those operands, from ops' address and offset, into an operand-stack
 * home read only there, both become the RMW row, which keeps the load's
 * module offset (only the load can trap). */
static bool fuse_rmw(codegen *cg, uint32_t of, const uint32_t *ops, uint32_t n) {
    for (size_t i = 0; i < sizeof rmw_rows / sizeof rmw_rows[0]; i++) {
        const rmw_row *row = &rmw_rows[i];
        if (row->of != of)
            continue;
        uint32_t t = loaded_temp(cg, row->load), ld = cg->prev_instr;
        if (t == CG_NONE || cg->code[ld + 2] != ops[0] || cg->code[ld + 3] != ops[n - 1] ||
            ops[row->pos] != t || t == ops[0])
            return false;
        for (uint32_t k = 1; k + 1 < n; k++)
            if (k != row->pos && ops[k] == t)
                return false;
        uint32_t words[4], m = 0;
        for (uint32_t k = 0; k < n; k++)
            if (k != row->pos)
                words[m++] = ops[k];
        replace_last_two(cg, row->op, words, m, 2);
        cg->result_word = CG_NONE; /* a store: no result to retarget */
        return true;
    }
    return false;
}

/* RMW_CHAIN rows (F13): FIRST, then the LOAD_OP row `load_op` of its result,
 * stored back with STORE. */
typedef struct {
    uint16_t op, load_op, first, store;
} rmw_chain_row;

static const rmw_chain_row rmw_chain_rows[] = {
#define RMW_CHAIN(NAME, LOAD_OP, LOAD, FIRST, SECOND, TYPE, ALIGN_LOG2) \
    {OP_##NAME, OP_##LOAD_OP, OP_##FIRST, OP_##TYPE##_STORE},
#include "opcodes.def"
};

/* F13 for a LOAD_OP row: the store `store` at addr + offset of the last
 * instruction's value, a LOAD_OP row loading from there whose x the one
 * before computed (an RMW_CHAIN row's FIRST) into an operand-stack home:
 * the three become the RMW_CHAIN row, at the LOAD_OP's module offset. */
static bool fuse_rmw_chain(codegen *cg, uint32_t store, uint32_t addr, uint32_t offset) {
    uint32_t lo = cg->last_instr, first = cg->prev_instr;
    for (size_t i = 0; i < sizeof rmw_chain_rows / sizeof rmw_chain_rows[0]; i++) {
        const rmw_chain_row *row = &rmw_chain_rows[i];
        if (lo == CG_NONE || row->load_op != cg->code[lo] || row->store != store)
            continue;
        if (first == CG_NONE || first + 4 != lo || cg->code[first] != row->first)
            return false;
        uint32_t x = cg->code[first + 1];
        if (cg->code[lo + 2] != x || cg->code[lo + 3] != addr || cg->code[lo + 4] != offset || x == addr ||
            x < cg->nlocal_slots || (x & CG_TAG_MASK))
            return false;
        uint32_t words[4] = {addr, cg->code[first + 2], cg->code[first + 3], offset};
        replace_last_two(cg, row->op, words, 4, 1);
        cg->result_word = CG_NONE; /* a store: no result to retarget */
        return true;
    }
    return false;
}

void cg_store(codegen *cg, uint32_t op, const cg_value *addr, const cg_value *value, uint32_t offset) {
    if (cg->dead)
        return;
    uint32_t sum[2], rw = cg->result_word;
    if (take_address_sum(cg, op, addr, sum)) {
        cg_emit4(cg, sum_form[op], sum[0], sum[1], value->loc, offset);
        return;
    }
    if (rw != CG_NONE && value->loc == value->home && cg->code[rw] == value->home) {
        uint32_t fused = store_of(op, cg->code[rw - 1]); /* F12 */
        if (fused) {
            /* addr, the producer's operands but its result slot, offset */
            uint32_t nsrc = (uint32_t)strlen(operand_letters[cg->code[rw - 1]]) - 1, ops[5];
            ops[0] = addr->loc;
            memcpy(ops + 1, cg->code + rw + 1, sizeof *ops * nsrc);
            ops[nsrc + 1] = offset;
            if (fuse_rmw(cg, fused, ops, nsrc + 2)) /* F13 */
                return;
            unemit_last(cg, rw - 1);
            uint32_t *w = cg_emit(cg, fused, nsrc + 2);
            if (w)
                memcpy(w, ops, sizeof *w * (nsrc + 2));
            return;
        }
        if (fuse_rmw_chain(cg, op, addr->loc, offset)) /* F13 */
            return;
    }
    cg_emit3(cg, op, addr->loc, value->loc, offset);
}

/* Conditional jumps that an i32 comparison folds into: the jump taken when
 * the comparison is true and when it is false, and whether the operands
 * swap (a > b is b < a). eqz folds into JUMP_UNLESS / JUMP_IF. */
typedef struct {
    uint16_t if_true, if_false;
    bool swap, unary;
} fused_jump;

static const fused_jump fused_jumps[OP__COUNT] = {
    [OP_I32_EQZ] = {OP_JUMP_UNLESS, OP_JUMP_IF, false, true},
    [OP_I32_EQ] = {OP_JUMP_IF_EQ, OP_JUMP_IF_NE, false, false},
    [OP_I32_NE] = {OP_JUMP_IF_NE, OP_JUMP_IF_EQ, false, false},
    [OP_I32_LT_S] = {OP_JUMP_IF_LT_S, OP_JUMP_IF_GE_S, false, false},
    [OP_I32_LT_U] = {OP_JUMP_IF_LT_U, OP_JUMP_IF_GE_U, false, false},
    [OP_I32_GE_S] = {OP_JUMP_IF_GE_S, OP_JUMP_IF_LT_S, false, false},
    [OP_I32_GE_U] = {OP_JUMP_IF_GE_U, OP_JUMP_IF_LT_U, false, false},
    [OP_I32_GT_S] = {OP_JUMP_IF_LT_S, OP_JUMP_IF_GE_S, true, false},
    [OP_I32_GT_U] = {OP_JUMP_IF_LT_U, OP_JUMP_IF_GE_U, true, false},
    [OP_I32_LE_S] = {OP_JUMP_IF_GE_S, OP_JUMP_IF_LT_S, true, false},
    [OP_I32_LE_U] = {OP_JUMP_IF_GE_U, OP_JUMP_IF_LT_U, true, false},
};

/* The conditional jump just emitted, whose target word is at `word`: the
 * chain ends, and the code after it is a new chain that the jump pays for
 * when not taken (its second charge word). */
static void finish_cond_jump(codegen *cg, uint32_t word, cg_label *l) {
    set_target(cg, word, l);
    end_chain(cg);
    new_chain(cg);
    add_fixup(cg, word + 2, cg->chain, cg->count);
}

/* The ADD_<jump> form of each conditional jump (F10). */
static const uint16_t add_jump_form[OP__COUNT] = {
    [OP_JUMP_IF] = OP_ADD_JUMP_IF,           [OP_JUMP_UNLESS] = OP_ADD_JUMP_UNLESS,
    [OP_JUMP_IF_EQ] = OP_ADD_JUMP_IF_EQ,     [OP_JUMP_IF_NE] = OP_ADD_JUMP_IF_NE,
    [OP_JUMP_IF_LT_S] = OP_ADD_JUMP_IF_LT_S, [OP_JUMP_IF_LT_U] = OP_ADD_JUMP_IF_LT_U,
    [OP_JUMP_IF_GE_S] = OP_ADD_JUMP_IF_GE_S, [OP_JUMP_IF_GE_U] = OP_ADD_JUMP_IF_GE_U,
};

/* The COPY_<jump> form of each conditional jump (F10). */
static const uint16_t copy_jump_form[OP__COUNT] = {
    [OP_JUMP_IF] = OP_COPY_JUMP_IF,           [OP_JUMP_UNLESS] = OP_COPY_JUMP_UNLESS,
    [OP_JUMP_IF_EQ] = OP_COPY_JUMP_IF_EQ,     [OP_JUMP_IF_NE] = OP_COPY_JUMP_IF_NE,
    [OP_JUMP_IF_LT_S] = OP_COPY_JUMP_IF_LT_S, [OP_JUMP_IF_LT_U] = OP_COPY_JUMP_IF_LT_U,
    [OP_JUMP_IF_GE_S] = OP_COPY_JUMP_IF_GE_S, [OP_JUMP_IF_GE_U] = OP_COPY_JUMP_IF_GE_U,
};

/* The LOAD_JUMP rows: a load (LOAD or LOAD_SUM row) joined to a jump. */
typedef struct {
    uint16_t op, load, jump;
} load_jump_row;

static const load_jump_row load_jump_rows[] = {
#define LOAD_JUMP(NAME, LOAD, BASE, JUMP, ALIGN_LOG2, OPERANDS) {OP_##NAME, OP_##LOAD, OP_##JUMP},
#include "opcodes.def"
};

static uint32_t load_jump_form(uint32_t load, uint32_t jump) {
    for (size_t i = 0; i < sizeof load_jump_rows / sizeof load_jump_rows[0]; i++)
        if (load_jump_rows[i].load == load && load_jump_rows[i].jump == jump)
            return load_jump_rows[i].op;
    return 0;
}

/* Emits conditional jump `op` with its `nslots` slot operands, absorbing
 * an i32.add, a COPY or a load just before it (F10); returns where its
 * target word is, or CG_NONE when dead. A load keeps its module offset,
 * as the fused instruction traps where it would. */
static uint32_t emit_cond_jump(codegen *cg, uint32_t op, const uint32_t *slots, uint32_t nslots) {
    uint32_t last = cg->last_instr, prefix[4], nprefix = 0, fused = 0;
    if (last != CG_NONE) {
        uint32_t words = (uint32_t)strlen(operand_letters[cg->code[last]]);
        if (last + words + 1 == cg->len) {
            if (cg->code[last] == OP_I32_ADD)
                fused = add_jump_form[op];
            else if (cg->code[last] == OP_COPY)
                fused = copy_jump_form[op];
            else
                fused = load_jump_form(cg->code[last], op);
            nprefix = fused ? words : 0;
        }
    }
    uint32_t here = cg->wasm_offset;
    if (fused) {
        memcpy(prefix, cg->code + last + 1, sizeof *prefix * nprefix);
        cg->wasm_offset = cg->srcmap[2 * (cg->nsrc - 1) + 1];
        unemit_last(cg, last);
        op = fused;
    }
    uint32_t *w = cg_emit(cg, op, nprefix + nslots + 3);
    cg->wasm_offset = here;
    if (!w)
        return CG_NONE;
    memcpy(w, prefix, sizeof *w * nprefix);
    memcpy(w + nprefix, slots, sizeof *w * nslots);
    return (uint32_t)(w + nprefix + nslots - cg->code);
}

void cg_jump_cond(codegen *cg, bool when_true, const cg_value *cond, cg_label *l) {
    if (cg->dead)
        return;
    uint32_t rw = cg->result_word;
    if (cond->loc == cond->home && rw != CG_NONE && cg->code[rw] == cond->home) {
        const fused_jump *fj = &fused_jumps[cg->code[rw - 1]];
        if (fj->if_true) { /* F6: replace the comparison by the jump */
            uint32_t a = cg->code[rw + 1], b = fj->unary ? 0 : cg->code[rw + 2];
            uint32_t op = when_true ? fj->if_true : fj->if_false;
            uint32_t slots[2] = {fj->swap ? b : a, fj->swap ? a : b};
            unemit_last(cg, rw - 1);
            uint32_t word = emit_cond_jump(cg, op, slots, fj->unary ? 1 : 2);
            if (word != CG_NONE)
                finish_cond_jump(cg, word, l);
            return;
        }
    }
    uint32_t word = emit_cond_jump(cg, when_true ? OP_JUMP_IF : OP_JUMP_UNLESS, &cond->loc, 1);
    if (word != CG_NONE)
        finish_cond_jump(cg, word, l);
}

/* ---- br_table ------------------------------------------------------------------------ */

static bool reserve_scratch(codegen *cg, uint32_t depth, uint32_t ntargets) {
    uint32_t old = cg->pad_cap;
    void *pads = cg->pad_at_depth, *pending = cg->pending;
    uint32_t pending_words = cg->pending_cap * 2;
    bool ok = grow_array(&pads, &cg->pad_cap, depth, sizeof(uint32_t), 16);
    cg->pad_at_depth = pads;
    for (uint32_t i = old; ok && i < cg->pad_cap; i++)
        cg->pad_at_depth[i] = CG_NONE;
    if (ok) {
        ok = grow_array(&pending, &pending_words, (size_t)ntargets * 2, sizeof(uint32_t), 32);
        cg->pending = pending;
        cg->pending_cap = pending_words / 2;
    }
    return ok || cg_oom(cg);
}

/* Copies n values (types given) from their homes at src on to the homes
 * from dst on, or to the final slots from 0 on (to_results). */
static void copy_home_values(codegen *cg, uint32_t dst, uint32_t src, const uint8_t *types, uint32_t n,
                             bool to_results) {
    for (uint32_t i = 0; i < n; i++) {
        if (to_results)
            emit_copy(cg, types[i], cg_result_slot(cg, dst), src);
        else if (dst != src)
            emit_copy(cg, types[i], dst, src);
        dst += valtype_slots(types[i]);
        src += valtype_slots(types[i]);
    }
}

/* Emits the landing pad for branches to `f`: the branch values move from
 * their homes to the frame's height, then a jump (or, for the function, a
 * return: homes lie above the results' slots, F5). */
static void emit_pad(codegen *cg, ctrl_frame *f, uint32_t src, uint32_t base) {
    uint32_t n, slots;
    const uint8_t *types = ctrl_label_types(f, &n, &slots);
    if (f->kind == CTRL_FUNC) {
        copy_home_values(cg, 0, src, types, n, true);
        emit_return(cg);
    } else {
        copy_home_values(cg, base + f->slot_height, src, types, n, false);
        cg_jump(cg, &f->label);
    }
}

void cg_br_table(codegen *cg, uint32_t idx, const uint32_t *targets, uint32_t ntargets,
                 ctrl_frame *ctrl, uint32_t depth, uint32_t src, uint32_t base) {
    if (cg->dead || (uint64_t)ntargets * 2 + 2 > UINT32_MAX - 1)
        return;
    uint32_t *w = cg_emit(cg, OP_BR_TABLE, 2 + 2 * ntargets);
    if (!w || !reserve_scratch(cg, depth, ntargets))
        return;
    w[0] = idx;
    w[1] = ntargets - 1; /* the default is not counted */
    uint32_t first = (uint32_t)(w + 2 - cg->code), npending = 0;
    for (uint32_t i = 0; i < ntargets; i++) {
        ctrl_frame *f = &ctrl[depth - 1 - targets[i]];
        uint32_t n, slots;
        ctrl_label_types(f, &n, &slots);
        if (f->kind != CTRL_FUNC && (slots == 0 || base + f->slot_height == src)) {
            set_target(cg, first + 2 * i, &f->label);
        } else {
            cg->pending[2 * npending] = first + 2 * i;
            cg->pending[2 * npending + 1] = targets[i];
            npending++;
        }
    }
    end_chain(cg);
    /* One pad per distinct target depth, right after the table. A pad is
     * free to enter (no Wasm instruction of its own); its JUMP pays. */
    for (uint32_t k = 0; k < npending; k++) {
        uint32_t word = cg->pending[2 * k], d = cg->pending[2 * k + 1];
        if (cg->pad_at_depth[d] == CG_NONE) {
            cg->pad_at_depth[d] = cg->len;
            emit_pad(cg, &ctrl[depth - 1 - d], src, base);
        }
        cg->code[word] = cg->pad_at_depth[d];
        cg->code[word + 1] = 0;
    }
    for (uint32_t k = 0; k < npending; k++)
        cg->pad_at_depth[cg->pending[2 * k + 1]] = CG_NONE;
}
