/* pyengine.c -- asyncwasm._engine: the Python face of the C engine.
 *
 * The contract is /work/notes/ENGINE_PYAPI.md (mirrored in the docstrings
 * below). Types: CompiledModule, Func, Memory, Table, Global, Instance,
 * Fiber; functions: compile(), set_hooks(). The objects embed runtime.c's
 * rt_* structs (layouts in pyengine.h); every method validates its arguments,
 * and deallocation is safe on half-built objects.
 */
#include <stdio.h>
#include <string.h>

#include "pyengine.h"

engine_classes py_classes;

/* ValType members by binary byte (7 of the 256 are set). */
static PyObject *valtype_objects[256];

#define DEFAULT_MAX_CALL_DEPTH 10000u
#define DEFAULT_MAX_STACK_SLOTS (1u << 20)
#define DEFAULT_MAX_TABLE_ELEMENTS 10000000u

/* ========================================================================== */
/* Small helpers                                                              */
/* ========================================================================== */

static int raise_wasm_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (msg != NULL) {
        PyErr_SetObject(py_classes.WasmError, msg);
        Py_DECREF(msg);
    }
    return -1;
}

/* An int argument in 0..max. */
static int u32_arg(PyObject *obj, const char *name, uint64_t max, uint32_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow != 0 || v < 0 || (unsigned long long)v > max) {
        PyErr_Format(PyExc_ValueError, "%s must be in 0..%llu", name, (unsigned long long)max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Positional argument count of a METH_FASTCALL method. */
static int check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max)
{
    if (nargs >= min && nargs <= max) return 0;
    if (min == max)
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, min, nargs);
    else
        PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", name, min, max, nargs);
    return -1;
}

/* A non-negative int offset/length; too large or negative is out of bounds. */
static int index_arg(PyObject *obj, const char *name, uint64_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow != 0 || v < 0) {
        PyErr_Format(PyExc_IndexError, "%s %S is out of bounds", name, obj);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static PyObject *name_to_py(wasm_name name)
{
    return PyUnicode_DecodeUTF8(name.ptr, name.len, "replace");
}

static PyObject *optional_u32(bool present, uint32_t value)
{
    if (!present) Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(value);
}

/* ---- types: C <-> asyncwasm._types ----------------------------------------- */

PyObject *pyengine_valtype_to_py(uint8_t t)
{
    PyObject *obj = valtype_objects[t];
    if (obj == NULL) return PyLong_FromLong(t);
    return Py_NewRef(obj);
}

static int valtype_from_py(PyObject *obj, uint8_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected a ValType, got %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v > 255 || valtype_objects[v] == NULL) {
        PyErr_Format(PyExc_ValueError, "unknown value type %ld", v);
        return -1;
    }
    *out = (uint8_t)v;
    return 0;
}

static PyObject *valtypes_to_py(const uint8_t *types, uint32_t n)
{
    PyObject *tuple = PyTuple_New(n);
    for (uint32_t i = 0; tuple != NULL && i < n; i++) {
        PyObject *t = pyengine_valtype_to_py(types[i]);
        if (t == NULL) Py_CLEAR(tuple);
        else PyTuple_SET_ITEM(tuple, i, t);
    }
    return tuple;
}

PyObject *pyengine_functype_to_py(const wasm_functype *t)
{
    PyObject *params = valtypes_to_py(t->params, t->nparams);
    PyObject *results = params ? valtypes_to_py(t->results, t->nresults) : NULL;
    PyObject *ft = results ? PyObject_CallFunctionObjArgs(py_classes.FuncType, params, results, NULL) : NULL;
    Py_XDECREF(params);
    Py_XDECREF(results);
    return ft;
}

static PyObject *tabletype_to_py(uint8_t elem, uint32_t min, bool has_max, uint32_t max)
{
    PyObject *vt = pyengine_valtype_to_py(elem);
    PyObject *mx = vt ? optional_u32(has_max, max) : NULL;
    PyObject *tt = mx ? PyObject_CallFunction(py_classes.TableType, "OkO", vt, (unsigned long)min, mx) : NULL;
    Py_XDECREF(vt);
    Py_XDECREF(mx);
    return tt;
}

static PyObject *memtype_to_py(uint32_t min, bool has_max, uint32_t max)
{
    PyObject *mx = optional_u32(has_max, max);
    PyObject *mt = mx ? PyObject_CallFunction(py_classes.MemoryType, "kO", (unsigned long)min, mx) : NULL;
    Py_XDECREF(mx);
    return mt;
}

static PyObject *globaltype_to_py(uint8_t type, bool mutable_)
{
    PyObject *vt = pyengine_valtype_to_py(type);
    PyObject *gt = vt ? PyObject_CallFunction(py_classes.GlobalType, "OO", vt, mutable_ ? Py_True : Py_False)
                      : NULL;
    Py_XDECREF(vt);
    return gt;
}

/* TypeError unless `obj` is an instance of the asyncwasm._types class `cls`
 * (checked before any attribute is read, so the error names the real mistake). */
static int require_type(PyObject *obj, PyObject *cls, const char *who)
{
    int ok = PyObject_IsInstance(obj, cls);
    if (ok == 0)
        PyErr_Format(PyExc_TypeError, "%s needs an asyncwasm.%s, not %.100s", who, ((PyTypeObject *)cls)->tp_name,
                     Py_TYPE(obj)->tp_name);
    return ok == 1 ? 0 : -1;
}

/* min/max attributes of a MemoryType/TableType-like object. */
static int limits_from_py(PyObject *type, uint64_t bound, uint32_t *min, bool *has_max, uint32_t *max)
{
    PyObject *pmin = PyObject_GetAttrString(type, "min");
    PyObject *pmax = pmin ? PyObject_GetAttrString(type, "max") : NULL;
    int rc = -1;
    if (pmax != NULL && u32_arg(pmin, "minimum", bound, min) == 0) {
        *has_max = pmax != Py_None;
        *max = 0;
        if (!*has_max || u32_arg(pmax, "maximum", bound, max) == 0) rc = 0;
        if (rc == 0 && *has_max && *max < *min) {
            PyErr_SetString(PyExc_ValueError, "maximum is below the minimum");
            rc = -1;
        }
    }
    Py_XDECREF(pmin);
    Py_XDECREF(pmax);
    return rc;
}

/* ========================================================================== */
/* CompiledModule and compile()                                               */
/* ========================================================================== */

static void CompiledModule_dealloc(CompiledModuleObject *self)
{
    wasm_module_free(&self->m);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *extern_type_of_export(const wasm_module *m, const wasm_export *e)
{
    switch (e->kind) {
    case EXTERN_FUNC:
        if (e->index < m->nfuncs && m->funcs[e->index].typeidx < m->ntypes)
            return pyengine_functype_to_py(&m->types[m->funcs[e->index].typeidx]);
        break;
    case EXTERN_TABLE:
        if (e->index < m->ntables) {
            const wasm_tabletype *t = &m->tables[e->index];
            return tabletype_to_py(t->elem, t->limits.min, t->limits.has_max, t->limits.max);
        }
        break;
    case EXTERN_MEMORY:
        if (e->index < m->nmemories) {
            const wasm_limits *l = &m->memories[e->index].limits;
            return memtype_to_py(l->min, l->has_max, l->max);
        }
        break;
    case EXTERN_GLOBAL:
        if (e->index < m->nglobals)
            return globaltype_to_py(m->globals[e->index].type.type, m->globals[e->index].type.mutable_);
        break;
    }
    PyErr_Format(PyExc_SystemError, "asyncwasm: export of kind %u has a bad index %u", e->kind, e->index);
    return NULL;
}

static PyObject *extern_type_of_import(const wasm_module *m, const wasm_import *imp)
{
    switch (imp->kind) {
    case EXTERN_FUNC:
        if (imp->desc.typeidx < m->ntypes) return pyengine_functype_to_py(&m->types[imp->desc.typeidx]);
        break;
    case EXTERN_TABLE: {
        const wasm_tabletype *t = &imp->desc.table;
        return tabletype_to_py(t->elem, t->limits.min, t->limits.has_max, t->limits.max);
    }
    case EXTERN_MEMORY: {
        const wasm_limits *l = &imp->desc.memory.limits;
        return memtype_to_py(l->min, l->has_max, l->max);
    }
    case EXTERN_GLOBAL:
        return globaltype_to_py(imp->desc.global.type, imp->desc.global.mutable_);
    }
    PyErr_Format(PyExc_SystemError, "asyncwasm: import of unknown kind %u", imp->kind);
    return NULL;
}

static PyObject *CompiledModule_imports(CompiledModuleObject *self, void *closure)
{
    (void)closure;
    const wasm_module *m = &self->m;
    PyObject *tuple = PyTuple_New(m->nimports);
    for (uint32_t i = 0; tuple != NULL && i < m->nimports; i++) {
        const wasm_import *imp = &m->imports[i];
        PyObject *mod = name_to_py(imp->module);
        PyObject *name = mod ? name_to_py(imp->name) : NULL;
        PyObject *type = name ? extern_type_of_import(m, imp) : NULL;
        PyObject *item = type ? PyTuple_Pack(3, mod, name, type) : NULL;
        Py_XDECREF(mod);
        Py_XDECREF(name);
        Py_XDECREF(type);
        if (item == NULL) Py_CLEAR(tuple);
        else PyTuple_SET_ITEM(tuple, i, item);
    }
    return tuple;
}

static PyObject *CompiledModule_exports(CompiledModuleObject *self, void *closure)
{
    (void)closure;
    const wasm_module *m = &self->m;
    PyObject *tuple = PyTuple_New(m->nexports);
    for (uint32_t i = 0; tuple != NULL && i < m->nexports; i++) {
        PyObject *name = name_to_py(m->exports[i].name);
        PyObject *type = name ? extern_type_of_export(m, &m->exports[i]) : NULL;
        PyObject *item = type ? PyTuple_Pack(2, name, type) : NULL;
        Py_XDECREF(name);
        Py_XDECREF(type);
        if (item == NULL) Py_CLEAR(tuple);
        else PyTuple_SET_ITEM(tuple, i, item);
    }
    return tuple;
}

static PyObject *CompiledModule_start(CompiledModuleObject *self, void *closure)
{
    (void)closure;
    return optional_u32(self->m.has_start, self->m.start);
}

static PyObject *CompiledModule_custom_sections(CompiledModuleObject *self, void *closure)
{
    (void)closure;
    const wasm_module *m = &self->m;
    PyObject *tuple = PyTuple_New(m->ncustoms);
    for (uint32_t i = 0; tuple != NULL && i < m->ncustoms; i++) {
        const wasm_custom *c = &m->customs[i];
        PyObject *name = name_to_py(c->name);
        PyObject *data = name ? PyBytes_FromStringAndSize((const char *)c->bytes, c->len) : NULL;
        PyObject *item = data ? PyTuple_Pack(2, name, data) : NULL;
        Py_XDECREF(name);
        Py_XDECREF(data);
        if (item == NULL) Py_CLEAR(tuple);
        else PyTuple_SET_ITEM(tuple, i, item);
    }
    return tuple;
}

static PyObject *CompiledModule_func_names(CompiledModuleObject *self, void *closure)
{
    (void)closure;
    const wasm_module *m = &self->m;
    PyObject *dict = PyDict_New();
    for (uint32_t i = 0; dict != NULL && i < m->nfuncs; i++) {
        if (m->funcs[i].name.len == 0) continue;
        PyObject *key = PyLong_FromUnsignedLong(i);
        PyObject *name = key ? name_to_py(m->funcs[i].name) : NULL;
        if (name == NULL || PyDict_SetItem(dict, key, name) < 0) Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(name);
    }
    return dict;
}

static PyObject *CompiledModule_name(CompiledModuleObject *self, void *closure)
{
    (void)closure;
    if (self->m.module_name.len == 0) Py_RETURN_NONE;
    return name_to_py(self->m.module_name);
}

static PyObject *CompiledModule_code_size(CompiledModuleObject *self, void *closure)
{
    (void)closure;
    uint64_t total = 0;
    for (uint32_t i = self->m.nimported_funcs; i < self->m.nfuncs; i++)
        total += self->m.funcs[i].code.body_len;
    return PyLong_FromUnsignedLongLong(total);
}

static PyGetSetDef CompiledModule_getset[] = {
    {"imports", (getter)CompiledModule_imports, NULL, "tuple of (module, name, extern type)", NULL},
    {"exports", (getter)CompiledModule_exports, NULL, "tuple of (name, extern type)", NULL},
    {"start", (getter)CompiledModule_start, NULL, "start function index or None", NULL},
    {"custom_sections", (getter)CompiledModule_custom_sections, NULL, "tuple of (name, bytes)", NULL},
    {"func_names", (getter)CompiledModule_func_names, NULL, "dict: function index -> name", NULL},
    {"name", (getter)CompiledModule_name, NULL, "module name from the name section, or None", NULL},
    {"code_size", (getter)CompiledModule_code_size, NULL, "bytes of function bodies", NULL},
    {NULL},
};

PyTypeObject CompiledModule_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm._engine.CompiledModule",
    .tp_doc = "A decoded, validated and compiled module (immutable; made by compile()).",
    .tp_basicsize = sizeof(CompiledModuleObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_dealloc = (destructor)CompiledModule_dealloc,
    .tp_getset = CompiledModule_getset,
};

static void raise_module_error(const wasm_error *err)
{
    PyObject *cls;
    switch (err->kind) {
    case ERR_MALFORMED: cls = py_classes.MalformedError; break;
    case ERR_INVALID: cls = py_classes.ValidationError; break;
    case ERR_NOMEM: PyErr_NoMemory(); return;
    default:
        PyErr_Format(PyExc_SystemError, "asyncwasm: module rejected with error kind %d: %s", err->kind,
                     err->message);
        return;
    }
    PyObject *func = err->func < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(err->func);
    PyObject *exc =
        func ? PyObject_CallFunction(cls, "snO", err->message, (Py_ssize_t)err->offset, func) : NULL;
    Py_XDECREF(func);
    if (exc != NULL) {
        PyErr_SetObject(cls, exc);
        Py_DECREF(exc);
    }
}

PyDoc_STRVAR(compile_doc,
"compile(data, costs=None) -> CompiledModule\n\n"
"Decode, validate and compile a module from a bytes-like object. Raises\n"
"MalformedError / ValidationError(rule, offset, func) or MemoryError.\n"
"costs: a cost table, 512 native uint16 weights >= 1 (entry [op] for a\n"
"one-byte opcode, [256 + sub] for 0xFC sub-opcodes): fuel is charged by\n"
"weight instead of 1 per instruction. Runs without the GIL.");

static PyObject *engine_compile(PyObject *module, PyObject *args, PyObject *kwds)
{
    (void)module;
    static char *kwlist[] = {"data", "costs", NULL};
    PyObject *data, *pcosts = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:compile", kwlist, &data, &pcosts)) return NULL;
    Py_buffer view, costs = {0};
    if (pcosts != Py_None) {
        if (PyObject_GetBuffer(pcosts, &costs, PyBUF_SIMPLE) < 0) return NULL;
        bool ok = costs.len == WASM_COST_ENTRIES * (Py_ssize_t)sizeof(uint16_t);
        for (Py_ssize_t i = 0; ok && i < WASM_COST_ENTRIES; i++) ok = ((const uint16_t *)costs.buf)[i] >= 1;
        if (!ok) {
            PyBuffer_Release(&costs);
            PyErr_Format(PyExc_ValueError, "costs must be %d native uint16 weights, each >= 1", WASM_COST_ENTRIES);
            return NULL;
        }
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        if (costs.obj != NULL) PyBuffer_Release(&costs);
        return NULL;
    }
    CompiledModuleObject *self =
        (CompiledModuleObject *)CompiledModule_Type.tp_alloc(&CompiledModule_Type, 0);
    if (self == NULL) {
        PyBuffer_Release(&view);
        if (costs.obj != NULL) PyBuffer_Release(&costs);
        return NULL;
    }
    wasm_error err;
    memset(&err, 0, sizeof err);
    int rc;
    /* The front end touches no Python object (functype_intern has its own lock). */
    Py_BEGIN_ALLOW_THREADS
    rc = wasm_decode(view.buf, (size_t)view.len, &self->m, &err);
    if (rc == 0) {
        self->m.costs = costs.obj != NULL ? costs.buf : NULL;
        rc = wasm_validate_and_compile(&self->m, &err);
        self->m.costs = NULL;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (costs.obj != NULL) PyBuffer_Release(&costs);
    if (rc != 0) {
        raise_module_error(&err);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* ========================================================================== */
/* Running fibers                                                             */
/* ========================================================================== */

/* fiber_run with `rf` as this thread's running fiber (for rt_ref_store). */
static int run_fiber(rt_fiber *rf, int64_t *fuel)
{
    rt_fiber *outer = rt_running;
    rt_running = rf;
    int outcome = fiber_run(&rf->f, fuel);
    rt_running = outer;
    return outcome;
}

/* fiber_start failed: too big for the stack limit, or no memory. */
static void raise_start_failed(const fiber *f, const rt_func *fn)
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
static PyObject *make_trap(const fiber *f)
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
    /* Drop references now (not at the next start): a trap's traceback or a
     * kept object must not outlive the call. */
    Py_CLEAR(rf->f.awaitable);
    Py_CLEAR(rf->f.trap_exc);
    Py_CLEAR(rf->keepalive);
    rf->pending_fn = NULL;
    if (fiber_pool_len < POOL_SIZE && rf->f.stack_cap <= POOL_MAX_STACK_SLOTS) {
        fiber_pool[fiber_pool_len++] = rf;
        return;
    }
    fiber_free(&rf->f);
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
        refuse_awaitable(rf);
        return NULL;
    case RUN_TRAP: {
        PyObject *exc = make_trap(&rf->f);
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

static int func_check_callable(FuncObject *self)
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

#define ARGS_ON_STACK 16

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
static int host_functype_from_py(PyObject *functype, wasm_functype *out)
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
    static char *kwlist[] = {"functype", "callable", NULL};
    PyObject *functype, *callable;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Func", kwlist, &functype, &callable)) return NULL;
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
        inst->funcs[index] = (PyObject *)f;
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
    .tp_doc = "Func(functype, callable)\n\n"
              "A function: a host function made from a Python callable, or a Wasm\n"
              "function of an instance. Calling it runs it synchronously:\n"
              "    add = instance.exports['add']; add(1, 2) -> 3\n"
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

/* ========================================================================== */
/* Memory                                                                     */
/* ========================================================================== */

PyObject *pyengine_new_memory(uint32_t min, bool has_max, uint32_t max, uint32_t limit)
{
    MemoryObject *self = (MemoryObject *)Memory_Type.tp_alloc(&Memory_Type, 0);
    if (self == NULL) return NULL;
    if (rt_memory_init(&self->mem, min, has_max, max, limit) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *Memory_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    static char *kwlist[] = {"memtype", "limit_pages", NULL};
    PyObject *memtype, *plimit = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$O:Memory", kwlist, &memtype, &plimit)) return NULL;
    if (require_type(memtype, py_classes.MemoryType, "Memory()") < 0) return NULL;
    uint32_t min, max, limit = WASM_MAX_PAGES;
    bool has_max;
    if (limits_from_py(memtype, WASM_MAX_PAGES, &min, &has_max, &max) < 0) return NULL;
    if (plimit != Py_None && u32_arg(plimit, "limit_pages", WASM_MAX_PAGES, &limit) < 0) return NULL;
    return pyengine_new_memory(min, has_max, max, limit);
}

static void Memory_dealloc(MemoryObject *self)
{
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    rt_memory_free(&self->mem);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* [offset, offset + length) inside the accessible memory, else IndexError. */
static int memory_range(const rt_memory *mem, PyObject *poffset, PyObject *plength, uint64_t *offset,
                        uint64_t *length)
{
    if (index_arg(poffset, "offset", offset) < 0 || index_arg(plength, "length", length) < 0) return -1;
    if (*offset > mem->size || *length > mem->size - *offset) {
        PyErr_Format(PyExc_IndexError, "memory access [%llu, %llu + %llu) is out of bounds (size %llu bytes)",
                     (unsigned long long)*offset, (unsigned long long)*offset, (unsigned long long)*length,
                     (unsigned long long)mem->size);
        return -1;
    }
    return 0;
}

static PyObject *Memory_read(MemoryObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("read", nargs, 2, 2) < 0) return NULL;
    uint64_t offset, length;
    if (memory_range(&self->mem, args[0], args[1], &offset, &length) < 0) return NULL;
    return PyBytes_FromStringAndSize((const char *)self->mem.base + offset, (Py_ssize_t)length);
}

static PyObject *Memory_write(MemoryObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("write", nargs, 2, 2) < 0) return NULL;
    Py_buffer data;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *length = PyLong_FromSsize_t(data.len);
    uint64_t offset, len;
    int rc = length ? memory_range(&self->mem, args[0], length, &offset, &len) : -1;
    Py_XDECREF(length);
    if (rc == 0 && len > 0) memmove(self->mem.base + offset, data.buf, (size_t)len); /* data may alias */
    PyBuffer_Release(&data);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Memory_grow(MemoryObject *self, PyObject *arg)
{
    uint32_t delta;
    if (u32_arg(arg, "delta", UINT32_MAX, &delta) < 0) return NULL;
    int64_t old = rt_memory_grow(&self->mem, delta);
    if (old < 0) {
        raise_wasm_error("memory.grow by %u pages refused: size %u pages, maximum %u pages", delta,
                         self->mem.pages, self->mem.max_pages);
        return NULL;
    }
    return PyLong_FromLongLong(old);
}

static PyObject *Memory_view(MemoryObject *self, PyObject *unused)
{
    (void)unused;
    return PyMemoryView_FromObject((PyObject *)self);
}

static int Memory_getbuffer(MemoryObject *self, Py_buffer *view, int flags)
{
    if (self->mem.base == NULL) {
        PyErr_SetString(PyExc_BufferError, "the memory is not allocated");
        view->obj = NULL;
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)self, self->mem.base, (Py_ssize_t)self->mem.size, 0, flags);
}

static PyBufferProcs Memory_as_buffer = {
    .bf_getbuffer = (getbufferproc)Memory_getbuffer,
};

static PyObject *Memory_get_type(MemoryObject *self, void *closure)
{
    (void)closure;
    return memtype_to_py(self->mem.pages, self->mem.has_max, self->mem.declared_max);
}

static PyObject *Memory_get_size(MemoryObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(self->mem.pages);
}

static PyObject *Memory_get_data_len(MemoryObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->mem.size);
}

static PyMethodDef Memory_methods[] = {
    {"read", (PyCFunction)(void (*)(void))Memory_read, METH_FASTCALL,
     "read(offset, length) -> bytes\n\nIndexError when out of bounds (never clips)."},
    {"write", (PyCFunction)(void (*)(void))Memory_write, METH_FASTCALL,
     "write(offset, data)\n\nIndexError when out of bounds."},
    {"grow", (PyCFunction)Memory_grow, METH_O,
     "grow(delta) -> old size in pages\n\nWasmError when the growth is refused."},
    {"view", (PyCFunction)Memory_view, METH_NOARGS,
     "view() -> writable memoryview of the current size; stays valid across grow."},
    {NULL},
};

static PyGetSetDef Memory_getset[] = {
    {"type", (getter)Memory_get_type, NULL, "MemoryType(current pages, declared max)", NULL},
    {"size", (getter)Memory_get_size, NULL, "size in 64 KiB pages", NULL},
    {"data_len", (getter)Memory_get_data_len, NULL, "size in bytes", NULL},
    {NULL},
};

/* repr of a Memory or Table: its type as of now, e.g. <asyncwasm.Memory memory 2 16>. */
static PyObject *extern_repr(PyObject *self)
{
    PyObject *type = PyObject_GetAttrString(self, "type");
    if (type == NULL) return NULL;
    PyObject *repr = PyUnicode_FromFormat("<%s %S>", Py_TYPE(self)->tp_name, type);
    Py_DECREF(type);
    return repr;
}

PyTypeObject Memory_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.Memory",
    .tp_repr = extern_repr,
    .tp_doc = "Memory(memtype, *, limit_pages=None)\n\n"
              "A linear memory. Its address never moves, so memoryviews stay valid\n"
              "across grow:  m = Memory(MemoryType(1)); v = m.view(); m.grow(1)",
    .tp_basicsize = sizeof(MemoryObject),
    .tp_weaklistoffset = offsetof(MemoryObject, weakrefs),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Memory_new,
    .tp_dealloc = (destructor)Memory_dealloc,
    .tp_as_buffer = &Memory_as_buffer,
    .tp_methods = Memory_methods,
    .tp_getset = Memory_getset,
};

/* ========================================================================== */
/* Table                                                                      */
/* ========================================================================== */

PyObject *pyengine_new_table(uint8_t elemtype, uint32_t min, bool has_max, uint32_t max, uint32_t limit)
{
    TableObject *self = (TableObject *)Table_Type.tp_alloc(&Table_Type, 0);
    if (self == NULL) return NULL;
    if (rt_table_init(&self->tab, elemtype, min, has_max, max, limit, NULL) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *Table_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tabletype", "init", "limit_elements", NULL};
    PyObject *tabletype, *init = Py_None, *plimit = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$O:Table", kwlist, &tabletype, &init, &plimit))
        return NULL;
    if (require_type(tabletype, py_classes.TableType, "Table()") < 0) return NULL;
    uint32_t min, max, limit = DEFAULT_MAX_TABLE_ELEMENTS;
    bool has_max;
    uint8_t elem;
    PyObject *pelem = PyObject_GetAttrString(tabletype, "element");
    if (pelem == NULL) return NULL;
    int rc = valtype_from_py(pelem, &elem);
    Py_DECREF(pelem);
    if (rc < 0) return NULL;
    if (!valtype_is_ref(elem)) {
        PyErr_SetString(PyExc_ValueError, "a table's element type must be funcref or externref");
        return NULL;
    }
    if (limits_from_py(tabletype, UINT32_MAX, &min, &has_max, &max) < 0) return NULL;
    if (plimit != Py_None && u32_arg(plimit, "limit_elements", UINT32_MAX, &limit) < 0) return NULL;
    uint64_t slot = 0;
    if (rt_value_from_py(elem, init, false, &slot) < 0) return NULL;
    TableObject *self = (TableObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    if (rt_table_init(&self->tab, elem, min, has_max, max, limit, (void *)(uintptr_t)slot) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int Table_traverse(TableObject *self, visitproc visit, void *arg)
{
    const rt_table *t = &self->tab;
    for (uint32_t i = 0; i < t->size; i++)
        if (t->elems[i] != NULL) Py_VISIT(rt_ref_owner(t->elemtype, t->elems[i]));
    return 0;
}

static int Table_clear(TableObject *self)
{
    rt_table_release(&self->tab);
    return 0;
}

static void Table_dealloc(TableObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    Py_TRASHCAN_BEGIN(self, Table_dealloc)
    rt_table_free(&self->tab);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

static int table_index(TableObject *self, PyObject *arg, uint32_t *index)
{
    uint64_t i;
    if (index_arg(arg, "index", &i) < 0) return -1;
    if (i >= self->tab.size) {
        PyErr_Format(PyExc_IndexError, "table index %llu is out of bounds (size %u)", (unsigned long long)i,
                     self->tab.size);
        return -1;
    }
    *index = (uint32_t)i;
    return 0;
}

static PyObject *Table_get(TableObject *self, PyObject *arg)
{
    uint32_t i;
    if (table_index(self, arg, &i) < 0) return NULL;
    uint64_t slot = (uint64_t)(uintptr_t)self->tab.elems[i];
    return rt_value_to_py(self->tab.elemtype, &slot, false);
}

static PyObject *Table_set(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("set", nargs, 2, 2) < 0) return NULL;
    uint32_t i;
    uint64_t slot;
    if (table_index(self, args[0], &i) < 0 || rt_value_from_py(self->tab.elemtype, args[1], false, &slot) < 0)
        return NULL;
    rt_ref_store(&self->tab.elems[i], self->tab.elemtype, (void *)(uintptr_t)slot);
    Py_RETURN_NONE;
}

static PyObject *Table_grow(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs("grow", nargs, 1, 2) < 0) return NULL;
    uint32_t delta;
    uint64_t slot = 0;
    if (u32_arg(args[0], "delta", UINT32_MAX, &delta) < 0) return NULL;
    if (nargs > 1 && rt_value_from_py(self->tab.elemtype, args[1], false, &slot) < 0) return NULL;
    int64_t old = rt_table_grow(&self->tab, delta, (void *)(uintptr_t)slot);
    if (old < 0) {
        raise_wasm_error("table.grow by %u elements refused: size %u, maximum %u", delta, self->tab.size,
                         self->tab.max);
        return NULL;
    }
    return PyLong_FromLongLong(old);
}

static PyObject *Table_get_type(TableObject *self, void *closure)
{
    (void)closure;
    return tabletype_to_py(self->tab.elemtype, self->tab.size, self->tab.has_max, self->tab.declared_max);
}

static PyObject *Table_get_size(TableObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(self->tab.size);
}

static PyMethodDef Table_methods[] = {
    {"get", (PyCFunction)Table_get, METH_O, "get(index) -> Func | object | None (IndexError out of bounds)"},
    {"set", (PyCFunction)(void (*)(void))Table_set, METH_FASTCALL, "set(index, value)"},
    {"grow", (PyCFunction)(void (*)(void))Table_grow, METH_FASTCALL,
     "grow(delta, init=None) -> old size\n\nWasmError when the growth is refused."},
    {NULL},
};

static PyGetSetDef Table_getset[] = {
    {"type", (getter)Table_get_type, NULL, "TableType(element, current size, declared max)", NULL},
    {"size", (getter)Table_get_size, NULL, "number of elements", NULL},
    {NULL},
};

PyTypeObject Table_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.Table",
    .tp_repr = extern_repr,
    .tp_doc = "Table(tabletype, init=None, *, limit_elements=10_000_000)\n\n"
              "A table of references (Func/None for funcref, any object/None for externref).",
    .tp_basicsize = sizeof(TableObject),
    .tp_weaklistoffset = offsetof(TableObject, weakrefs),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Table_new,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_traverse = (traverseproc)Table_traverse,
    .tp_clear = (inquiry)Table_clear,
    .tp_methods = Table_methods,
    .tp_getset = Table_getset,
};

/* ========================================================================== */
/* Global                                                                     */
/* ========================================================================== */

PyObject *pyengine_new_global(uint8_t type, bool mutable_)
{
    GlobalObject *self = (GlobalObject *)Global_Type.tp_alloc(&Global_Type, 0);
    if (self == NULL) return NULL;
    self->glob.type = type;
    self->glob.mutable_ = mutable_;
    return (PyObject *)self;
}

/* Store a converted value (refs through rt_ref_store, which owns them). */
static void global_store(rt_global *g, const uint64_t value[2])
{
    if (valtype_is_ref(g->type)) {
        rt_ref_store((void **)&g->value[0], g->type, (void *)(uintptr_t)value[0]);
    } else {
        g->value[0] = value[0];
        g->value[1] = value[1];
    }
}

static PyObject *Global_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    static char *kwlist[] = {"globaltype", "value", NULL};
    PyObject *globaltype, *value;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Global", kwlist, &globaltype, &value)) return NULL;
    if (require_type(globaltype, py_classes.GlobalType, "Global()") < 0) return NULL;
    PyObject *content = PyObject_GetAttrString(globaltype, "content");
    PyObject *mutable_ = content ? PyObject_GetAttrString(globaltype, "mutable") : NULL;
    uint8_t vt = 0;
    int is_mutable = -1;
    if (mutable_ != NULL && valtype_from_py(content, &vt) == 0) is_mutable = PyObject_IsTrue(mutable_);
    Py_XDECREF(content);
    Py_XDECREF(mutable_);
    if (is_mutable < 0) return NULL;
    uint64_t slots[2] = {0, 0};
    if (rt_value_from_py(vt, value, false, slots) < 0) return NULL;
    PyObject *self = pyengine_new_global(vt, is_mutable != 0);
    if (self != NULL) global_store(&((GlobalObject *)self)->glob, slots);
    return self;
}

static int Global_traverse(GlobalObject *self, visitproc visit, void *arg)
{
    const rt_global *g = &self->glob;
    if (valtype_is_ref(g->type) && g->value[0] != 0)
        Py_VISIT(rt_ref_owner(g->type, (void *)(uintptr_t)g->value[0]));
    return 0;
}

static int Global_clear(GlobalObject *self)
{
    rt_global *g = &self->glob;
    if (valtype_is_ref(g->type)) rt_ref_store_now((void **)&g->value[0], g->type, NULL);
    return 0;
}

static void Global_dealloc(GlobalObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    Global_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *global_get(GlobalObject *self, bool raw)
{
    return rt_value_to_py(self->glob.type, self->glob.value, raw);
}

static int global_set(GlobalObject *self, PyObject *value, bool raw)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a global's value cannot be deleted");
        return -1;
    }
    if (!self->glob.mutable_) return raise_wasm_error("cannot set an immutable global");
    uint64_t slots[2] = {0, 0};
    if (rt_value_from_py(self->glob.type, value, raw, slots) < 0) return -1;
    global_store(&self->glob, slots);
    return 0;
}

static PyObject *Global_get_value(GlobalObject *self, void *closure)
{
    (void)closure;
    return global_get(self, false);
}

static PyObject *Global_get_raw(GlobalObject *self, void *closure)
{
    (void)closure;
    return global_get(self, true);
}

static int Global_set_value(GlobalObject *self, PyObject *v, void *closure)
{
    (void)closure;
    return global_set(self, v, false);
}

static int Global_set_raw(GlobalObject *self, PyObject *v, void *closure)
{
    (void)closure;
    return global_set(self, v, true);
}

static PyObject *Global_get_type(GlobalObject *self, void *closure)
{
    (void)closure;
    return globaltype_to_py(self->glob.type, self->glob.mutable_);
}

static PyGetSetDef Global_getset[] = {
    {"type", (getter)Global_get_type, NULL, "the GlobalType", NULL},
    {"value", (getter)Global_get_value, (setter)Global_set_value,
     "the value (set: WasmError when immutable, TypeError on a wrong type)", NULL},
    {"raw", (getter)Global_get_raw, (setter)Global_set_raw, "the value as a bit pattern (numbers)", NULL},
    {NULL},
};

/* <asyncwasm.Global global mut i32 = 5> */
static PyObject *Global_repr(PyObject *self)
{
    PyObject *type = PyObject_GetAttrString(self, "type");
    PyObject *value = type ? PyObject_GetAttrString(self, "value") : NULL;
    PyObject *repr = value ? PyUnicode_FromFormat("<%s %S = %R>", Py_TYPE(self)->tp_name, type, value) : NULL;
    Py_XDECREF(type);
    Py_XDECREF(value);
    return repr;
}

PyTypeObject Global_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.Global",
    .tp_repr = Global_repr,
    .tp_doc = "Global(globaltype, value)\n\nA global variable:  g = Global(GlobalType(I32, mutable=True), 7)",
    .tp_basicsize = sizeof(GlobalObject),
    .tp_weaklistoffset = offsetof(GlobalObject, weakrefs),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Global_new,
    .tp_dealloc = (destructor)Global_dealloc,
    .tp_traverse = (traverseproc)Global_traverse,
    .tp_clear = (inquiry)Global_clear,
    .tp_getset = Global_getset,
};

/* ========================================================================== */
/* Instance                                                                   */
/* ========================================================================== */

/* Visit or clear each object of the index spaces; counts come from the
 * module, arrays may be missing on a half-built instance. */
#define FOR_EACH_EXTERN_SLOT(SELF, SLOT, BODY)                                         \
    do {                                                                               \
        const wasm_module *m_ = (SELF)->rt.module;                                     \
        if (m_ == NULL) break;                                                         \
        PyObject **arrays_[4] = {(SELF)->funcs, (SELF)->tables, (SELF)->memories,      \
                                 (SELF)->globals};                                     \
        uint32_t counts_[4] = {m_->nfuncs, m_->ntables, m_->nmemories, m_->nglobals};  \
        for (int k_ = 0; k_ < 4; k_++) {                                               \
            if (arrays_[k_] == NULL) continue;                                         \
            for (uint32_t i_ = 0; i_ < counts_[k_]; i_++) {                            \
                PyObject **SLOT = &arrays_[k_][i_];                                    \
                BODY;                                                                  \
            }                                                                          \
        }                                                                              \
    } while (0)

static int Instance_traverse(InstanceObject *self, visitproc visit, void *arg)
{
    FOR_EACH_EXTERN_SLOT(self, slot, Py_VISIT(*slot));
    Py_VISIT(self->gate);
    return 0;
}

/* After this the instance cannot run: calls into it raise RuntimeError. */
static int Instance_clear(InstanceObject *self)
{
    self->cleared = true;
    self->rt.memory = NULL;
    const wasm_module *m = self->rt.module;
    if (m != NULL && self->rt.tables != NULL)
        for (uint32_t i = 0; i < m->ntables; i++) self->rt.tables[i] = NULL;
    if (m != NULL && self->rt.globals != NULL)
        for (uint32_t i = 0; i < m->nglobals; i++) self->rt.globals[i] = NULL;
    FOR_EACH_EXTERN_SLOT(self, slot, Py_CLEAR(*slot));
    self->guarded = false;
    Py_CLEAR(self->gate);
    return 0;
}

static void Instance_dealloc(InstanceObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    Py_TRASHCAN_BEGIN(self, Instance_dealloc)
    Instance_clear(self);
    PyMem_Free(self->rt.funcs);
    PyMem_Free(self->rt.tables);
    PyMem_Free(self->rt.globals);
    PyMem_Free(self->rt.elem_dropped);
    PyMem_Free(self->rt.data_dropped);
    PyMem_Free(self->defined_funcs);
    PyMem_Free(self->funcs);
    PyMem_Free(self->tables);
    PyMem_Free(self->memories);
    PyMem_Free(self->globals);
    Py_CLEAR(self->module);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

static PyObject *Instance_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"compiled", "externs", "max_memory_pages", "max_table_elements", "max_call_depth",
                             NULL};
    PyObject *compiled, *externs, *pmem = NULL, *ptab = NULL, *pdepth = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|$OOO:Instance", kwlist, &CompiledModule_Type, &compiled,
                                     &externs, &pmem, &ptab, &pdepth))
        return NULL;
    uint32_t max_pages = WASM_MAX_PAGES, max_elems = DEFAULT_MAX_TABLE_ELEMENTS, depth = DEFAULT_MAX_CALL_DEPTH;
    if (pmem != NULL && u32_arg(pmem, "max_memory_pages", WASM_MAX_PAGES, &max_pages) < 0) return NULL;
    if (ptab != NULL && u32_arg(ptab, "max_table_elements", UINT32_MAX, &max_elems) < 0) return NULL;
    if (pdepth != NULL && u32_arg(pdepth, "max_call_depth", UINT32_MAX, &depth) < 0) return NULL;
    if (depth == 0) {
        PyErr_SetString(PyExc_ValueError, "max_call_depth must be at least 1");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(externs, "externs must be a sequence");
    if (seq == NULL) return NULL;
    InstanceObject *self = (InstanceObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->module = (CompiledModuleObject *)Py_NewRef(compiled);
        self->max_call_depth = depth;
        PyObject *const *items = PySequence_Fast_ITEMS(seq);
        if (rt_instantiate(self, items, PySequence_Fast_GET_SIZE(seq), max_pages, max_elems) < 0)
            Py_CLEAR(self);
    }
    Py_DECREF(seq);
    return (PyObject *)self;
}

static int instance_check(InstanceObject *self)
{
    if (self->cleared) {
        PyErr_SetString(PyExc_RuntimeError, "the instance was destroyed");
        return -1;
    }
    return 0;
}

static PyObject *export_object(InstanceObject *self, const wasm_export *e)
{
    const wasm_module *m = self->rt.module;
    PyObject *obj = NULL;
    switch (e->kind) {
    case EXTERN_FUNC: return pyengine_instance_func(self, e->index);
    case EXTERN_TABLE: obj = e->index < m->ntables ? self->tables[e->index] : NULL; break;
    case EXTERN_MEMORY: obj = e->index < m->nmemories ? self->memories[e->index] : NULL; break;
    case EXTERN_GLOBAL: obj = e->index < m->nglobals ? self->globals[e->index] : NULL; break;
    }
    if (obj == NULL) PyErr_Format(PyExc_SystemError, "asyncwasm: export with a bad index %u", e->index);
    return Py_XNewRef(obj);
}

static PyObject *Instance_get_exports(InstanceObject *self, void *closure)
{
    (void)closure;
    if (instance_check(self) < 0) return NULL;
    const wasm_module *m = self->rt.module;
    PyObject *dict = PyDict_New();
    for (uint32_t i = 0; dict != NULL && i < m->nexports; i++) {
        PyObject *name = name_to_py(m->exports[i].name);
        PyObject *obj = name ? export_object(self, &m->exports[i]) : NULL;
        if (obj == NULL || PyDict_SetItem(dict, name, obj) < 0) Py_CLEAR(dict);
        Py_XDECREF(name);
        Py_XDECREF(obj);
    }
    return dict;
}

static PyObject *Instance_get_start(InstanceObject *self, void *closure)
{
    (void)closure;
    if (instance_check(self) < 0) return NULL;
    if (!self->rt.module->has_start) Py_RETURN_NONE;
    return pyengine_instance_func(self, self->rt.module->start);
}

static PyObject *Instance_get_memory(InstanceObject *self, void *closure)
{
    (void)closure;
    if (instance_check(self) < 0) return NULL;
    if (self->rt.module->nmemories == 0 || self->memories[0] == NULL) Py_RETURN_NONE;
    return Py_NewRef(self->memories[0]);
}

static PyObject *Instance_get_module(InstanceObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef((PyObject *)self->module);
}

static PyObject *Instance_get_gate(InstanceObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->gate != NULL ? self->gate : Py_None);
}

static int Instance_set_gate(InstanceObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_gate cannot be deleted (set None)");
        return -1;
    }
    Py_XSETREF(self->gate, value == Py_None ? NULL : Py_NewRef(value));
    if (self->gate == NULL) self->guarded = false;
    return 0;
}

static PyObject *Instance_get_guarded(InstanceObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->guarded);
}

static int Instance_set_guarded(InstanceObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value == NULL || !PyBool_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "_guarded must be a bool");
        return -1;
    }
    if (value == Py_True && self->gate == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set _gate before guarding the instance");
        return -1;
    }
    self->guarded = value == Py_True;
    return 0;
}

static PyObject *Instance_get_fast_counters(InstanceObject *self, void *closure)
{
    (void)closure;
    return Py_BuildValue("(KKK)", (unsigned long long)self->fast_calls,
                         (unsigned long long)self->fast_fuel_used, (unsigned long long)self->fast_host_calls);
}

static PyGetSetDef Instance_getset[] = {
    {"exports", (getter)Instance_get_exports, NULL, "dict: name -> Func | Memory | Table | Global", NULL},
    {"start", (getter)Instance_get_start, NULL, "the start Func (not yet run), or None", NULL},
    {"memory", (getter)Instance_get_memory, NULL, "memory 0, exported or not, or None", NULL},
    {"module", (getter)Instance_get_module, NULL, "the CompiledModule", NULL},
    {"_gate", (getter)Instance_get_gate, (setter)Instance_set_gate,
     "asyncwasm.execution's state object, or None (private)", NULL},
    {"_guarded", (getter)Instance_get_guarded, (setter)Instance_set_guarded,
     "True: synchronous calls go through _gate.call_sync(func, args, raw) (private)", NULL},
    {"_fast_counters", (getter)Instance_get_fast_counters, NULL,
     "(calls, fuel_used, host_calls) of synchronous fast-path calls (private)", NULL},
    {NULL},
};

PyTypeObject Instance_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm._engine.Instance",
    .tp_doc = "Instance(compiled, externs, *, max_memory_pages=65536, max_table_elements=10_000_000,\n"
              "         max_call_depth=10000)\n\n"
              "Links one extern per import (in import order), creates memories, tables and\n"
              "globals, applies active segments. Does not run the start function.",
    .tp_basicsize = sizeof(InstanceObject),
    .tp_weaklistoffset = offsetof(InstanceObject, weakrefs),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Instance_new,
    .tp_dealloc = (destructor)Instance_dealloc,
    .tp_traverse = (traverseproc)Instance_traverse,
    .tp_clear = (inquiry)Instance_clear,
    .tp_getset = Instance_getset,
};

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
    PyObject *trap;        /* cached Trap after TRAP */
    int64_t fuel_left;
    bool raw, started, running, awaiting;
} FiberObject;

static PyObject *Fiber_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "args", "raw", "max_call_depth", "max_stack_slots", NULL};
    PyObject *func, *fargs, *pdepth = NULL, *pslots = NULL;
    int raw = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|$pOO:Fiber", kwlist, &Func_Type, &func, &fargs, &raw,
                                     &pdepth, &pslots))
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
    return 0;
}

/* Frees the fiber's state too: a cleared fiber cannot run again. */
static int Fiber_clear(FiberObject *self)
{
    if (self->running) return 0; /* unreachable: a running fiber is referenced by its caller */
    self->started = false;
    fiber_free(&self->rf.f); /* also drops the awaitable and the host trap */
    Py_CLEAR(self->rf.keepalive);
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
    if (outcome == RUN_ERROR || outcome < 0 || outcome > RUN_ERROR) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_SystemError, "asyncwasm: run ended with outcome %d and no exception", outcome);
        return NULL;
    }
    return PyLong_FromLong(outcome);
}

static PyObject *Fiber_resume(FiberObject *self, PyObject *value)
{
    if (fiber_check_usable(self) < 0) return NULL;
    if (!self->awaiting || self->rf.pending_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the fiber is not waiting for a host result");
        return NULL;
    }
    fiber *f = &self->rf.f;
    self->awaiting = false;
    Py_CLEAR(f->awaitable);
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
    if (is_trap < 0) return NULL;
    fiber *f = &self->rf.f;
    self->awaiting = false;
    Py_CLEAR(f->awaitable);
    f->pending_type = NULL;
    self->rf.pending_fn = NULL;
    if (is_trap) {
        f->state = RUN_TRAP;
        f->trap_kind = TRAP_HOST;
        Py_XSETREF(f->trap_exc, Py_NewRef(exc));
    } else {
        Py_XSETREF(self->pending_exc, Py_NewRef(exc));
    }
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
     "run(fuel) -> outcome\n\n0 DONE, 1 SUSPEND, 2 OUT_OF_FUEL, 3 TRAP; raises on ERROR."},
    {"resume", (PyCFunction)Fiber_resume, METH_O,
     "resume(value)\n\nDeliver the awaited host result (None / value / tuple); the next run() continues."},
    {"throw", (PyCFunction)Fiber_throw, METH_O,
     "throw(exc)\n\nThe awaited host call raised: a Trap traps the fiber, anything else is\n"
     "raised by the next run()."},
    {"trap", (PyCFunction)Fiber_trap, METH_NOARGS, "trap() -> Trap to raise after a TRAP outcome"},
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
    .tp_doc = "Fiber(func, args, *, raw=False, max_call_depth=10000, max_stack_slots=1<<20)\n\n"
              "One resumable call: run(fuel) until DONE, SUSPEND (await fiber.awaitable, then\n"
              "resume()/throw()), OUT_OF_FUEL (run again) or TRAP (raise fiber.trap()).",
    .tp_basicsize = sizeof(FiberObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Fiber_new,
    .tp_dealloc = (destructor)Fiber_dealloc,
    .tp_traverse = (traverseproc)Fiber_traverse,
    .tp_clear = (inquiry)Fiber_clear,
    .tp_methods = Fiber_methods,
    .tp_getset = Fiber_getset,
};

/* ========================================================================== */
/* Module                                                                     */
/* ========================================================================== */

PyDoc_STRVAR(set_hooks_doc,
"set_hooks(**hooks)\n\n"
"Register Python callables the C types delegate to. Known hooks:\n"
"call_async(func, args) -> awaitable, used by Func.call_async.");

static PyObject *engine_set_hooks(PyObject *module, PyObject *args, PyObject *kwds)
{
    (void)module;
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "set_hooks() takes keyword arguments only");
        return NULL;
    }
    if (kwds != NULL && PyDict_Update(py_classes.hooks, kwds) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef engine_methods[] = {
    {"compile", (PyCFunction)(void (*)(void))engine_compile, METH_VARARGS | METH_KEYWORDS, compile_doc},
    {"set_hooks", (PyCFunction)(void (*)(void))engine_set_hooks, METH_VARARGS | METH_KEYWORDS, set_hooks_doc},
    {NULL},
};

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "asyncwasm._engine",
    .m_doc = "The C engine of asyncwasm: compile, instantiate, run fibers. See asyncwasm for the API.",
    .m_size = -1,
    .m_methods = engine_methods,
};

static int import_classes(void)
{
    PyObject *errors = PyImport_ImportModule("asyncwasm._errors");
    PyObject *types = errors ? PyImport_ImportModule("asyncwasm._types") : NULL;
    int rc = -1;
    if (types == NULL) goto done;
    engine_classes *c = &py_classes;
    struct {
        PyObject *from;
        const char *name;
        PyObject **out;
    } wanted[] = {
        {errors, "WasmError", &c->WasmError},   {errors, "LinkError", &c->LinkError},
        {errors, "Trap", &c->Trap},             {errors, "MalformedError", &c->MalformedError},
        {errors, "ValidationError", &c->ValidationError}, {errors, "Frame", &c->Frame},
        {types, "FuncType", &c->FuncType},      {types, "MemoryType", &c->MemoryType},
        {types, "TableType", &c->TableType},    {types, "GlobalType", &c->GlobalType},
        {types, "ValType", &c->ValType},
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        *wanted[i].out = PyObject_GetAttrString(wanted[i].from, wanted[i].name);
        if (*wanted[i].out == NULL) goto done;
    }
    static const uint8_t known[] = {VT_I32, VT_I64, VT_F32, VT_F64, VT_V128, VT_FUNCREF, VT_EXTERNREF};
    for (size_t i = 0; i < sizeof known; i++) {
        valtype_objects[known[i]] = PyObject_CallFunction(c->ValType, "i", known[i]);
        if (valtype_objects[known[i]] == NULL) goto done;
    }
    c->hooks = PyDict_New();
    rc = c->hooks ? 0 : -1;
done:
    Py_XDECREF(errors);
    Py_XDECREF(types);
    return rc;
}

static PyObject *trap_messages_tuple(void)
{
    PyObject *tuple = PyTuple_New(TRAP__COUNT);
    for (int k = 0; tuple != NULL && k < TRAP__COUNT; k++) {
        PyObject *s = PyUnicode_FromString(trap_message(k));
        if (s == NULL) Py_CLEAR(tuple);
        else PyTuple_SET_ITEM(tuple, k, s);
    }
    return tuple;
}

PyMODINIT_FUNC PyInit__engine(void)
{
    if (import_classes() < 0) return NULL;
    PyTypeObject *types[] = {&CompiledModule_Type, &Func_Type, &Memory_Type, &Table_Type,
                             &Global_Type, &Instance_Type, &Fiber_Type};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0) return NULL;
    PyObject *m = PyModule_Create(&engine_module);
    if (m == NULL) return NULL;
    static const char *const names[] = {"CompiledModule", "Func", "Memory", "Table",
                                        "Global",         "Instance", "Fiber"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0) goto fail;
    static const struct {
        const char *name;
        int value;
    } outcomes[] = {{"DONE", RUN_DONE}, {"SUSPEND", RUN_SUSPEND}, {"OUT_OF_FUEL", RUN_OUT_OF_FUEL},
                    {"TRAP", RUN_TRAP}, {"ERROR", RUN_ERROR}};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        if (PyModule_AddIntConstant(m, outcomes[i].name, outcomes[i].value) < 0) goto fail;
    PyObject *messages = trap_messages_tuple();
    if (messages == NULL || PyModule_AddObject(m, "TRAP_MESSAGES", messages) < 0) {
        Py_XDECREF(messages);
        goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
