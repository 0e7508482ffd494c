/* fiber.c -- a fiber's lifecycle: the heap state that makes fiber_run
 * stackless and resumable (DESIGN.md contract 1).
 *
 * A fiber owns its value stack (f->stack, 64-bit slots, grown on demand up to
 * max_stack), its frame array (grown on demand up to max_depth, see
 * interp.c more_frames), the backtrace of its last trap, and a reference to a
 * pending awaitable or host Trap. Memory errors return -1 without a Python
 * exception; the caller (pyengine.c) turns them into MemoryError.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define FIBER_INITIAL_SLOTS 1024u
/* Slots allocated past stack_end (engine.h "Fibers"): a call's init block
 * may write up to WASM_INIT_BLOCK slots above the callee's parameters,
 * past the end of a frame smaller than that. */
#define FIBER_STACK_PAD WASM_INIT_BLOCK
#define FIBER_INITIAL_FRAMES 16u

static const char *const trap_messages[TRAP__COUNT] = {
#define X(NAME, TEXT) [NAME] = TEXT,
    TRAP_KINDS(X)
#undef X
};

const char *trap_message(int kind)
{
    if (kind < 0 || kind >= TRAP__COUNT) return "unknown trap";
    return trap_messages[kind];
}

int fiber_init(fiber *f, size_t max_stack_slots, uint32_t max_depth)
{
    memset(f, 0, sizeof *f);
    f->state = -1;
    f->max_stack = max_stack_slots;
    f->max_depth = max_depth;
    size_t slots = max_stack_slots < FIBER_INITIAL_SLOTS ? max_stack_slots : FIBER_INITIAL_SLOTS;
    uint32_t frames = max_depth < FIBER_INITIAL_FRAMES ? max_depth : FIBER_INITIAL_FRAMES;
    if (slots) {
        f->stack = malloc(sizeof *f->stack * (slots + FIBER_STACK_PAD));
        if (f->stack == NULL) goto fail;
        f->stack_cap = slots;
        f->stack_end = f->stack + slots;
    }
    if (frames) {
        f->frames = malloc(sizeof *f->frames * frames);
        if (f->frames == NULL) goto fail;
        f->frames_cap = frames;
    }
    f->next_frame = f->frames;
    fiber_set_depth_limit(f);
    return 0;
fail:
    fiber_free(f);
    return -1;
}

int fiber_reserve(fiber *f, size_t fp, size_t need)
{
    if (need > f->max_stack || fp > f->max_stack - need) return -1;
    size_t end = fp + need;
    if (end <= f->stack_cap) return 0;
    /* Double, so that deep recursion reallocates O(log depth) times. */
    size_t cap = f->stack_cap > f->max_stack / 2 ? f->max_stack : f->stack_cap * 2;
    if (cap < end) cap = end;
    if (cap > SIZE_MAX / sizeof *f->stack - FIBER_STACK_PAD) return -1;
    /* A new block rather than realloc: the frames' fp move to it while the
     * old one is still there to measure them against. */
    uint64_t *stack = malloc(sizeof *stack * (cap + FIBER_STACK_PAD));
    if (stack == NULL) return -1;
    if (f->stack_cap) memcpy(stack, f->stack, sizeof *stack * f->stack_cap);
    for (rt_frame *frame = f->frames; frame < f->next_frame; frame++) frame->fp = stack + (frame->fp - f->stack);
    free(f->stack);
    f->stack = stack;
    f->stack_cap = cap;
    f->stack_end = stack + cap;
    return 0;
}

void fiber_set_depth_limit(fiber *f)
{
    uint32_t limit = f->frames_cap < f->max_depth ? f->frames_cap : f->max_depth;
    f->frames_limit = f->frames != NULL ? f->frames + limit : NULL;
}

/* Forget the previous run's outcome: trap details, pending awaitable. */
static void fiber_clear_outcome(fiber *f)
{
    free(f->trap_frames);
    f->trap_frames = NULL;
    f->trap_depth = 0;
    f->trap_kind = TRAP_NONE;
    f->trap_func = NULL;
    f->trap_offset = 0;
    Py_CLEAR(f->trap_exc);
    Py_CLEAR(f->awaitable);
    Py_CLEAR(f->exn);
    f->pending_type = NULL;
    f->pending_base = 0;
    f->fuel_needed = 0;
}

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* The entry frame sits at slot 0 and must hold the arguments, the results
 * (read by the driver from stack[0...]) and, for Wasm, the whole frame. */
int fiber_start(fiber *f, const rt_func *fn, const uint64_t *args)
{
    const wasm_functype *type = fn->type;
    uint32_t need = max_u32(type->param_slots, type->result_slots);
    if (fn->code) need = max_u32(need, fn->code->max_slots);

    fiber_clear_outcome(f);
    f->next_frame = f->frames;
    f->ip = NULL;
    f->state = -1;
    f->entry = fn;
    f->fuel_used = 0;
    f->host_calls = 0;
    f->suspensions = 0;

    if (f->max_depth == 0 || fiber_reserve(f, 0, need) != 0) return -1;
    if (f->frames_cap == 0) {
        f->frames = malloc(sizeof *f->frames);
        if (f->frames == NULL) return -1;
        f->frames_cap = 1;
    }
    fiber_set_depth_limit(f); /* a pooled fiber may have a new max_depth */
    if (type->param_slots) memcpy(f->stack, args, sizeof *f->stack * type->param_slots);
    if (fn->code) {
        const wasm_code *code = fn->code;
        memcpy(f->stack + code->nparam_slots, code->frame_init, sizeof *f->stack * code->ninit_slots);
        f->ip = code->code;
    }
    f->frames[0].func = fn;
    f->frames[0].ret_ip = NULL;
    f->frames[0].ret_code = NULL;
    f->frames[0].fp = f->stack;
    f->next_frame = f->frames + 1;
    return 0;
}

void fiber_free(fiber *f)
{
    fiber_clear_outcome(f);
    free(f->stack);
    free(f->frames);
    f->stack = NULL;
    f->stack_cap = 0;
    f->stack_end = NULL;
    f->frames = NULL;
    f->frames_cap = 0;
    f->next_frame = NULL;
    f->frames_limit = NULL;
    f->ip = NULL;
    f->entry = NULL;
}
