/* py_module.c -- CompiledModule (imports, exports, custom sections) and compile().
 *
 * Part of asyncwasm._engine's Python face (pyengine.c has the module and the
 * helpers these files share; layouts and ownership in pyengine.h).
 */
#include <string.h>

#include "pyengine.h"

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
            return tabletype_to_py(t->elem, &t->limits);
        }
        break;
    case EXTERN_MEMORY:
        if (e->index < m->nmemories) {
            const wasm_limits *l = &m->memories[e->index].limits;
            return memtype_to_py(l);
        }
        break;
    case EXTERN_GLOBAL:
        if (e->index < m->nglobals)
            return globaltype_to_py(m->globals[e->index].type.type, m->globals[e->index].type.mutable_);
        break;
    case EXTERN_TAG:
        if (e->index < m->ntags && m->tags[e->index].typeidx < m->ntypes)
            return tagtype_to_py(&m->types[m->tags[e->index].typeidx]);
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
        return tabletype_to_py(t->elem, &t->limits);
    }
    case EXTERN_MEMORY: {
        const wasm_limits *l = &imp->desc.memory.limits;
        return memtype_to_py(l);
    }
    case EXTERN_GLOBAL:
        return globaltype_to_py(imp->desc.global.type, imp->desc.global.mutable_);
    case EXTERN_TAG:
        if (imp->desc.tag.typeidx < m->ntypes) return tagtype_to_py(&m->types[imp->desc.tag.typeidx]);
        break;
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

const char compile_doc[] = PyDoc_STR(
"compile(data, costs=None) -> CompiledModule\n\n"
"Decode, validate and compile a module from a bytes-like object. Raises\n"
"MalformedError / ValidationError(rule, offset, func) or MemoryError.\n"
"costs: a cost table, 768 native uint16 weights >= 1 (entry [op] for a\n"
"one-byte opcode, [256 + sub] for 0xFC and [512 + sub] for 0xFD\n"
"sub-opcodes): fuel is charged by\n"
"weight instead of 1 per instruction. Runs without the GIL.");

PyObject *engine_compile(PyObject *module, PyObject *args, PyObject *kwds)
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
