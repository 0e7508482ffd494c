/* wasi_sock.c -- the hot WASI socket calls in C.
 *
 * A guest that serves network connections spends its host calls in
 * sock_recv, sock_send, fd_read/fd_write on its connections and
 * poll_oneoff. Each is a non-blocking system call on a host socket plus a
 * few guest-memory reads and writes; in Python the call around the system
 * call cost several times the system call. Here they run in C, straight from
 * the interpreter (runtime.c rt_call_host), and go back to Python only for
 * what this file does not decide:
 *
 *   - the call would wait: a blocking fd with nothing to read, poll_oneoff
 *     with nothing ready. The wait is Python's (trio), an awaitable the
 *     fiber suspends on; poll_oneoff's asks this file again when it wakes.
 *   - anything else unusual: an fd that is not a plain socket (files,
 *     stdio, TLS connections), a missing right, a bad pointer or flag, an
 *     iovec count beyond IOV_STACK. Then the Python function runs the whole
 *     call ("falls back"), so every rule (rights, errno order, sandbox) has
 *     one definition, and C takes only calls it finishes exactly as Python
 *     would, before doing anything visible.
 *
 * Objects:
 *   SockTable: per WASI context, a mirror of the socket entries of its fd
 *     table (asyncwasm/wasi/fastpath.py keeps it in step: installed when
 *     the table opens an fd, removed before the entry is closed), the bound
 *     guest memory, the bytes moved per fd (metrics), and the
 *     level-triggered epoll set poll_oneoff asks: one system call tells
 *     which of any number of subscribed sockets are ready, and the one fd a
 *     waiting guest's task watches in trio, so readiness of many
 *     connections wakes an instance once.
 *   SockCall: a WASI function with a C fast path (kind + table); called
 *     from Python it is the Python function it wraps (`fallback`).
 *
 * Answer times (SockTable.answer_times, for benchmarks; off by default):
 * while on, receives ask the kernel when the data arrived (SO_TIMESTAMPNS)
 * and the first send on that socket after a receive counts the time from
 * the request's arrival to the answer's hand-over to the kernel in a
 * log-scale histogram: the server's own latency, whatever the client's
 * machine adds.
 *
 * Host fds are read from the socket objects at every call (the object's fd
 * is -1 once Python closed it), so a stale mirror can never reach a reused
 * fd number. Linux only (epoll); elsewhere every call falls back.
 */
#include "pyengine.h"

#include <errno.h>
#include <string.h>

#ifdef __linux__
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#endif

/* ---- the WASI ABI (docs/sockets-abi.md; asyncwasm/wasi/abi.py) ------------------ */

enum { WASI_SUCCESS = 0, WASI_AGAIN = 6, WASI_IO = 29 };
enum { EVENTTYPE_CLOCK = 0, EVENTTYPE_FD_READ = 1, EVENTTYPE_FD_WRITE = 2 };
enum { CLOCK_REALTIME_ID = 0, CLOCK_MONOTONIC_ID = 1 };
#define RIGHT_FD_READ (UINT64_C(1) << 1)
#define RIGHT_FD_WRITE (UINT64_C(1) << 6)
#define RIGHT_POLL_FD_READWRITE (UINT64_C(1) << 27)
#define FDFLAG_NONBLOCK 0x4u
#define RIFLAG_RECV_PEEK 0x1u
#define ROFLAG_RECV_DATA_TRUNCATED 0x1u
#define EVENTRWFLAG_HANGUP 0x1u
#define SUBCLOCK_ABSTIME 0x1u
#define SUBSCRIPTION_SIZE 48u
#define EVENT_SIZE 32u
#define IOVEC_SIZE 8u
/* More iovecs than this go to Python (which allows IOV_MAX = 1024). */
#define IOV_STACK 64u

enum sock_kind { SOCK_CALL_RECV, SOCK_CALL_SEND, SOCK_CALL_FD_READ, SOCK_CALL_FD_WRITE, SOCK_CALL_POLL,
                 SOCK_CALL__COUNT };

/* ---- objects ------------------------------------------------------------------------- */

enum { SLOT_EMPTY = 0, SLOT_SOCKET = 1, SLOT_LISTENER = 2 };

typedef struct {
    uint8_t kind;
    bool stream;
    uint16_t fdflags;
    uint32_t gen;          /* bumped per install: epoll events of an older one are ignored */
    uint64_t rights;
    PyObject *sock;        /* socket.socket (strong) */
    PyObject *source;      /* SLOT_LISTENER: the ConnectionSource (strong) */
    uint64_t received, sent;
    uint32_t registered;   /* events of its epoll registration; 0: none */
    uint32_t want;         /* events this poll_oneoff call subscribes to */
    uint32_t seen;         /* the call (table->epoch) that last subscribed to it */
    uint32_t ready;        /* epoll events reported by this call's epoll_wait */
    bool stamped;          /* SO_TIMESTAMPNS set (answer times) */
    uint32_t arrived_in;   /* the answer_times period `arrived` belongs to */
    int64_t arrived;       /* answer times: when the unanswered data arrived (CLOCK_REALTIME ns); 0: none */
} sock_slot;

typedef struct {
    PyObject_HEAD
    sock_slot *slots;
    uint32_t nslots;
    PyObject *memory;      /* the bound Memory object, or NULL: everything falls back */
    PyObject *poll_wait;   /* hooks (fastpath.py): the waits and the rest of a blocking send */
    PyObject *send_rest;
    int epfd;              /* -1 until a poll needs it; closed when nothing is registered */
    uint32_t nregistered;
    uint32_t epoch;
    PyObject *weakrefs;
} SockTableObject;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int kind;
    SockTableObject *table;
    PyObject *fallback;
} SockCallObject;

/* The prefix of CPython's socket object (Modules/socketmodule.h), checked
 * against fileno() once by SockTable.configure before anything uses it. */
typedef struct {
    PyObject_HEAD
    int sock_fd;
} socket_prefix;

static PyObject *socket_type;      /* _socket.socket, once configured */
static uint8_t host_to_wasi[256];  /* host errno -> WASI errno (abi.errno_from_oserror) */
static PyObject *str_pending;

static inline int sock_fd(PyObject *sock) { return ((socket_prefix *)sock)->sock_fd; }

static inline sock_slot *slot_at(SockTableObject *t, uint32_t fd)
{
    return fd < t->nslots && t->slots[fd].kind != SLOT_EMPTY ? &t->slots[fd] : NULL;
}

static inline uint16_t wasi_errno(int host)
{
    return host > 0 && host < 256 && host_to_wasi[host] ? host_to_wasi[host] : WASI_IO;
}

/* ---- guest memory ----------------------------------------------------------------------- */

typedef struct {
    uint8_t *base;
    uint64_t size;
} guest_mem;

static inline bool mem_of(SockTableObject *t, guest_mem *m)
{
    if (t->memory == NULL) return false;
    rt_memory *mem = &((MemoryObject *)t->memory)->mem;
    m->base = mem->base;
    m->size = mem->size;
    return true;
}

static inline bool in_bounds(const guest_mem *m, uint64_t ptr, uint64_t len) { return ptr + len <= m->size; }
static inline uint32_t load_u32(const guest_mem *m, uint64_t p)
{
    uint32_t v;
    memcpy(&v, m->base + p, 4);
    return v;
}
static inline void store_u32(const guest_mem *m, uint64_t p, uint32_t v) { memcpy(m->base + p, &v, 4); }
static inline void store_u16(const guest_mem *m, uint64_t p, uint16_t v) { memcpy(m->base + p, &v, 2); }

#ifdef __linux__
/* The iovecs at `ptr` as host iovecs into guest memory: their count, or -1
 * when Python must decide (too many, none, out of bounds). *total: bytes. */
static int gather(const guest_mem *m, uint32_t ptr, uint32_t count, struct iovec *out, size_t *total)
{
    if (count == 0 || count > IOV_STACK || !in_bounds(m, ptr, (uint64_t)count * IOVEC_SIZE)) return -1;
    size_t sum = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t buf = load_u32(m, ptr + i * IOVEC_SIZE), len = load_u32(m, ptr + i * IOVEC_SIZE + 4);
        if (!in_bounds(m, buf, len)) return -1;
        out[i].iov_base = m->base + buf;
        out[i].iov_len = len;
        sum += len;
    }
    *total = sum;
    return (int)count;
}
#endif

/* ---- SockTable: Python side --------------------------------------------------------------- */

static void slot_release(sock_slot *s)
{
    Py_CLEAR(s->sock);
    Py_CLEAR(s->source);
    s->kind = SLOT_EMPTY;
}

static void epoll_forget(SockTableObject *t, uint32_t fd, sock_slot *s)
{
#ifdef __linux__
    if (s->registered != 0) {
        int host = s->sock != NULL ? sock_fd(s->sock) : -1;
        if (t->epfd >= 0 && host >= 0) (void)epoll_ctl(t->epfd, EPOLL_CTL_DEL, host, NULL);
        s->registered = 0;
        t->nregistered--;
    }
#endif
    (void)fd;
}

static int grow_slots(SockTableObject *t, uint32_t fd)
{
    if (fd < t->nslots) return 0;
    uint32_t n = t->nslots ? t->nslots : 16;
    while (n <= fd) n *= 2;
    sock_slot *slots = PyMem_Realloc(t->slots, sizeof *slots * n);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(slots + t->nslots, 0, sizeof *slots * (n - t->nslots));
    t->slots = slots;
    t->nslots = n;
    return 0;
}

static int fd_arg(PyObject *obj, uint32_t *fd)
{
    return u32_arg(obj, "fd", 0xFFFFFFFFu, fd);
}

static PyObject *SockTable_install(SockTableObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    /* install(fd, sock, rights, fdflags, stream, source=None) */
    if (check_nargs("install", nargs, 5, 6) < 0) return NULL;
    uint32_t fd;
    unsigned long long rights = 0;
    unsigned long fdflags = 0;
    if (fd_arg(args[0], &fd) < 0) return NULL;
    if (socket_type == NULL || !PyObject_TypeCheck(args[1], (PyTypeObject *)socket_type))
        return PyErr_Format(PyExc_TypeError, "install() needs a socket.socket, not %.100s", Py_TYPE(args[1])->tp_name);
    rights = PyLong_AsUnsignedLongLongMask(args[2]);
    fdflags = PyLong_AsUnsignedLongMask(args[3]);
    int stream = PyObject_IsTrue(args[4]);
    if (PyErr_Occurred() || stream < 0) return NULL;
    PyObject *source = nargs > 5 && args[5] != Py_None ? args[5] : NULL;
    if (grow_slots(t, fd) < 0) return NULL;
    sock_slot *s = &t->slots[fd];
    epoll_forget(t, fd, s);
    slot_release(s);
    s->kind = source != NULL ? SLOT_LISTENER : SLOT_SOCKET;
    s->stream = stream;
    s->rights = rights;
    s->fdflags = (uint16_t)fdflags;
    s->sock = Py_NewRef(args[1]);
    s->source = Py_XNewRef(source);
    s->received = s->sent = 0;
    s->gen++;
    s->want = s->seen = s->ready = 0;
    s->stamped = false;
    s->arrived = 0;
    Py_RETURN_NONE;
}

static PyObject *SockTable_update(SockTableObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    /* update(fd, rights, fdflags): the entry's rights or flags changed */
    if (check_nargs("update", nargs, 3, 3) < 0) return NULL;
    uint32_t fd;
    if (fd_arg(args[0], &fd) < 0) return NULL;
    unsigned long long rights = PyLong_AsUnsignedLongLongMask(args[1]);
    unsigned long fdflags = PyLong_AsUnsignedLongMask(args[2]);
    if (PyErr_Occurred()) return NULL;
    sock_slot *s = slot_at(t, fd);
    if (s != NULL) {
        s->rights = rights;
        s->fdflags = (uint16_t)fdflags;
    }
    Py_RETURN_NONE;
}

static PyObject *counts_of(const sock_slot *s)
{
    return Py_BuildValue("(KK)", (unsigned long long)(s ? s->received : 0), (unsigned long long)(s ? s->sent : 0));
}

static PyObject *SockTable_remove(SockTableObject *t, PyObject *fdobj)
{
    /* remove(fd) -> (received, sent) moved through the C path */
    uint32_t fd;
    if (fd_arg(fdobj, &fd) < 0) return NULL;
    sock_slot *s = slot_at(t, fd);
    PyObject *counts = counts_of(s);
    if (counts != NULL && s != NULL) {
        epoll_forget(t, fd, s);
        slot_release(s);
    }
    return counts;
}

static PyObject *SockTable_counts(SockTableObject *t, PyObject *fdobj)
{
    uint32_t fd;
    if (fd_arg(fdobj, &fd) < 0) return NULL;
    return counts_of(slot_at(t, fd));
}

static void table_clear(SockTableObject *t)
{
    for (uint32_t fd = 0; fd < t->nslots; fd++) {
        if (t->slots[fd].kind == SLOT_EMPTY) continue;
        epoll_forget(t, fd, &t->slots[fd]);
        slot_release(&t->slots[fd]);
    }
}

static PyObject *SockTable_clear(SockTableObject *t, PyObject *Py_UNUSED(ignored))
{
    table_clear(t);
    Py_RETURN_NONE;
}

static PyObject *SockTable_bind_memory(SockTableObject *t, PyObject *memory)
{
    if (memory != Py_None && !PyObject_TypeCheck(memory, &Memory_Type))
        return PyErr_Format(PyExc_TypeError, "bind_memory() needs an asyncwasm Memory or None");
    Py_XSETREF(t->memory, memory == Py_None ? NULL : Py_NewRef(memory));
    Py_RETURN_NONE;
}

static PyObject *SockTable_close_epoll(SockTableObject *t, PyObject *Py_UNUSED(ignored))
{
    /* The caller told trio first (notify_closing); registrations die with the set. */
    for (uint32_t fd = 0; fd < t->nslots; fd++) t->slots[fd].registered = 0;
    t->nregistered = 0;
#ifdef __linux__
    if (t->epfd >= 0) close(t->epfd);
#endif
    t->epfd = -1;
    Py_RETURN_NONE;
}

static PyObject *SockTable_get_epoll_fd(SockTableObject *t, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(t->epfd);
}

static PyObject *SockTable_get_idle(SockTableObject *t, void *Py_UNUSED(closure))
{
    /* An epoll set with nothing registered: close it (an idle instance holds no fd). */
    return PyBool_FromLong(t->epfd >= 0 && t->nregistered == 0);
}

static PyObject *SockTable_configure(PyObject *Py_UNUSED(cls), PyObject *const *args, Py_ssize_t nargs)
{
    /* configure(errno_map: bytes of 256, probe: socket.socket) -> bool:
     * whether the C path can be used (the socket layout is the one we read). */
    if (check_nargs("configure", nargs, 2, 2) < 0) return NULL;
    if (!PyBytes_Check(args[0]) || PyBytes_GET_SIZE(args[0]) != 256)
        return PyErr_Format(PyExc_TypeError, "configure() needs 256 bytes of errno map");
    memcpy(host_to_wasi, PyBytes_AS_STRING(args[0]), 256);
    if (str_pending == NULL && (str_pending = PyUnicode_InternFromString("pending")) == NULL) return NULL;
    PyObject *fileno = PyObject_CallMethod(args[1], "fileno", NULL);
    if (fileno == NULL) return NULL;
    long expected = PyLong_AsLong(fileno);
    Py_DECREF(fileno);
    if (expected == -1 && PyErr_Occurred()) return NULL;
    PyTypeObject *type = Py_TYPE(args[1]);
    while (type->tp_base != NULL && type->tp_base != &PyBaseObject_Type) type = type->tp_base;
    bool ok = type->tp_basicsize >= (Py_ssize_t)sizeof(socket_prefix) && sock_fd(args[1]) == expected &&
              expected >= 0;
#ifndef __linux__
    ok = false;
#endif
    if (ok) Py_XSETREF(socket_type, Py_NewRef((PyObject *)type));
    return PyBool_FromLong(ok);
}

static int SockTable_init(SockTableObject *t, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"poll_wait", "send_rest", NULL};
    PyObject *poll_wait, *send_rest;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:SockTable", kwlist, &poll_wait, &send_rest)) return -1;
    Py_XSETREF(t->poll_wait, Py_NewRef(poll_wait));
    Py_XSETREF(t->send_rest, Py_NewRef(send_rest));
    return 0;
}

static PyObject *SockTable_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    SockTableObject *t = (SockTableObject *)type->tp_alloc(type, 0);
    if (t != NULL) t->epfd = -1;
    return (PyObject *)t;
}

static int SockTable_traverse(SockTableObject *t, visitproc visit, void *arg)
{
    for (uint32_t fd = 0; fd < t->nslots; fd++) {
        Py_VISIT(t->slots[fd].sock);
        Py_VISIT(t->slots[fd].source);
    }
    Py_VISIT(t->memory);
    Py_VISIT(t->poll_wait);
    Py_VISIT(t->send_rest);
    return 0;
}

static int SockTable_tp_clear(SockTableObject *t)
{
    table_clear(t);
    Py_CLEAR(t->memory);
    Py_CLEAR(t->poll_wait);
    Py_CLEAR(t->send_rest);
    return 0;
}

static void SockTable_dealloc(SockTableObject *t)
{
    PyObject_GC_UnTrack(t);
    if (t->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)t);
    SockTable_tp_clear(t);
#ifdef __linux__
    if (t->epfd >= 0) close(t->epfd);
#endif
    PyMem_Free(t->slots);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

/* ---- the calls ------------------------------------------------------------------------------ */


#ifdef __linux__

static inline int32_t arg_i32(const uint64_t *args, int i) { return (int32_t)(uint32_t)args[i]; }
static inline uint32_t arg_u32(const uint64_t *args, int i) { return (uint32_t)args[i]; }
static inline void set_result(uint64_t *args, uint32_t errno_value) { args[0] = errno_value; }

/* A stream socket with `right`, still open: its slot, else NULL (Python decides). */
static inline sock_slot *stream_with(SockTableObject *t, uint32_t fd, uint64_t right, int *host)
{
    sock_slot *s = slot_at(t, fd);
    if (s == NULL || s->kind != SLOT_SOCKET || !s->stream || (s->rights & right) != right) return NULL;
    *host = sock_fd(s->sock);
    return *host >= 0 ? s : NULL;
}

/* ---- answer times ------------------------------------------------------------------------ */

static int64_t clock_ns(clockid_t id);

/* Bucket 0: under 1 us; bucket 1 + 4 e + q: [2^e (1 + q/4), 2^e (1 + (q+1)/4)) us. */
#define ANSWER_BUCKETS 100
static bool answers_on;
static uint32_t answers_period; /* bumped by every answer_times call: older arrivals are not counted */
static uint64_t answer_counts[ANSWER_BUCKETS];

static void count_answer(int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    int bucket = 0;
    if (us > 0) {
        int e = 63 - __builtin_clzll(us);
        int q = e >= 2 ? (int)((us >> (e - 2)) & 3) : (int)((us << (2 - e)) & 3);
        bucket = 1 + 4 * e + q;
    }
    answer_counts[bucket < ANSWER_BUCKETS ? bucket : ANSWER_BUCKETS - 1]++;
}

/* When the data a recvmsg returned arrived (SCM_TIMESTAMPNS), 0 if not told. */
static int64_t arrival_ns(struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        }
    }
    return 0;
}

/* sock_recv / fd_read: a receive that returns now. `ro_flags` is ~0u for fd_read. */
static int do_recv(SockTableObject *t, uint64_t *args, uint32_t fd, uint32_t iovs, uint32_t niovs,
                   uint32_t riflags, uint32_t ro_datalen, uint64_t ro_flags)
{
    guest_mem m;
    int host;
    sock_slot *s;
    struct iovec iov[IOV_STACK];
    size_t total;
    if (!mem_of(t, &m) || (s = stream_with(t, fd, RIGHT_FD_READ, &host)) == NULL) return SOCKCALL_FALLBACK;
    if (riflags & ~RIFLAG_RECV_PEEK) return SOCKCALL_FALLBACK; /* WAITALL, unknown bits */
    int n_iov = gather(&m, iovs, niovs, iov, &total);
    if (n_iov < 0 || total == 0 || !in_bounds(&m, ro_datalen, 4)) return SOCKCALL_FALLBACK;
    if (ro_flags != ~UINT64_C(0) && !in_bounds(&m, ro_flags, 2)) return SOCKCALL_FALLBACK;
    int flags = MSG_DONTWAIT | (riflags & RIFLAG_RECV_PEEK ? MSG_PEEK : 0);
    ssize_t n;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    if (answers_on && !s->stamped) {
        int one = 1;
        s->stamped = setsockopt(host, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) == 0;
    }
    do {
        if (answers_on) {
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof control.buf;
        }
        n = n_iov == 1 && !answers_on ? recv(host, iov[0].iov_base, iov[0].iov_len, flags)
                                      : recvmsg(host, &msg, flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            set_result(args, wasi_errno(errno));
            return SOCKCALL_DONE;
        }
        if (!(s->fdflags & FDFLAG_NONBLOCK)) return SOCKCALL_FALLBACK; /* Python waits */
        set_result(args, WASI_AGAIN);
        return SOCKCALL_DONE;
    }
    if (!(flags & MSG_PEEK)) s->received += (uint64_t)n;
    if (answers_on && n > 0 && (s->arrived == 0 || s->arrived_in != answers_period)) {
        s->arrived = arrival_ns(&msg);
        s->arrived_in = answers_period;
    }
    store_u32(&m, ro_datalen, (uint32_t)n);
    if (ro_flags != ~UINT64_C(0))
        store_u16(&m, ro_flags, n_iov > 1 && (msg.msg_flags & MSG_TRUNC) ? ROFLAG_RECV_DATA_TRUNCATED : 0);
    set_result(args, WASI_SUCCESS);
    return SOCKCALL_DONE;
}

/* sock_send / fd_write. A blocking socket that took part of the data
 * continues in Python (send_rest) from where C stopped. */
static int do_send(SockTableObject *t, uint64_t *args, uint32_t fd, uint32_t iovs, uint32_t niovs,
                   uint32_t so_datalen, PyObject **later)
{
    guest_mem m;
    int host;
    sock_slot *s;
    struct iovec iov[IOV_STACK];
    size_t total;
    if (!mem_of(t, &m) || (s = stream_with(t, fd, RIGHT_FD_WRITE, &host)) == NULL) return SOCKCALL_FALLBACK;
    int n_iov = gather(&m, iovs, niovs, iov, &total);
    if (n_iov < 0 || total == 0 || !in_bounds(&m, so_datalen, 4)) return SOCKCALL_FALLBACK;
    int flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    ssize_t n;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
    do {
        n = n_iov == 1 ? send(host, iov[0].iov_base, iov[0].iov_len, flags) : sendmsg(host, &msg, flags);
    } while (n < 0 && errno == EINTR);
    bool nonblocking = s->fdflags & FDFLAG_NONBLOCK;
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            set_result(args, wasi_errno(errno));
            return SOCKCALL_DONE;
        }
        if (!nonblocking) return SOCKCALL_FALLBACK; /* nothing sent: Python waits and sends */
        set_result(args, WASI_AGAIN);
        return SOCKCALL_DONE;
    }
    s->sent += (uint64_t)n;
    if (answers_on && s->arrived != 0 && s->arrived_in == answers_period) {
        count_answer(clock_ns(CLOCK_REALTIME) - s->arrived);
        s->arrived = 0;
    }
    if ((size_t)n == total || nonblocking) {
        store_u32(&m, so_datalen, (uint32_t)n);
        set_result(args, WASI_SUCCESS);
        return SOCKCALL_DONE;
    }
    /* send_rest(fd, iovs, niovs, so_datalen, done): the awaitable of the rest */
    *later = PyObject_CallFunction(t->send_rest, "IIIIn", fd, iovs, niovs, so_datalen, (Py_ssize_t)n);
    return *later != NULL ? SOCKCALL_LATER : SOCKCALL_ERROR;
}

/* ---- poll_oneoff ------------------------------------------------------------------------------ */

typedef struct {
    uint64_t userdata;
    uint8_t type;
    int64_t deadline; /* clocks */
    uint32_t fd;      /* fd subscriptions */
} poll_sub;

#define EP_READ (EPOLLIN | EPOLLRDHUP)
#define EP_WRITE (EPOLLOUT)
#define EP_ALWAYS (EPOLLHUP | EPOLLERR)

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t clamp_ns(__int128 v)
{
    return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

/* Decode the subscriptions (python: decode_subscriptions + make_plan) with
 * clocks fixed relative to (mono, real), the call's start. false: Python
 * must decide (a bad clock or tag, an fd without a C slot or the rights). */
static bool decode_plan(SockTableObject *t, const guest_mem *m, uint32_t ptr, uint32_t n, int64_t mono,
                        int64_t real, poll_sub *out)
{
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = m->base + ptr + (uint64_t)i * SUBSCRIPTION_SIZE;
        poll_sub *sub = &out[i];
        memcpy(&sub->userdata, p, 8);
        sub->type = p[8];
        if (sub->type == EVENTTYPE_CLOCK) {
            uint32_t id;
            uint64_t timeout;
            uint16_t flags;
            memcpy(&id, p + 16, 4);
            memcpy(&timeout, p + 24, 8);
            memcpy(&flags, p + 40, 2);
            if (flags & ~SUBCLOCK_ABSTIME) return false;
            bool absolute = flags & SUBCLOCK_ABSTIME;
            if (id == CLOCK_MONOTONIC_ID)
                sub->deadline = clamp_ns(absolute ? (__int128)timeout : (__int128)mono + timeout);
            else if (id == CLOCK_REALTIME_ID)
                sub->deadline = clamp_ns(absolute ? (__int128)mono + ((__int128)timeout - real)
                                                  : (__int128)mono + timeout);
            else
                return false;
        } else if (sub->type == EVENTTYPE_FD_READ || sub->type == EVENTTYPE_FD_WRITE) {
            memcpy(&sub->fd, p + 16, 4);
            sock_slot *s = slot_at(t, sub->fd);
            uint64_t need = RIGHT_POLL_FD_READWRITE | (sub->type == EVENTTYPE_FD_READ ? RIGHT_FD_READ : RIGHT_FD_WRITE);
            if (s == NULL || (s->rights & need) != need || sock_fd(s->sock) < 0) return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Register every subscribed socket with what this call wants (level-triggered). */
static int register_wants(SockTableObject *t, const poll_sub *subs, uint32_t n)
{
    uint32_t epoch = ++t->epoch;
    for (uint32_t i = 0; i < n; i++) {
        if (subs[i].type == EVENTTYPE_CLOCK) continue;
        sock_slot *s = &t->slots[subs[i].fd];
        if (s->kind != SLOT_SOCKET) continue; /* listeners: asked with poll() */
        if (s->seen != epoch) {
            s->seen = epoch;
            s->want = 0;
            s->ready = 0;
        }
        s->want |= subs[i].type == EVENTTYPE_FD_READ ? EP_READ : EP_WRITE;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (subs[i].type == EVENTTYPE_CLOCK) continue;
        uint32_t fd = subs[i].fd;
        sock_slot *s = &t->slots[fd];
        if (s->kind != SLOT_SOCKET || s->registered == s->want) continue;
        if (t->epfd < 0 && (t->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) return -1;
        struct epoll_event ev = {.events = s->want, .data.u64 = ((uint64_t)s->gen << 32) | fd};
        int rc = epoll_ctl(t->epfd, s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sock_fd(s->sock), &ev);
        if (rc < 0 && errno == ENOENT) rc = epoll_ctl(t->epfd, EPOLL_CTL_ADD, sock_fd(s->sock), &ev);
        if (rc < 0 && errno == EEXIST) rc = epoll_ctl(t->epfd, EPOLL_CTL_MOD, sock_fd(s->sock), &ev);
        if (rc < 0) return -1;
        if (!s->registered) t->nregistered++;
        s->registered = s->want;
    }
    return 0;
}

/* Ask the kernel once which registered sockets are ready (never waits). */
static int harvest(SockTableObject *t)
{
    if (t->epfd < 0 || t->nregistered == 0) return 0;
    struct epoll_event evs[256];
    uint32_t epoch = t->epoch;
    for (uint32_t round = 0; round <= t->nregistered / 256; round++) {
        int got = epoll_wait(t->epfd, evs, 256, 0);
        if (got < 0) return errno == EINTR ? 0 : -1;
        for (int i = 0; i < got; i++) {
            uint32_t fd = (uint32_t)evs[i].data.u64, gen = (uint32_t)(evs[i].data.u64 >> 32);
            if (fd < t->nslots && t->slots[fd].kind == SLOT_SOCKET && t->slots[fd].gen == gen &&
                t->slots[fd].seen == epoch)
                t->slots[fd].ready |= evs[i].events;
        }
        if (got < 256) break;
    }
    return 0;
}

/* Stop watching what this call does not subscribe to: the epoll fd that a
 * waiting task watches must turn readable only for this call's sockets. */
static void unregister_unwanted(SockTableObject *t)
{
    if (t->nregistered == 0) return;
    for (uint32_t fd = 0; fd < t->nslots; fd++) {
        sock_slot *s = &t->slots[fd];
        if (s->registered && s->seen != t->epoch) epoll_forget(t, fd, s);
    }
}

static int ioctl_int(int fd, unsigned long request)
{
    int v = 0;
    return ioctl(fd, request, &v) < 0 ? -1 : (v < 0 ? 0 : v);
}

/* Free bytes in the send buffer (SocketEntry.send_space: SO_SNDBUF - TIOCOUTQ, at least 1). */
static uint64_t send_space(int host)
{
    int queued = ioctl_int(host, TIOCOUTQ), sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    if (queued < 0 || getsockopt(host, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) < 0) return 1;
    return sndbuf - queued > 1 ? (uint64_t)(sndbuf - queued) : 1;
}

/* A handed listener: a connection pending at the source, or in the kernel's queue. */
static int listener_ready(sock_slot *s)
{
    PyObject *pending = PyObject_GetAttr(s->source, str_pending);
    if (pending == NULL) return -1;
    int more = PyObject_IsTrue(pending);
    Py_DECREF(pending);
    if (more != 0) return more;
    int host = sock_fd(s->sock);
    if (host < 0) return 0; /* the source stopped accepting */
    struct pollfd p = {.fd = host, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

static void put_event(const guest_mem *m, uint64_t at, uint64_t userdata, uint16_t error, uint8_t type,
                      uint64_t nbytes, uint16_t flags)
{
    uint8_t *p = m->base + at;
    memset(p, 0, EVENT_SIZE);
    memcpy(p, &userdata, 8);
    memcpy(p + 8, &error, 2);
    p[10] = type;
    memcpy(p + 16, &nbytes, 8);
    memcpy(p + 24, &flags, 2);
}

/* Write the events of what is ready now (python: collect), in subscription
 * order: their count, or -1 with an exception set. *earliest: the first
 * pending deadline (INT64_MAX: none); *listeners: whether a handed listener
 * is among the fds waited for. */
static int64_t collect(SockTableObject *t, const guest_mem *m, const poll_sub *subs, uint32_t n, uint32_t out,
                       int64_t now, int64_t fired_until, int64_t *earliest, bool *listeners)
{
    int64_t count = 0;
    *earliest = INT64_MAX;
    *listeners = false;
    for (uint32_t i = 0; i < n; i++) {
        const poll_sub *sub = &subs[i];
        uint64_t at = out + (uint64_t)count * EVENT_SIZE;
        if (sub->type == EVENTTYPE_CLOCK) {
            if (sub->deadline <= now || sub->deadline <= fired_until) {
                put_event(m, at, sub->userdata, WASI_SUCCESS, EVENTTYPE_CLOCK, 0, 0);
                count++;
            } else if (sub->deadline < *earliest) {
                *earliest = sub->deadline;
            }
            continue;
        }
        sock_slot *s = &t->slots[sub->fd];
        bool reading = sub->type == EVENTTYPE_FD_READ;
        if (s->kind == SLOT_LISTENER) {
            int ready = reading ? listener_ready(s) : 0;
            if (ready < 0) return -1;
            if (ready) {
                put_event(m, at, sub->userdata, WASI_SUCCESS, sub->type, 1, 0);
                count++;
            } else {
                *listeners = true;
            }
            continue;
        }
        uint32_t bits = s->ready & ((reading ? EP_READ : EP_WRITE) | EP_ALWAYS);
        if (!bits) continue;
        int host = sock_fd(s->sock);
        int readable = reading ? ioctl_int(host, FIONREAD) : 0;
        uint64_t nbytes = reading ? (uint64_t)(readable > 0 ? readable : 0) : send_space(host);
        put_event(m, at, sub->userdata, WASI_SUCCESS, sub->type, nbytes, bits & EPOLLHUP ? EVENTRWFLAG_HANGUP : 0);
        count++;
    }
    return count;
}

/* One look at the subscriptions: SOCKCALL_DONE (events written, result set),
 * SOCKCALL_LATER with *earliest (the first deadline; INT64_MAX: none) and
 * *listeners set when nothing is ready, SOCKCALL_FALLBACK, or SOCKCALL_ERROR. */
static int poll_scan(SockTableObject *t, uint64_t *args, int64_t mono, int64_t real, int64_t fired_until,
                     bool prepare_wait, int64_t *earliest, bool *listeners)
{
    uint32_t in = arg_u32(args, 0), out = arg_u32(args, 1), n = arg_u32(args, 2), nevents = arg_u32(args, 3);
    guest_mem m;
    if (n == 0 || !mem_of(t, &m)) return SOCKCALL_FALLBACK;
    if (!in_bounds(&m, out, (uint64_t)n * EVENT_SIZE) || !in_bounds(&m, nevents, 4) ||
        !in_bounds(&m, in, (uint64_t)n * SUBSCRIPTION_SIZE))
        return SOCKCALL_FALLBACK;
    poll_sub small[16], *subs = small;
    if (n > 16 && (subs = PyMem_Malloc(sizeof *subs * n)) == NULL) {
        PyErr_NoMemory();
        return SOCKCALL_ERROR;
    }
    int rc = SOCKCALL_FALLBACK;
    if (!decode_plan(t, &m, in, n, mono, real, subs)) goto done;
    if (register_wants(t, subs, n) < 0 || harvest(t) < 0) goto done; /* EMFILE...: Python's poll decides */
    int64_t count = collect(t, &m, subs, n, out, clock_ns(CLOCK_MONOTONIC), fired_until, earliest, listeners);
    if (count < 0) {
        rc = SOCKCALL_ERROR;
    } else if (count > 0) {
        store_u32(&m, nevents, (uint32_t)count);
        set_result(args, WASI_SUCCESS);
        rc = SOCKCALL_DONE;
    } else {
        if (prepare_wait) unregister_unwanted(t);
        rc = SOCKCALL_LATER;
    }
done:
    if (subs != small) PyMem_Free(subs);
    return rc;
}

static int do_poll(SockTableObject *t, uint64_t *args, PyObject **later)
{
    int64_t mono = clock_ns(CLOCK_MONOTONIC), real = clock_ns(CLOCK_REALTIME), earliest;
    bool listeners;
    int rc = poll_scan(t, args, mono, real, INT64_MIN, true, &earliest, &listeners);
    if (rc != SOCKCALL_LATER) return rc;
    /* poll_wait((subscriptions, events, nsubscriptions, nevents), start, earliest, listeners):
     * called once per wait, so without a format string to parse */
    PyObject *call[4] = {
        Py_BuildValue("(IIII)", arg_u32(args, 0), arg_u32(args, 1), arg_u32(args, 2), arg_u32(args, 3)),
        Py_BuildValue("(LL)", (long long)mono, (long long)real),
        earliest == INT64_MAX ? Py_NewRef(Py_None) : PyLong_FromLongLong(earliest),
        Py_NewRef(listeners ? Py_True : Py_False),
    };
    *later = call[0] && call[1] && call[2] ? PyObject_Vectorcall(t->poll_wait, call, 4, NULL) : NULL;
    for (int i = 0; i < 4; i++) Py_XDECREF(call[i]);
    return *later != NULL ? SOCKCALL_LATER : SOCKCALL_ERROR;
}

static PyObject *SockTable_poll_scan(SockTableObject *t, PyObject *const *pyargs, Py_ssize_t nargs)
{
    /* poll_scan(args, start, fired_until) -> True (events written, SUCCESS),
     * False (nothing ready yet) or None (Python's poll_oneoff must decide);
     * the waits of fastpath.py call it after every wake-up. */
    if (check_nargs("poll_scan", nargs, 3, 3) < 0) return NULL;
    uint64_t args[4];
    long long mono, real, fired = INT64_MIN;
    if (!PyArg_ParseTuple(pyargs[0], "IIII", (unsigned *)&args[0], (unsigned *)&args[1], (unsigned *)&args[2],
                          (unsigned *)&args[3]))
        return NULL;
    for (int i = 0; i < 4; i++) args[i] = (uint32_t)args[i];
    if (!PyArg_ParseTuple(pyargs[1], "LL", &mono, &real)) return NULL;
    if (pyargs[2] != Py_None && (fired = PyLong_AsLongLong(pyargs[2])) == -1 && PyErr_Occurred()) return NULL;
    int64_t earliest;
    bool listeners;
    int rc = poll_scan(t, args, mono, real, fired, false, &earliest, &listeners);
    if (rc == SOCKCALL_ERROR) return NULL;
    if (rc == SOCKCALL_FALLBACK) Py_RETURN_NONE;
    return PyBool_FromLong(rc == SOCKCALL_DONE);
}

static PyObject *SockTable_answer_times(PyObject *Py_UNUSED(cls), PyObject *on)
{
    int flag = PyObject_IsTrue(on);
    if (flag < 0) return NULL;
    PyObject *counts = PyTuple_New(ANSWER_BUCKETS);
    if (counts == NULL) return NULL;
    for (int i = 0; i < ANSWER_BUCKETS; i++) {
        PyObject *n = PyLong_FromUnsignedLongLong(answer_counts[i]);
        if (n == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyTuple_SET_ITEM(counts, i, n);
    }
    memset(answer_counts, 0, sizeof answer_counts);
    answers_on = flag;
    answers_period++;
    return counts;
}

#endif /* __linux__ */

/* ---- SockCall --------------------------------------------------------------------------------- */

int sockcall_run(PyObject *callobj, uint64_t *args, PyObject **later)
{
#ifdef __linux__
    SockCallObject *call = (SockCallObject *)callobj;
    SockTableObject *t = call->table;
    switch (call->kind) {
    case SOCK_CALL_RECV: /* (fd, ri_data, ri_data_len, ri_flags, ro_datalen, ro_flags) */
        return do_recv(t, args, arg_u32(args, 0), arg_u32(args, 1), arg_u32(args, 2), arg_u32(args, 3),
                       arg_u32(args, 4), arg_u32(args, 5));
    case SOCK_CALL_FD_READ: /* (fd, iovs, iovs_len, nread) */
        return do_recv(t, args, arg_u32(args, 0), arg_u32(args, 1), arg_u32(args, 2), 0, arg_u32(args, 3),
                       ~UINT64_C(0));
    case SOCK_CALL_SEND: /* (fd, si_data, si_data_len, si_flags, so_datalen) */
        return do_send(t, args, arg_u32(args, 0), arg_u32(args, 1), arg_u32(args, 2), arg_u32(args, 4), later);
    case SOCK_CALL_FD_WRITE: /* (fd, iovs, iovs_len, nwritten) */
        return do_send(t, args, arg_u32(args, 0), arg_u32(args, 1), arg_u32(args, 2), arg_u32(args, 3), later);
    case SOCK_CALL_POLL: /* (subscriptions, events, nsubscriptions, nevents) */
        return do_poll(t, args, later);
    }
#else
    (void)callobj;
    (void)args;
    (void)later;
#endif
    return SOCKCALL_FALLBACK;
}

static PyObject *SockCall_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(((SockCallObject *)self)->fallback, args, nargsf, kwnames);
}

static PyObject *SockCall_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"kind", "table", "fallback", NULL};
    int kind;
    PyObject *table, *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iO!O:SockCall", kwlist, &kind, &SockTable_Type, &table,
                                     &fallback))
        return NULL;
    if (kind < 0 || kind >= SOCK_CALL__COUNT) return PyErr_Format(PyExc_ValueError, "unknown SockCall kind %d", kind);
    if (!PyCallable_Check(fallback)) return PyErr_Format(PyExc_TypeError, "SockCall needs a callable fallback");
    SockCallObject *self = (SockCallObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = SockCall_vectorcall;
    self->kind = kind;
    self->table = (SockTableObject *)Py_NewRef(table);
    self->fallback = Py_NewRef(fallback);
    return (PyObject *)self;
}

static int SockCall_traverse(SockCallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->table);
    Py_VISIT(self->fallback);
    return 0;
}

static int SockCall_clear(SockCallObject *self)
{
    Py_CLEAR(self->table);
    Py_CLEAR(self->fallback);
    return 0;
}

static void SockCall_dealloc(SockCallObject *self)
{
    PyObject_GC_UnTrack(self);
    SockCall_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SockCall_getattro(PyObject *self, PyObject *name)
{
    /* __name__, __qualname__, __doc__...: the Python function's (errors and traces name it) */
    PyObject *found = PyObject_GenericGetAttr(self, name);
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) return found;
    PyErr_Clear();
    SockCallObject *call = (SockCallObject *)self;
    if (call->fallback == NULL) return PyErr_Format(PyExc_AttributeError, "cleared SockCall");
    return PyObject_GetAttr(call->fallback, name);
}

static PyObject *SockCall_get_fallback(SockCallObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->fallback != NULL ? self->fallback : Py_None);
}

static PyGetSetDef SockCall_getset[] = {
    {"fallback", (getter)SockCall_get_fallback, NULL, "the Python function", NULL},
    {NULL},
};

PyTypeObject SockCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm._engine.SockCall",
    .tp_doc = "SockCall(kind, table, fallback): a WASI socket function with a C fast path "
              "(wasi_sock.c); from Python, calling it calls `fallback`.",
    .tp_basicsize = sizeof(SockCallObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SockCallObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = SockCall_new,
    .tp_traverse = (traverseproc)SockCall_traverse,
    .tp_clear = (inquiry)SockCall_clear,
    .tp_dealloc = (destructor)SockCall_dealloc,
    .tp_getattro = SockCall_getattro,
    .tp_getset = SockCall_getset,
};

static PyMethodDef SockTable_methods[] = {
    {"install", (PyCFunction)(void (*)(void))SockTable_install, METH_FASTCALL,
     "install(fd, sock, rights, fdflags, stream, source=None): mirror a socket entry (source: a handed listener)"},
    {"update", (PyCFunction)(void (*)(void))SockTable_update, METH_FASTCALL,
     "update(fd, rights, fdflags): the entry's rights or flags changed"},
    {"remove", (PyCFunction)SockTable_remove, METH_O,
     "remove(fd) -> (received, sent): forget the fd (before its socket closes); the bytes C moved"},
    {"counts", (PyCFunction)SockTable_counts, METH_O, "counts(fd) -> (received, sent) moved through C so far"},
    {"clear", (PyCFunction)SockTable_clear, METH_NOARGS, "forget every fd"},
    {"bind_memory", (PyCFunction)SockTable_bind_memory, METH_O, "bind_memory(memory or None)"},
    {"close_epoll", (PyCFunction)SockTable_close_epoll, METH_NOARGS,
     "close the epoll set (after trio.lowlevel.notify_closing on epoll_fd)"},
#ifdef __linux__
    {"answer_times", (PyCFunction)SockTable_answer_times, METH_O | METH_STATIC,
     "answer_times(on) -> counts: turn the answer-time histogram on or off; its counts so far, emptied "
     "(fastpath.answer_times)"},
    {"poll_scan", (PyCFunction)(void (*)(void))SockTable_poll_scan, METH_FASTCALL,
     "poll_scan(args, start, fired_until) -> True (done), False (not ready) or None (ask Python)"},
#endif
    {"configure", (PyCFunction)(void (*)(void))SockTable_configure, METH_FASTCALL | METH_STATIC,
     "configure(errno_map, probe_socket) -> whether the C path works on this platform"},
    {NULL},
};

static PyGetSetDef SockTable_getset[] = {
    {"epoll_fd", (getter)SockTable_get_epoll_fd, NULL, "the epoll set's fd (-1: none)", NULL},
    {"idle", (getter)SockTable_get_idle, NULL, "an epoll set is open with nothing registered", NULL},
    {NULL},
};

PyTypeObject SockTable_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asyncwasm._engine.SockTable",
    .tp_doc = "SockTable(poll_wait, send_rest): the C mirror of one WASI context's socket fds "
              "(asyncwasm/wasi/fastpath.py).",
    .tp_basicsize = sizeof(SockTableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_weaklistoffset = offsetof(SockTableObject, weakrefs),
    .tp_new = SockTable_new,
    .tp_init = (initproc)SockTable_init,
    .tp_traverse = (traverseproc)SockTable_traverse,
    .tp_clear = (inquiry)SockTable_tp_clear,
    .tp_dealloc = (destructor)SockTable_dealloc,
    .tp_methods = SockTable_methods,
    .tp_getset = SockTable_getset,
};
