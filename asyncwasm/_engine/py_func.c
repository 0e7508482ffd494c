/* py_func.c -- Func, and the synchronous call path: pooled fibers run to completion.
 *
 * Part of asyncwasm._engine's Python face (pyengine.c has the module and the
 * helpers these files share; layouts and ownership in pyengine.h).
 */
#include <string.h>

#include "pyengine.h"

/* ========================================================================== */
/* Running fibers                                                             */
/* ========================================================================== */

/* fiber_run with `rf` as this thread's running fiber (for rt_ref_store). */
int run_fiber(rt_fiber *rf, int64_t *fuel)
{
    rt_fiber *outer = rt_running;
    rt_running = rf;
    int outcome = fiber_run(&rf->f, fuel);
    rt_running = outer;
    return outcome;
}

/* fiber_start failed: too big for the stack limit, or no memory. */
void raise_start_failed(const fiber *f, const rt_func *fn)
{
    size_t need = fn->type->param_slots;
    if (fn->type->result_slots > need) need = fn->type->result_slots;
    if (fn->code != NULL && fn->code->max_slots > need) need = fn->code->max_slots;
    if (f->max_depth == 0 || need > f->max_stack) {
        PyObject *exc = PyObject_CallFunction(py_classes.Trap, "s", trap_message(TRAP_STACK_EXHAUSTED));
        if (exc != NULL) rt_err_raise(exc);
        return;
    }
    PyErr_NoMemory();
}

static PyObject *func_name_of(const rt_func *fn)
{
    if (fn->host != NULL) return rt_host_name(fn);
    const wasm_module *m = fn->inst ? fn->inst->module : NULL;
    if (m == NULL || fn->index >= m->nfuncs || m->funcs[fn->index].name.len == 0) Py_RETURN_NONE;
    return name_to_py(m->funcs[fn->index].name);
}

static PyObject *trap_frame(const rt_func *fn, PyObject *offset)
{
    PyObject *name = func_name_of(fn);
    if (name == NULL) return NULL;
    PyObject *frame = PyObject_CallFunction(py_classes.Frame, "kOO", (unsigned long)fn->index, name, offset);
    Py_DECREF(name);
    return frame;
}

/* The Trap for a fiber in state RUN_TRAP (new reference): the host's own
 * exception for TRAP_HOST, else Trap(kind, frames innermost first). */
PyObject *make_trap(const fiber *f)
{
    if (f->trap_exc != NULL) return Py_NewRef(f->trap_exc);
    uint32_t depth = f->trap_frames ? f->trap_depth : (f->trap_func ? 1 : 0);
    PyObject *frames = PyTuple_New(depth);
    for (uint32_t i = 0; frames != NULL && i < depth; i++) {
        const rt_func *fn = f->trap_frames ? f->trap_frames[i] : f->trap_func;
        /* Only the innermost frame's offset is known (the trapping instruction). */
        PyObject *offset =
            i == 0 && f->trap_offset ? PyLong_FromUnsignedLong(f->trap_offset) : Py_NewRef(Py_None);
        PyObject *frame = offset ? trap_frame(fn, offset) : NULL;
        Py_XDECREF(offset);
        if (frame == NULL) Py_CLEAR(frames);
        else PyTuple_SET_ITEM(frames, i, frame);
    }
    if (frames == NULL) return NULL;
    PyObject *exc = PyObject_CallFunction(py_classes.Trap, "sO", trap_message(f->trap_kind), frames);
    Py_DECREF(frames);
    return exc;
}

/* Close what a host function returned during a synchronous call (so that no
 * "never awaited" warning follows) and raise RuntimeError. */
static void refuse_awaitable(rt_fiber *rf)
{
    PyObject *awaitable = rf->f.awaitable;
    if (awaitable != NULL && PyObject_HasAttrString(awaitable, "close")) {
        PyObject *r = PyObject_CallMethod(awaitable, "close", NULL);
        if (r == NULL) PyErr_WriteUnraisable(awaitable);
        Py_XDECREF(r);
    }
    PyObject *name = rf->pending_fn ? rt_host_name(rf->pending_fn) : PyUnicode_FromString("?");
    if (name == NULL) return;
    PyErr_Format(PyExc_RuntimeError,
                 "host function %R returned an awaitable during a synchronous call; use call_async", name);
    Py_DECREF(name);
}

/* ---- the synchronous call path (Func.__call__ / call_raw) -------------------------
 * A small pool of fibers avoids allocating a stack per call; a fiber leaves
 * the pool while in use, so re-entrant calls from host functions simply take
 * another one. Fibers whose stack grew large are freed instead of pooled. */

#define POOL_SIZE 8
#define POOL_MAX_STACK_SLOTS (1u << 16)

static rt_fiber *fiber_pool[POOL_SIZE];
static int fiber_pool_len;

static rt_fiber *pool_take(void)
{
    if (fiber_pool_len > 0) return fiber_pool[--fiber_pool_len];
    rt_fiber *rf = PyMem_Calloc(1, sizeof *rf);
    if (rf == NULL || fiber_init(&rf->f, DEFAULT_MAX_STACK_SLOTS, DEFAULT_MAX_CALL_DEPTH) != 0) {
        PyMem_Free(rf);
        PyErr_NoMemory();
        return NULL;
    }
    return rf;
}

static void pool_give(rt_fiber *rf)
{
    /* Give back the turns of instances it was still in (an error or an
     * interruption ended the call there), end the Caller of a refused
     * awaitable, and drop references now (not at the next start): a trap's
     * traceback or a kept object must not outlive the call. */
    if (rf->nturns > 0 || rf->turn_wait != NULL) rt_fiber_end_turns(rf);
    if (rf->caller != NULL) {
        rt_caller_end(rf->caller);
        Py_CLEAR(rf->caller);
    }
    Py_CLEAR(rf->f.awaitable);
    Py_CLEAR(rf->f.trap_exc);
    Py_CLEAR(rf->f.exn);
    Py_CLEAR(rf->keepalive);
    rt_fiber_clear_exns(rf);
    rf->pending_fn = NULL;
    if (fiber_pool_len < POOL_SIZE && rf->f.stack_cap <= POOL_MAX_STACK_SLOTS) {
        fiber_pool[fiber_pool_len++] = rf;
        return;
    }
    fiber_free(&rf->f);
    PyMem_Free(rf->turns);
    PyMem_Free(rf);
}

/* The outcome of a synchronous run as a Python result or exception. */
static PyObject *sync_outcome(rt_fiber *rf, int outcome, bool raw)
{
    const wasm_functype *type = rf->f.entry->type;
    switch (outcome) {
    case RUN_DONE:
        return rt_values_to_py(type->results, type->nresults, rf->f.stack, raw, raw);
    case RUN_SUSPEND:
        rf->f.state = RUN_ERROR; /* the host call failed: an error, not an interruption */
        refuse_awaitable(rf);
        return NULL;
    case RUN_TRAP: {
        PyObject *exc = make_trap(&rf->f);
        if (exc != NULL) rt_err_raise(exc);
        return NULL;
    }
    case RUN_EXCEPTION: {
        PyObject *exc = rt_exn_to_py(rf->f.exn);
        if (exc != NULL) rt_err_raise(exc);
        return NULL;
    }
    default:
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_SystemError, "asyncwasm: run ended with outcome %d and no exception", outcome);
        return NULL;
    }
}

/* Add a fast-path call to its instance's statistics (Wasm functions only:
 * a host function has no instance). No clock is read: that would double the
 * cost of a short call; the Python drivers time the calls they run. */
static void count_fast_call(const rt_func *fn, const fiber *f)
{
    if (fn->inst == NULL || fn->inst->owner == NULL) return;
    InstanceObject *inst = (InstanceObject *)fn->inst->owner;
    inst->fast_calls++;
    inst->fast_fuel_used += f->fuel_used;
    inst->fast_host_calls += f->host_calls;
}

/* The fast path runs in slices this big (a few ms of guest code) only to
 * look at signals in between, so that Ctrl-C stops a spinning guest. */
#define SYNC_SIGNAL_SLICE ((int64_t)1 << 23)

/* A signal handler raised while `fn`'s guest was mid-run: the fiber is
 * dropped, so its instance is marked interrupted through its gate (the
 * Python side, asyncwasm.execution), keeping the exception set. */
static void interrupt_instance(const rt_func *fn)
{
    if (fn->inst == NULL || fn->inst->owner == NULL) return;
    PyObject *gate = ((InstanceObject *)fn->inst->owner)->gate;
    if (gate == NULL) return;
    PyObject *exc = rt_err_take();
    PyObject *name = exc ? PyUnicode_FromFormat("a synchronous call was stopped by %s", Py_TYPE(exc)->tp_name)
                         : NULL;
    PyObject *r = name ? PyObject_CallMethod(gate, "interrupt", "O", name) : NULL;
    if (r == NULL) PyErr_WriteUnraisable(gate);
    Py_XDECREF(r);
    Py_XDECREF(name);
    rt_err_raise(exc);
}

static PyObject *run_sync(const rt_func *fn, const uint64_t *args, bool raw)
{
    rt_fiber *rf = pool_take();
    if (rf == NULL) return NULL;
    rf->f.max_depth = fn->inst != NULL && fn->inst->owner != NULL
                          ? ((InstanceObject *)fn->inst->owner)->max_call_depth
                          : DEFAULT_MAX_CALL_DEPTH;
    PyObject *result = NULL;
    if (fiber_start(&rf->f, fn, args) != 0) {
        raise_start_failed(&rf->f, fn);
    } else if (Py_EnterRecursiveCall(" in a Wasm call") == 0) {
        int outcome;
        for (;;) {
            int64_t fuel = rf->f.fuel_needed > SYNC_SIGNAL_SLICE ? rf->f.fuel_needed : SYNC_SIGNAL_SLICE;
            outcome = run_fiber(rf, &fuel);
            if (outcome != RUN_OUT_OF_FUEL) break;
            if (PyErr_CheckSignals() < 0) {
                interrupt_instance(fn);
                outcome = RUN_ERROR;
                break;
            }
        }
        Py_LeaveRecursiveCall();
        count_fast_call(fn, &rf->f);
        result = sync_outcome(rf, outcome, raw);
    }
    pool_give(rf);
    return result;
}

/* ========================================================================== */
/* Func                                                                       */
/* ========================================================================== */

int func_check_callable(FuncObject *self)
{
    if (self->instance != NULL && self->instance->cleared) {
        PyErr_SetString(PyExc_RuntimeError, "the function's instance was destroyed");
        return -1;
    }
    if (self->instance == NULL && self->own.host == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the host function was cleared");
        return -1;
    }
    return 0;
}


/* A synchronous call of a guarded instance's function: the instance's gate
 * (asyncwasm.execution) checks who may enter and applies its limits. */
static PyObject *call_through_gate(FuncObject *self, PyObject *const *args, Py_ssize_t nargs, bool raw)
{
    PyObject *tuple = PyTuple_New(nargs);
    if (tuple == NULL) return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    PyObject *gate = Py_NewRef(self->instance->gate); /* the call may replace it */
    PyObject *result =
        PyObject_CallMethod(gate, "call_sync", "OOO", (PyObject *)self, tuple, raw ? Py_True : Py_False);
    Py_DECREF(gate);
    Py_DECREF(tuple);
    return result;
}

static PyObject *func_call(FuncObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                           bool raw)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_SetString(PyExc_TypeError, "Func calls take no keyword arguments");
        return NULL;
    }
    if (func_check_callable(self) < 0) return NULL;
    if (self->instance != NULL && self->instance->guarded && self->instance->gate != NULL)
        return call_through_gate(self, args, nargs, raw);
    const rt_func *fn = self->fn;
    uint64_t small[ARGS_ON_STACK], *slots = small;
    if (fn->type->param_slots > ARGS_ON_STACK) {
        slots = PyMem_Malloc(sizeof *slots * fn->type->param_slots);
        if (slots == NULL) return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    if (rt_args_from_py(fn->type, args, nargs, raw, slots) == 0) result = run_sync(fn, slots, raw);
    if (slots != small) PyMem_Free(slots);
    return result;
}

static PyObject *Func_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return func_call((FuncObject *)self, args, PyVectorcall_NARGS(nargsf), kwnames, false);
}

static PyObject *Func_call_raw(FuncObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return func_call(self, args, nargs, NULL, true);
}

static PyObject *Func_call_async(FuncObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *hook = PyDict_GetItemString(py_classes.hooks, "call_async"); /* borrowed */
    if (hook == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Func.call_async needs the async driver (asyncwasm.execution registers it)");
        return NULL;
    }
    PyObject *tuple = PyTuple_New(nargs);
    if (tuple == NULL) return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    PyObject *result = PyObject_CallFunctionObjArgs(hook, (PyObject *)self, tuple, NULL);
    Py_DECREF(tuple);
    return result;
}

/* Func(functype, callable): a host function. */
int host_functype_from_py(PyObject *functype, wasm_functype *out)
{
    PyObject *params = PyObject_GetAttrString(functype, "params");
    PyObject *results = params ? PyObject_GetAttrString(functype, "results") : NULL;
    PyObject *p = results ? PySequence_Fast(params, "FuncType.params must be a sequence") : NULL;
    PyObject *r = p ? PySequence_Fast(results, "FuncType.results must be a sequence") : NULL;
    int rc = -1;
    if (r == NULL) goto done;
    Py_ssize_t np = PySequence_Fast_GET_SIZE(p), nr = PySequence_Fast_GET_SIZE(r);
    if (np > 1000 || nr > 1000) {
        PyErr_SetString(PyExc_ValueError, "a function type has at most 1000 parameters and results");
        goto done;
    }
    uint8_t *block = PyMem_Malloc((size_t)(np + nr) + 1);
    if (block == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    out->params = block;
    out->results = block + np;
    out->nparams = (uint32_t)np;
    out->nresults = (uint32_t)nr;
    out->param_slots = out->result_slots = 0;
    for (Py_ssize_t i = 0; i < np; i++) {
        if (valtype_from_py(PySequence_Fast_GET_ITEM(p, i), &out->params[i]) < 0) goto done;
        out->param_slots += valtype_slots(out->params[i]);
    }
    for (Py_ssize_t i = 0; i < nr; i++) {
        if (valtype_from_py(PySequence_Fast_GET_ITEM(r, i), &out->results[i]) < 0) goto done;
        out->result_slots += valtype_slots(out->results[i]);
    }
    out->id = functype_intern(out->params, out->nparams, out->results, out->nresults);
    if (out->id == UINT32_MAX) {
        PyErr_NoMemory();
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(params);
    Py_XDECREF(results);
    Py_XDECREF(p);
    Py_XDECREF(r);
    return rc;
}

static PyObject *Func_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"functype", "callable", "access_caller", NULL};
    PyObject *functype, *callable;
    int access_caller = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|$p:Func", kwlist, &functype, &callable, &access_caller))
        return NULL;
    if (require_type(functype, py_classes.FuncType, "Func()") < 0) return NULL;
    if (!PyCallable_Check(callable)) {
        PyErr_Format(PyExc_TypeError, "Func() needs a callable, not %.100s", Py_TYPE(callable)->tp_name);
        return NULL;
    }
    FuncObject *self = (FuncObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = Func_vectorcall;
    if (host_functype_from_py(functype, &self->own_type) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->own.type = &self->own_type;
    self->own.host = Py_NewRef(callable);
    self->own.owner = (PyObject *)self;
    self->access_caller = access_caller != 0;
    self->fn = &self->own;
    return (PyObject *)self;
}

/* A Func object for a Wasm function of an instance. */
static FuncObject *new_wasm_func(InstanceObject *inst, rt_func *fn)
{
    FuncObject *self = (FuncObject *)Func_Type.tp_alloc(&Func_Type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = Func_vectorcall;
    self->fn = fn;
    self->instance = (InstanceObject *)Py_NewRef((PyObject *)inst);
    return self;
}

PyObject *pyengine_instance_func(InstanceObject *inst, uint32_t index)
{
    const wasm_module *m = inst->rt.module;
    if (inst->cleared || inst->funcs == NULL || m == NULL || index >= m->nfuncs ||
        inst->rt.funcs[index] == NULL) {
        PyErr_Format(PyExc_RuntimeError, "function %u of the instance is not available", index);
        return NULL;
    }
    if (inst->funcs[index] == NULL) {
        FuncObject *f = new_wasm_func(inst, inst->rt.funcs[index]);
        if (f == NULL) return NULL;
        inst->funcs[index] = (PyObject *)f; /* borrowed: Func_dealloc empties it */
        return (PyObject *)f;
    }
    return Py_NewRef(inst->funcs[index]);
}

PyObject *pyengine_funcref_to_py(const rt_func *fn)
{
    if (fn == NULL) Py_RETURN_NONE;
    PyObject *owner = fn->owner;
    if (Py_IS_TYPE(owner, &Func_Type)) return Py_NewRef(owner);
    return pyengine_instance_func((InstanceObject *)owner, fn->index);
}

static int Func_traverse(FuncObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->instance);
    Py_VISIT(self->own.host);
    Py_VISIT(self->pytype);
    return 0;
}

/* The instance reference is kept: every cycle through a Wasm Func also runs
 * through its Instance, whose tp_clear breaks it, and `fn` must stay valid. */
static int Func_clear(FuncObject *self)
{
    Py_CLEAR(self->pytype);
    Py_CLEAR(self->own.host);
    return 0;
}

static void Func_dealloc(FuncObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    Func_clear(self);
    InstanceObject *inst = self->instance;
    if (inst != NULL && inst->funcs != NULL && inst->funcs[self->fn->index] == (PyObject *)self)
        inst->funcs[self->fn->index] = NULL; /* the instance's borrowed cache entry */
    Py_CLEAR(self->instance);
    PyMem_Free(self->own_type.params);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Func_get_type(FuncObject *self, void *closure)
{
    (void)closure;
    if (self->pytype == NULL) self->pytype = pyengine_functype_to_py(self->fn->type);
    return Py_XNewRef(self->pytype);
}

static PyObject *Func_repr(FuncObject *self)
{
    PyObject *name = func_name_of(self->fn);
    PyObject *type = name ? Func_get_type(self, NULL) : NULL;
    PyObject *repr = NULL;
    if (type != NULL) {
        if (name == Py_None)
            repr = PyUnicode_FromFormat("<asyncwasm.Func #%u %S>", self->fn->index, type);
        else
            repr = PyUnicode_FromFormat("<asyncwasm.Func %S: %S>", name, type);
    }
    Py_XDECREF(name);
    Py_XDECREF(type);
    return repr;
}

static PyMethodDef Func_methods[] = {
    {"call_raw", (PyCFunction)(void (*)(void))Func_call_raw, METH_FASTCALL,
     "call_raw(*args) -> tuple\n\n"
     "Call with numbers as bit patterns (non-negative ints); results always a tuple."},
    {"call_async", (PyCFunction)(void (*)(void))Func_call_async, METH_FASTCALL,
     "call_async(*args) -> awaitable\n\n"
     "await func.call_async(*args): the call driven by trio in the current task (see\n"
     "asyncwasm.execution.call_async); returns what func(*args) returns."},
    {NULL},
};

/* The gate of the instance that defines this function (None for host
 * functions and for instances without one), for asyncwasm.execution. */
static PyObject *Func_get_gate(FuncObject *self, void *closure)
{
    (void)closure;
    PyObject *gate = self->instance != NULL ? self->instance->gate : NULL;
    return Py_NewRef(gate != NULL ? gate : Py_None);
}

static PyGetSetDef Func_getset[] = {
    {"type", (getter)Func_get_type, NULL, "the FuncType", NULL},
    {"_gate", (getter)Func_get_gate, NULL, "the defining instance's gate, or None (private)", NULL},
    {NULL},
};

PyTypeObject Func_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.Func",
    .tp_doc = "Func(functype, callable, *, access_caller=False)\n\n"
              "A function: a host function made from a Python callable, or a Wasm\n"
              "function of an instance. Calling it runs it synchronously:\n"
              "    add = instance.exports['add']; add(1, 2) -> 3\n"
              "With access_caller=True the callable receives an asyncwasm.Caller first:\n"
              "callable(caller, *args), caller.memory being the calling guest's memory.\n"
              "Arguments and results convert by the function type (ints, floats,\n"
              "Func/None for funcref, any object/None for externref).",
    .tp_basicsize = sizeof(FuncObject),
    .tp_weaklistoffset = offsetof(FuncObject, weakrefs),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = Func_new,
    .tp_dealloc = (destructor)Func_dealloc,
    .tp_traverse = (traverseproc)Func_traverse,
    .tp_clear = (inquiry)Func_clear,
    .tp_vectorcall_offset = offsetof(FuncObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)Func_repr,
    .tp_methods = Func_methods,
    .tp_getset = Func_getset,
};
