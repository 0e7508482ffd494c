/* py_instance.c -- Instance: index spaces, exports, the gate of the Python side.
 *
 * Part of asyncwasm._engine's Python face (pyengine.c has the module and the
 * helpers these files share; layouts and ownership in pyengine.h).
 */
#include <string.h>

#include "pyengine.h"

/* ========================================================================== */
/* Instance                                                                   */
/* ========================================================================== */

/* Visit or clear each object of the index spaces that the instance owns:
 * counts come from the module, arrays may be missing on a half-built
 * instance. Func objects of its own functions are not owned (see
 * InstanceObject.funcs), only the imported ones. */
#define FOR_EACH_EXTERN_SLOT(SELF, SLOT, BODY)                                         \
    do {                                                                               \
        const wasm_module *m_ = (SELF)->rt.module;                                     \
        if (m_ == NULL) break;                                                         \
        PyObject **arrays_[EXTERN_KINDS] = {(SELF)->funcs, (SELF)->tables,             \
                                            (SELF)->memories, (SELF)->globals,         \
                                            (SELF)->tags};                             \
        uint32_t counts_[EXTERN_KINDS] = {m_->nimported_funcs, m_->ntables,           \
                                          m_->nmemories, m_->nglobals, m_->ntags};        \
        for (int k_ = 0; k_ < EXTERN_KINDS; k_++) {                                    \
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
    if (m != NULL && self->rt.memories != NULL)
        for (uint32_t i = 0; i < m->nmemories; i++) self->rt.memories[i] = NULL;
    if (m != NULL && self->rt.globals != NULL)
        for (uint32_t i = 0; i < m->nglobals; i++) self->rt.globals[i] = NULL;
    if (m != NULL && self->rt.tags != NULL)
        for (uint32_t i = 0; i < m->ntags; i++) self->rt.tags[i] = NULL;
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
    PyMem_Free(self->rt.memories);
    PyMem_Free(self->rt.globals);
    PyMem_Free(self->rt.elem_dropped);
    PyMem_Free(self->rt.data_dropped);
    PyMem_Free(self->defined_funcs);
    PyMem_Free(self->funcs);
    PyMem_Free(self->tables);
    PyMem_Free(self->memories);
    PyMem_Free(self->globals);
    PyMem_Free(self->rt.tags);
    PyMem_Free(self->tags);
    Py_CLEAR(self->module);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

static PyObject *Instance_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"compiled", "externs", "max_memory_pages", "max_table_elements", "max_call_depth",
                             "memory_budget", NULL};
    PyObject *compiled, *externs, *pmem = NULL, *ptab = NULL, *pdepth = NULL, *budget = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|$OOOO:Instance", kwlist, &CompiledModule_Type, &compiled,
                                     &externs, &pmem, &ptab, &pdepth, &budget))
        return NULL;
    uint64_t max_pages = WASM_MAX_PAGES;
    uint32_t max_elems = DEFAULT_MAX_TABLE_ELEMENTS, depth = DEFAULT_MAX_CALL_DEPTH;
    /* Above 65536 pages only a memory64 can use it. */
    if (pmem != NULL && u64_arg(pmem, "max_memory_pages", WASM_MAX_PAGES64, &max_pages) < 0) return NULL;
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
        if (rt_instantiate(self, items, PySequence_Fast_GET_SIZE(seq), max_pages, max_elems, budget) < 0)
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
    case EXTERN_TAG: obj = e->index < m->ntags ? self->tags[e->index] : NULL; break;
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

static PyObject *Instance_get_default_memory(InstanceObject *self, void *closure)
{
    (void)closure;
    if (instance_check(self) < 0) return NULL;
    PyObject *memory = instance_default_memory(self);
    return Py_NewRef(memory != NULL ? memory : Py_None);
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

static PyObject *Instance_release(InstanceObject *self, PyObject *unused)
{
    (void)unused;
    Instance_clear(self);
    Py_RETURN_NONE;
}

static PyMethodDef Instance_methods[] = {
    {"release", (PyCFunction)Instance_release, METH_NOARGS,
     "release()\n\n"
     "Drop everything the instance holds now, as the cyclic GC would: memories,\n"
     "tables, globals, imported functions, the gate. Calls into it raise\n"
     "RuntimeError afterwards. For an owner that knows nothing else runs or\n"
     "will run the instance (a cycle through a table of its own functions\n"
     "is then freed at once, not at the next collection)."},
    {NULL},
};

static PyGetSetDef Instance_getset[] = {
    {"exports", (getter)Instance_get_exports, NULL, "dict: name -> Func | Memory | Table | Global | Tag", NULL},
    {"start", (getter)Instance_get_start, NULL, "the start Func (not yet run), or None", NULL},
    {"memory", (getter)Instance_get_memory, NULL, "memory 0, exported or not, or None", NULL},
    {"default_memory", (getter)Instance_get_default_memory, NULL,
     "the memory the embedding API works on: export \"memory\", else memory 0, else None", NULL},
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
              "         max_call_depth=10000, memory_budget=None)\n\n"
              "Links one extern per import (in import order), creates memories, tables and\n"
              "globals, applies active segments. Does not run the start function.",
    .tp_basicsize = sizeof(InstanceObject),
    .tp_weaklistoffset = offsetof(InstanceObject, weakrefs),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Instance_new,
    .tp_dealloc = (destructor)Instance_dealloc,
    .tp_traverse = (traverseproc)Instance_traverse,
    .tp_clear = (inquiry)Instance_clear,
    .tp_methods = Instance_methods,
    .tp_getset = Instance_getset,
};
