/* pyengine.h -- private to runtime.c, pyengine.c and the py_*.c files: the
 * layouts of the Python objects that embed the engine's rt_* structs, and the
 * helpers those files share. No other file includes it; engine.h stays the contract
 * between the engine's stages.
 *
 * Ownership (who keeps what alive):
 *   Instance  -> CompiledModule, every extern in its index spaces (imported
 *                and defined), and the Func objects made for its functions.
 *   Func      -> its Instance (Wasm functions) or its callable (host).
 *   Table / Global -> whatever their reference elements point to
 *                (rt_ref_store: funcref -> rt_func.owner, externref -> object).
 *   Fiber     -> its entry Func, its argument tuple, and `keepalive`: objects
 *                from Python that operand-stack slots point to.
 * An instance does not own the Func objects of its own functions (they own
 * it), so those form no cycle; tables and globals that hold its functions
 * do, and both types support the cyclic GC.
 */
#ifndef ASYNCWASM_PYENGINE_H
#define ASYNCWASM_PYENGINE_H

#include "engine.h"

/* ---- classes imported at module init (asyncwasm._errors / _types) ---------- */

typedef struct {
    PyObject *WasmError, *LinkError, *Trap, *MalformedError, *ValidationError, *Frame, *WasmException;
    PyObject *FuncType, *MemoryType, *TableType, *GlobalType, *TagType, *ValType;
    PyObject *hooks; /* dict filled by set_hooks() */
} engine_classes;

extern engine_classes py_classes;

extern PyTypeObject CompiledModule_Type, Func_Type, Memory_Type, Table_Type, Global_Type,
    Instance_Type, Fiber_Type, Caller_Type, Tag_Type, Exn_Type, MemoryBudget_Type;

/* ---- object layouts ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    wasm_module m;
} CompiledModuleObject;

typedef struct InstanceObject InstanceObject;

/* rt_func.owner is the object that keeps the rt_func alive: the Func object
 * itself for host functions (the rt_func is `own`), the Instance object for
 * Wasm functions (the rt_func lives in Instance.defined_funcs). Func objects
 * for Wasm functions are made on demand, so an instance of a module with
 * thousands of functions does not allocate thousands of Python objects. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    rt_func *fn;              /* &own (host) or into instance->defined_funcs (Wasm) */
    InstanceObject *instance; /* Wasm functions: strong reference; host: NULL */
    PyObject *pytype;         /* cached FuncType, or NULL */
    rt_func own;              /* host functions: own.host is the callable (owned) */
    wasm_functype own_type;   /* host functions: params/results in one owned block */
    bool access_caller;       /* host functions: called as callable(caller, *args) */
    PyObject *weakrefs;
} FuncObject;

typedef struct {
    PyObject_HEAD
    rt_memory mem;
    PyObject *budget;   /* the MemoryBudgetObject behind mem.budget (owned), or NULL */
    PyObject *weakrefs;
} MemoryObject;

typedef struct {
    PyObject_HEAD
    rt_memory_budget budget;
} MemoryBudgetObject;

typedef struct {
    PyObject_HEAD
    rt_table tab;
    PyObject *weakrefs;
} TableObject;

typedef struct {
    PyObject_HEAD
    rt_global glob;
    PyObject *weakrefs;
} GlobalObject;

/* A tag (py_exceptions.c): its identity is what catch clauses match. */
typedef struct {
    PyObject_HEAD
    rt_tag tag;             /* tag.type = &own_type */
    wasm_functype own_type; /* params and results in one owned block */
    PyObject *pytype;       /* cached TagType, or NULL */
    PyObject *weakrefs;
} TagObject;

struct InstanceObject {
    PyObject_HEAD
    rt_instance rt;
    CompiledModuleObject *module; /* strong; set once the arrays below exist */
    rt_func *defined_funcs;       /* nfuncs - nimported_funcs */
    /* nfuncs: the imported Func (owned), or the Func made on demand for one of
     * its own functions (borrowed: the Func owns the instance, and its
     * dealloc empties the slot; so an instance and its Funcs form no cycle
     * and die by reference count), NULL until then. */
    PyObject **funcs;
    PyObject **tables;            /* ntables TableObject */
    PyObject **memories;          /* nmemories MemoryObject */
    PyObject **globals;           /* nglobals GlobalObject */
    PyObject **tags;              /* ntags TagObject */
    bool cleared;                 /* tp_clear ran: the index spaces are gone */
    PyObject *weakrefs;
    /* The Python side's state of this instance (asyncwasm.execution: limits,
     * who holds it, interrupted, statistics), or NULL. While `guarded`,
     * synchronous calls of its functions from Python (Func.__call__,
     * call_raw) go to gate.call_sync(func, args, raw) instead of the fast
     * path; the Python side sets it when a call must be checked or limited. */
    PyObject *gate;
    bool guarded;
    /* Call depth limit of every call into this instance's functions (the
     * fast path's pooled fibers take it per call). */
    uint32_t max_call_depth;
    /* Calls that took the synchronous fast path, for the instance's statistics. */
    uint64_t fast_calls, fast_fuel_used, fast_host_calls;
};

/* A call this fiber made into another instance's function that has not
 * returned yet (runtime.c "Turns"). */
typedef struct rt_turn {
    InstanceObject *inst;  /* the instance entered (strong) */
    uint32_t depth;        /* index of the first frame run in it */
    bool held;             /* its gate gave this fiber its turn: give it back on leaving */
    uint64_t fuel_at_entry;
} rt_turn;

/* The fiber as runtime.c and the py_*.c files see it: every fiber that runs
 * is embedded in one of these (Fiber objects and the sync-call pool), so
 * rt_call_host can reach `keepalive` from the `fiber *` the interpreter passes. */
typedef struct rt_fiber {
    fiber f;
    PyObject *keepalive;       /* list of objects that slots point to, or NULL */
    const rt_func *pending_fn; /* the host function whose awaitable is pending */
    PyObject *caller;          /* the Caller that pending host function received, or NULL */
    bool may_suspend;          /* false for the synchronous fast path's pooled fibers */
    /* Calls into other instances in progress, innermost last. */
    rt_turn *turns;
    uint32_t nturns, turns_cap;
    /* RUN_SUSPEND waiting for this instance's turn (strong), or NULL; once
     * granted, the call instruction runs again and takes it. */
    InstanceObject *turn_wait;
    bool turn_granted;
    /* Exceptions its slots may hold (owned references; py_exceptions.c). */
    PyObject **exns;
    uint32_t nexns, exns_cap, exns_sweep_at;
} rt_fiber;

static inline rt_fiber *rt_fiber_of(fiber *f)
{
    return (rt_fiber *)((char *)f - offsetof(rt_fiber, f));
}

/* The fiber running on this thread (innermost), for rt_ref_store. */
extern _Thread_local rt_fiber *rt_running;

/* ---- exceptions as objects (PyErr_Fetch is deprecated from 3.12) ------------- */

/* Take the exception being raised (normalized, traceback attached), or NULL. */
static inline PyObject *rt_err_take(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise `exc` (stolen) with its own traceback; NULL clears the error. */
static inline void rt_err_raise(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (exc == NULL) {
        PyErr_Clear();
        return;
    }
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* ---- runtime.c: memories and tables -------------------------------------------- */

/* Reserve address space for rt_memory_cap pages (or take over a kept
 * reservation of that size) and commit the minimum.
 * -1: ValueError (minimum above the cap) or MemoryError set. */
int rt_memory_init(rt_memory *m, const wasm_limits *type, uint64_t limit_pages);
/* Free: the reservation is kept for the next memory of its size (a few are,
 * contents discarded) or unmapped. */
void rt_memory_free(rt_memory *m);
/* Unmap the kept reservations; returns how many there were. */
int rt_memory_pool_release(void);
/* Cap of a memory: min(declared max or the address type's maximum, limit). */
uint64_t rt_memory_cap(const wasm_limits *type, uint64_t limit_pages);

/* size = min, every element `init` (an owned reference is taken per element).
 * max = min(declared max, limit). -1: MemoryError set. */
int rt_table_init(rt_table *t, uint8_t elemtype, const wasm_limits *type, uint32_t limit, void *init);
/* Drop every element's reference (GC clear), keeping the size. */
void rt_table_release(rt_table *t);
void rt_table_free(rt_table *t);

/* The object a non-null reference keeps alive. */
static inline PyObject *rt_ref_owner(uint8_t type, void *ref)
{
    return type == VT_FUNCREF ? ((rt_func *)ref)->owner : (PyObject *)ref;
}

/* Store without deferring the release (tp_clear / dealloc). */
void rt_ref_store_now(void **dst, uint8_t type, void *ref);

/* ---- runtime.c: value conversions -------------------------------------------------
 * Normal mode: i32/i64 signed ints, f32/f64 floats, v128 unsigned int,
 * funcref Func|None, externref any object (None is null). Raw mode: numbers
 * as non-negative bit patterns. Conversions from Python never take
 * references: the caller keeps reference values alive. */
int rt_value_from_py(uint8_t type, PyObject *v, bool raw, uint64_t *slots);
PyObject *rt_value_to_py(uint8_t type, const uint64_t *slots, bool raw);
/* The values of `types` at `slots`: None / value / tuple, or always a tuple. */
PyObject *rt_values_to_py(const uint8_t *types, uint32_t n, const uint64_t *slots, bool raw,
                          bool as_tuple);
/* Arguments for `type` from an array of n objects (TypeError on a wrong count). */
int rt_args_from_py(const wasm_functype *type, PyObject *const *args, Py_ssize_t n, bool raw,
                    uint64_t *slots);
/* A host function's result (None / value / sequence) written at f->stack[base]
 * for `fn`'s result types; objects it refers to go to rf->keepalive.
 * -1: TypeError (naming the host function) set, slots untouched. */
int rt_host_result_store(rt_fiber *rf, const rt_func *fn, PyObject *result, size_t base);
/* Keep `obj` alive as long as the fiber (a new reference is taken). */
int rt_fiber_keep(rt_fiber *rf, PyObject *obj);
/* A readable name of a host function's callable (new reference). */
PyObject *rt_host_name(const rt_func *fn);

/* ---- runtime.c: turns (calls into other instances) ---------------------------------- */

/* The fiber ends (trap, error, done) or is dropped: give back every turn it
 * holds, innermost first. Dropped while suspended or out of fuel, its guests
 * stopped half-way, so the instances it had entered are interrupted. */
void rt_fiber_end_turns(rt_fiber *rf);

/* ---- py_caller.c ------------------------------------------------------------------------ */

/* A Caller for the instance running `f`'s innermost frame (new reference), or
 * NULL with TypeError set when no guest is calling (the fiber's entry is `fn`). */
PyObject *rt_caller_new(const fiber *f, const rt_func *fn);
/* The host call is over: the Caller stops working (NULL is ignored). */
void rt_caller_end(PyObject *caller);
/* The memory a Caller or GuestHeap works on: export "memory", else memory 0,
 * else NULL (borrowed). */
PyObject *instance_default_memory(InstanceObject *inst);

/* ---- wasi_sock.c: WASI socket calls in C --------------------------------------------------- */

extern PyTypeObject SockCall_Type, SockTable_Type;
enum { SOCKCALL_DONE, SOCKCALL_LATER, SOCKCALL_ERROR, SOCKCALL_FALLBACK };
/* Run a SockCall's C path on the arguments at `args` (one slot each):
 * DONE (the i32 result written at args[0]), LATER (*later: what the Python
 * function would have returned: an awaitable), ERROR (exception set), or
 * FALLBACK (nothing happened: call the Python function). */
int sockcall_run(PyObject *call, uint64_t *args, PyObject **later);

/* ---- runtime.c: instantiation ------------------------------------------------------- */

/* Fill `self` (module set, everything else zero) from the externs: link the
 * imports, create the defined externs, apply the active segments. -1 with
 * LinkError / Trap / MemoryError set. */
int rt_instantiate(InstanceObject *self, PyObject *const *externs, Py_ssize_t nexterns,
                   uint64_t max_memory_pages, uint32_t max_table_elements, PyObject *memory_budget);

/* ---- pyengine.c: limits and helpers shared by the py_*.c files ------------------------ */

#define DEFAULT_MAX_CALL_DEPTH 10000u
#define DEFAULT_MAX_STACK_SLOTS (1u << 20)
#define DEFAULT_MAX_TABLE_ELEMENTS 10000000u

/* WasmError(printf-style message); always -1. */
int raise_wasm_error(const char *fmt, ...);
/* An int argument in 0..max (TypeError / ValueError naming `name`). */
int u32_arg(PyObject *obj, const char *name, uint64_t max, uint32_t *out);
int u64_arg(PyObject *obj, const char *name, uint64_t max, uint64_t *out);
/* Positional argument count of a METH_FASTCALL method. */
int check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max);
/* A non-negative int offset/length; too large or negative is an IndexError. */
int index_arg(PyObject *obj, const char *name, uint64_t *out);
/* TypeError unless `obj` is an instance of the asyncwasm._types class `cls`. */
int require_type(PyObject *obj, PyObject *cls, const char *who);
/* min/max/is_64 attributes of a MemoryType/TableType-like object, each <=
 * bound32 (32-bit addresses) or bound64 (is_64). */
int limits_from_py(PyObject *type, uint64_t bound32, uint64_t bound64, wasm_limits *out);
int valtype_from_py(PyObject *obj, uint8_t *out);
/* C values as asyncwasm._types objects (new references). */
PyObject *name_to_py(wasm_name name);
PyObject *optional_u32(bool present, uint32_t value);
PyObject *tabletype_to_py(uint8_t elem, const wasm_limits *l);
PyObject *memtype_to_py(const wasm_limits *l);
PyObject *globaltype_to_py(uint8_t type, bool mutable_);

/* ---- py_exceptions.c: tags, exceptions, asyncwasm.WasmException ----------------------- */

/* An exception as a WasmException (new reference; its _exn is `exn`). */
PyObject *rt_exn_to_py(void *exn);
/* The exception a WasmException stands for: its _exn, else one made from
 * its tag and values (then kept as its _exn). Borrowed (the object holds
 * it); NULL with TypeError set when it cannot be one. */
void *rt_exn_from_py(PyObject *exc);
/* Drop the exceptions a fiber holds (the run is over). */
void rt_fiber_clear_exns(rt_fiber *rf);
int rt_fiber_visit_exns(rt_fiber *rf, visitproc visit, void *arg);
/* A Tag object for a defined tag of type `t` (new reference). */
PyObject *pyengine_new_tag(const wasm_functype *t);
PyObject *tagtype_to_py(const wasm_functype *t);

/* ---- py_module.c ---------------------------------------------------------------------- */

extern const char compile_doc[];
PyObject *engine_compile(PyObject *module, PyObject *args, PyObject *kwds);

/* ---- py_func.c: running fibers (also used by py_fiber.c) ------------------------------ */

/* Arguments of this many slots or fewer are converted on the C stack. */
#define ARGS_ON_STACK 16

/* fiber_run with `rf` as this thread's running fiber (for rt_ref_store). */
int run_fiber(rt_fiber *rf, int64_t *fuel);
/* fiber_start failed: raise why (too big for the stack limit, or no memory). */
void raise_start_failed(const fiber *f, const rt_func *fn);
/* The Trap for a fiber in state RUN_TRAP (new reference). */
PyObject *make_trap(const fiber *f);
/* A FuncType object's params and results, as an owned functype (interned). */
int host_functype_from_py(PyObject *functype, wasm_functype *out);
/* RuntimeError unless the function can still be called (instance alive, host callable set). */
int func_check_callable(FuncObject *self);

/* ---- py_*.c: objects runtime.c creates ------------------------------------------------ */

/* The Func object of function `index` of an instance (new reference). */
PyObject *pyengine_instance_func(InstanceObject *inst, uint32_t index);
/* A funcref value as a Python object: Func or None (new reference). */
PyObject *pyengine_funcref_to_py(const rt_func *fn);
PyObject *pyengine_functype_to_py(const wasm_functype *t);
PyObject *pyengine_valtype_to_py(uint8_t t);
/* A new Memory; `budget`: a MemoryBudget its pages count against, or NULL/None
 * (LinkError when its initial pages do not fit). */
PyObject *pyengine_new_memory(const wasm_limits *type, uint64_t limit, PyObject *budget);
PyObject *pyengine_new_table(uint8_t elemtype, const wasm_limits *type, uint32_t limit);
PyObject *pyengine_new_global(uint8_t type, bool mutable_);

#endif /* ASYNCWASM_PYENGINE_H */
