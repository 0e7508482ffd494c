/* interp.c -- fiber_run: the interpreter loop over compile.c's internal code.
 *
 * Invariants (DESIGN.md contracts 1-4, engine.h "Internal code" and "Fibers"):
 *   - Stackless: a Wasm->Wasm call pushes an rt_frame on f->frames and jumps;
 *     the C stack never grows with guest recursion. Host functions are called
 *     directly (rt_call_host) and may suspend the fiber.
 *   - The loop keeps its registers in locals: ip (the current instruction),
 *     code (the current function's code, for jump targets), fp (the current
 *     frame's first slot), inst, the memory base/size and fuel. They are
 *     written back to the fiber whenever fiber_run returns (`stop`).
 *   - f->stack may be moved by fiber_reserve, which moves the frames' fp
 *     with it: fp is reloaded from the top frame after anything that may
 *     reserve (a call that grows the stack, a host call).
 *   - The cached memory size is reloaded whenever it may have changed behind
 *     our back: after host calls, memory.grow, and when the running instance
 *     changes (a callee in another instance may share and grow the memory).
 *   - While a handler runs, ip points at its opcode word, so traps and
 *     OUT_OF_FUEL report (and resume at) the right instruction.
 *
 * Handlers live in the interp_*.inc fragments, one per instruction family;
 * interp_dispatch.h decides how they are reached.
 */
/* GCC's global CSE hoists values across the handlers of a computed-goto loop
 * until the loop's own registers no longer fit: with the SIMD handlers in,
 * `code` was reloaded from the stack on every jump (7% on the strings
 * kernel). The GCC manual ("Labels as Values") advises -fno-gcse for such
 * code; this file only. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-gcse")
#endif

#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "interp_dispatch.h"
#include "ops_numeric.h"
#include "ops_simd.h"

/* ---- slot access -------------------------------------------------------------
 * i32/f32 live in the low half of a slot: read only that half, and write the
 * whole slot (zero-extended) so that slot contents stay deterministic. */
#define SLOT_READ_I32(s) ((uint32_t)fp[(s)])
#define SLOT_READ_F32(s) ((uint32_t)fp[(s)])
#define SLOT_READ_I64(s) (fp[(s)])
#define SLOT_READ_F64(s) (fp[(s)])
#define SLOT_READ_NONE(s) 0 /* absent second operand of a unary instruction */
#define SLOT_WRITE_I32(s, v) (fp[(s)] = (uint64_t)(uint32_t)(v))
#define SLOT_WRITE_F32(s, v) (fp[(s)] = (uint64_t)(uint32_t)(v))
#define SLOT_WRITE_I64(s, v) (fp[(s)] = (uint64_t)(v))
#define SLOT_WRITE_F64(s, v) (fp[(s)] = (uint64_t)(v))
#define SLOT_REF(s) ((void *)(uintptr_t)fp[(s)])

/* ---- leaving the loop ----------------------------------------------------------- */

/* Charge what the loop consumed since the last sync to the fiber's counters
 * and the caller's budget (done before host calls, so their view is current). */
#define SYNC_FUEL()                                          \
    do {                                                     \
        f->fuel_used += (uint64_t)(fuel_synced - fuel);      \
        fuel_synced = fuel;                                  \
        *fuel_ptr = fuel;                                    \
    } while (0)

#define EXIT(OUTCOME)          \
    do {                       \
        outcome = (OUTCOME);   \
        goto stop;             \
    } while (0)

#define TRAP(KIND)             \
    do {                       \
        trap_kind = (KIND);    \
        goto trap;             \
    } while (0)

/* Ends a conditional jump fused after an instruction that wrote slot D,
 * whose value before was OLD (compile.c F10): goes to code + ip[T] when
 * TAKEN, else to ip + LEN, paying the charge word after the target word
 * (taken) or the one after that. When the charge does not fit, D gets OLD
 * back and the run stops on this instruction, so that resuming re-executes
 * all of it. */
#define JUMP_OR_UNDO(TAKEN, T, LEN, D, OLD)                              \
    do {                                                                 \
        const uint32_t *dest_ = (TAKEN) ? code + ip[T] : ip + (LEN);     \
        int64_t charge_ = (TAKEN) ? ip[(T) + 1] : ip[(T) + 2];           \
        if (UNLIKELY(fuel < charge_)) {                                  \
            fp[D] = (OLD);                                               \
            f->fuel_needed = charge_;                                    \
            EXIT(RUN_OUT_OF_FUEL);                                       \
        }                                                                \
        fuel -= charge_;                                                 \
        ip = dest_;                                                      \
        NEXT(0);                                                         \
    } while (0)

/* Reload the memory cache from the running instance. */
#define LOAD_MEMORY_CACHE()                                  \
    do {                                                     \
        const rt_memory *mem_ = inst->memory;                \
        mem_base = mem_ ? mem_->base : NULL;                 \
        mem_size = mem_ ? mem_->size : 0;                    \
    } while (0)

#define SWITCH_INSTANCE(NEW_INST)     \
    do {                              \
        inst = (NEW_INST);            \
        LOAD_MEMORY_CACHE();          \
    } while (0)

/* ---- any memory (the _X rows of interp_memory.inc) -------------------------------
 * Rule (spec, "Memory Instructions", with memory64): an address operand is
 * the memory's address type, so a memory32 reads the low 32 bits of its
 * slot, a memory64 all 64. The effective address ea = addr + offset is
 * computed in 64 bits and checked for wrapping (ea < offset), then an access
 * of w bytes is in bounds iff ea <= size and w <= size - ea: no sum that
 * could wrap is ever formed, so no address is misread as in bounds. */

/* An address or length operand of memory m. */
static inline uint64_t mem_operand(const rt_memory *m, uint64_t slot) { return m->addr64 ? slot : (uint32_t)slot; }

/* Whether [start, start + n) lies in memory m (or in a segment of `size` bytes). */
static inline bool range_ok(uint64_t start, uint64_t n, uint64_t size) { return start <= size && n <= size - start; }

/* The host address of the w-byte access at addr + offset in the memory at
 * base of size bytes, or NULL when it is out of bounds. */
static inline uint8_t *access_at(uint8_t *base, uint64_t size, uint64_t addr, uint64_t offset, unsigned w)
{
    uint64_t ea = addr + offset;
    if (UNLIKELY(ea < offset || !range_ok(ea, w, size))) return NULL;
    return base + ea;
}

/* The same in memory m, its address operand read from its slot. */
static inline uint8_t *mem_at(const rt_memory *m, uint64_t addr_slot, uint64_t offset, unsigned w)
{
    return access_at(m->base, m->size, mem_operand(m, addr_slot), offset, w);
}

/* Access size in bytes of each SIMD access row (a SIMD _X row's `op` word). */
static const uint8_t access_bytes[OP__COUNT] = {
#define SIMD_LOAD(NAME, CODE, TEXT, FUNC, ALIGN_LOG2) [OP_##NAME] = 1u << (ALIGN_LOG2),
#define SIMD_STORE(NAME, CODE, TEXT, ALIGN_LOG2) [OP_##NAME] = 1u << (ALIGN_LOG2),
#define SIMD_LOAD_LANE(NAME, CODE, TEXT, ALIGN_LOG2) [OP_##NAME] = 1u << (ALIGN_LOG2),
#define SIMD_STORE_LANE(NAME, CODE, TEXT, ALIGN_LOG2) [OP_##NAME] = 1u << (ALIGN_LOG2),
#include "opcodes.def"
};

/* ---- cold helpers ---------------------------------------------------------------- */

/* Module byte offset of the instruction at code word `offset`: the last source
 * map entry at or before it (the map is sorted by code offset). */
static uint32_t srcmap_lookup(const wasm_code *code, size_t offset)
{
    uint32_t lo = 0, hi = code->srcmap_len; /* search [lo, hi) */
    if (code->srcmap == NULL || hi == 0) return 0;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (code->srcmap[2 * (size_t)mid] <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return code->srcmap[2 * (size_t)lo] <= offset ? code->srcmap[2 * (size_t)lo + 1] : 0;
}

/* Fill in where a trap happened: the running function, the module offset of
 * the instruction at `ip` (NULL: unknown), and the backtrace. Fields a host
 * function's trap already set (rt_call_host) are kept. */
static void record_trap_site(fiber *f, const uint32_t *ip)
{
    uint32_t depth = fiber_depth(f);
    if (depth == 0) return;
    const rt_frame *top = fiber_top(f);
    if (f->trap_func == NULL) {
        const wasm_code *code = top->func->code;
        f->trap_func = top->func;
        f->trap_offset = (code && ip) ? srcmap_lookup(code, (size_t)(ip - code->code)) : 0;
    }
    if (f->trap_frames == NULL) {
        const rt_func **frames = malloc(sizeof *frames * depth);
        if (frames == NULL) return; /* the trap itself is still reported */
        for (uint32_t i = 0; i < depth; i++) frames[i] = top[-(ptrdiff_t)i].func;
        f->trap_frames = frames;
        f->trap_depth = depth;
    }
}

/* A call found next_frame == frames_limit (engine.h "Frames"): -1 when that
 * is the call depth limit, else the frame array doubles (up to max_depth). */
static int more_frames(fiber *f)
{
    uint32_t depth = fiber_depth(f);
    if (depth >= f->max_depth) return -1;
    uint32_t cap = f->frames_cap ? f->frames_cap * 2 : 16;
    if (cap > f->max_depth || cap < f->frames_cap) cap = f->max_depth;
    rt_frame *frames = realloc(f->frames, sizeof *frames * cap);
    if (frames == NULL) return -1;
    f->frames = frames;
    f->next_frame = frames + depth;
    f->frames_cap = cap;
    fiber_set_depth_limit(f);
    return 0;
}

/* rt_call_host returned something other than 0 or RUN_SUSPEND. */
static int host_call_failed(fiber *f, int r, const uint32_t *ip)
{
    if (r == RUN_EXCEPTION) return RUN_EXCEPTION; /* f->exn is set */
    if (r == RUN_TRAP) {
        if (f->trap_kind == TRAP_NONE) f->trap_kind = TRAP_HOST;
        record_trap_site(f, ip);
        return RUN_TRAP;
    }
    /* RUN_ERROR promises a pending exception; anything else is a runtime bug. */
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_SystemError, "asyncwasm: host call ended with outcome %d and no exception", r);
    return RUN_ERROR;
}

/* Calls the host function that is f's only frame: its entry, or what the
 * entry tail-called. */
static int call_host_entry(fiber *f)
{
    f->host_calls++;
    int r = rt_call_host(f, f->frames[0].func, 0);
    if (r == 0) return RUN_DONE;
    if (r == RUN_SUSPEND) {
        f->suspensions++;
        return r;
    }
    return host_call_failed(f, r, NULL);
}

/* A fiber whose entry function is a host function: call it once; when that
 * call suspended, the driver has written its results (or thrown) and we
 * are done. */
static int run_host_entry(fiber *f)
{
    int r;
    if (f->state == RUN_SUSPEND)
        r = f->exn != NULL ? RUN_EXCEPTION : RUN_DONE;
    else
        r = call_host_entry(f);
    f->state = r;
    return r;
}

/* The running frame tail-calls host function fn, its arguments already at
 * the frame's base: the frame returns first, then fn is called as if by the
 * caller's call instruction (its results land where the frame's would
 * have, and its exceptions skip the gone frame's handlers); when the entry
 * frame does it, fn becomes the fiber's host entry. fn's Caller (if it
 * takes one) is the tail-calling frame's instance. Out of fiber_run's way:
 * a rare path. Returns TAIL_CALLER_GOES_ON (at f->ip in the new top frame),
 * TAIL_CALLER_UNWINDS (f->exn, thrown at the caller's call, f->ip - 1), or
 * an outcome that ends the run. */
enum { TAIL_CALLER_GOES_ON = -1, TAIL_CALLER_UNWINDS = -2 };

static int tail_call_host(fiber *f, const rt_func *fn)
{
    const rt_frame *done = fiber_top(f);
    bool entry = fiber_depth(f) == 1;
    if (!entry) f->ip = done->ret_ip;
    f->host_calls++;
    int r = rt_call_host(f, fn, (size_t)(done->fp - f->stack));
    if (entry) { /* fn is the entry now: a resumed run ends with its results */
        f->frames[0].func = fn;
        if (r == 0) return RUN_DONE;
    } else {
        f->next_frame--;
        rt_leave_instance(f); /* the turn the frame took, if it was a call into another instance */
        if (r == 0) return TAIL_CALLER_GOES_ON;
        if (r == RUN_EXCEPTION) return TAIL_CALLER_UNWINDS;
    }
    if (r == RUN_SUSPEND) {
        f->suspensions++;
        return r;
    }
    return host_call_failed(f, r, entry ? NULL : f->ip - 1);
}

/* fiber_run on a fiber that already finished: report the same outcome again. */
static int finished_fiber_outcome(fiber *f)
{
    if (f->state == RUN_ERROR && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "asyncwasm: the fiber already failed with an error");
    return f->state;
}

/* Sets a callee's declared locals (zeros) and constant pool from its
 * frame_init (engine.h). Most functions have a handful of such slots: a
 * call copies one fixed block of WASM_INIT_BLOCK slots, which the compiler
 * does in a few vector moves, no branch on the count (a loop cost five
 * instructions a slot on every call's path, and a call to memcpy forces
 * the loop's registers to be spilled around it). The few functions with
 * more slots have them set past the block by init_rest, on the calls'
 * slow path (call_reach). */
OPS_INLINE void init_block(uint64_t *fp, const wasm_code *code)
{
    memcpy(fp + code->nparam_slots, code->frame_init, sizeof *fp * WASM_INIT_BLOCK);
}

static void init_rest(uint64_t *fp, const wasm_code *code)
{
    if (code->ninit_slots > WASM_INIT_BLOCK)
        memcpy(fp + code->nparam_slots + WASM_INIT_BLOCK, code->frame_init + WASM_INIT_BLOCK,
               sizeof *fp * (code->ninit_slots - WASM_INIT_BLOCK));
}

OPS_INLINE void init_frame(uint64_t *fp, const wasm_code *code)
{
    init_block(fp, code);
    init_rest(fp, code);
}

/* ---- exceptions (engine.h "Exceptions") ------------------------------------------ */

/* The clause that catches `exn` thrown at code offset `pos` of a frame of
 * `inst` running `code`, or NULL: the innermost region containing pos
 * (the last opened), then the regions it passes exceptions on to. Each
 * `next` names an earlier-opened region, so the walk ends. */
static const wasm_catch *find_catch(const rt_instance *inst, const wasm_code *code, uint32_t pos,
                                    const rt_exn *exn)
{
    uint32_t r = WASM_NO_REGION;
    for (uint32_t i = code->nregions; i-- > 0;) {
        if (code->regions[i].start <= pos && pos < code->regions[i].end) {
            r = i;
            break;
        }
    }
    for (; r != WASM_NO_REGION; r = code->regions[r].next) {
        for (uint32_t k = 0; k < code->ncatches; k++) {
            const wasm_catch *c = &code->catches[k];
            if (c->region == r && (c->tag == WASM_CATCH_ALL || inst->tags[c->tag] == exn->tag)) return c;
        }
    }
    return NULL;
}

/* Unwinds f->exn, thrown at `at` in the top frame: pops the frames that do
 * not catch it and delivers it to the first clause that does. Returns that
 * clause's landing pad, or NULL with *outcome RUN_EXCEPTION (no frame caught
 * it; none is left) or RUN_ERROR (a Python exception is set). */
static const uint32_t *unwind_to_handler(fiber *f, const uint32_t *at, int *outcome)
{
    const rt_exn *exn = rt_exn_get(f->exn);
    while (fiber_depth(f) > 0) {
        const rt_frame *frame = fiber_top(f);
        const wasm_code *code = frame->func->code;
        const wasm_catch *c =
            code != NULL ? find_catch(frame->func->inst, code, (uint32_t)(at - code->code), exn) : NULL;
        if (c != NULL) {
            uint64_t *fp = frame->fp;
            uint64_t *payload = c->tag == WASM_CATCH_ALL ? NULL : fp + c->dst;
            uint64_t *ref = c->exn_dst == WASM_NO_SLOT ? NULL : fp + c->exn_dst;
            if (rt_exn_catch(f, f->exn, payload, ref) != 0) {
                *outcome = RUN_ERROR;
                return NULL;
            }
            Py_CLEAR(f->exn);
            return code->code + c->pad;
        }
        if (fiber_depth(f) == 1) break;
        at = frame->ret_ip - 1; /* inside the caller's call instruction */
        f->next_frame--;
    }
    f->next_frame = f->frames;
    *outcome = RUN_EXCEPTION;
    return NULL;
}

/* ---- bulk table operations (spec: bounds checked before any write) ------------- */

static inline void *elem_item_ref(const rt_instance *inst, const wasm_const_expr *item)
{
    switch (item->kind) {
    case CONST_REF_FUNC: return inst->funcs[item->index];
    case CONST_GLOBAL_GET: return (void *)(uintptr_t)inst->globals[item->index]->value[0];
    default: return NULL; /* CONST_REF_NULL */
    }
}

static int table_fill(rt_table *t, uint32_t start, void *ref, uint32_t n)
{
    if ((uint64_t)start + n > t->size) return TRAP_OOB_TABLE;
    for (uint32_t i = 0; i < n; i++) rt_ref_store(&t->elems[start + i], t->elemtype, ref);
    return TRAP_NONE;
}

/* Overlapping copies inside one table go backwards when the destination is
 * above the source, like memmove. */
static int table_copy(rt_table *dst, rt_table *src, uint32_t d, uint32_t s, uint32_t n)
{
    if ((uint64_t)s + n > src->size || (uint64_t)d + n > dst->size) return TRAP_OOB_TABLE;
    if (dst == src && d > s) {
        for (uint32_t i = n; i > 0; i--)
            rt_ref_store(&dst->elems[d + i - 1], dst->elemtype, src->elems[s + i - 1]);
    } else {
        for (uint32_t i = 0; i < n; i++)
            rt_ref_store(&dst->elems[d + i], dst->elemtype, src->elems[s + i]);
    }
    return TRAP_NONE;
}

/* A dropped segment behaves as an empty one. */
static int table_init(rt_instance *inst, rt_table *t, uint32_t e, uint32_t d, uint32_t s, uint32_t n)
{
    const wasm_elem *seg = &inst->module->elems[e];
    uint32_t seg_len = inst->elem_dropped[e] ? 0 : seg->count;
    if ((uint64_t)s + n > seg_len || (uint64_t)d + n > t->size) return TRAP_OOB_TABLE;
    for (uint32_t i = 0; i < n; i++)
        rt_ref_store(&t->elems[d + i], t->elemtype, elem_item_ref(inst, &seg->items[s + i]));
    return TRAP_NONE;
}

const char *interp_build_info(void)
{
    return INTERP_COMPUTED_GOTO ? (OPS_SSE2 ? "dispatch=computed-goto simd=sse2" : "dispatch=computed-goto simd=portable")
                                : (OPS_SSE2 ? "dispatch=switch simd=sse2" : "dispatch=switch simd=portable");
}

/* ---- the loop ------------------------------------------------------------------------ */

int fiber_run(fiber *f, int64_t *fuel_ptr)
{
    if (f->state == RUN_DONE || f->state == RUN_TRAP || f->state == RUN_ERROR)
        return finished_fiber_outcome(f);
    if (fiber_depth(f) == 0) {
        PyErr_SetString(PyExc_RuntimeError, "asyncwasm: fiber_run on a fiber that was not started");
        return RUN_ERROR;
    }
    if (fiber_top(f)->func->code == NULL) return run_host_entry(f);

    DISPATCH_TABLE_BEGIN
#define INTERNAL(NAME, OPERANDS) DISPATCH_TABLE_ENTRY(NAME)
#define LOAD(NAME, CODE, TEXT, TYPE, ALIGN_LOG2) DISPATCH_TABLE_ENTRY(NAME)
#define STORE(NAME, CODE, TEXT, TYPE, ALIGN_LOG2) DISPATCH_TABLE_ENTRY(NAME)
#define NUMERIC(NAME, PREFIX, CODE, TEXT, IN1, IN2, OUT) DISPATCH_TABLE_ENTRY(NAME)
#include "opcodes.def"
    DISPATCH_TABLE_END

    /* Registers. */
    const rt_frame *top = fiber_top(f);
    const uint32_t *code = top->func->code->code;
    const uint32_t *ip = f->ip;
    uint64_t *fp = top->fp;
    rt_instance *inst = top->func->inst;
    uint8_t *mem_base;
    uint64_t mem_size;
    int64_t fuel = *fuel_ptr, fuel_synced = fuel;
    int outcome = RUN_ERROR, trap_kind = TRAP_NONE;
    const rt_func *tail_callee = NULL; /* see tail_call_host */
    const rt_func *other_callee = NULL; /* see call_into_other_instance */
    uint32_t other_base = 0, other_len = 0;

    LOAD_MEMORY_CACHE();
    if (UNLIKELY(ip == NULL || *ip >= OP__COUNT)) goto bad_opcode;
    if (UNLIKELY(f->exn != NULL)) { /* the host call we were suspended in threw */
        ip = f->ip - 1;
        goto unwind;
    }

    DISPATCH_BEGIN
#include "interp_control.inc"
#include "interp_variable.inc"
#include "interp_memory.inc"
#include "interp_table.inc"
#include "interp_numeric.inc"
#include "interp_exception.inc"
#include "interp_simd.inc"
    DISPATCH_END

unwind: {
    /* f->exn is thrown at ip (the throwing instruction or a call) of the top
     * frame. Python code may have run: the memory cache is reloaded. */
    const uint32_t *pad = unwind_to_handler(f, ip, &outcome);
    SYNC_FUEL();
    rt_leave_instance(f); /* the turns of the popped frames' calls into other instances */
    if (pad == NULL) EXIT(outcome);
    const rt_frame *handler = fiber_top(f);
    code = handler->func->code->code;
    fp = handler->fp;
    inst = handler->func->inst;
    LOAD_MEMORY_CACHE();
    ip = pad;
    NEXT(0);
}

tail_call_host: {
    /* The running frame tail-calls host function tail_callee (TAIL_CALL in
     * interp_control.inc): see tail_call_host(). */
    SYNC_FUEL();
    int r = tail_call_host(f, tail_callee);
    if (r != TAIL_CALLER_GOES_ON && r != TAIL_CALLER_UNWINDS) {
        ip = f->ip;
        EXIT(r);
    }
    const rt_frame *caller = fiber_top(f);
    code = caller->func->code->code;
    fp = caller->fp;
    inst = caller->func->inst;
    LOAD_MEMORY_CACHE();
    ip = f->ip;
    if (r == TAIL_CALLER_UNWINDS) {
        ip--; /* inside the caller's call instruction */
        goto unwind;
    }
    NEXT(0);
}

bad_opcode:
    /* Only reachable with corrupt internal code (a compiler bug). */
    PyErr_Format(PyExc_SystemError, "asyncwasm: invalid internal opcode %u at code offset %zu",
                 ip ? *ip : 0u, ip ? (size_t)(ip - code) : (size_t)0);
    EXIT(RUN_ERROR);

trap:
    f->trap_kind = trap_kind;
    record_trap_site(f, ip);
    EXIT(RUN_TRAP);

call_into_other_instance: {
    /* CALL_FUNCTION (interp_control.inc) calls other_callee, a Wasm function
     * of another instance, with its frame at other_base: push the frame
     * (its ret_code NULL: the return goes through return_slow) and take
     * that instance's turn (runtime.c rt_enter_instance) before running it.
     * When the turn must be waited for, or is refused, the frame is popped
     * again and ip stays on the call, which runs again on resume. Out of the
     * handlers' line, so that calls within an instance pay nothing for it. */
    const rt_func *callee = other_callee;
    PUSH_FRAME(callee, callee->code, other_base, other_len, NULL);
    SYNC_FUEL();
    int entered = rt_enter_instance(f, callee);
    if (UNLIKELY(entered != 0)) {
        f->next_frame--;
        fp = fiber_top(f)->fp;
        if (entered == RUN_SUSPEND) {
            f->suspensions++;
            EXIT(RUN_SUSPEND);
        }
        EXIT(host_call_failed(f, entered, ip));
    }
    fp = fiber_top(f)->fp;
    SWITCH_INSTANCE(callee->inst);
    ip = code = callee->code->code; /* then the entry charge, as CALL_FUNCTION's */
    int64_t charge = code[1];
    if (UNLIKELY(fuel < charge)) {
        f->fuel_needed = charge;
        EXIT(RUN_OUT_OF_FUEL);
    }
    fuel -= charge;
    NEXT(2);
}
#undef PUSH_FRAME

return_slow: {
    /* RETURN_TO_CALLER (interp_control.inc) popped a frame whose ret_code is
     * NULL: the entry frame's (the run is done, ip stays on the return), or
     * one of another instance than its caller's (give back the turn the
     * call took: runtime.c rt_leave_instance). */
    if (fiber_depth(f) == 0) EXIT(RUN_DONE);
    const rt_frame *done = f->next_frame, *caller = done - 1;
    ip = done->ret_ip;
    code = caller->func->code->code;
    fp = caller->fp;
    if (caller->func->inst != inst) {
        SYNC_FUEL();
        rt_leave_instance(f);
        SWITCH_INSTANCE(caller->func->inst);
    }
    NEXT(0);
}

stop:
    f->ip = ip;
    SYNC_FUEL();
    f->state = outcome;
    return outcome;
}
