/* py_caller.c -- Caller: what a host function defined with access_caller=True
 * receives first, naming the instance whose guest called it.
 *
 * Part of asyncwasm._engine's Python face (pyengine.c has the module and the
 * helpers these files share; layouts and ownership in pyengine.h).
 *
 * A Caller is made per call (runtime.c rt_call_host) and works only until the
 * host function's result is in: when it returns, or, for one that returned
 * an awaitable, when the fiber resumes (or is dropped). After that every
 * attribute raises RuntimeError, so a Caller kept by mistake cannot reach an
 * instance that a later call may be using from another task. It holds a
 * strong reference to the engine instance while it works, none after.
 */
#include <string.h>

#include "pyengine.h"

typedef struct {
    PyObject_HEAD
    InstanceObject *inst; /* the calling instance; NULL once the call is over */
} CallerObject;

/* The memory the embedding API works on: the export "memory", else memory 0. */
PyObject *instance_default_memory(InstanceObject *inst)
{
    const wasm_module *m = inst->rt.module;
    if (inst->cleared || m == NULL || inst->memories == NULL) return NULL;
    for (uint32_t i = 0; i < m->nexports; i++) {
        const wasm_export *e = &m->exports[i];
        if (e->kind == EXTERN_MEMORY && e->index < m->nmemories && e->name.len == 6 &&
            memcmp(e->name.ptr, "memory", 6) == 0)
            return inst->memories[e->index];
    }
    return m->nmemories > 0 ? inst->memories[0] : NULL;
}

PyObject *rt_caller_new(const fiber *f, const rt_func *fn)
{
    const rt_func *top = fiber_depth(f) > 0 ? fiber_top(f)->func : NULL;
    if (top == NULL || top->inst == NULL || top->inst->owner == NULL) {
        PyObject *name = rt_host_name(fn);
        if (name != NULL)
            PyErr_Format(PyExc_TypeError,
                         "host function %R takes a Caller (access_caller=True): only a guest can call it, "
                         "not Python",
                         name);
        Py_XDECREF(name);
        return NULL;
    }
    CallerObject *self = PyObject_New(CallerObject, &Caller_Type);
    if (self == NULL) return NULL;
    self->inst = (InstanceObject *)Py_NewRef(top->inst->owner);
    return (PyObject *)self;
}

void rt_caller_end(PyObject *caller)
{
    if (caller != NULL) Py_CLEAR(((CallerObject *)caller)->inst);
}

static void Caller_dealloc(CallerObject *self)
{
    Py_CLEAR(self->inst);
    PyObject_Free(self);
}

/* The calling instance, or NULL with RuntimeError once the call is over. */
static InstanceObject *caller_instance(CallerObject *self)
{
    if (self->inst == NULL || self->inst->cleared) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this Caller is no longer valid: a Caller works only during the host call that "
                        "received it (keep caller.instance to use the instance later)");
        return NULL;
    }
    return self->inst;
}

/* The asyncwasm.Instance of the calling instance (its gate's `instance`). */
static PyObject *caller_owner(CallerObject *self)
{
    InstanceObject *inst = caller_instance(self);
    if (inst == NULL) return NULL;
    if (inst->gate == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the calling instance was made with the low-level _engine.Instance, not "
                        "asyncwasm.Instance: it has no Instance object");
        return NULL;
    }
    return PyObject_GetAttrString(inst->gate, "instance");
}

static PyObject *Caller_get_instance(CallerObject *self, void *closure)
{
    (void)closure;
    return caller_owner(self);
}

static PyObject *caller_owner_attr(CallerObject *self, const char *name)
{
    PyObject *owner = caller_owner(self);
    if (owner == NULL) return NULL;
    PyObject *value = PyObject_GetAttrString(owner, name);
    Py_DECREF(owner);
    return value;
}

static PyObject *Caller_get_exports(CallerObject *self, void *closure)
{
    (void)closure;
    return caller_owner_attr(self, "exports");
}

static PyObject *Caller_get_wasi(CallerObject *self, void *closure)
{
    (void)closure;
    return caller_owner_attr(self, "wasi");
}

static PyObject *Caller_get_memory(CallerObject *self, void *closure)
{
    (void)closure;
    InstanceObject *inst = caller_instance(self);
    if (inst == NULL) return NULL;
    PyObject *memory = instance_default_memory(inst);
    return Py_NewRef(memory != NULL ? memory : Py_None);
}

static PyObject *Caller_get_valid(CallerObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->inst != NULL && !self->inst->cleared);
}

static PyObject *Caller_repr(CallerObject *self)
{
    if (self->inst == NULL) return PyUnicode_FromString("<asyncwasm.Caller (call over)>");
    const wasm_module *m = self->inst->rt.module;
    if (m == NULL || m->module_name.len == 0) return PyUnicode_FromString("<asyncwasm.Caller>");
    PyObject *name = name_to_py(m->module_name);
    PyObject *repr = name ? PyUnicode_FromFormat("<asyncwasm.Caller from %R>", name) : NULL;
    Py_XDECREF(name);
    return repr;
}

static PyGetSetDef Caller_getset[] = {
    {"instance", (getter)Caller_get_instance, NULL,
     "the asyncwasm.Instance whose guest made the call (the object instantiation returned)", NULL},
    {"exports", (getter)Caller_get_exports, NULL, "caller.instance.exports", NULL},
    {"memory", (getter)Caller_get_memory, NULL,
     "the calling instance's Memory: its export \"memory\", else memory 0, else None", NULL},
    {"wasi", (getter)Caller_get_wasi, NULL, "caller.instance.wasi: its WASI context, or None", NULL},
    {"valid", (getter)Caller_get_valid, NULL, "True while the host call runs", NULL},
    {NULL},
};

PyTypeObject Caller_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.Caller",
    .tp_doc = "What a host function defined with access_caller=True receives first:\n"
              "    def log(caller, ptr, length):\n"
              "        print(caller.memory.read(ptr, length).decode())\n"
              "    linker.define_func('env', 'log', FuncType([I32, I32], []), log, access_caller=True)\n"
              "instance (the calling asyncwasm.Instance), exports, memory (export \"memory\",\n"
              "else memory 0, else None) and wasi work only during the call; afterwards they\n"
              "raise RuntimeError. Made by the engine, not by Python code.",
    .tp_basicsize = sizeof(CallerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Caller_dealloc,
    .tp_repr = (reprfunc)Caller_repr,
    .tp_getset = Caller_getset,
};
