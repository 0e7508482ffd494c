/* engine.h -- the one narrow header that connects the engine's stages.
 *
 *   bytes --decode.c--> wasm_module --validate.c + compile.c--> compiled code
 *   wasm_module + externs --runtime.c--> rt_instance --interp.c--> fiber outcomes
 *   pyengine.c exposes all of it to Python as asyncwasm._engine.
 *
 * Ownership: each section below says which file implements it. Keep each
 * section's additions inside that section.
 */
#ifndef ASYNCWASM_ENGINE_H
#define ASYNCWASM_ENGINE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ========================================================================== */
/* Types (shared)                                                             */
/* ========================================================================== */

/* Value types are their binary-format bytes. VT_NONE marks "no operand". */
enum {
    VT_NONE = 0x00,
    VT_I32 = 0x7F,
    VT_I64 = 0x7E,
    VT_F32 = 0x7D,
    VT_F64 = 0x7C,
    VT_V128 = 0x7B,
    VT_FUNCREF = 0x70,
    VT_EXTERNREF = 0x6F,
    VT_EXNREF = 0x69, /* Wasm 3.0 exception handling */
    VT_NULLEXNREF = 0x74, /* (ref null noexn): exnref's bottom, whose only value is null */
    /* Non-nullable references have no one-byte form: the engine names them
     * by their heap type's byte - 0x40 (no binary value type uses these). */
    VT_REF_EXN = 0x29,   /* (ref exn): an exception, never null */
    VT_REF_NOEXN = 0x34, /* (ref noexn): no value at all (code using one is unreachable) */
};

/* A v128 takes two 64-bit slots; every other value one. */
static inline uint32_t valtype_slots(uint8_t t) { return t == VT_V128 ? 2u : 1u; }
static inline bool valtype_is_ref(uint8_t t) {
    return t == VT_FUNCREF || t == VT_EXTERNREF || t == VT_EXNREF || t == VT_NULLEXNREF || t == VT_REF_EXN ||
           t == VT_REF_NOEXN;
}

/* Whether the type has a default value (zero or null) for locals and tables. */
static inline bool valtype_defaultable(uint8_t t) { return t != VT_REF_EXN && t != VT_REF_NOEXN; }

/* Subtyping (https://webassembly.github.io/spec/core/valid/matching.html):
 * whether a value of type `sub` may stand where `super` is expected. Without
 * GC and typed function references only the exception hierarchy has proper
 * subtypes: (ref noexn) <: (ref exn), nullexnref <: exnref. Every check of
 * an operand, a branch, a block, a call, a table, a global or an import
 * against an expected type goes through here. */
static inline bool valtype_matches(uint8_t sub, uint8_t super) {
    switch (super) {
    case VT_EXNREF: return sub == VT_EXNREF || sub == VT_NULLEXNREF || sub == VT_REF_EXN || sub == VT_REF_NOEXN;
    case VT_NULLEXNREF: case VT_REF_EXN: return sub == super || sub == VT_REF_NOEXN;
    default: return sub == super;
    }
}

/* Whether the n types `sub` match the n types `super`, one by one. */
static inline bool valtypes_match(const uint8_t *sub, const uint8_t *super, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (!valtype_matches(sub[i], super[i]))
            return false;
    return true;
}

enum { EXTERN_FUNC = 0, EXTERN_TABLE = 1, EXTERN_MEMORY = 2, EXTERN_GLOBAL = 3, EXTERN_TAG = 4 };
#define EXTERN_KINDS 5

#define WASM_PAGE_SIZE 65536u
#define WASM_MAX_PAGES 65536u /* 4 GiB, memory32 */
#define WASM_MAX_PAGES64 (1ull << 48) /* memory64: 2^64 bytes */

/* Limits are u64 in the Wasm 3.0 binary format; validation bounds them
 * (65536 pages for a memory32, 2^48 for a memory64, 2^32-1 elements for a
 * table32). addr64 marks a memory64/table64: its addresses are i64. */
typedef struct {
    uint64_t min;
    uint64_t max; /* meaningful only when has_max */
    bool has_max;
    bool addr64;
} wasm_limits;

typedef struct {
    uint32_t nparams, nresults;
    uint8_t *params;  /* nparams value types */
    uint8_t *results; /* nresults value types */
    uint32_t param_slots, result_slots;
    uint32_t id; /* canonical: two functypes are equal iff their ids are (functype_intern) */
} wasm_functype;

typedef struct {
    wasm_limits limits; /* pages */
} wasm_memtype;

typedef struct {
    uint8_t type;
    bool mutable_;
} wasm_globaltype;

/* A tag (exception handling): its type is a function type with no results,
 * whose params are the exception's payload. */
typedef struct {
    uint32_t typeidx;
} wasm_tagtype;

/* UTF-8 name pointing into wasm_module.bytes; not NUL-terminated. */
typedef struct {
    const char *ptr;
    uint32_t len;
} wasm_name;

/* A constant expression: usually one instruction, then `end`; with Wasm
 * 3.0's extended constants, a sequence of them (CONST_SEQUENCE). */
enum {
    CONST_I32,
    CONST_I64,
    CONST_F32,
    CONST_F64,
    CONST_V128,
    CONST_REF_NULL,
    CONST_REF_FUNC,   /* index = function index */
    CONST_GLOBAL_GET, /* index = global index */
    /* Extended constants: replace the two values before by their result. */
    CONST_I32_ADD,
    CONST_I32_SUB,
    CONST_I32_MUL,
    CONST_I64_ADD,
    CONST_I64_SUB,
    CONST_I64_MUL,
    CONST_SEQUENCE,   /* ops[0, nops), evaluated in order on a stack */
};
typedef struct wasm_const_expr {
    uint8_t kind;
    uint8_t type;     /* the value type it produces (VT_NONE for global.get until validated) */
    uint32_t index;   /* function or global index */
    uint64_t bits[2]; /* numeric bit pattern (v128: bits[0] = low half) */
    uint32_t nops;    /* CONST_SEQUENCE: its instructions (owned), none of them a sequence */
    struct wasm_const_expr *ops;
} wasm_const_expr;

typedef struct {
    uint8_t elem; /* a reference type */
    wasm_limits limits;
    bool has_init;        /* a defined table with an initializer for its elements */
    wasm_const_expr init; /* CONST_REF_NULL unless has_init */
} wasm_tabletype;

enum { SEG_ACTIVE, SEG_PASSIVE, SEG_DECLARATIVE };

typedef struct {
    uint8_t mode;
    uint8_t elemtype; /* VT_FUNCREF or VT_EXTERNREF */
    uint32_t table;
    wasm_const_expr offset; /* active only */
    uint32_t count;
    wasm_const_expr *items; /* count items; func-index encodings become CONST_REF_FUNC */
} wasm_elem;

typedef struct {
    uint8_t mode; /* SEG_ACTIVE or SEG_PASSIVE */
    uint32_t memory;
    wasm_const_expr offset; /* active only */
    const uint8_t *bytes;   /* into wasm_module.bytes */
    uint32_t len;
} wasm_data;

typedef struct {
    wasm_name module, name;
    uint8_t kind; /* EXTERN_* */
    union {
        uint32_t typeidx;
        wasm_tabletype table;
        wasm_memtype memory;
        wasm_globaltype global;
        wasm_tagtype tag;
    } desc;
} wasm_import;

typedef struct {
    wasm_name name;
    uint8_t kind; /* EXTERN_* */
    uint32_t index;
} wasm_export;

typedef struct {
    wasm_name name;
    const uint8_t *bytes; /* into wasm_module.bytes */
    uint32_t len;
} wasm_custom;

/* ========================================================================== */
/* Internal code (produced by compile.c, executed by interp.c)                */
/* ========================================================================== */
/*
 * Frame/slot model. A function's frame is an array of 64-bit slots:
 *   [0, nparam_slots)                 parameters (written by the caller)
 *   [nparam_slots, nlocal_slots)      declared locals   } both set from
 *   [nlocal_slots, + nconst_slots)    constant pool     } frame_init on entry
 *   [.., + hidden slots)              legacy catches' exceptions ("Exceptions")
 *   [.., max_slots)                   operand stack: the value at operand-stack
 *                                     height h (counted in slots) has its home
 *                                     in slot nlocal_slots + nconst_slots +
 *                                     hidden slots + h.
 * Instructions name every operand by slot index, resolved at compile time;
 * there is no run-time stack pointer. An operand slot may be a value's home,
 * a local's slot (local.get emits no code) or a pool slot (neither do
 * constants), and a result may go straight to a local (local.set after an
 * operation emits no code). An integer constant of the hottest operations
 * and conditional jumps is an immediate word instead (opcodes.def NUMERIC_I,
 * JUMP_I, ADD_JUMP_I), and the pool holds only the constants some operand
 * still reads from a slot. compile.c "Operand folding" gives the rules;
 * its F9-F12 fuse common neighbours into one instruction (opcodes.def rows
 * CHAIN, LOAD_OP, STORE_OF, LOAD_JUMP and the ADD_/COPY_ jumps).
 * Every instruction that writes a result reads all its operands first, so
 * its result slot may be one of them.
 *
 * Value representation in a slot: i32/f32 bit pattern in the low 32 bits
 * (upper bits unspecified; readers use only the low half), i64/f64 bit pattern,
 * funcref = (rt_func *) or 0, externref = (PyObject *) or 0, v128 = two slots,
 * low half first, at any slot index (SIMD handlers move 16 unaligned bytes).
 *
 * Calls: the caller's arguments sit at their homes [base, base + param_slots)
 * of its frame; the callee's frame starts exactly there (args become its
 * params in place), above the caller's locals and pool. On return the callee
 * has put its results in its slots [0, result_slots), i.e. the caller's
 * [base, base + result_slots).
 *
 * Branches: compile.c moves branch values with COPY instructions before a
 * jump, so jumps never move data. BR_TABLE targets may be landing pads
 * (COPYs then JUMP) emitted by the compiler.
 *
 * Fuel: a FUEL n instruction starts every region that can be entered other
 * than by falling through (function entry, loop header, after every label);
 * n is the number of Wasm instructions compiled until the next region. So
 * every loop iteration and every call charges fuel. A FUEL that finds less
 * than n fuel left stops the run *before* charging, with the fiber's ip on
 * the FUEL op, so resuming re-executes it. The jumps (JUMP, JUMP_IF*, letter
 * 'r' in opcodes.def) and the calls pay the FUEL they land on themselves and
 * continue after it; when it does not fit they stop exactly as that FUEL
 * would, with ip on it. So a region's charge and the stopping points do not
 * depend on how it was entered.
 *
 * Code words: code[0] of every instruction is its opcode (enum wasm_op),
 * followed by the operand words listed in opcodes.def. code[0] of every
 * function is a FUEL.
 *
 * Exceptions: THROW (and THROW_REF, a host function raising) hands an
 * exception to the unwinder (interp.c), which walks the frames innermost
 * first. In each, the try regions containing the throwing position (the
 * call instruction, in a caller) are tried innermost first: a region's
 * catch clauses in order, then its `next` region's. A matching clause writes
 * the payload at its `dst` slots (and the exception reference at
 * `exn_dst`), and the run continues at its landing pad: a JUMP to the
 * handler's label, which pays that chain's fuel like any jump (so a run
 * may stop right there, resumably), or a RETURN when the label is the
 * function's. Frames without a match are popped; with none left, the run
 * ends RUN_EXCEPTION. Legacy try/catch blocks keep the caught exception in
 * a hidden slot (for rethrow), between the constant pool and the operand
 * stack (so below every callee's frame): max_slots counts it.
 *
 * Tail calls: RETURN_CALL replaces the running frame by the callee's (same
 * slot base, same return address), so tail recursion runs in constant
 * frames and slots. A host callee is called as if by the caller (the frame
 * is gone first: its handlers do not see the callee's exceptions), or
 * becomes the fiber's host entry when the entry frame tail-calls it.
 * Nothing runs after a RETURN_CALL in its function.
 */
enum wasm_op {
#define INTERNAL(NAME, OPERANDS) OP_##NAME,
#define LOAD(NAME, CODE, TEXT, TYPE, ALIGN) OP_##NAME,
#define STORE(NAME, CODE, TEXT, TYPE, ALIGN) OP_##NAME,
#define NUMERIC(NAME, PREFIX, CODE, TEXT, IN1, IN2, OUT) OP_##NAME,
#include "opcodes.def"
    OP__COUNT
};

typedef struct {
    uint32_t *code;     /* code_len words */
    uint32_t code_len;
    uint32_t nparam_slots;
    uint32_t nlocal_slots; /* params + declared locals */
    uint32_t nconst_slots; /* constant pool, right after the locals */
    uint32_t max_slots;    /* nlocal_slots + nconst_slots + deepest operand stack */
    /* Slots [nparam_slots, nlocal_slots + nconst_slots) at function entry:
     * zeros for the declared locals, then the pool. */
    const uint64_t *frame_init;
    uint32_t ninit_slots;  /* nlocal_slots - nparam_slots + nconst_slots */
    /* A call copies the first WASM_INIT_BLOCK slots of frame_init as one
     * block: frame_init is at least that long (zeros after its own slots).
     * When ninit_slots is smaller, the extra slots land on the frame's
     * operand stack, dead at entry, or past the frame's end, on slots no
     * frame holds (the caller's operand stack above the call's arguments,
     * or the pad the fiber allocates past stack_end). */
    /* The bytes a call checks are free past the callee's first slot:
     * max_slots * 8, or SIZE_MAX when ninit_slots passes the block, so that
     * the one stack compare also sends such calls to the slow path that
     * sets the rest (interp_control.inc PUSH_FRAME). */
    size_t call_reach;
    uint32_t nlocals;      /* params + declared locals, as values */
    uint8_t *local_types;  /* nlocals types (params first) */
    uint32_t body_offset;  /* byte offset of the body in the module bytes */
    uint32_t body_len;
    /* Source map: for each emitted instruction, in ascending code order,
     * (code word offset, module byte offset of the Wasm instruction). */
    uint32_t *srcmap;
    uint32_t srcmap_len; /* number of pairs */
    /* Exception handlers ("Exceptions" above), in the order their try opened. */
    struct wasm_try_region *regions;
    uint32_t nregions;
    struct wasm_catch *catches;
    uint32_t ncatches;
} wasm_code;

#define WASM_INIT_BLOCK 8u
#define WASM_NO_REGION UINT32_MAX
#define WASM_CATCH_ALL UINT32_MAX
#define WASM_NO_SLOT UINT32_MAX

/* A try body. Regions are properly nested or disjoint, so the last-opened
 * region containing a position is the innermost. */
typedef struct wasm_try_region {
    uint32_t start, end; /* code offsets [start, end) of the try body */
    uint32_t next; /* region to try when none of its clauses matches: the enclosing one,
                      or a delegate's target; WASM_NO_REGION: none in this frame */
} wasm_try_region;

/* A catch clause; a region's clauses are tried in the order they appear. */
typedef struct wasm_catch {
    uint32_t region;  /* the region whose clause it is */
    uint32_t tag;     /* tag index, or WASM_CATCH_ALL */
    uint32_t dst;     /* slot of the first payload value */
    uint32_t exn_dst; /* slot for the exception reference, or WASM_NO_SLOT */
    uint32_t pad;     /* code offset of the landing pad (a JUMP or a RETURN) */
} wasm_catch;

typedef struct {
    uint32_t typeidx;
    bool imported;
    wasm_code code; /* defined functions only; filled by compile.c */
    wasm_name name; /* from the name section; len 0 when absent */
} wasm_func;

typedef struct {
    wasm_globaltype type;
    bool imported;
    wasm_const_expr init; /* defined globals only */
} wasm_global;

/* ========================================================================== */
/* Module (decode.c fills it; validate.c/compile.c add code; immutable after) */
/* ========================================================================== */

typedef struct wasm_module {
    uint8_t *bytes; /* owned copy of the input; every wasm_name points in here */
    size_t len;

    uint32_t ntypes;
    wasm_functype *types;

    uint32_t nimports;
    wasm_import *imports;

    /* Index spaces: imported entries first, in import order. */
    uint32_t nfuncs, nimported_funcs;
    wasm_func *funcs;
    uint32_t ntables, nimported_tables;
    wasm_tabletype *tables;
    uint32_t nmemories, nimported_memories;
    wasm_memtype *memories;
    uint32_t nglobals, nimported_globals;
    wasm_global *globals;

    uint32_t nexports;
    wasm_export *exports;

    bool has_start;
    uint32_t start;

    uint32_t nelems;
    wasm_elem *elems;

    bool has_datacount;
    uint32_t datacount;
    uint32_t ndatas;
    wasm_data *datas;

    uint32_t ncustoms;
    wasm_custom *customs;

    uint32_t ntags, nimported_tags;
    wasm_tagtype *tags;

    /* Functions that may appear in ref.func (the spec's C.refs): every
     * function named in an element segment, an export, or a global init. */
    uint8_t *declared_refs; /* nfuncs bytes, 0 or 1 */
    wasm_name module_name;  /* from the name section; len 0 when absent */

    /* Fuel weights for wasm_validate_and_compile (a cost table): entry [op]
     * for a one-byte opcode, [256 + sub] for a 0xFC-prefixed one, [512 + sub]
     * for a 0xFD-prefixed (SIMD) one, each >= 1;
     * NULL: every instruction costs 1. Borrowed: set only for the compile. */
    const uint16_t *costs;
} wasm_module;

#define WASM_COST_ENTRIES 768

/* Errors of decode/validate/compile. `message` starts with the spec
 * testsuite's wording for the rule broken (for example "type mismatch",
 * "unexpected end", "integer too large") followed by detail; the byte offset
 * and function index are separate fields and Python adds them to the text. */
enum { ERR_NONE = 0, ERR_MALFORMED = 1, ERR_INVALID = 2, ERR_NOMEM = 3 };
typedef struct {
    int kind;
    size_t offset;
    int64_t func; /* function index, or -1 when not inside a body */
    char message[256];
} wasm_error;

/* decode.c: parse and check the binary format (every section, LEB128 rules,
 * section order and sizes, UTF-8 names). Function bodies are only located here.
 * Returns 0, or -1 with *err filled. On failure *m is left freeable. */
int wasm_decode(const uint8_t *bytes, size_t len, wasm_module *m, wasm_error *err);

/* validate.c + compile.c: module-level rules, then each function body
 * validated and compiled in one pass (the validator drives the emitter).
 * Returns 0, or -1 with *err filled. */
int wasm_validate_and_compile(wasm_module *m, wasm_error *err);

/* Frees everything a module owns (safe on a partially filled module). */
void wasm_module_free(wasm_module *m);

/* Canonical function-type ids (process-wide, never freed; GIL-protected). */
uint32_t functype_intern(const uint8_t *params, uint32_t np, const uint8_t *results, uint32_t nr);

/* Names for diagnostics: opcode text ("i32.add") and value type ("i32"). */
const char *wasm_op_name(enum wasm_op op);
const char *valtype_name(uint8_t t);

/* ========================================================================== */
/* Runtime objects (runtime.c)                                                */
/* ========================================================================== */
/* Each rt_* struct is embedded in the Python object that owns it (pyengine.c),
 * so Python reference counting decides lifetimes. References stored in tables
 * and globals own a reference to their Python object (see rt_ref_store);
 * operand-stack slots do not. */

/* Pages that many memories may hold together (`asyncwasm serve
 * --max-total-memory`): memory.grow past it returns -1, like a memory's own
 * cap. Memories join one when they are made and give their pages back when
 * freed; everything runs with the GIL held, so plain counters do. */
typedef struct rt_memory_budget {
    uint64_t max_pages;
    uint64_t used_pages;
    uint64_t refused;   /* grows refused because the budget was spent */
} rt_memory_budget;

typedef struct rt_memory {
    uint8_t *base;      /* start of the reservation; never moves (contract 6) */
    uint64_t size;      /* accessible bytes = pages * WASM_PAGE_SIZE */
    uint64_t pages;
    uint64_t max_pages; /* min(declared max, policy limit, reservation) */
    bool has_max;       /* declared max present (for import matching) */
    bool addr64;        /* a memory64: i64 addresses */
    uint64_t declared_max;
    size_t reserved;    /* bytes of address space reserved */
    rt_memory_budget *budget; /* NULL: none; holds this memory's pages while set */
    uint64_t refused;   /* grows refused, by the cap or the budget (for the host's log) */
} rt_memory;

typedef struct rt_table {
    uint8_t elemtype;
    bool addr64;       /* a table64: i64 indices */
    uint32_t size;
    uint32_t max;      /* min(declared max, policy limit) */
    bool has_max;
    uint64_t declared_max;
    void **elems;      /* size entries: rt_func * / PyObject * / NULL */
    uint32_t capacity;
} rt_table;

typedef struct rt_global {
    uint8_t type;
    bool mutable_;
    uint64_t value[2]; /* v128 uses both; refs as pointers in value[0] */
} rt_global;

struct rt_instance;

typedef struct rt_func {
    const wasm_functype *type;
    struct rt_instance *inst; /* defining instance; NULL for host functions */
    const wasm_code *code;    /* NULL for host functions */
    PyObject *host;           /* host callable (owned by the Func object), or NULL */
    PyObject *owner;          /* what keeps this struct alive (borrowed): the Func object
                                 (host functions) or the Instance object (Wasm functions,
                                 whose Func objects are made on demand; pyengine.h) */
    uint32_t index;           /* index in the defining module (diagnostics) */
} rt_func;

/* A tag: exceptions are matched by tag identity (this struct's address). */
typedef struct rt_tag {
    const wasm_functype *type; /* params: the payload; no results */
    PyObject *owner;           /* the Tag object embedding this struct (borrowed) */
} rt_tag;

/* An exception: what an exnref points at, seen through rt_exn_get. */
typedef struct rt_exn {
    const rt_tag *tag;
    uint64_t *payload; /* tag->type->param_slots slots; references in it are owned */
} rt_exn;

typedef struct rt_instance {
    const wasm_module *module;
    rt_func **funcs;     /* module->nfuncs */
    rt_tag **tags;       /* module->ntags */
    rt_table **tables;   /* module->ntables */
    rt_memory **memories; /* module->nmemories */
    rt_memory *memory;   /* memory 0 (the interpreter's cached one), or NULL */
    rt_global **globals; /* module->nglobals */
    uint8_t *elem_dropped; /* module->nelems */
    uint8_t *data_dropped; /* module->ndatas */
    PyObject *owner;     /* the Instance object (borrowed) */
} rt_instance;

/* memory.grow / table.grow semantics: return the old size, or -1. */
int64_t rt_memory_grow(rt_memory *m, uint64_t delta_pages);
/* Put a memory's pages on `b` (it must have none yet); -1 when they do not fit. */
int rt_memory_join_budget(rt_memory *m, rt_memory_budget *b);
int64_t rt_table_grow(rt_table *t, uint32_t delta, void *init);

/* Store a reference into a table element or global, keeping the Python
 * object that backs it alive (INCREF new, DECREF old). */
void rt_ref_store(void **dst, uint8_t type, void *ref);

/* ========================================================================== */
/* Fibers (fiber state: fiber.c / interp.c; host calls: runtime.c)            */
/* ========================================================================== */

/* The closed run outcome, mirrored one-to-one in execution.py. */
enum {
    RUN_DONE = 0,        /* results in fiber->stack[0, result_slots) */
    RUN_SUSPEND = 1,     /* a host function returned an awaitable: fiber->awaitable */
    RUN_OUT_OF_FUEL = 2, /* resumable; fiber->fuel_needed says the next charge */
    RUN_TRAP = 3,        /* fiber->trap_* set; fiber is dead */
    RUN_ERROR = 4,       /* a Python exception is set (host bug, Exit); fiber is dead */
    RUN_EXCEPTION = 5,   /* an uncaught Wasm exception: fiber->exn; fiber is dead */
};

/* Trap kinds; 0 means "no trap". Messages use the spec testsuite's wording. */
#define TRAP_KINDS(X)                                                   \
    X(TRAP_NONE, "")                                                    \
    X(TRAP_UNREACHABLE, "unreachable")                                  \
    X(TRAP_INT_DIV_ZERO, "integer divide by zero")                      \
    X(TRAP_INT_OVERFLOW, "integer overflow")                            \
    X(TRAP_INVALID_CONVERSION, "invalid conversion to integer")         \
    X(TRAP_OOB_MEMORY, "out of bounds memory access")                   \
    X(TRAP_OOB_TABLE, "out of bounds table access")                     \
    X(TRAP_UNDEFINED_ELEMENT, "undefined element")                      \
    X(TRAP_UNINITIALIZED_ELEMENT, "uninitialized element")              \
    X(TRAP_INDIRECT_CALL_MISMATCH, "indirect call type mismatch")       \
    X(TRAP_STACK_EXHAUSTED, "call stack exhausted")                     \
    X(TRAP_HOST, "host trap") /* a host function raised asyncwasm.Trap */ \
    X(TRAP_NULL_EXNREF, "null exception reference")

enum trap_kind {
#define X(NAME, TEXT) NAME,
    TRAP_KINDS(X)
#undef X
    TRAP__COUNT
};
const char *trap_message(int kind);

/* Frames: a call pushes an rt_frame on fiber->frames and a return pops it.
 * The record holds what the common return needs, in the fewest loads:
 * where the caller continues (ret_ip), the caller's code words (ret_code,
 * for its jump targets) and its first slot (the fp of the frame below; a
 * pointer, which fiber_reserve moves along when it moves the stack).
 * ret_code is NULL for the entry frame and for a frame whose function
 * belongs to another instance than its caller's (a call or tail call into
 * another instance): such returns take interp.c's return_slow, which ends
 * the run or gives back the instance's turn. What traps, stack traces and
 * unwinding need is derived there from func. The frames in use are
 * counted by a pointer, next_frame = frames + the depth, so that a call
 * stores its record at next_frame and a return pops it with no index
 * arithmetic; the call's depth check is one compare of that pointer with
 * frames_limit = frames + min(frames_cap, max_depth): past it, the array
 * grows or the call traps. fiber_depth and fiber_top derive the rest. */
typedef struct {
    const rt_func *func;      /* the function running in this frame */
    const uint32_t *ret_ip;   /* where the caller continues (NULL for the entry frame) */
    const uint32_t *ret_code; /* the caller's code words, or NULL (see above) */
    uint64_t *fp;             /* this frame's first slot (fiber_reserve moves it with the stack) */
} rt_frame;

typedef struct fiber {
    uint64_t *stack;       /* value slots; may be reallocated: frames keep offsets */
    size_t stack_cap;      /* slots allocated */
    uint64_t *stack_end;   /* stack + stack_cap; WASM_INIT_BLOCK more slots are allocated (frame_init) */
    size_t max_stack;      /* slot limit: beyond it, TRAP_STACK_EXHAUSTED */
    rt_frame *frames;
    rt_frame *next_frame;   /* frames + the depth (frames in use) ("Frames") */
    rt_frame *frames_limit; /* frames + min(frames_cap, max_depth): fiber_set_depth_limit */
    uint32_t frames_cap;
    uint32_t max_depth;     /* call depth limit: beyond it, TRAP_STACK_EXHAUSTED */

    const rt_func *entry;
    const uint32_t *ip;    /* where to resume (valid when suspended / out of fuel) */
    int state;             /* last outcome, or -1 before the first run */

    /* RUN_SUSPEND: the awaitable (owned) and where the host call's results go. */
    PyObject *awaitable;
    const wasm_functype *pending_type;
    size_t pending_base;   /* slot offset for the pending results */

    /* RUN_OUT_OF_FUEL: the charge that did not fit. */
    int64_t fuel_needed;

    /* An exception being thrown into the run (a host function raised it
     * while suspended: fiber_run unwinds from the call), or RUN_EXCEPTION's
     * uncaught one: an exnref (owned). */
    void *exn;

    /* RUN_TRAP */
    int trap_kind;
    const rt_func *trap_func;
    uint32_t trap_offset;  /* module byte offset of the trapping instruction, or 0 */
    PyObject *trap_exc;    /* TRAP_HOST: the Trap the host raised (owned) */
    /* Guest backtrace at the trap: function indices, innermost first. */
    uint32_t trap_depth;
    const rt_func **trap_frames;

    /* Statistics. */
    uint64_t fuel_used;
    uint64_t host_calls;
    uint64_t suspensions;
} fiber;

/* The number of frames in use, and the top one (when there is one). */
static inline uint32_t fiber_depth(const fiber *f) { return (uint32_t)(f->next_frame - f->frames); }
static inline rt_frame *fiber_top(const fiber *f) { return f->next_frame - 1; }

/* fiber.c: lifecycle. fiber_start copies args (param_slots slots) and makes
 * `fn` the entry frame; works for host functions too. */
int fiber_init(fiber *f, size_t max_stack_slots, uint32_t max_depth);
int fiber_start(fiber *f, const rt_func *fn, const uint64_t *args);
/* After frames_cap or max_depth changed. */
void fiber_set_depth_limit(fiber *f);
void fiber_free(fiber *f);
/* Grows f->stack so that [fp, fp + need) fits (fp a slot offset), moving
 * the fp of frames [0, depth) with it; -1 (no exception) past max_stack. */
int fiber_reserve(fiber *f, size_t fp, size_t need);

/* interp.c: run until done, suspension, trap, error, or the fuel runs out.
 * *fuel is decremented by what was charged. */
int fiber_run(fiber *f, int64_t *fuel);
/* How this build runs code, e.g. "dispatch=computed-goto simd=sse2" (the
 * build variants of scripts/build-variants.sh). */
const char *interp_build_info(void);

/* runtime.c: call a host function with its arguments at f->stack[base...].
 * Returns 0 with results written at base, RUN_SUSPEND (awaitable stored,
 * pending_* set), RUN_TRAP (trap_* set), RUN_EXCEPTION (it raised a Wasm
 * exception: f->exn set) or RUN_ERROR (exception set). */
int rt_call_host(fiber *f, const rt_func *fn, size_t base);

/* py_exceptions.c: exceptions. An exnref is a pointer to a Python object;
 * slots own nothing, so the fiber holds every exception that enters its
 * slots and lets go of those its slots no longer hold (found by scanning
 * them) as more come. */
/* A new exception of `tag` with the payload at `payload`, held by f.
 * NULL: a Python exception (MemoryError) is set. */
void *rt_exn_new(fiber *f, const rt_tag *tag, const uint64_t *payload);
/* Delivers a caught exception into f's slots: its payload at `payload` and
 * the reference itself at `ref` (either NULL: not wanted), keeping what
 * they refer to alive. -1: MemoryError set. */
int rt_exn_catch(fiber *f, void *exn, uint64_t *payload, uint64_t *ref);
const rt_exn *rt_exn_get(const void *exn);
/* runtime.c: a call from the running instance into `callee`, a Wasm function
 * of another instance, whose frame was just pushed (fiber_top(f))
 * and has not run: takes that instance's turn (its one-task rule) and counts
 * the call in its statistics. Returns 0, RUN_SUSPEND (the turn is another
 * task's: the awaitable waits for it; the caller pops the frame and runs the
 * call instruction again on resume) or RUN_ERROR (exception set: the
 * instance is interrupted, or busy and this fiber cannot wait).
 * f->fuel_used must be current. */
int rt_enter_instance(fiber *f, const rt_func *callee);
/* runtime.c: the frames from f->next_frame up were just popped (a
 * return into a function of another instance, or an unwinding): give back
 * the turns they took. f->fuel_used must be current. */
void rt_leave_instance(fiber *f);
/* runtime.c: the running frame tail-calls `callee`, a Wasm function of
 * another instance, and has not been replaced yet: the frame takes that
 * instance's turn, and gives back the one it took when it was entered.
 * Returns as rt_enter_instance (RUN_SUSPEND: the call runs again on resume). */
int rt_tail_enter_instance(fiber *f, const rt_func *callee);

#endif /* ASYNCWASM_ENGINE_H */
