/* pyengine.c -- asyncwasm._engine: the Python face of the C engine.
 *
 * Types: CompiledModule (py_module.c), Func (py_func.c), Memory, Table,
 * Global (py_externs.c), Tag and Exn (py_exceptions.c), Instance
 * (py_instance.c), Fiber (py_fiber.c), Caller (py_caller.c);
 * functions: compile(), set_hooks(). This file holds the module itself and
 * the argument and type-conversion helpers the py_*.c files share. The
 * objects embed runtime.c's rt_* structs (layouts in pyengine.h); every
 * method validates its arguments, and deallocation is safe on half-built
 * objects. asyncwasm/_engine.pyi is the contract as Python sees it.
 */
#include <stdio.h>
#include <string.h>

#include "pyengine.h"

engine_classes py_classes;

/* ValType members by binary byte (8 of the 256 are set). */
static PyObject *valtype_objects[256];


/* ========================================================================== */
/* Small helpers                                                              */
/* ========================================================================== */

int raise_wasm_error(const char *fmt, ...)
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

/* An int argument in 0..max (u32_arg: max at most UINT32_MAX). */
int u32_arg(PyObject *obj, const char *name, uint64_t max, uint32_t *out)
{
    uint64_t v;
    if (u64_arg(obj, name, max < UINT32_MAX ? max : UINT32_MAX, &v) < 0) return -1;
    *out = (uint32_t)v;
    return 0;
}

int u64_arg(PyObject *obj, const char *name, uint64_t max, uint64_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    bool outside = false; /* negative or above 2^64-1 */
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
        outside = true;
    }
    if (outside || v > max) {
        PyErr_Format(PyExc_ValueError, "%s must be in 0..%llu", name, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Positional argument count of a METH_FASTCALL method. */
int check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max)
{
    if (nargs >= min && nargs <= max) return 0;
    if (min == max)
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, min, nargs);
    else
        PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", name, min, max, nargs);
    return -1;
}

/* A non-negative int offset/length; too large or negative is out of bounds. */
int index_arg(PyObject *obj, const char *name, uint64_t *out)
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

PyObject *name_to_py(wasm_name name)
{
    return PyUnicode_DecodeUTF8(name.ptr, name.len, "replace");
}

PyObject *optional_u32(bool present, uint32_t value)
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

int valtype_from_py(PyObject *obj, uint8_t *out)
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

/* A MemoryType/TableType's keyword arguments: min, max and is_64. */
static PyObject *limits_kwargs(const wasm_limits *l)
{
    return Py_BuildValue("{sKsNsO}", "min", (unsigned long long)l->min, "max",
                         l->has_max ? PyLong_FromUnsignedLongLong(l->max) : Py_NewRef(Py_None), "is_64",
                         l->addr64 ? Py_True : Py_False);
}

PyObject *tabletype_to_py(uint8_t elem, const wasm_limits *l)
{
    PyObject *vt = pyengine_valtype_to_py(elem);
    PyObject *args = vt ? PyTuple_Pack(1, vt) : NULL;
    PyObject *kw = args ? limits_kwargs(l) : NULL;
    PyObject *tt = kw ? PyObject_Call(py_classes.TableType, args, kw) : NULL;
    Py_XDECREF(vt);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    return tt;
}

PyObject *memtype_to_py(const wasm_limits *l)
{
    PyObject *args = PyTuple_New(0);
    PyObject *kw = args ? limits_kwargs(l) : NULL;
    PyObject *mt = kw ? PyObject_Call(py_classes.MemoryType, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    return mt;
}

PyObject *globaltype_to_py(uint8_t type, bool mutable_)
{
    PyObject *vt = pyengine_valtype_to_py(type);
    PyObject *gt = vt ? PyObject_CallFunction(py_classes.GlobalType, "OO", vt, mutable_ ? Py_True : Py_False)
                      : NULL;
    Py_XDECREF(vt);
    return gt;
}

/* TypeError unless `obj` is an instance of the asyncwasm._types class `cls`
 * (checked before any attribute is read, so the error names the real mistake). */
int require_type(PyObject *obj, PyObject *cls, const char *who)
{
    int ok = PyObject_IsInstance(obj, cls);
    if (ok == 0)
        PyErr_Format(PyExc_TypeError, "%s needs an asyncwasm.%s, not %.100s", who, ((PyTypeObject *)cls)->tp_name,
                     Py_TYPE(obj)->tp_name);
    return ok == 1 ? 0 : -1;
}

/* min/max/is_64 attributes of a MemoryType/TableType-like object; min and
 * max at most `bound32` (32-bit addresses) or `bound64` (is_64). */
int limits_from_py(PyObject *type, uint64_t bound32, uint64_t bound64, wasm_limits *out)
{
    PyObject *pmin = PyObject_GetAttrString(type, "min");
    PyObject *pmax = pmin ? PyObject_GetAttrString(type, "max") : NULL;
    PyObject *p64 = pmax ? PyObject_GetAttrString(type, "is_64") : NULL;
    int rc = -1;
    memset(out, 0, sizeof *out);
    int is64 = p64 ? PyObject_IsTrue(p64) : -1;
    if (is64 >= 0) {
        uint64_t bound = is64 ? bound64 : bound32;
        out->addr64 = is64;
        out->has_max = pmax != Py_None;
        if (u64_arg(pmin, "minimum", bound, &out->min) == 0 &&
            (!out->has_max || u64_arg(pmax, "maximum", bound, &out->max) == 0))
            rc = 0;
        if (rc == 0 && out->has_max && out->max < out->min) {
            PyErr_SetString(PyExc_ValueError, "maximum is below the minimum");
            rc = -1;
        }
    }
    Py_XDECREF(pmin);
    Py_XDECREF(pmax);
    Py_XDECREF(p64);
    return rc;
}

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

PyDoc_STRVAR(release_memory_pool_doc,
"release_memory_pool() -> int\n\n"
"Unmap the address space kept from freed memories for reuse (a few\n"
"reservations, their contents already discarded); returns how many.");

static PyObject *engine_release_memory_pool(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromLong(rt_memory_pool_release());
}

static PyMethodDef engine_methods[] = {
    {"compile", (PyCFunction)(void (*)(void))engine_compile, METH_VARARGS | METH_KEYWORDS, compile_doc},
    {"set_hooks", (PyCFunction)(void (*)(void))engine_set_hooks, METH_VARARGS | METH_KEYWORDS, set_hooks_doc},
    {"release_memory_pool", engine_release_memory_pool, METH_NOARGS, release_memory_pool_doc},
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
        {errors, "WasmException", &c->WasmException},
        {types, "FuncType", &c->FuncType},      {types, "MemoryType", &c->MemoryType},
        {types, "TableType", &c->TableType},    {types, "GlobalType", &c->GlobalType},
        {types, "TagType", &c->TagType},        {types, "ValType", &c->ValType},
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        *wanted[i].out = PyObject_GetAttrString(wanted[i].from, wanted[i].name);
        if (*wanted[i].out == NULL) goto done;
    }
    static const uint8_t known[] = {VT_I32, VT_I64, VT_F32, VT_F64, VT_V128,
                                   VT_FUNCREF, VT_EXTERNREF, VT_EXNREF, VT_NULLEXNREF, VT_REF_EXN, VT_REF_NOEXN};
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
    PyTypeObject *types[] = {&CompiledModule_Type, &Func_Type,     &Memory_Type,    &Table_Type,
                             &Global_Type,         &Instance_Type, &Fiber_Type,     &Caller_Type,
                             &SockTable_Type,      &SockCall_Type, &Tag_Type,       &Exn_Type,
                             &MemoryBudget_Type};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0) return NULL;
    PyObject *m = PyModule_Create(&engine_module);
    if (m == NULL) return NULL;
    static const char *const names[] = {"CompiledModule", "Func",     "Memory",   "Table",
                                        "Global",         "Instance", "Fiber",    "Caller",
                                        "SockTable",      "SockCall", "Tag",      "Exn",
                                        "MemoryBudget"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0) goto fail;
    static const struct {
        const char *name;
        int value;
    } outcomes[] = {{"DONE", RUN_DONE}, {"SUSPEND", RUN_SUSPEND}, {"OUT_OF_FUEL", RUN_OUT_OF_FUEL},
                    {"TRAP", RUN_TRAP}, {"ERROR", RUN_ERROR}, {"EXCEPTION", RUN_EXCEPTION}};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        if (PyModule_AddIntConstant(m, outcomes[i].name, outcomes[i].value) < 0) goto fail;
    if (PyModule_AddStringConstant(m, "BUILD", interp_build_info()) < 0) goto fail;
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
