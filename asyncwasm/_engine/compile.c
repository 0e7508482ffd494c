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
 * - Fuel regions: a FUEL op opens each region; its count is patched when
 *   the next region opens. Labels placed with nothing emitted in between
 *   share one FUEL.
 */
#include <stdlib.h>
#include <string.h>

#include "compile.h"

void cg_init(codegen *cg) {
    memset(cg, 0, sizeof *cg);
    cg->fuel_word = CG_NONE;
}

void cg_free(codegen *cg) {
    free(cg->code);
    free(cg->srcmap);
    free(cg->pad_at_depth);
    free(cg->pending);
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

/* ---- fuel regions --------------------------------------------------------------- */

static void close_region(codegen *cg) {
    if (cg->fuel_word != CG_NONE)
        cg->code[cg->fuel_word] = cg->fuel_count ? cg->fuel_count : 1;
}

/* Returns the position of a FUEL that starts a region here: the open one
 * when nothing was emitted since it, else a new one. CG_NONE when dead. */
static uint32_t region_here(codegen *cg) {
    if (cg->dead)
        return CG_NONE;
    if (cg->fuel_word != CG_NONE && cg->len == cg->fuel_end)
        return cg->fuel_word - 1;
    close_region(cg);
    uint32_t pos = cg->len;
    uint32_t *w = cg_emit(cg, OP_FUEL, 1);
    if (!w)
        return CG_NONE;
    w[0] = 0; /* patched by close_region */
    cg->fuel_word = pos + 1;
    cg->fuel_end = cg->len;
    cg->fuel_count = 0;
    return pos;
}

void cg_open_region(codegen *cg) {
    region_here(cg);
}

/* ---- functions ------------------------------------------------------------------- */

void cg_func_begin(codegen *cg, uint32_t wasm_offset) {
    cg->len = 0;
    cg->nsrc = 0;
    cg->dead = false;
    cg->oom = false;
    cg->fuel_word = CG_NONE;
    cg->fuel_count = 0;
    cg->wasm_offset = wasm_offset;
    region_here(cg);
}

bool cg_func_end(codegen *cg, wasm_code *out, const uint8_t *local_types, uint32_t nlocals) {
    if (cg->oom)
        return false;
    close_region(cg);
    size_t code_bytes = (size_t)cg->len * sizeof(uint32_t);
    size_t srcmap_bytes = (size_t)cg->nsrc * 2 * sizeof(uint32_t);
    uint8_t *block = malloc(code_bytes + srcmap_bytes + nlocals);
    if (!block)
        return cg_oom(cg);
    memcpy(block, cg->code, code_bytes);
    memcpy(block + code_bytes, cg->srcmap, srcmap_bytes);
    if (nlocals)
        memcpy(block + code_bytes + srcmap_bytes, local_types, nlocals);
    out->code = (uint32_t *)block;
    out->code_len = cg->len;
    out->srcmap = (uint32_t *)(block + code_bytes);
    out->srcmap_len = cg->nsrc;
    out->local_types = block + code_bytes + srcmap_bytes;
    out->nlocals = nlocals;
    return true;
}

/* ---- labels and jumps --------------------------------------------------------------- */

/* Points operand word `word` at l, or queues it until l is placed. */
static void set_target(codegen *cg, uint32_t word, cg_label *l) {
    if (l->pos != CG_NONE) {
        cg->code[word] = l->pos;
    } else {
        cg->code[word] = l->chain;
        l->chain = word;
    }
}

void cg_jump(codegen *cg, cg_label *l) {
    uint32_t *w = cg_emit(cg, OP_JUMP, 1);
    if (w)
        set_target(cg, (uint32_t)(w - cg->code), l);
}

void cg_jump_cond(codegen *cg, uint32_t op, uint32_t cond, cg_label *l) {
    uint32_t *w = cg_emit(cg, op, 2);
    if (!w)
        return;
    w[0] = cond;
    set_target(cg, (uint32_t)(w + 1 - cg->code), l);
}

void cg_place_label(codegen *cg, cg_label *l, int how) {
    bool waited_for = l->chain != CG_NONE;
    if (cg->oom || (!waited_for && (cg->dead || how != LABEL_REGION)))
        return; /* nothing will ever jump here */
    cg->dead = false;
    uint32_t pos = how == LABEL_LOCAL ? cg->len : region_here(cg);
    if (pos == CG_NONE)
        return;
    for (uint32_t w = l->chain; w != CG_NONE;) {
        uint32_t next = cg->code[w];
        cg->code[w] = pos;
        w = next;
    }
    l->chain = CG_NONE;
    l->pos = pos;
}

void cg_place_loop(codegen *cg, cg_label *l) {
    l->pos = region_here(cg);
}

/* ---- data movement ------------------------------------------------------------------ */

void cg_copy_values(codegen *cg, uint32_t dst, uint32_t src, const uint8_t *types, uint32_t n) {
    if (dst == src)
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (types[i] == VT_V128) {
            cg_emit2(cg, OP_COPY128, dst, src);
            dst += 2, src += 2;
        } else {
            cg_emit2(cg, OP_COPY, dst, src);
            dst++, src++;
        }
    }
}

void cg_return(codegen *cg, uint32_t src, const uint8_t *types, uint32_t n) {
    cg_copy_values(cg, 0, src, types, n);
    cg_emit(cg, OP_RETURN, 0);
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

/* Emits the landing pad for branches to `f`: the branch values move to
 * the frame's height, then a jump (or, for the function, a return). */
static void emit_pad(codegen *cg, ctrl_frame *f, uint32_t src, uint32_t base) {
    uint32_t n, slots;
    const uint8_t *types = ctrl_label_types(f, &n, &slots);
    if (f->kind == CTRL_FUNC) {
        cg_return(cg, src, types, n);
    } else {
        cg_copy_values(cg, base + f->slot_height, src, types, n);
        cg_jump(cg, &f->label);
    }
}

void cg_br_table(codegen *cg, uint32_t idx, const uint32_t *targets, uint32_t ntargets,
                 ctrl_frame *ctrl, uint32_t depth, uint32_t src, uint32_t base) {
    uint32_t *w = cg_emit(cg, OP_BR_TABLE, 2 + ntargets);
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
            set_target(cg, first + i, &f->label);
        } else {
            cg->pending[2 * npending] = first + i;
            cg->pending[2 * npending + 1] = targets[i];
            npending++;
        }
    }
    /* One pad per distinct target depth, right after the table. */
    for (uint32_t k = 0; k < npending; k++) {
        uint32_t word = cg->pending[2 * k], d = cg->pending[2 * k + 1];
        if (cg->pad_at_depth[d] == CG_NONE) {
            cg->pad_at_depth[d] = cg->len;
            emit_pad(cg, &ctrl[depth - 1 - d], src, base);
        }
        cg->code[word] = cg->pad_at_depth[d];
    }
    for (uint32_t k = 0; k < npending; k++)
        cg->pad_at_depth[cg->pending[2 * k + 1]] = CG_NONE;
}
