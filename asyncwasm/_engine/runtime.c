/* runtime.c -- the engine's run-time objects and the boundary with Python:
 * linear memories (reserve once, commit on grow: DESIGN.md contract 6),
 * tables, references that own their objects, value conversions between
 * slots and Python objects, host calls (contract 2) and instantiation.
 *
 * Everything here runs with the GIL held. Guest-reachable entry points
 * (rt_memory_grow, rt_table_grow, rt_ref_store, rt_call_host) never crash
 * the host: growth failures are -1, Python errors become RUN_ERROR.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pyengine.h"

_Thread_local rt_fiber *rt_running;

/* ========================================================================== */
/* Linear memory                                                              */
/* ========================================================================== */
/* The whole reservation is mapped PROT_NONE with MAP_NORESERVE, so it costs
 * address space only; grow makes pages accessible with mprotect. The base
 * never moves, so memoryviews and the interpreter's cached base stay valid. */

uint64_t rt_memory_cap(const wasm_limits *type, uint64_t limit_pages)
{
    uint64_t cap = type->has_max ? type->max : type->addr64 ? WASM_MAX_PAGES64 : WASM_MAX_PAGES;
    if (!type->addr64 && cap > WASM_MAX_PAGES) cap = WASM_MAX_PAGES;
    if (cap > limit_pages) cap = limit_pages;
    /* Keep at most half the address space (a 4 GiB reservation cannot
     * exist on a 32-bit host). */
    if (cap > (uint64_t)(SIZE_MAX / 2) / WASM_PAGE_SIZE) cap = (uint64_t)(SIZE_MAX / 2) / WASM_PAGE_SIZE;
    return cap;
}

/* ---- reservations kept for reuse ------------------------------------------------
 * Short-lived instances (an instance per HTTP request) would otherwise map,
 * protect and unmap a reservation each time, and the kernel also builds new
 * page tables for every fresh mapping: most of an instantiation's cost. A
 * freed memory's reservation is kept instead (a few, LIFO) with its contents
 * cleared at once (pool_clear: the pages in use zeroed in place, the others
 * discarded with MADV_DONTNEED: private anonymous pages read as zeros
 * afterwards, swapped-out ones included), and the next memory of the same
 * reservation size takes it over, adjusting the accessible part. */

#define MEMORY_POOL_SIZE 16

typedef struct {
    uint8_t *base;
    size_t reserved;
    uint64_t pages; /* accessible pages (PROT_READ | PROT_WRITE), all zero */
} pooled_reservation;

static pooled_reservation memory_pool[MEMORY_POOL_SIZE];
static int memory_pool_len;

static size_t pages_bytes(uint64_t pages)
{
    return (size_t)pages * WASM_PAGE_SIZE;
}

/* A pooled reservation of `reserve` bytes with `pages` accessible, or NULL. */
static uint8_t *pool_take_reservation(size_t reserve, uint64_t pages)
{
    for (int i = memory_pool_len - 1; i >= 0; i--) {
        pooled_reservation r = memory_pool[i];
        if (r.reserved != reserve) continue;
        memory_pool[i] = memory_pool[--memory_pool_len];
        int rc = 0;
        if (r.pages > pages)
            rc = mprotect(r.base + pages_bytes(pages), pages_bytes(r.pages - pages), PROT_NONE);
        else if (r.pages < pages)
            rc = mprotect(r.base + pages_bytes(r.pages), pages_bytes(pages - r.pages), PROT_READ | PROT_WRITE);
        if (rc != 0) {
            munmap(r.base, r.reserved);
            return NULL;
        }
        return r.base;
    }
    return NULL;
}

/* Clearing a kept reservation in place: a short run dirties a few host
 * pages (a handler's stack top, its data), and discarding them means the
 * next run faults each one in again, zero-filled by the kernel. Instead a
 * reservation's "hot" pages are zeroed here and stay mapped, and only the
 * runs between them are discarded: every accessible page is either zeroed
 * or discarded, whatever the hot set holds (a hot page swapped out comes
 * back in to be zeroed), so the set only decides the speed. It is learnt
 * with mincore() (the pages resident at release, if at most HOT_PAGES),
 * which scans every page table entry of the memory (about 4 us for 16 MiB),
 * so once per HOT_RELEARN releases of that reservation. */
#define HOT_PAGES 32
#define HOT_RELEARN 64
#define HOT_SETS (2 * MEMORY_POOL_SIZE)
#define SCAN_PAGES 8192 /* host pages mincore() scans at most (32 MiB of 4 KiB pages) */

typedef struct {
    uint8_t *base;
    uint32_t uses;  /* releases since the set was learnt */
    uint32_t count; /* hot pages, ascending */
    uint32_t page[HOT_PAGES];
} hot_set;

static hot_set hot_sets[HOT_SETS];
static int hot_sets_next;

static bool discard(uint8_t *from, uint8_t *to)
{
    return to <= from || madvise(from, (size_t)(to - from), MADV_DONTNEED) == 0;
}

/* The pages of `base` resident now, into `set` (count 0 when too many). */
static void hot_learn(hot_set *set, uint8_t *base, size_t count, size_t host_page)
{
    unsigned char resident[SCAN_PAGES];
    set->count = 0;
    set->uses = 0;
    if (count > SCAN_PAGES || mincore(base, count * host_page, resident) != 0) return;
    for (size_t i = 0; i < count; i++) {
        if (!(resident[i] & 1)) continue;
        if (set->count == HOT_PAGES) {
            set->count = 0;
            return;
        }
        set->page[set->count++] = (uint32_t)i;
    }
}

static bool pool_clear(uint8_t *base, uint64_t pages)
{
    static size_t host_page;
    if (host_page == 0) host_page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = pages_bytes(pages);
    hot_set *set = NULL;
    for (int i = 0; i < HOT_SETS && set == NULL; i++)
        if (hot_sets[i].base == base) set = &hot_sets[i];
    if (set == NULL) {
        set = &hot_sets[hot_sets_next];
        hot_sets_next = (hot_sets_next + 1) % HOT_SETS;
        set->base = base;
        set->uses = HOT_RELEARN;
    }
    if (set->uses++ >= HOT_RELEARN) hot_learn(set, base, len / host_page, host_page);
    uint8_t *gone_from = base; /* start of the current run of pages to discard */
    for (uint32_t i = 0; i < set->count; i++) {
        uint8_t *page = base + (size_t)set->page[i] * host_page;
        if (page >= base + len) break;
        if (!discard(gone_from, page)) return false;
        memset(page, 0, host_page);
        gone_from = page + host_page;
    }
    return discard(gone_from, base + len);
}

/* Keep a reservation for reuse, its contents cleared; false when it cannot be. */
static bool pool_give_reservation(uint8_t *base, size_t reserved, uint64_t pages)
{
    if (memory_pool_len >= MEMORY_POOL_SIZE) return false;
    if (pages > 0 && !pool_clear(base, pages)) return false;
    memory_pool[memory_pool_len++] = (pooled_reservation){base, reserved, pages};
    return true;
}

int rt_memory_pool_release(void)
{
    int released = memory_pool_len;
    while (memory_pool_len > 0) {
        pooled_reservation r = memory_pool[--memory_pool_len];
        munmap(r.base, r.reserved);
    }
    return released;
}

int rt_memory_init(rt_memory *m, const wasm_limits *type, uint64_t limit_pages)
{
    uint64_t cap = rt_memory_cap(type, limit_pages);
    memset(m, 0, sizeof *m);
    m->has_max = type->has_max;
    m->declared_max = type->max;
    m->addr64 = type->addr64;
    if (type->min > cap) {
        PyErr_Format(PyExc_ValueError, "memory minimum of %llu pages exceeds its limit of %llu pages",
                     (unsigned long long)type->min, (unsigned long long)cap);
        return -1;
    }
    /* At least one page of address space, so base is never NULL (pointer
     * arithmetic on NULL is undefined even for an empty memory). */
    size_t reserve = (size_t)(cap ? cap : 1) * WASM_PAGE_SIZE;
    m->max_pages = cap;
    m->reserved = reserve;
    uint8_t *reused = pool_take_reservation(reserve, type->min);
    if (reused != NULL) {
        m->base = reused;
        m->pages = type->min;
        m->size = pages_bytes(type->min);
        return 0;
    }
    void *base = mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        PyErr_Format(PyExc_MemoryError, "cannot reserve %zu bytes of address space for a memory",
                     reserve);
        return -1;
    }
    m->base = base;
    if (type->min > 0 && rt_memory_grow(m, type->min) < 0) {
        rt_memory_free(m);
        PyErr_Format(PyExc_MemoryError, "cannot commit %llu pages of memory", (unsigned long long)type->min);
        return -1;
    }
    return 0;
}

void rt_memory_free(rt_memory *m)
{
    if (m->budget != NULL) m->budget->used_pages -= m->pages;
    m->budget = NULL;
    if (m->base != NULL && !pool_give_reservation(m->base, m->reserved, m->pages))
        munmap(m->base, m->reserved);
    m->base = NULL;
    m->reserved = 0;
    m->size = 0;
    m->pages = 0;
    m->max_pages = 0;
}

int64_t rt_memory_grow(rt_memory *m, uint64_t delta_pages)
{
    uint64_t old = m->pages;
    rt_memory_budget *budget = m->budget;
    if (delta_pages == 0) return (int64_t)old;
    /* max_pages - old cannot wrap (pages <= max_pages), nor max - used for the
     * budget (used <= max); delta may be any u64. */
    if (delta_pages > m->max_pages - old || m->base == NULL) goto refused;
    if (budget != NULL && delta_pages > budget->max_pages - budget->used_pages) {
        budget->refused++;
        goto refused;
    }
    size_t from = (size_t)old * WASM_PAGE_SIZE;
    size_t len = (size_t)delta_pages * WASM_PAGE_SIZE;
    if (mprotect(m->base + from, len, PROT_READ | PROT_WRITE) != 0) goto refused;
    m->pages = old + delta_pages;
    m->size = m->pages * WASM_PAGE_SIZE;
    if (budget != NULL) budget->used_pages += delta_pages;
    return (int64_t)old;
refused:
    m->refused++;
    return -1;
}

int rt_memory_join_budget(rt_memory *m, rt_memory_budget *b)
{
    if (m->pages > b->max_pages - b->used_pages) {
        b->refused++;
        return -1;
    }
    b->used_pages += m->pages;
    m->budget = b;
    return 0;
}

/* ========================================================================== */
/* References                                                                 */
/* ========================================================================== */
/* A table element or global owns a reference to the object behind the value
 * it holds; operand-stack slots own nothing. So overwriting an element could
 * free an object whose pointer the running guest still has on its stack
 * (table.get 0; table.set 0 null; ... use it). While a fiber runs, a last
 * reference dropped this way moves to the fiber's keepalive list instead:
 * the object lives until the fiber ends. Only last references move there,
 * so the list grows at most by one entry per object freed. */

int rt_fiber_keep(rt_fiber *rf, PyObject *obj)
{
    if (rf->keepalive == NULL) {
        rf->keepalive = PyList_New(0);
        if (rf->keepalive == NULL) return -1;
    }
    return PyList_Append(rf->keepalive, obj);
}

static void ref_release(PyObject *obj)
{
    rt_fiber *rf = rt_running;
    if (rf != NULL && Py_REFCNT(obj) == 1) {
        PyObject *pending = rt_err_take(); /* normally none on the guest path */
        int kept = rt_fiber_keep(rf, obj);
        rt_err_raise(pending);
        /* On failure, leaking the object is the safe choice. */
        if (kept == 0) Py_DECREF(obj);
        return;
    }
    Py_DECREF(obj);
}

void rt_ref_store(void **dst, uint8_t type, void *ref)
{
    void *old = *dst;
    if (old == ref) return;
    if (ref != NULL) Py_INCREF(rt_ref_owner(type, ref));
    *dst = ref;
    /* Released after the store: a finalizer that runs now sees the new value. */
    if (old != NULL) ref_release(rt_ref_owner(type, old));
}

void rt_ref_store_now(void **dst, uint8_t type, void *ref)
{
    void *old = *dst;
    if (old == ref) return;
    if (ref != NULL) Py_INCREF(rt_ref_owner(type, ref));
    *dst = ref;
    if (old != NULL) Py_DECREF(rt_ref_owner(type, old));
}

/* ========================================================================== */
/* Tables                                                                     */
/* ========================================================================== */

/* Make room for `size` elements; capacity doubles, never past t->max. */
static int table_reserve(rt_table *t, uint32_t size)
{
    if (size <= t->capacity) return 0;
    uint64_t cap = (uint64_t)t->capacity * 2;
    if (cap < size) cap = size;
    if (cap > t->max) cap = t->max;
    if (cap > SIZE_MAX / sizeof(void *)) return -1;
    void **elems = PyMem_Realloc(t->elems, (size_t)cap * sizeof(void *));
    if (elems == NULL) return -1;
    t->elems = elems;
    t->capacity = (uint32_t)cap;
    return 0;
}

int rt_table_init(rt_table *t, uint8_t elemtype, const wasm_limits *type, uint32_t limit, void *init)
{
    memset(t, 0, sizeof *t);
    t->elemtype = elemtype;
    t->addr64 = type->addr64;
    t->has_max = type->has_max;
    t->declared_max = type->max;
    t->max = type->has_max && type->max < limit ? (uint32_t)type->max : limit;
    if (type->min > t->max) {
        PyErr_Format(PyExc_ValueError, "table minimum of %llu elements exceeds its limit of %u",
                     (unsigned long long)type->min, t->max);
        return -1;
    }
    uint32_t min = (uint32_t)type->min;
    if (rt_table_grow(t, min, init) < 0) {
        PyErr_Format(PyExc_MemoryError, "cannot allocate a table of %u elements", min);
        return -1;
    }
    return 0;
}

int64_t rt_table_grow(rt_table *t, uint32_t delta, void *init)
{
    uint32_t old = t->size;
    if ((uint64_t)old + delta > t->max) return -1;
    if (delta == 0) return old;
    if (table_reserve(t, old + delta) != 0) return -1;
    memset(&t->elems[old], 0, (size_t)delta * sizeof(void *));
    if (init != NULL) {
        for (uint32_t i = 0; i < delta; i++) rt_ref_store_now(&t->elems[old + i], t->elemtype, init);
    }
    t->size = old + delta;
    return old;
}

void rt_table_release(rt_table *t)
{
    for (uint32_t i = 0; i < t->size; i++) {
        if (t->elems[i] != NULL) rt_ref_store_now(&t->elems[i], t->elemtype, NULL);
    }
}

void rt_table_free(rt_table *t)
{
    if (t->elems != NULL) rt_table_release(t);
    PyMem_Free(t->elems);
    t->elems = NULL;
    t->size = 0;
    t->capacity = 0;
}

/* ========================================================================== */
/* Value conversions                                                          */
/* ========================================================================== */

static int type_error(uint8_t type, const char *expected, PyObject *v)
{
    PyErr_Format(PyExc_TypeError, "expected %s (%s), got %.100s", valtype_name(type), expected,
                 Py_TYPE(v)->tp_name);
    return -1;
}

/* An int in the signed or unsigned range of `bits` (32 or 64), as its bit
 * pattern. bool is an int subclass and accepted. */
static int int_from_py(uint8_t type, PyObject *v, unsigned bits, uint64_t *out)
{
    if (!PyLong_Check(v)) return type_error(type, "int", v);
    int overflow;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (s == -1 && PyErr_Occurred()) return -1;
    if (overflow == 0) {
        if (bits == 32 && (s < INT32_MIN || s > (long long)UINT32_MAX)) goto range;
        *out = bits == 32 ? (uint64_t)(uint32_t)s : (uint64_t)s;
        return 0;
    }
    if (overflow > 0 && bits == 64) {
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            goto range;
        }
        *out = u;
        return 0;
    }
range:
    PyErr_Format(PyExc_OverflowError, "integer out of range for %s (accepted: -2**%u .. 2**%u-1)",
                 valtype_name(type), bits - 1, bits);
    return -1;
}

static int double_from_py(uint8_t type, PyObject *v, double *out)
{
    if (PyFloat_Check(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 0;
    }
    if (PyLong_Check(v)) {
        *out = PyLong_AsDouble(v);
        return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
    }
    return type_error(type, "float", v);
}

/* v128 as an int in -2**127 .. 2**128-1, two's complement, low half first. */
static int v128_from_py(PyObject *v, uint64_t *slots)
{
    if (!PyLong_Check(v)) return type_error(VT_V128, "int", v);
    int overflow;
    long long small = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (small == -1 && PyErr_Occurred()) return -1;
    bool negative = overflow < 0 || (overflow == 0 && small < 0);
    PyObject *nbits = PyObject_CallMethod(v, "bit_length", NULL);
    if (nbits == NULL) return -1;
    long n = PyLong_AsLong(nbits);
    Py_DECREF(nbits);
    if (n < 0) return -1;
    if (n > (negative ? 127 : 128)) {
        PyErr_SetString(PyExc_OverflowError, "integer out of range for v128 (accepted: -2**127 .. 2**128-1)");
        return -1;
    }
    PyObject *shift = PyLong_FromLong(64);
    PyObject *high = shift ? PyNumber_Rshift(v, shift) : NULL;
    Py_XDECREF(shift);
    if (high == NULL) return -1;
    slots[0] = PyLong_AsUnsignedLongLongMask(v);
    slots[1] = PyLong_AsUnsignedLongLongMask(high);
    Py_DECREF(high);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *v128_to_py(const uint64_t *slots)
{
    PyObject *high = PyLong_FromUnsignedLongLong(slots[1]);
    PyObject *low = PyLong_FromUnsignedLongLong(slots[0]);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *shifted = high && shift ? PyNumber_Lshift(high, shift) : NULL;
    PyObject *result = shifted && low ? PyNumber_Or(shifted, low) : NULL;
    Py_XDECREF(high);
    Py_XDECREF(low);
    Py_XDECREF(shift);
    Py_XDECREF(shifted);
    return result;
}

int rt_value_from_py(uint8_t type, PyObject *v, bool raw, uint64_t *slots)
{
    double d;
    switch (type) {
    case VT_I32:
        return int_from_py(type, v, 32, slots);
    case VT_I64:
        return int_from_py(type, v, 64, slots);
    case VT_F32:
        if (raw) return int_from_py(type, v, 32, slots);
        if (double_from_py(type, v, &d) < 0) return -1;
        {
            float f = (float)d; /* IEEE 754 (C Annex F): out of range rounds to inf */
            uint32_t bits;
            memcpy(&bits, &f, sizeof bits);
            *slots = bits;
        }
        return 0;
    case VT_F64:
        if (raw) return int_from_py(type, v, 64, slots);
        if (double_from_py(type, v, &d) < 0) return -1;
        memcpy(slots, &d, sizeof d);
        return 0;
    case VT_V128:
        return v128_from_py(v, slots);
    case VT_FUNCREF:
        if (v == Py_None) {
            *slots = 0;
            return 0;
        }
        if (!Py_IS_TYPE(v, &Func_Type)) return type_error(type, "Func or None", v);
        *slots = (uint64_t)(uintptr_t)((FuncObject *)v)->fn;
        return 0;
    case VT_EXTERNREF:
        *slots = v == Py_None ? 0 : (uint64_t)(uintptr_t)v;
        return 0;
    case VT_EXNREF: case VT_REF_EXN: {
        if (v == Py_None && type == VT_EXNREF) {
            *slots = 0;
            return 0;
        }
        int ok = PyObject_IsInstance(v, py_classes.WasmException);
        if (ok <= 0) return ok < 0 ? -1 : type_error(type, type == VT_EXNREF ? "WasmException or None" : "WasmException", v);
        void *exn = rt_exn_from_py(v);
        if (exn == NULL) return -1;
        *slots = (uint64_t)(uintptr_t)exn;
        return 0;
    }
    case VT_NULLEXNREF: /* its only value is null */
        if (v != Py_None) return type_error(type, "None", v);
        *slots = 0;
        return 0;
    case VT_REF_NOEXN:
        return type_error(type, "nothing (the type has no values)", v);
    default:
        PyErr_Format(PyExc_SystemError, "asyncwasm: unknown value type 0x%02x", type);
        return -1;
    }
}

PyObject *rt_value_to_py(uint8_t type, const uint64_t *slots, bool raw)
{
    switch (type) {
    case VT_I32:
        return raw ? PyLong_FromUnsignedLong((uint32_t)*slots)
                   : PyLong_FromLong((int32_t)(uint32_t)*slots);
    case VT_I64:
        return raw ? PyLong_FromUnsignedLongLong(*slots) : PyLong_FromLongLong((int64_t)*slots);
    case VT_F32:
        if (raw) return PyLong_FromUnsignedLong((uint32_t)*slots);
        {
            uint32_t bits = (uint32_t)*slots;
            float f;
            memcpy(&f, &bits, sizeof f);
            return PyFloat_FromDouble(f);
        }
    case VT_F64:
        if (raw) return PyLong_FromUnsignedLongLong(*slots);
        {
            double d;
            memcpy(&d, slots, sizeof d);
            return PyFloat_FromDouble(d);
        }
    case VT_V128:
        return v128_to_py(slots);
    case VT_FUNCREF:
        return pyengine_funcref_to_py((const rt_func *)(uintptr_t)*slots);
    case VT_EXTERNREF: {
        PyObject *obj = *slots ? (PyObject *)(uintptr_t)*slots : Py_None;
        Py_INCREF(obj);
        return obj;
    }
    case VT_EXNREF: case VT_REF_EXN:
        if (*slots == 0) Py_RETURN_NONE;
        return rt_exn_to_py((void *)(uintptr_t)*slots);
    case VT_NULLEXNREF: case VT_REF_NOEXN: /* no (ref noexn) value exists */
        Py_RETURN_NONE;
    default:
        PyErr_Format(PyExc_SystemError, "asyncwasm: unknown value type 0x%02x", type);
        return NULL;
    }
}

PyObject *rt_values_to_py(const uint8_t *types, uint32_t n, const uint64_t *slots, bool raw,
                          bool as_tuple)
{
    if (!as_tuple && n == 0) Py_RETURN_NONE;
    if (!as_tuple && n == 1) return rt_value_to_py(types[0], slots, raw);
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL) return NULL;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *v = rt_value_to_py(types[i], slots, raw);
        if (v == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, v);
        slots += valtype_slots(types[i]);
    }
    return tuple;
}

/* Put "<prefix>" in front of the message of the exception being raised,
 * keeping its type. Only used on error paths. */
static void error_prefix(const char *fmt, ...)
{
    PyObject *exc = rt_err_take();
    if (exc == NULL) return;
    va_list ap;
    va_start(ap, fmt);
    PyObject *prefix = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    PyObject *msg = prefix ? PyUnicode_FromFormat("%U%S", prefix, exc) : NULL;
    Py_XDECREF(prefix);
    if (msg == NULL) { /* formatting failed: keep the original error */
        rt_err_raise(exc);
        return;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), msg);
    Py_DECREF(msg);
    Py_DECREF(exc);
}

int rt_args_from_py(const wasm_functype *type, PyObject *const *args, Py_ssize_t n, bool raw,
                    uint64_t *slots)
{
    if (n != (Py_ssize_t)type->nparams) {
        PyErr_Format(PyExc_TypeError, "the function takes %u argument%s, got %zd", type->nparams,
                     type->nparams == 1 ? "" : "s", n);
        return -1;
    }
    for (uint32_t i = 0; i < type->nparams; i++) {
        if (rt_value_from_py(type->params[i], args[i], raw, slots) < 0) {
            error_prefix("argument %u: ", i + 1);
            return -1;
        }
        slots += valtype_slots(type->params[i]);
    }
    return 0;
}

/* ========================================================================== */
/* Host calls                                                                 */
/* ========================================================================== */

PyObject *rt_host_name(const rt_func *fn)
{
    PyObject *callable = fn->host;
    if (callable == NULL) return PyUnicode_FromString("<cleared host function>");
    PyObject *name = PyObject_GetAttrString(callable, "__qualname__");
    if (name != NULL && PyUnicode_Check(name)) return name;
    Py_XDECREF(name);
    PyErr_Clear();
    return PyObject_Repr(callable);
}

/* Raise TypeError("host function 'name' <message>") replacing any error set. */
static void host_result_error(const rt_func *fn, const char *fmt, ...)
{
    PyErr_Clear();
    PyObject *name = rt_host_name(fn);
    if (name == NULL) return;
    va_list ap;
    va_start(ap, fmt);
    PyObject *detail = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (detail != NULL)
        PyErr_Format(PyExc_TypeError, "host function %R %U", name, detail);
    Py_DECREF(name);
    Py_XDECREF(detail);
}

/* Keep the objects behind the reference values in `slots` alive. */
static int keep_refs(rt_fiber *rf, const wasm_functype *type, const uint64_t *slots)
{
    for (uint32_t i = 0; i < type->nresults; i++) {
        uint8_t t = type->results[i];
        if (valtype_is_ref(t) && *slots != 0) {
            PyObject *obj = t == VT_FUNCREF ? ((const rt_func *)(uintptr_t)*slots)->owner
                                            : (PyObject *)(uintptr_t)*slots;
            if (rt_fiber_keep(rf, obj) < 0) return -1;
        }
        slots += valtype_slots(t);
    }
    return 0;
}

/* Convert the items of a host result into `out` by `type`'s results. */
static int host_values_from_py(const rt_func *fn, PyObject *const *items, uint32_t n, uint64_t *out)
{
    const wasm_functype *type = fn->type;
    for (uint32_t i = 0; i < n; i++) {
        if (rt_value_from_py(type->results[i], items[i], false, out) < 0) {
            PyObject *exc = rt_err_take();
            host_result_error(fn, "returned a bad result %u: %S", i + 1, exc ? exc : Py_None);
            Py_XDECREF(exc);
            return -1;
        }
        out += valtype_slots(type->results[i]);
    }
    return 0;
}

int rt_host_result_store(rt_fiber *rf, const rt_func *fn, PyObject *result, size_t base)
{
    const wasm_functype *type = fn->type;
    uint32_t n = type->nresults;
    if (n == 0) {
        if (result == Py_None) return 0;
        host_result_error(fn, "must return None (its type has no results), not %.100s",
                          Py_TYPE(result)->tp_name);
        return -1;
    }
    uint64_t small[16], *values = small;
    if (type->result_slots > 16) {
        values = PyMem_Malloc(sizeof *values * type->result_slots);
        if (values == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    int rc = -1;
    PyObject *seq = NULL;
    if (n == 1) {
        rc = host_values_from_py(fn, &result, 1, values);
    } else if (PySequence_Check(result) && !PyUnicode_Check(result) && !PyBytes_Check(result)) {
        seq = PySequence_Fast(result, "host function results");
    } else {
        host_result_error(fn, "must return a sequence of %u values, not %.100s", n,
                          Py_TYPE(result)->tp_name);
    }
    if (seq != NULL) {
        if (PySequence_Fast_GET_SIZE(seq) != (Py_ssize_t)n)
            host_result_error(fn, "returned %zd values, expected %u", PySequence_Fast_GET_SIZE(seq), n);
        else
            rc = host_values_from_py(fn, PySequence_Fast_ITEMS(seq), n, values);
        Py_DECREF(seq);
    }
    if (rc == 0) rc = keep_refs(rf, type, values);
    /* f->stack is read only now: nothing above may have moved it, but no
     * pointer into it is held across Python code either. */
    if (rc == 0) memcpy(rf->f.stack + base, values, sizeof *values * type->result_slots);
    if (values != small) PyMem_Free(values);
    return rc;
}

static inline bool is_awaitable(PyObject *obj)
{
    PyAsyncMethods *am = Py_TYPE(obj)->tp_as_async;
    return am != NULL && am->am_await != NULL;
}

/* The host function raised: an asyncwasm.Trap traps the guest (the fiber
 * keeps the exception, traceback attached); an asyncwasm.WasmException is
 * thrown into the guest; anything else stays set. */
static int host_raised(fiber *f)
{
    if (PyErr_ExceptionMatches(py_classes.WasmException)) {
        PyObject *exc = rt_err_take();
        void *exn = rt_exn_from_py(exc);
        if (exn != NULL) Py_XSETREF(f->exn, Py_NewRef((PyObject *)exn));
        Py_DECREF(exc);
        return exn != NULL ? RUN_EXCEPTION : RUN_ERROR;
    }
    if (!PyErr_ExceptionMatches(py_classes.Trap)) return RUN_ERROR;
    Py_XSETREF(f->trap_exc, rt_err_take());
    f->trap_kind = TRAP_HOST;
    return RUN_TRAP;
}

/* What a host function returned (`result`, stolen): an awaitable suspends
 * the fiber, anything else is stored as the call's results. */
static inline __attribute__((always_inline)) int host_outcome(fiber *f, const rt_func *fn, size_t base,
                                                              PyObject *result, PyObject *caller)
{
    const wasm_functype *type = fn->type;
    if (is_awaitable(result)) {
        Py_XSETREF(f->awaitable, result);
        f->pending_type = type;
        f->pending_base = base;
        rt_fiber_of(f)->pending_fn = fn;
        if (caller != NULL) Py_XSETREF(rt_fiber_of(f)->caller, Py_NewRef(caller)); /* valid until resumed */
        return RUN_SUSPEND;
    }
    int rc = rt_host_result_store(rt_fiber_of(f), fn, result, base);
    Py_DECREF(result);
    return rc == 0 ? 0 : RUN_ERROR;
}

#define HOST_ARGS_ON_STACK 8

/* The call itself, in two copies (HOST_CALL below): `caller` is NULL, a
 * constant, on the path of plain host functions, which stays what it was
 * before Callers existed; else the Caller goes first, in args[1]. */
static inline __attribute__((always_inline)) int call_host(fiber *f, const rt_func *fn, size_t base,
                                                           PyObject *caller)
{
    const wasm_functype *type = fn->type;
    /* args[0] is scratch space for PY_VECTORCALL_ARGUMENTS_OFFSET; then the
     * Caller, when there is one, then the parameters. */
    const uint32_t first = caller != NULL ? 2 : 1;
    PyObject *small[HOST_ARGS_ON_STACK + 2], **args = small;
    uint32_t n = type->nparams;
    if (n > HOST_ARGS_ON_STACK) {
        args = PyMem_Malloc(sizeof *args * ((size_t)n + 2));
        if (args == NULL) {
            PyErr_NoMemory();
            return RUN_ERROR;
        }
    }
    args[0] = NULL;
    args[1] = caller; /* NULL, or overwritten by the first parameter */
    uint32_t made = 0;
    const uint64_t *slot = f->stack + base;
    for (; made < n; made++) {
        args[first + made] = rt_value_to_py(type->params[made], slot, false);
        if (args[first + made] == NULL) break;
        slot += valtype_slots(type->params[made]);
    }
    PyObject *result = NULL;
    if (made == n)
        result = PyObject_Vectorcall(fn->host, args + 1, (first - 1 + n) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    for (uint32_t i = 0; i < made; i++) Py_DECREF(args[first + i]);
    if (args != small) PyMem_Free(args);

    if (result == NULL) return made == n ? host_raised(f) : RUN_ERROR;
    return host_outcome(f, fn, base, result, caller);
}

/* host_calls and suspensions are counted by the interpreter (interp.c). A
 * function defined with access_caller gets a Caller first, valid until its
 * result is in: the call's return, or the resumption after its awaitable. */
int rt_call_host(fiber *f, const rt_func *fn, size_t base)
{
    if (fn->host == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "asyncwasm: the host function was destroyed");
        return RUN_ERROR;
    }
    if (Py_IS_TYPE(fn->host, &SockCall_Type)) { /* a WASI socket call with a C path (wasi_sock.c) */
        PyObject *later = NULL;
        switch (sockcall_run(fn->host, f->stack + base, &later)) {
        case SOCKCALL_DONE: return 0;
        case SOCKCALL_LATER: return host_outcome(f, fn, base, later, NULL);
        case SOCKCALL_ERROR: return RUN_ERROR;
        }
    }
    if (!((FuncObject *)fn->owner)->access_caller) return call_host(f, fn, base, NULL);
    PyObject *caller = rt_caller_new(f, fn);
    if (caller == NULL) return RUN_ERROR;
    int rc = call_host(f, fn, base, caller);
    if (rc != RUN_SUSPEND) rt_caller_end(caller);
    Py_DECREF(caller);
    return rc;
}

/* ========================================================================== */
/* Turns: calls into other instances                                          */
/* ========================================================================== */
/* Each instance runs one task at a time (DESIGN.md contract 5). The Python
 * side keeps whose turn it is (asyncwasm.execution _Gate): a call from Python
 * takes it there. A guest's call into a function of another instance
 * (imported through define_instance, or through a shared table) takes that
 * instance's turn here, with the gate's guest_enter(may_wait): True (taken:
 * give it back with guest_leave), False (nothing to give back: the same
 * task's turn nests, or no task is involved) or an awaitable that waits for
 * the turn. The synchronous fast path's fibers cannot wait and never
 * suspend, so while the instance is unguarded (no task holds it, no limits)
 * they enter without asking Python. Every entry is recorded, for the
 * callee's statistics (calls, and the fuel used until the call returns)
 * and so that a trap, an error or a dropped fiber gives the turns back. */

static PyObject *str_guest_enter, *str_guest_leave;

static int intern_turn_names(void)
{
    if (str_guest_enter == NULL) str_guest_enter = PyUnicode_InternFromString("guest_enter");
    if (str_guest_leave == NULL) str_guest_leave = PyUnicode_InternFromString("guest_leave");
    return str_guest_enter != NULL && str_guest_leave != NULL ? 0 : -1;
}

/* gate.guest_leave(held, why), keeping any exception being raised. */
static void gate_leave(InstanceObject *inst, bool held, const char *why)
{
    if (inst->gate == NULL || (!held && why == NULL)) return;
    PyObject *pending = rt_err_take();
    PyObject *reason = why ? PyUnicode_FromString(why) : Py_NewRef(Py_None);
    PyObject *r = reason && intern_turn_names() == 0
                      ? PyObject_CallMethodObjArgs(inst->gate, str_guest_leave, held ? Py_True : Py_False,
                                                   reason, NULL)
                      : NULL;
    if (r == NULL) PyErr_WriteUnraisable(inst->gate);
    Py_XDECREF(r);
    Py_XDECREF(reason);
    rt_err_raise(pending);
}

static int push_turn(rt_fiber *rf, InstanceObject *inst, bool held)
{
    if (rf->nturns == rf->turns_cap) {
        uint32_t cap = rf->turns_cap ? rf->turns_cap * 2 : 8;
        rt_turn *turns = PyMem_Realloc(rf->turns, sizeof *turns * cap);
        if (turns == NULL) {
            gate_leave(inst, held, NULL);
            PyErr_NoMemory();
            return RUN_ERROR;
        }
        rf->turns = turns;
        rf->turns_cap = cap;
    }
    rt_turn *t = &rf->turns[rf->nturns++];
    t->inst = (InstanceObject *)Py_NewRef((PyObject *)inst);
    t->depth = fiber_depth(&rf->f) - 1; /* the callee's frame is pushed */
    t->held = held;
    t->fuel_at_entry = rf->f.fuel_used;
    inst->fast_calls++;
    return 0;
}

/* Pop the innermost turn; `why`: the fiber stopped mid-run (interrupt). */
static void pop_turn(rt_fiber *rf, const char *why)
{
    rt_turn *t = &rf->turns[--rf->nturns];
    InstanceObject *inst = t->inst;
    inst->fast_fuel_used += rf->f.fuel_used - t->fuel_at_entry;
    gate_leave(inst, t->held, why);
    Py_DECREF(inst);
}

int rt_enter_instance(fiber *f, const rt_func *callee)
{
    rt_fiber *rf = rt_fiber_of(f);
    InstanceObject *inst = (InstanceObject *)callee->inst->owner;
    if (rf->turn_wait != NULL) { /* the call runs again after waiting for the turn */
        InstanceObject *waited = rf->turn_wait;
        bool granted = rf->turn_granted;
        rf->turn_wait = NULL;
        rf->turn_granted = false;
        if (waited == inst && granted) {
            int rc = push_turn(rf, inst, true);
            Py_DECREF(waited);
            return rc;
        }
        gate_leave(waited, granted, NULL); /* not the same callee (a table changed): ask again */
        Py_DECREF(waited);
    }
    if (inst->gate == NULL || (!inst->guarded && !rf->may_suspend)) return push_turn(rf, inst, false);
    if (intern_turn_names() < 0) return RUN_ERROR;
    PyObject *r = PyObject_CallMethodOneArg(inst->gate, str_guest_enter, rf->may_suspend ? Py_True : Py_False);
    if (r == NULL) return RUN_ERROR;
    if (r == Py_True || r == Py_False || r == Py_None) {
        bool held = r == Py_True;
        Py_DECREF(r);
        return push_turn(rf, inst, held);
    }
    if (!is_awaitable(r)) {
        PyErr_Format(PyExc_SystemError, "asyncwasm: guest_enter returned %.100s", Py_TYPE(r)->tp_name);
        Py_DECREF(r);
        return RUN_ERROR;
    }
    Py_XSETREF(f->awaitable, r);
    rf->pending_fn = NULL;
    rf->turn_wait = (InstanceObject *)Py_NewRef((PyObject *)inst);
    rf->turn_granted = false;
    return RUN_SUSPEND;
}

void rt_leave_instance(fiber *f)
{
    rt_fiber *rf = rt_fiber_of(f);
    while (rf->nturns > 0 && rf->turns[rf->nturns - 1].depth >= fiber_depth(f)) pop_turn(rf, NULL);
}

int rt_tail_enter_instance(fiber *f, const rt_func *callee)
{
    rt_fiber *rf = rt_fiber_of(f);
    uint32_t depth = fiber_depth(f) - 1; /* the frame's; push_turn records it */
    /* Back into the caller's instance: its turn is already the fiber's. */
    bool to_caller = depth > 0 && f->frames[depth - 1].func->inst == callee->inst;
    if (!to_caller) {
        int rc = rt_enter_instance(f, callee);
        if (rc != 0) return rc;
    }
    uint32_t own = rf->nturns - (to_caller ? 0 : 1); /* the frame's own turn is below the new one */
    if (own > 0 && rf->turns[own - 1].depth == depth) {
        rt_turn entered;
        if (!to_caller) entered = rf->turns[--rf->nturns];
        pop_turn(rf, NULL);
        if (!to_caller) rf->turns[rf->nturns++] = entered;
    }
    return 0;
}

void rt_fiber_end_turns(rt_fiber *rf)
{
    bool stopped = rf->f.state == RUN_SUSPEND || rf->f.state == RUN_OUT_OF_FUEL;
    const char *why = stopped ? "a call from another instance was stopped while running in it" : NULL;
    while (rf->nturns > 0) pop_turn(rf, why);
    if (rf->turn_wait != NULL) { /* waited, never entered: nothing of it ran */
        InstanceObject *waited = rf->turn_wait;
        rf->turn_wait = NULL;
        gate_leave(waited, rf->turn_granted, NULL);
        rf->turn_granted = false;
        Py_DECREF(waited);
    }
}

/* ========================================================================== */
/* Instantiation                                                              */
/* ========================================================================== */
/* https://webassembly.github.io/spec/core/exec/modules.html#instantiation
 * Order: imports, functions, tables, memories, globals (their initializers
 * see only earlier globals), then the element segments and the data segments
 * in module order, each applied as table.init/memory.init + drop. A segment
 * out of bounds traps; writes of earlier segments stay (2.0 semantics). */

/* Raise asyncwasm.LinkError; returns -1. */
static int link_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (msg != NULL) {
        PyErr_SetObject(py_classes.LinkError, msg);
        Py_DECREF(msg);
    }
    return -1;
}

static void raise_trap(int kind)
{
    PyObject *exc = PyObject_CallFunction(py_classes.Trap, "s", trap_message(kind));
    if (exc != NULL) {
        PyErr_SetObject(py_classes.Trap, exc);
        Py_DECREF(exc);
    }
}

/* ---- constant expressions ---------------------------------------------------- */

/* One value-producing instruction of a constant expression. */
static int eval_const_value(const InstanceObject *self, uint32_t nglobals_ready, const wasm_const_expr *e,
                            uint64_t out[2])
{
    const rt_instance *rt = &self->rt;
    out[0] = e->bits[0];
    out[1] = e->bits[1];
    switch (e->kind) {
    case CONST_I32:
    case CONST_I64:
    case CONST_F32:
    case CONST_F64:
    case CONST_V128:
        return 0;
    case CONST_REF_NULL:
        out[0] = 0;
        return 0;
    case CONST_REF_FUNC:
        if (e->index >= rt->module->nfuncs) break;
        out[0] = (uint64_t)(uintptr_t)rt->funcs[e->index];
        return 0;
    case CONST_GLOBAL_GET:
        if (e->index >= nglobals_ready) break;
        out[0] = rt->globals[e->index]->value[0];
        out[1] = rt->globals[e->index]->value[1];
        return 0;
    }
    return link_error("invalid constant expression (kind %u, index %u)", e->kind, e->index);
}

/* Extended constants: the two values before, combined (wrapping). */
static uint64_t eval_const_binop(uint8_t kind, uint64_t a, uint64_t b)
{
    switch (kind) {
    case CONST_I32_ADD: return (uint32_t)(a + b);
    case CONST_I32_SUB: return (uint32_t)(a - b);
    case CONST_I32_MUL: return (uint32_t)((uint32_t)a * (uint32_t)b);
    case CONST_I64_ADD: return a + b;
    case CONST_I64_SUB: return a - b;
    default: return a * b; /* CONST_I64_MUL */
    }
}

/* `nglobals_ready` globals are initialized; only those may be read. A
 * sequence (validated: it leaves one value) runs on a small stack. */
static int eval_const(const InstanceObject *self, uint32_t nglobals_ready,
                      const wasm_const_expr *e, uint64_t out[2])
{
    if (e->kind != CONST_SEQUENCE) return eval_const_value(self, nglobals_ready, e, out);
    uint64_t small[16][2], (*stack)[2] = small; /* height <= nops */
    if (e->nops > 16 && (stack = PyMem_Malloc(sizeof *stack * e->nops)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    uint32_t height = 0;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < e->nops; i++) {
        const wasm_const_expr *op = &e->ops[i];
        if (op->kind >= CONST_I32_ADD && op->kind <= CONST_I64_MUL && height >= 2) {
            height--;
            stack[height - 1][0] = eval_const_binop(op->kind, stack[height - 1][0], stack[height][0]);
        } else if (op->kind < CONST_I32_ADD) {
            rc = eval_const_value(self, nglobals_ready, op, stack[height++]);
        } else {
            height = 0; /* validation rules this out */
            break;
        }
    }
    if (rc == 0 && height != 1) rc = link_error("invalid constant expression (a sequence of %u)", e->nops);
    if (rc == 0) {
        out[0] = stack[0][0];
        out[1] = stack[0][1];
    }
    if (stack != small) PyMem_Free(stack);
    return rc;
}

/* ---- imports -------------------------------------------------------------------- */

static PyObject *import_name(const wasm_import *imp)
{
    return PyUnicode_FromFormat("\"%.*s\".\"%.*s\"", (int)imp->module.len, imp->module.ptr,
                                (int)imp->name.len, imp->name.ptr);
}

static int incompatible(const wasm_import *imp, const char *fmt, ...)
{
    PyObject *name = import_name(imp);
    va_list ap;
    va_start(ap, fmt);
    PyObject *detail = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (name != NULL && detail != NULL) link_error("incompatible import type for %U: %U", name, detail);
    Py_XDECREF(name);
    Py_XDECREF(detail);
    return -1;
}

static const char *extern_kind_name(uint8_t kind)
{
    static const char *const names[EXTERN_KINDS] = {"func", "table", "memory", "global", "tag"};
    return kind < EXTERN_KINDS ? names[kind] : "extern";
}

/* Spec "import subtyping" for limits: the same address type, at least the
 * minimum, and a maximum within the declared one when one is declared. */
static bool limits_match(const wasm_limits *actual, const wasm_limits *expected)
{
    if (actual->addr64 != expected->addr64 || actual->min < expected->min) return false;
    if (!expected->has_max) return true;
    return actual->has_max && actual->max <= expected->max;
}

/* " i64" for a memory64/table64 (its type as the text format writes it), for messages. */
static const char *addr_text(bool addr64) { return addr64 ? " i64" : ""; }

static int link_func(InstanceObject *self, const wasm_import *imp, PyObject *obj, uint32_t index)
{
    const wasm_module *m = self->rt.module;
    FuncObject *func = (FuncObject *)obj;
    const wasm_functype *expected = &m->types[imp->desc.typeidx];
    if (func->fn->type->id != expected->id) {
        PyObject *want = pyengine_functype_to_py(expected);
        PyObject *got = want ? pyengine_functype_to_py(func->fn->type) : NULL;
        if (got != NULL) incompatible(imp, "expected %S, got %S", want, got);
        Py_XDECREF(want);
        Py_XDECREF(got);
        return -1;
    }
    self->funcs[index] = Py_NewRef(obj);
    self->rt.funcs[index] = func->fn;
    return 0;
}

static int link_table(InstanceObject *self, const wasm_import *imp, PyObject *obj, uint32_t index)
{
    rt_table *t = &((TableObject *)obj)->tab;
    const wasm_tabletype *want = &imp->desc.table;
    wasm_limits got = {t->size, t->declared_max, t->has_max, t->addr64};
    if (t->elemtype != want->elem || !limits_match(&got, &want->limits)) {
        char want_max[24] = "", got_max[24] = "";
        if (want->limits.has_max) snprintf(want_max, sizeof want_max, " %llu", (unsigned long long)want->limits.max);
        if (t->has_max) snprintf(got_max, sizeof got_max, " %llu", (unsigned long long)t->declared_max);
        return incompatible(imp, "expected table%s %llu%s %s, got table%s %u%s %s", addr_text(want->limits.addr64),
                            (unsigned long long)want->limits.min, want_max, valtype_name(want->elem),
                            addr_text(t->addr64), t->size, got_max, valtype_name(t->elemtype));
    }
    self->tables[index] = Py_NewRef(obj);
    self->rt.tables[index] = t;
    return 0;
}

static int link_memory(InstanceObject *self, const wasm_import *imp, PyObject *obj, uint32_t index)
{
    rt_memory *mem = &((MemoryObject *)obj)->mem;
    const wasm_limits *want = &imp->desc.memory.limits;
    wasm_limits got = {mem->pages, mem->declared_max, mem->has_max, mem->addr64};
    if (!limits_match(&got, want)) {
        char want_max[24] = "", got_max[24] = "";
        if (want->has_max) snprintf(want_max, sizeof want_max, " %llu", (unsigned long long)want->max);
        if (mem->has_max) snprintf(got_max, sizeof got_max, " %llu", (unsigned long long)mem->declared_max);
        return incompatible(imp, "expected memory%s %llu%s, got memory%s %llu%s", addr_text(want->addr64),
                            (unsigned long long)want->min, want_max, addr_text(mem->addr64),
                            (unsigned long long)mem->pages, got_max);
    }
    self->memories[index] = Py_NewRef(obj);
    self->rt.memories[index] = mem;
    if (index == 0) self->rt.memory = mem;
    return 0;
}

static int link_global(InstanceObject *self, const wasm_import *imp, PyObject *obj, uint32_t index)
{
    rt_global *g = &((GlobalObject *)obj)->glob;
    const wasm_globaltype *want = &imp->desc.global;
    /* An immutable global's type may be a subtype of the import's; a mutable
     * one's must be the same (both are read and written through it). */
    bool type_ok = want->mutable_ ? g->type == want->type : valtype_matches(g->type, want->type);
    if (!type_ok || g->mutable_ != want->mutable_)
        return incompatible(imp, "expected global %s%s, got global %s%s", want->mutable_ ? "mut " : "",
                            valtype_name(want->type), g->mutable_ ? "mut " : "", valtype_name(g->type));
    self->globals[index] = Py_NewRef(obj);
    self->rt.globals[index] = g;
    return 0;
}

/* Tags match by exact type; the exceptions they make are told apart by the
 * tag's identity, so the same Tag object is the instance's tag. */
static int link_tag(InstanceObject *self, const wasm_import *imp, PyObject *obj, uint32_t index)
{
    const wasm_module *m = self->rt.module;
    rt_tag *tag = &((TagObject *)obj)->tag;
    const wasm_functype *expected = &m->types[imp->desc.tag.typeidx];
    if (tag->type->id != expected->id) {
        PyObject *want = tagtype_to_py(expected);
        PyObject *got = want ? tagtype_to_py(tag->type) : NULL;
        if (got != NULL) incompatible(imp, "expected %S, got %S", want, got);
        Py_XDECREF(want);
        Py_XDECREF(got);
        return -1;
    }
    self->tags[index] = Py_NewRef(obj);
    self->rt.tags[index] = tag;
    return 0;
}

static PyTypeObject *const extern_types[EXTERN_KINDS] = {&Func_Type, &Table_Type, &Memory_Type, &Global_Type,
                                                         &Tag_Type};

static int link_imports(InstanceObject *self, PyObject *const *externs, Py_ssize_t n)
{
    const wasm_module *m = self->rt.module;
    if (n != (Py_ssize_t)m->nimports)
        return link_error("the module has %u imports, got %zd externs", m->nimports, n);
    uint32_t next[EXTERN_KINDS] = {0}; /* next index in each index space */
    for (uint32_t i = 0; i < m->nimports; i++) {
        const wasm_import *imp = &m->imports[i];
        PyObject *obj = externs[i];
        if (imp->kind >= EXTERN_KINDS) return link_error("import %u has an unknown kind", i);
        if (!Py_IS_TYPE(obj, extern_types[imp->kind]))
            return incompatible(imp, "expected a %s, got %.100s", extern_kind_name(imp->kind),
                                Py_TYPE(obj)->tp_name);
        uint32_t index = next[imp->kind]++;
        int rc;
        switch (imp->kind) {
        case EXTERN_FUNC: rc = link_func(self, imp, obj, index); break;
        case EXTERN_TABLE: rc = link_table(self, imp, obj, index); break;
        case EXTERN_MEMORY: rc = link_memory(self, imp, obj, index); break;
        case EXTERN_TAG: rc = link_tag(self, imp, obj, index); break;
        default: rc = link_global(self, imp, obj, index); break;
        }
        if (rc < 0) return -1;
    }
    if (next[0] != m->nimported_funcs || next[1] != m->nimported_tables ||
        next[2] != m->nimported_memories || next[3] != m->nimported_globals || next[4] != m->nimported_tags)
        return link_error("the module's import counts are inconsistent");
    return 0;
}

/* ---- defined externs ------------------------------------------------------------ */

static int define_funcs(InstanceObject *self)
{
    const wasm_module *m = self->rt.module;
    for (uint32_t i = m->nimported_funcs; i < m->nfuncs; i++) {
        const wasm_func *def = &m->funcs[i];
        if (def->typeidx >= m->ntypes) return link_error("function %u has an invalid type", i);
        rt_func *fn = &self->defined_funcs[i - m->nimported_funcs];
        fn->type = &m->types[def->typeidx];
        fn->inst = &self->rt;
        fn->code = &def->code;
        fn->host = NULL;
        fn->owner = (PyObject *)self;
        fn->index = i;
        self->rt.funcs[i] = fn;
    }
    return 0;
}

static int define_tables(InstanceObject *self, uint32_t limit)
{
    const wasm_module *m = self->rt.module;
    for (uint32_t i = m->nimported_tables; i < m->ntables; i++) {
        const wasm_tabletype *tt = &m->tables[i];
        if (tt->limits.min > limit)
            return link_error("table %u needs %llu elements, above the limit of %u (max_table_elements)", i,
                              (unsigned long long)tt->limits.min, limit);
        uint64_t init[2] = {0, 0}; /* its initializer reads imported globals only */
        if (tt->has_init && eval_const(self, m->nimported_globals, &tt->init, init) < 0) return -1;
        PyObject *obj = pyengine_new_table(tt->elem, &tt->limits, limit);
        if (obj == NULL) return -1;
        self->tables[i] = obj;
        rt_table *t = self->rt.tables[i] = &((TableObject *)obj)->tab;
        for (uint32_t k = 0; init[0] != 0 && k < t->size; k++)
            rt_ref_store_now(&t->elems[k], t->elemtype, (void *)(uintptr_t)init[0]);
    }
    return 0;
}

static int define_memories(InstanceObject *self, uint64_t limit, PyObject *budget)
{
    const wasm_module *m = self->rt.module;
    for (uint32_t i = m->nimported_memories; i < m->nmemories; i++) {
        const wasm_limits *lim = &m->memories[i].limits;
        uint64_t cap = rt_memory_cap(lim, limit);
        if (lim->min > cap)
            return link_error("memory %u needs %llu pages, above the limit of %llu pages (max_memory_pages)", i,
                              (unsigned long long)lim->min, (unsigned long long)cap);
        PyObject *obj = pyengine_new_memory(lim, limit, budget);
        if (obj == NULL) return -1;
        self->memories[i] = obj;
        self->rt.memories[i] = &((MemoryObject *)obj)->mem;
        if (i == 0) self->rt.memory = self->rt.memories[i];
    }
    return 0;
}

static int define_tags(InstanceObject *self)
{
    const wasm_module *m = self->rt.module;
    for (uint32_t i = m->nimported_tags; i < m->ntags; i++) {
        PyObject *obj = pyengine_new_tag(&m->types[m->tags[i].typeidx]);
        if (obj == NULL) return -1;
        self->tags[i] = obj;
        self->rt.tags[i] = &((TagObject *)obj)->tag;
    }
    return 0;
}

static int define_globals(InstanceObject *self)
{
    const wasm_module *m = self->rt.module;
    for (uint32_t i = m->nimported_globals; i < m->nglobals; i++) {
        const wasm_global *def = &m->globals[i];
        uint64_t value[2];
        if (eval_const(self, i, &def->init, value) < 0) return -1;
        PyObject *obj = pyengine_new_global(def->type.type, def->type.mutable_);
        if (obj == NULL) return -1;
        rt_global *g = &((GlobalObject *)obj)->glob;
        if (valtype_is_ref(g->type)) {
            rt_ref_store_now((void **)&g->value[0], g->type, (void *)(uintptr_t)value[0]);
        } else {
            g->value[0] = value[0];
            g->value[1] = value[1];
        }
        self->globals[i] = obj;
        self->rt.globals[i] = g;
    }
    return 0;
}

/* ---- segments -------------------------------------------------------------------- */

/* table.init of a whole active segment at its offset, then elem.drop. */
static int apply_elem(InstanceObject *self, uint32_t index)
{
    const wasm_module *m = self->rt.module;
    const wasm_elem *seg = &m->elems[index];
    if (seg->mode != SEG_ACTIVE) {
        if (seg->mode == SEG_DECLARATIVE) self->rt.elem_dropped[index] = 1;
        return 0;
    }
    if (seg->table >= m->ntables) return link_error("element segment %u names table %u", index, seg->table);
    rt_table *t = self->rt.tables[seg->table];
    uint64_t offset[2];
    if (eval_const(self, m->nglobals, &seg->offset, offset) < 0) return -1;
    uint64_t start = t->addr64 ? offset[0] : (uint32_t)offset[0];
    if (start > t->size || seg->count > t->size - start) {
        raise_trap(TRAP_OOB_TABLE);
        return -1;
    }
    for (uint32_t i = 0; i < seg->count; i++) {
        uint64_t ref[2];
        if (eval_const(self, m->nglobals, &seg->items[i], ref) < 0) return -1;
        rt_ref_store_now(&t->elems[start + i], t->elemtype, (void *)(uintptr_t)ref[0]);
    }
    self->rt.elem_dropped[index] = 1;
    return 0;
}

/* memory.init of a whole active segment at its offset, then data.drop. */
static int apply_data(InstanceObject *self, uint32_t index)
{
    const wasm_module *m = self->rt.module;
    const wasm_data *seg = &m->datas[index];
    if (seg->mode != SEG_ACTIVE) return 0;
    if (seg->memory >= m->nmemories)
        return link_error("data segment %u names memory %u", index, seg->memory);
    rt_memory *mem = self->rt.memories[seg->memory];
    uint64_t offset[2];
    if (eval_const(self, m->nglobals, &seg->offset, offset) < 0) return -1;
    uint64_t start = mem->addr64 ? offset[0] : (uint32_t)offset[0];
    if (start > mem->size || seg->len > mem->size - start) {
        raise_trap(TRAP_OOB_MEMORY);
        return -1;
    }
    if (seg->len > 0) memcpy(mem->base + start, seg->bytes, seg->len);
    self->rt.data_dropped[index] = 1;
    return 0;
}

/* calloc-like allocation of n items (at least one, so NULL means failure). */
static void *alloc_zeroed(size_t n, size_t size)
{
    void *p = PyMem_Calloc(n ? n : 1, size);
    if (p == NULL) PyErr_NoMemory();
    return p;
}

static int alloc_index_spaces(InstanceObject *self)
{
    const wasm_module *m = self->rt.module;
    self->rt.funcs = alloc_zeroed(m->nfuncs, sizeof(rt_func *));
    self->rt.tables = alloc_zeroed(m->ntables, sizeof(rt_table *));
    self->rt.memories = alloc_zeroed(m->nmemories, sizeof(rt_memory *));
    self->rt.globals = alloc_zeroed(m->nglobals, sizeof(rt_global *));
    self->rt.elem_dropped = alloc_zeroed(m->nelems, 1);
    self->rt.data_dropped = alloc_zeroed(m->ndatas, 1);
    self->defined_funcs = alloc_zeroed(m->nfuncs - m->nimported_funcs, sizeof(rt_func));
    self->funcs = alloc_zeroed(m->nfuncs, sizeof(PyObject *));
    self->tables = alloc_zeroed(m->ntables, sizeof(PyObject *));
    self->memories = alloc_zeroed(m->nmemories, sizeof(PyObject *));
    self->globals = alloc_zeroed(m->nglobals, sizeof(PyObject *));
    self->rt.tags = alloc_zeroed(m->ntags, sizeof(rt_tag *));
    self->tags = alloc_zeroed(m->ntags, sizeof(PyObject *));
    return PyErr_Occurred() ? -1 : 0;
}

int rt_instantiate(InstanceObject *self, PyObject *const *externs, Py_ssize_t nexterns,
                   uint64_t max_memory_pages, uint32_t max_table_elements, PyObject *memory_budget)
{
    const wasm_module *m = &self->module->m;
    self->rt.module = m;
    self->rt.owner = (PyObject *)self;
    if (m->nimported_funcs > m->nfuncs || m->nimported_tables > m->ntables ||
        m->nimported_memories > m->nmemories || m->nimported_globals > m->nglobals)
        return link_error("the module's import counts are inconsistent");
    if (alloc_index_spaces(self) < 0) return -1;
    if (link_imports(self, externs, nexterns) < 0) return -1;
    if (define_funcs(self) < 0 || define_tables(self, max_table_elements) < 0 ||
        define_memories(self, max_memory_pages, memory_budget) < 0 || define_tags(self) < 0 ||
        define_globals(self) < 0)
        return -1;
    for (uint32_t i = 0; i < m->nelems; i++)
        if (apply_elem(self, i) < 0) return -1;
    for (uint32_t i = 0; i < m->ndatas; i++)
        if (apply_data(self, i) < 0) return -1;
    return 0;
}
