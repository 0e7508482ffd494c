/* py_fiber.c -- Fiber: a resumable call for custom drivers (asyncwasm.lowlevel).
 *
 * Part of asyncwasm._engine's Python face (pyengine.c has the module and the
 * helpers these files share; layouts and ownership in pyengine.h).
 */
#include <string.h>

#include "pyengine.h"

/* ========================================================================== */
/* Fiber                                                                      */
/* ========================================================================== */

typedef struct {
    PyObject_HEAD
    rt_fiber rf;
    FuncObject *func;      /* entry function (keeps its instance alive) */
    PyObject *args;        /* argument tuple: keeps reference arguments alive */
    PyObject *pending_exc; /* throw(): raised by the next run() */
    PyObject *results;     /* cached after DONE */
    PyObject *trap;        /* cached Trap after TRAP, WasmException after EXCEPTION */
    int64_t fuel_left;
    bool raw, started, running, awaiting;
} FiberObject;

static PyObject *Fiber_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "args", "raw", "max_call_depth", "max_stack_slots", "awaits", NULL};
    PyObject *func, *fargs, *pdepth = NULL, *pslots = NULL;
    int raw = 0, awaits = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|$pOOp:Fiber", kwlist, &Func_Type, &func, &fargs, &raw,
                                     &pdepth, &pslots, &awaits))
        return NULL;
    uint32_t depth = DEFAULT_MAX_CALL_DEPTH, slots_limit = DEFAULT_MAX_STACK_SLOTS;
    if (pdepth != NULL && u32_arg(pdepth, "max_call_depth", UINT32_MAX, &depth) < 0) return NULL;
    if (pslots != NULL && u32_arg(pslots, "max_stack_slots", 1u << 28, &slots_limit) < 0) return NULL;
    if (depth == 0 || slots_limit == 0) {
        PyErr_SetString(PyExc_ValueError, "max_call_depth and max_stack_slots must be at least 1");
        return NULL;
    }
    FuncObject *fn_obj = (FuncObject *)func;
    if (func_check_callable(fn_obj) < 0) return NULL;
    FiberObject *self = (FiberObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->raw = raw != 0;
    self->rf.may_suspend = awaits != 0;
    self->func = (FuncObject *)Py_NewRef(func);
    self->args = PySequence_Tuple(fargs);
    if (self->args == NULL) goto fail;
    const rt_func *fn = fn_obj->fn;
    uint64_t small[ARGS_ON_STACK], *slots = small;
    if (fn->type->param_slots > ARGS_ON_STACK) {
        slots = PyMem_Malloc(sizeof *slots * fn->type->param_slots);
        if (slots == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    PyObject *const *items = &PyTuple_GET_ITEM(self->args, 0);
    int rc = rt_args_from_py(fn->type, items, PyTuple_GET_SIZE(self->args), self->raw, slots);
    if (rc == 0) {
        if (fiber_init(&self->rf.f, slots_limit, depth) != 0) {
            PyErr_NoMemory();
            rc = -1;
        } else if (fiber_start(&self->rf.f, fn, slots) != 0) {
            raise_start_failed(&self->rf.f, fn);
            rc = -1;
        }
    }
    if (slots != small) PyMem_Free(slots);
    if (rc < 0) goto fail;
    self->started = true;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static int Fiber_traverse(FiberObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->func);
    Py_VISIT(self->args);
    Py_VISIT(self->pending_exc);
    Py_VISIT(self->results);
    Py_VISIT(self->trap);
    Py_VISIT(self->rf.keepalive);
    Py_VISIT(self->rf.f.awaitable);
    Py_VISIT(self->rf.f.trap_exc);
    Py_VISIT((PyObject *)self->rf.f.exn);
    Py_VISIT(self->rf.caller);
    Py_VISIT(self->rf.turn_wait);
    for (uint32_t i = 0; i < self->rf.nturns; i++) Py_VISIT(self->rf.turns[i].inst);
    return rt_fiber_visit_exns(&self->rf, visit, arg);
}

/* The pending host call is over (resumed, thrown into, or dropped): its
 * Caller stops working. */
static void end_pending_caller(FiberObject *self)
{
    rt_caller_end(self->rf.caller);
    Py_CLEAR(self->rf.caller);
}

/* Frees the fiber's state too: a cleared fiber cannot run again. Turns it
 * still holds on other instances are given back first. */
static int Fiber_clear(FiberObject *self)
{
    if (self->running) return 0; /* unreachable: a running fiber is referenced by its caller */
    self->started = false;
    rt_fiber_end_turns(&self->rf);
    PyMem_Free(self->rf.turns);
    self->rf.turns = NULL;
    self->rf.turns_cap = 0;
    end_pending_caller(self);
    fiber_free(&self->rf.f); /* also drops the awaitable, the host trap, the exception */
    Py_CLEAR(self->rf.keepalive);
    rt_fiber_clear_exns(&self->rf);
    Py_CLEAR(self->func);
    Py_CLEAR(self->args);
    Py_CLEAR(self->pending_exc);
    Py_CLEAR(self->results);
    Py_CLEAR(self->trap);
    return 0;
}

static void Fiber_dealloc(FiberObject *self)
{
    PyObject_GC_UnTrack(self);
    Fiber_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int fiber_check_usable(FiberObject *self)
{
    if (!self->started) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber was cleared");
        return -1;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber is running (re-entered from a host function?)");
        return -1;
    }
    return 0;
}

static PyObject *Fiber_run(FiberObject *self, PyObject *arg)
{
    if (fiber_check_usable(self) < 0) return NULL;
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "fuel must be an int, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int overflow;
    long long fuel_arg = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (fuel_arg == -1 && PyErr_Occurred()) return NULL;
    if (overflow < 0 || (overflow == 0 && fuel_arg < 0)) {
        PyErr_SetString(PyExc_ValueError, "fuel must be >= 0");
        return NULL;
    }
    int64_t fuel = overflow > 0 ? INT64_MAX : (int64_t)fuel_arg;
    if (self->pending_exc != NULL) { /* throw() with a non-Trap exception */
        self->rf.f.state = RUN_ERROR;
        PyObject *exc = self->pending_exc;
        self->pending_exc = NULL;
        rt_err_raise(exc);
        rt_fiber_end_turns(&self->rf);
        return NULL;
    }
    if (self->awaiting) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the fiber waits for a host result: call resume() or throw() first");
        return NULL;
    }
    if (func_check_callable(self->func) < 0) return NULL;
    if (Py_EnterRecursiveCall(" in a Wasm call") != 0) return NULL;
    self->running = true;
    int outcome = run_fiber(&self->rf, &fuel);
    self->running = false;
    Py_LeaveRecursiveCall();
    self->fuel_left = fuel;
    if (outcome == RUN_SUSPEND) self->awaiting = true;
    if (outcome != RUN_SUSPEND && outcome != RUN_OUT_OF_FUEL)
        rt_fiber_end_turns(&self->rf); /* ended (a tail call may leave the entry frame's turn) */
    if (outcome == RUN_ERROR || outcome < 0 || outcome > RUN_EXCEPTION) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_SystemError, "asyncwasm: run ended with outcome %d and no exception", outcome);
        return NULL;
    }
    return PyLong_FromLong(outcome);
}

static PyObject *Fiber_resume(FiberObject *self, PyObject *value)
{
    if (fiber_check_usable(self) < 0) return NULL;
    if (!self->awaiting || (self->rf.pending_fn == NULL && self->rf.turn_wait == NULL)) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber is not waiting for a host result");
        return NULL;
    }
    fiber *f = &self->rf.f;
    self->awaiting = false;
    Py_CLEAR(f->awaitable);
    end_pending_caller(self);
    if (self->rf.turn_wait != NULL) { /* the turn is ours: the call runs again and enters */
        self->rf.turn_granted = true;
        Py_RETURN_NONE;
    }
    int rc = rt_host_result_store(&self->rf, self->rf.pending_fn, value, f->pending_base);
    f->pending_type = NULL;
    self->rf.pending_fn = NULL;
    if (rc < 0) {
        f->state = RUN_ERROR; /* the guest cannot continue without its result */
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Fiber_throw(FiberObject *self, PyObject *exc)
{
    if (fiber_check_usable(self) < 0) return NULL;
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError, "throw() needs an exception instance, not %.100s",
                     Py_TYPE(exc)->tp_name);
        return NULL;
    }
    if (!self->awaiting) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber is not waiting for a host result");
        return NULL;
    }
    int is_trap = PyObject_IsInstance(exc, py_classes.Trap);
    int is_thrown = is_trap == 0 ? PyObject_IsInstance(exc, py_classes.WasmException) : 0;
    if (is_trap < 0 || is_thrown < 0) return NULL;
    void *exn = is_thrown ? rt_exn_from_py(exc) : NULL;
    if (is_thrown && exn == NULL) return NULL;
    fiber *f = &self->rf.f;
    self->awaiting = false;
    Py_CLEAR(f->awaitable);
    f->pending_type = NULL;
    self->rf.pending_fn = NULL;
    end_pending_caller(self);
    Py_CLEAR(self->rf.turn_wait); /* the wait failed: no turn was taken */
    if (is_trap) {
        f->state = RUN_TRAP;
        f->trap_kind = TRAP_HOST;
        Py_XSETREF(f->trap_exc, Py_NewRef(exc));
    } else if (exn != NULL) { /* thrown into the guest from the call: the next run() unwinds */
        Py_XSETREF(f->exn, Py_NewRef((PyObject *)exn));
    } else {
        Py_XSETREF(self->pending_exc, Py_NewRef(exc));
    }
    Py_RETURN_NONE;
}

static PyObject *Fiber_close(FiberObject *self, PyObject *unused)
{
    (void)unused;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber is running (re-entered from a host function?)");
        return NULL;
    }
    Fiber_clear(self);
    Py_RETURN_NONE;
}

static PyObject *Fiber_trap(FiberObject *self, PyObject *unused)
{
    (void)unused;
    if (self->rf.f.state != RUN_TRAP) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber has not trapped");
        return NULL;
    }
    if (self->trap == NULL) self->trap = make_trap(&self->rf.f);
    return Py_XNewRef(self->trap);
}

static PyObject *Fiber_exception(FiberObject *self, PyObject *unused)
{
    (void)unused;
    if (self->rf.f.state != RUN_EXCEPTION) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber has not ended with an exception");
        return NULL;
    }
    if (self->trap == NULL) self->trap = rt_exn_to_py(self->rf.f.exn);
    return Py_XNewRef(self->trap);
}

static PyObject *Fiber_get_results(FiberObject *self, void *closure)
{
    (void)closure;
    if (!self->started || self->rf.f.state != RUN_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber has no results: it has not finished");
        return NULL;
    }
    if (self->results == NULL) {
        const wasm_functype *type = self->rf.f.entry->type;
        self->results = rt_values_to_py(type->results, type->nresults, self->rf.f.stack, self->raw, true);
    }
    return Py_XNewRef(self->results);
}

static PyObject *Fiber_get_awaitable(FiberObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->rf.f.awaitable ? self->rf.f.awaitable : Py_None);
}

static PyObject *Fiber_get_state(FiberObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromLong(self->rf.f.state);
}

#define FIBER_COUNTER(NAME, EXPR)                                              \
    static PyObject *Fiber_get_##NAME(FiberObject *self, void *closure)        \
    {                                                                          \
        (void)closure;                                                         \
        return PyLong_FromLongLong((long long)(EXPR));                         \
    }
FIBER_COUNTER(fuel_left, self->fuel_left)
FIBER_COUNTER(fuel_needed, self->rf.f.fuel_needed)
FIBER_COUNTER(fuel_used, self->rf.f.fuel_used)
FIBER_COUNTER(host_calls, self->rf.f.host_calls)
FIBER_COUNTER(suspensions, self->rf.f.suspensions)
#undef FIBER_COUNTER

static PyMethodDef Fiber_methods[] = {
    {"run", (PyCFunction)Fiber_run, METH_O,
     "run(fuel) -> outcome\n\n0 DONE, 1 SUSPEND, 2 OUT_OF_FUEL, 3 TRAP, 5 EXCEPTION; raises on ERROR."},
    {"resume", (PyCFunction)Fiber_resume, METH_O,
     "resume(value)\n\nDeliver the awaited host result (None / value / tuple); the next run() continues."},
    {"throw", (PyCFunction)Fiber_throw, METH_O,
     "throw(exc)\n\nThe awaited host call raised: a Trap traps the fiber, a WasmException is\n"
     "thrown into the guest from the call (the next run() unwinds), anything else is\n"
     "raised by the next run()."},
    {"trap", (PyCFunction)Fiber_trap, METH_NOARGS, "trap() -> Trap to raise after a TRAP outcome"},
    {"exception", (PyCFunction)Fiber_exception, METH_NOARGS,
     "exception() -> WasmException to raise after an EXCEPTION outcome"},
    {"close", (PyCFunction)Fiber_close, METH_NOARGS,
     "close()\n\nThe fiber will not run again: free its state now. Turns it holds on other\n"
     "instances (it was inside a call into one) are given back; when it stopped mid-run\n"
     "(suspended or out of fuel), those instances are interrupted. Idempotent."},
    {NULL},
};

static PyGetSetDef Fiber_getset[] = {
    {"results", (getter)Fiber_get_results, NULL, "tuple of results after DONE", NULL},
    {"awaitable", (getter)Fiber_get_awaitable, NULL, "the pending awaitable after SUSPEND, or None", NULL},
    {"state", (getter)Fiber_get_state, NULL, "last outcome, -1 before the first run", NULL},
    {"fuel_left", (getter)Fiber_get_fuel_left, NULL, "fuel remaining after the last run", NULL},
    {"fuel_needed", (getter)Fiber_get_fuel_needed, NULL, "after OUT_OF_FUEL: the charge that did not fit",
     NULL},
    {"fuel_used", (getter)Fiber_get_fuel_used, NULL, "fuel charged so far", NULL},
    {"host_calls", (getter)Fiber_get_host_calls, NULL, "host functions called so far", NULL},
    {"suspensions", (getter)Fiber_get_suspensions, NULL, "SUSPEND outcomes so far", NULL},
    {NULL},
};

PyTypeObject Fiber_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.lowlevel.Fiber",
    .tp_doc = "Fiber(func, args, *, raw=False, max_call_depth=10000, max_stack_slots=1<<20, awaits=True)\n\n"
              "One resumable call: run(fuel) until DONE, SUSPEND (await fiber.awaitable, then\n"
              "resume()/throw()), OUT_OF_FUEL (run again), TRAP (raise fiber.trap()) or\n"
              "EXCEPTION (raise fiber.exception()).\n"
              "awaits=False: the driver is synchronous and refuses awaitables, so a call into\n"
              "an instance another task holds fails at once (busy) instead of suspending.",
    .tp_basicsize = sizeof(FiberObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Fiber_new,
    .tp_dealloc = (destructor)Fiber_dealloc,
    .tp_traverse = (traverseproc)Fiber_traverse,
    .tp_clear = (inquiry)Fiber_clear,
    .tp_methods = Fiber_methods,
    .tp_getset = Fiber_getset,
};
