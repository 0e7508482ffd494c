/* py_exceptions.c -- Tag, the exception objects behind exnref values, and
 * asyncwasm.WasmException, the face an exception shows Python.
 *
 * Part of asyncwasm._engine's Python face (pyengine.c has the module and the
 * helpers these files share; layouts and ownership in pyengine.h).
 *
 * Rules:
 * - An exception is an Exn object: its tag (kept alive) and its payload
 *   slots, whose references it owns. An exnref value is a pointer to one.
 * - Slots own nothing (engine.h "Runtime objects"), so a fiber holds every
 *   exception that enters its slots (thrown there or caught into them) in
 *   rt_fiber.exns. When that list has grown past exns_sweep_at, the ones
 *   no slot in use holds any more are let go: the slots are scanned for
 *   their addresses, conservatively (a number that happens to equal one
 *   only keeps it a little longer). A scan costs at most 8 slot reads per
 *   exception made or caught since the last, so a guest that throws in a
 *   loop runs in bounded memory.
 * - A WasmException keeps the Exn it stands for in its _exn attribute:
 *   raising it again (from a host function) throws that same exception.
 */
#include <string.h>

#include "pyengine.h"

/* ========================================================================== */
/* Tag                                                                        */
/* ========================================================================== */

static TagObject *tag_alloc(void)
{
    TagObject *self = (TagObject *)Tag_Type.tp_alloc(&Tag_Type, 0);
    if (self != NULL) {
        self->tag.type = &self->own_type;
        self->tag.owner = (PyObject *)self;
    }
    return self;
}

PyObject *pyengine_new_tag(const wasm_functype *t)
{
    TagObject *self = tag_alloc();
    if (self == NULL) return NULL;
    uint8_t *block = PyMem_Malloc((size_t)t->nparams + t->nresults + 1);
    if (block == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->own_type = *t;
    self->own_type.params = memcpy(block, t->params, t->nparams);
    self->own_type.results = block + t->nparams;
    return (PyObject *)self;
}

static PyObject *Tag_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    static char *kwlist[] = {"functype", NULL};
    PyObject *functype;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Tag", kwlist, &functype)) return NULL;
    if (require_type(functype, py_classes.FuncType, "Tag()") < 0) return NULL;
    TagObject *self = tag_alloc();
    if (self == NULL) return NULL;
    if (host_functype_from_py(functype, &self->own_type) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (self->own_type.nresults != 0) {
        PyErr_SetString(PyExc_ValueError, "a tag's function type has no results (its params are the payload)");
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void Tag_dealloc(TagObject *self)
{
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    Py_CLEAR(self->pytype);
    PyMem_Free(self->own_type.params);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyObject *tagtype_to_py(const wasm_functype *t)
{
    PyObject *ft = pyengine_functype_to_py(t);
    PyObject *tt = ft ? PyObject_CallFunctionObjArgs(py_classes.TagType, ft, NULL) : NULL;
    Py_XDECREF(ft);
    return tt;
}

static PyObject *Tag_get_type(TagObject *self, void *closure)
{
    (void)closure;
    if (self->pytype == NULL) self->pytype = tagtype_to_py(&self->own_type);
    return Py_XNewRef(self->pytype);
}

static PyObject *Tag_repr(TagObject *self)
{
    PyObject *type = Tag_get_type(self, NULL);
    if (type == NULL) return NULL;
    PyObject *repr = PyUnicode_FromFormat("<asyncwasm.Tag %S at %p>", type, (void *)self);
    Py_DECREF(type);
    return repr;
}

static PyGetSetDef Tag_getset[] = {
    {"type", (getter)Tag_get_type, NULL, "the TagType", NULL},
    {NULL},
};

PyTypeObject Tag_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm.Tag",
    .tp_repr = (reprfunc)Tag_repr,
    .tp_doc = "Tag(functype)\n\n"
              "An exception tag: exceptions are caught by tag identity, and the tag's\n"
              "function type (params only) gives their payload. Define one to import:\n"
              "    tag = Tag(FuncType([I32], [])); linker.define('env', 'error', tag)\n"
              "    raise WasmException(tag, [42])      # from a host function: throws into the guest",
    .tp_basicsize = sizeof(TagObject),
    .tp_weaklistoffset = offsetof(TagObject, weakrefs),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Tag_new,
    .tp_dealloc = (destructor)Tag_dealloc,
    .tp_getset = Tag_getset,
};

/* ========================================================================== */
/* Exn: one exception                                                         */
/* ========================================================================== */

typedef struct {
    PyObject_VAR_HEAD
    rt_exn exn;          /* exn.payload = slots */
    PyObject *tag_owner; /* the Tag (strong) */
    uint64_t slots[];    /* the payload: ob_size slots */
} ExnObject;

/* Visit (or count) the objects behind the payload's references. */
#define FOR_EACH_PAYLOAD_REF(SELF, OBJ, BODY)                                          \
    do {                                                                               \
        const wasm_functype *t_ = (SELF)->exn.tag->type;                               \
        const uint64_t *slot_ = (SELF)->slots;                                         \
        for (uint32_t i_ = 0; i_ < t_->nparams; slot_ += valtype_slots(t_->params[i_]), i_++) { \
            if (!valtype_is_ref(t_->params[i_]) || *slot_ == 0) continue;              \
            PyObject *OBJ = rt_ref_owner(t_->params[i_], (void *)(uintptr_t)*slot_);   \
            BODY;                                                                      \
        }                                                                              \
    } while (0)

/* A new exception of `tag`, the payload copied from `payload` (refs taken). */
static ExnObject *exn_make(const rt_tag *tag, const uint64_t *payload)
{
    uint32_t n = tag->type->param_slots;
    ExnObject *self = (ExnObject *)Exn_Type.tp_alloc(&Exn_Type, n);
    if (self == NULL) return NULL;
    self->exn.tag = tag;
    self->exn.payload = self->slots;
    self->tag_owner = Py_NewRef(tag->owner);
    if (n) memcpy(self->slots, payload, sizeof *payload * n);
    FOR_EACH_PAYLOAD_REF(self, obj, Py_INCREF(obj));
    return self;
}

static int Exn_traverse(ExnObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->tag_owner);
    if (self->tag_owner != NULL) FOR_EACH_PAYLOAD_REF(self, obj, Py_VISIT(obj));
    return 0;
}

static int Exn_clear(ExnObject *self)
{
    if (self->tag_owner != NULL) {
        FOR_EACH_PAYLOAD_REF(self, obj, Py_DECREF(obj));
        memset(self->slots, 0, sizeof *self->slots * (size_t)Py_SIZE(self));
    }
    Py_CLEAR(self->tag_owner);
    return 0;
}

static void Exn_dealloc(ExnObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, Exn_dealloc)
    Exn_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

PyTypeObject Exn_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm._engine.Exn",
    .tp_doc = "A Wasm exception (an exnref's target); Python sees it as a WasmException.",
    .tp_basicsize = sizeof(ExnObject),
    .tp_itemsize = sizeof(uint64_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_dealloc = (destructor)Exn_dealloc,
    .tp_traverse = (traverseproc)Exn_traverse,
    .tp_clear = (inquiry)Exn_clear,
};

const rt_exn *rt_exn_get(const void *exn)
{
    return &((const ExnObject *)exn)->exn;
}

/* ========================================================================== */
/* The exceptions a fiber holds                                               */
/* ========================================================================== */

#define EXNS_MIN_SWEEP 64u

/* Slots [0, extent) are all a fiber's frames can read: each frame lies
 * below its callee's, the top one ends at its fp + max_slots. */
static size_t slots_in_use(const fiber *f)
{
    if (fiber_depth(f) == 0) return 0;
    const rt_frame *top = fiber_top(f);
    const wasm_functype *t = top->func->type;
    size_t frame = top->func->code ? top->func->code->max_slots
                                   : (t->param_slots > t->result_slots ? t->param_slots : t->result_slots);
    size_t extent = (size_t)(top->fp - f->stack) + frame;
    return extent < f->stack_cap ? extent : f->stack_cap;
}

/* Lets go of the exceptions no slot in use holds (and of duplicate
 * entries). The references are dropped last, once the list is consistent:
 * that may run Python code. */
static void exns_sweep(rt_fiber *rf)
{
    uint32_t n = rf->nexns, cap = 16;
    while (cap < 2 * (uint64_t)n) cap *= 2;
    PyObject **set = PyMem_Calloc(cap, sizeof *set); /* open addressing by address */
    PyObject **dead = PyMem_Malloc(sizeof *dead * (n ? n : 1));
    uint8_t *live = PyMem_Calloc(cap, 1);
    if (set == NULL || dead == NULL || live == NULL) { /* keep everything; try again later */
        PyMem_Free(set), PyMem_Free(dead), PyMem_Free(live);
        rf->exns_sweep_at = rf->nexns * 2;
        return;
    }
    uint32_t ndead = 0;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *obj = rf->exns[i];
        size_t h = ((uintptr_t)obj >> 4) & (cap - 1);
        while (set[h] != NULL && set[h] != obj) h = (h + 1) & (cap - 1);
        if (set[h] == obj) dead[ndead++] = obj; /* a duplicate entry: its twin stays */
        else set[h] = obj;
    }
    const uint64_t *stack = rf->f.stack;
    size_t extent = slots_in_use(&rf->f);
    for (size_t i = 0; i < extent; i++) {
        uintptr_t v = (uintptr_t)stack[i];
        if (v == 0) continue;
        size_t h = (v >> 4) & (cap - 1);
        while (set[h] != NULL && (uintptr_t)set[h] != v) h = (h + 1) & (cap - 1);
        if (set[h] != NULL) live[h] = 1;
    }
    uint32_t kept = 0;
    for (size_t h = 0; h < cap; h++) {
        if (set[h] == NULL) continue;
        if (live[h]) rf->exns[kept++] = set[h];
        else dead[ndead++] = set[h];
    }
    rf->nexns = kept;
    uint32_t at = 2 * kept;
    if (at < extent / 8) at = (uint32_t)(extent / 8 < UINT32_MAX / 2 ? extent / 8 : UINT32_MAX / 2);
    rf->exns_sweep_at = at > EXNS_MIN_SWEEP ? at : EXNS_MIN_SWEEP;
    PyMem_Free(set);
    PyMem_Free(live);
    for (uint32_t i = 0; i < ndead; i++) Py_DECREF(dead[i]);
    PyMem_Free(dead);
}

/* The fiber holds `obj` (a new reference), sweeping first when due. */
static int exns_hold(rt_fiber *rf, PyObject *obj)
{
    if (rf->exns_sweep_at < EXNS_MIN_SWEEP) rf->exns_sweep_at = EXNS_MIN_SWEEP;
    if (rf->nexns >= rf->exns_sweep_at) exns_sweep(rf);
    if (rf->nexns == rf->exns_cap) {
        uint32_t cap = rf->exns_cap ? rf->exns_cap * 2 : EXNS_MIN_SWEEP;
        PyObject **exns = PyMem_Realloc(rf->exns, sizeof *exns * cap);
        if (exns == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        rf->exns = exns;
        rf->exns_cap = cap;
    }
    rf->exns[rf->nexns++] = Py_NewRef(obj);
    return 0;
}

void rt_fiber_clear_exns(rt_fiber *rf)
{
    PyObject **exns = rf->exns;
    uint32_t n = rf->nexns;
    rf->exns = NULL;
    rf->nexns = rf->exns_cap = rf->exns_sweep_at = 0;
    for (uint32_t i = 0; i < n; i++) Py_DECREF(exns[i]);
    PyMem_Free(exns);
}

int rt_fiber_visit_exns(rt_fiber *rf, visitproc visit, void *arg)
{
    for (uint32_t i = 0; i < rf->nexns; i++) Py_VISIT(rf->exns[i]);
    return 0;
}

void *rt_exn_new(fiber *f, const rt_tag *tag, const uint64_t *payload)
{
    ExnObject *exn = exn_make(tag, payload);
    if (exn == NULL) return NULL;
    int rc = exns_hold(rt_fiber_of(f), (PyObject *)exn);
    Py_DECREF(exn); /* the fiber's reference keeps it */
    return rc == 0 ? (void *)exn : NULL;
}

int rt_exn_catch(fiber *f, void *exn, uint64_t *payload, uint64_t *ref)
{
    rt_fiber *rf = rt_fiber_of(f);
    const ExnObject *self = exn;
    if (payload != NULL) {
        /* The payload's references: the exception may go before the slots do. */
        FOR_EACH_PAYLOAD_REF(self, obj, if (Py_IS_TYPE(obj, &Exn_Type) ? exns_hold(rf, obj) : rt_fiber_keep(rf, obj)) return -1);
        memcpy(payload, self->slots, sizeof *payload * (size_t)Py_SIZE(self));
    }
    if (ref != NULL) {
        *ref = (uint64_t)(uintptr_t)exn; /* written first: a sweep now sees it */
        if (exns_hold(rf, exn) < 0) return -1;
    }
    return 0;
}

/* ========================================================================== */
/* WasmException                                                              */
/* ========================================================================== */

PyObject *rt_exn_to_py(void *exn)
{
    const ExnObject *self = exn;
    const wasm_functype *t = self->exn.tag->type;
    PyObject *values = rt_values_to_py(t->params, t->nparams, self->slots, false, true);
    PyObject *exc = values ? PyObject_CallFunctionObjArgs(py_classes.WasmException, self->tag_owner, values, NULL)
                           : NULL;
    Py_XDECREF(values);
    if (exc != NULL && PyObject_SetAttrString(exc, "_exn", (PyObject *)exn) < 0) Py_CLEAR(exc);
    return exc;
}

void *rt_exn_from_py(PyObject *exc)
{
    PyObject *known = PyObject_GetAttrString(exc, "_exn");
    if (known == NULL) return NULL;
    if (Py_IS_TYPE(known, &Exn_Type)) {
        Py_DECREF(known); /* the exception object keeps it */
        return known;
    }
    Py_DECREF(known);
    PyObject *tag = PyObject_GetAttrString(exc, "tag");
    PyObject *values = tag ? PyObject_GetAttrString(exc, "values") : NULL;
    PyObject *seq = values ? PySequence_Fast(values, "WasmException.values must be a sequence") : NULL;
    ExnObject *made = NULL;
    if (seq == NULL) goto done;
    if (!Py_IS_TYPE(tag, &Tag_Type)) {
        PyErr_Format(PyExc_TypeError, "WasmException.tag must be an asyncwasm.Tag, not %.100s",
                     Py_TYPE(tag)->tp_name);
        goto done;
    }
    const rt_tag *t = &((TagObject *)tag)->tag;
    uint64_t small[16], *payload = small;
    if (t->type->param_slots > 16 && (payload = PyMem_Malloc(sizeof *payload * t->type->param_slots)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (PySequence_Fast_GET_SIZE(seq) != (Py_ssize_t)t->type->nparams) {
        PyErr_Format(PyExc_TypeError, "the tag takes %u values, the WasmException has %zd", t->type->nparams,
                     PySequence_Fast_GET_SIZE(seq));
    } else {
        uint64_t *slot = payload;
        uint32_t i = 0;
        for (; i < t->type->nparams; slot += valtype_slots(t->type->params[i]), i++)
            if (rt_value_from_py(t->type->params[i], PySequence_Fast_GET_ITEM(seq, i), false, slot) < 0) break;
        if (i == t->type->nparams) made = exn_make(t, payload);
    }
    if (payload != small) PyMem_Free(payload);
    if (made != NULL && PyObject_SetAttrString(exc, "_exn", (PyObject *)made) < 0) Py_CLEAR(made);
    Py_XDECREF(made); /* the exception object keeps it */
done:
    Py_XDECREF(tag);
    Py_XDECREF(values);
    Py_XDECREF(seq);
    return made;
}
