/* py_externs.c -- Memory, Table and Global objects.
 *
 * Part of asyncwasm._engine's Python face (pyengine.c has the module and the
 * helpers these files share; layouts and ownership in pyengine.h).
 */
#include <string.h>

#include "pyengine.h"

/* ========================================================================== */
/* Memory                                                                     */
/* ========================================================================== */

PyObject *pyengine_new_memory(const wasm_limits *type, uint64_t limit, PyObject *budget)
{
    if (budget == Py_None) budget = NULL;
    if (budget != NULL && !PyObject_TypeCheck(budget, &MemoryBudget_Type)) {
        PyErr_Format(PyExc_TypeError, "memory budget must be an asyncwasm.MemoryBudget or None, not %.100s",
                     Py_TYPE(budget)->tp_name);
        return NULL;
    }
    MemoryObject *self = (MemoryObject *)Memory_Type.tp_alloc(&Memory_Type, 0);
    if (self == NULL) return NULL;
    if (rt_memory_init(&self->mem, type, limit) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (budget != NULL) {
        rt_memory_budget *b = &((MemoryBudgetObject *)budget)->budget;
        if (rt_memory_join_budget(&self->mem, b) < 0) {
            PyErr_Format(py_classes.LinkError,
                         "memory of %llu pages does not fit in the memory budget (%llu of %llu pages in use)",
                         (unsigned long long)self->mem.pages,
                         (unsigned long long)b->used_pages, (unsigned long long)b->max_pages);
            Py_DECREF(self);
            return NULL;
        }
        self->budget = Py_NewRef(budget);
    }
    return (PyObject *)self;
}

static PyObject *Memory_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    static char *kwlist[] = {"memtype", "limit_pages", "budget", NULL};
    PyObject *memtype, *plimit = Py_None, *budget = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OO:Memory", kwlist, &memtype, &plimit, &budget)) return NULL;
    if (require_type(memtype, py_classes.MemoryType, "Memory()") < 0) return NULL;
    wasm_limits lim;
    uint64_t limit = WASM_MAX_PAGES;
    if (limits_from_py(memtype, WASM_MAX_PAGES, WASM_MAX_PAGES64, &lim) < 0) return NULL;
    if (plimit != Py_None && u64_arg(plimit, "limit_pages", WASM_MAX_PAGES64, &limit) < 0) return NULL;
    return pyengine_new_memory(&lim, limit, budget);
}

static void Memory_dealloc(MemoryObject *self)
{
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    rt_memory_free(&self->mem); /* gives the pages back to the budget first */
    Py_CLEAR(self->budget);
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
    uint64_t delta;
    if (u64_arg(arg, "delta", self->mem.addr64 ? UINT64_MAX : UINT32_MAX, &delta) < 0) return NULL;
    int64_t old = rt_memory_grow(&self->mem, delta);
    const rt_memory_budget *b = self->mem.budget;
    if (old < 0 && b != NULL && (uint64_t)self->mem.pages + delta <= self->mem.max_pages) {
        raise_wasm_error("memory.grow by %llu pages refused: the memory budget has %llu of %llu pages left",
                         (unsigned long long)delta,
                         (unsigned long long)(b->max_pages - b->used_pages), (unsigned long long)b->max_pages);
        return NULL;
    }
    if (old < 0) {
        raise_wasm_error("memory.grow by %llu pages refused: size %llu pages, maximum %llu pages",
                         (unsigned long long)delta, (unsigned long long)self->mem.pages,
                         (unsigned long long)self->mem.max_pages);
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
    wasm_limits now = {self->mem.pages, self->mem.declared_max, self->mem.has_max, self->mem.addr64};
    return memtype_to_py(&now);
}

static PyObject *Memory_get_size(MemoryObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->mem.pages);
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

static PyObject *Memory_get_refused_grows(MemoryObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->mem.refused);
}

static PyObject *Memory_get_budget(MemoryObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->budget != NULL ? self->budget : Py_None);
}

static PyGetSetDef Memory_getset[] = {
    {"type", (getter)Memory_get_type, NULL, "MemoryType(current pages, declared max)", NULL},
    {"size", (getter)Memory_get_size, NULL, "size in 64 KiB pages", NULL},
    {"data_len", (getter)Memory_get_data_len, NULL, "size in bytes", NULL},
    {"refused_grows", (getter)Memory_get_refused_grows, NULL,
     "grows refused so far (the memory's cap or its budget), memory.grow and Memory.grow alike", NULL},
    {"budget", (getter)Memory_get_budget, NULL, "the MemoryBudget its pages count against, or None", NULL},
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
    .tp_doc = "Memory(memtype, *, limit_pages=None, budget=None)\n\n"
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
/* MemoryBudget                                                               */
/* ========================================================================== */

static PyObject *MemoryBudget_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_pages", NULL};
    PyObject *pmax;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:MemoryBudget", kwlist, &pmax)) return NULL;
    uint64_t max_pages;
    if (PyBool_Check(pmax) || !PyLong_Check(pmax)) {
        PyErr_Format(PyExc_TypeError, "max_pages must be an int, not %.100s", Py_TYPE(pmax)->tp_name);
        return NULL;
    }
    max_pages = PyLong_AsUnsignedLongLong(pmax);
    if (max_pages == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "max_pages must be an int >= 0 below 2**64");
        return NULL;
    }
    MemoryBudgetObject *self = (MemoryBudgetObject *)type->tp_alloc(type, 0);
    if (self != NULL) self->budget.max_pages = max_pages;
    return (PyObject *)self;
}

static PyObject *MemoryBudget_get_max_pages(MemoryBudgetObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->budget.max_pages);
}

static PyObject *MemoryBudget_get_used_pages(MemoryBudgetObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->budget.used_pages);
}

static PyObject *MemoryBudget_get_refused(MemoryBudgetObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->budget.refused);
}

static PyObject *MemoryBudget_repr(MemoryBudgetObject *self)
{
    return PyUnicode_FromFormat("<asyncwasm.MemoryBudget %llu of %llu pages in use, %llu refused>",
                                (unsigned long long)self->budget.used_pages,
                                (unsigned long long)self->budget.max_pages,
                                (unsigned long long)self->budget.refused);
}

static PyGetSetDef MemoryBudget_getset[] = {
    {"max_pages", (getter)MemoryBudget_get_max_pages, NULL, "pages the memories may hold together", NULL},
    {"used_pages", (getter)MemoryBudget_get_used_pages, NULL, "pages they hold now", NULL},
    {"refused", (getter)MemoryBudget_get_refused, NULL,
     "grows and new memories refused so far because the budget was spent", NULL},
    {NULL},
};

PyTypeObject MemoryBudget_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.MemoryBudget",
    .tp_repr = (reprfunc)MemoryBudget_repr,
    .tp_doc = "MemoryBudget(max_pages)\n\n"
              "Linear memory, in 64 KiB pages, that all the memories made with it may\n"
              "hold together: memory.grow past it returns -1 to the guest (as past a\n"
              "memory's own cap) and a memory that does not fit is a LinkError.\n"
              "Share one through Limits(memory_budget=...) between instances.",
    .tp_basicsize = sizeof(MemoryBudgetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = MemoryBudget_new,
    .tp_getset = MemoryBudget_getset,
};

/* ========================================================================== */
/* Table                                                                      */
/* ========================================================================== */

PyObject *pyengine_new_table(uint8_t elemtype, const wasm_limits *type, uint32_t limit)
{
    TableObject *self = (TableObject *)Table_Type.tp_alloc(&Table_Type, 0);
    if (self == NULL) return NULL;
    if (rt_table_init(&self->tab, elemtype, type, limit, NULL) < 0) {
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
    uint32_t limit = DEFAULT_MAX_TABLE_ELEMENTS;
    wasm_limits lim;
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
    if (limits_from_py(tabletype, UINT32_MAX, UINT64_MAX, &lim) < 0) return NULL;
    if (plimit != Py_None && u32_arg(plimit, "limit_elements", UINT32_MAX, &limit) < 0) return NULL;
    uint64_t slot = 0;
    if (rt_value_from_py(elem, init, false, &slot) < 0) return NULL;
    TableObject *self = (TableObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    if (rt_table_init(&self->tab, elem, &lim, limit, (void *)(uintptr_t)slot) < 0) {
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
    wasm_limits now = {self->tab.size, self->tab.declared_max, self->tab.has_max, self->tab.addr64};
    return tabletype_to_py(self->tab.elemtype, &now);
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
