/*
 * netio.c: the thin socket layer of the netmods guests (see netio.h).
 */
#include "netio.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Preview1 errno names in numbering order (witx typenames.witx), then WasmEdge's. */
static const char *const ERRNO_NAMES[] = {
    "SUCCESS", "2BIG", "ACCES", "ADDRINUSE", "ADDRNOTAVAIL", "AFNOSUPPORT", "AGAIN",
    "ALREADY", "BADF", "BADMSG", "BUSY", "CANCELED", "CHILD", "CONNABORTED", "CONNREFUSED",
    "CONNRESET", "DEADLK", "DESTADDRREQ", "DOM", "DQUOT", "EXIST", "FAULT", "FBIG",
    "HOSTUNREACH", "IDRM", "ILSEQ", "INPROGRESS", "INTR", "INVAL", "IO", "ISCONN", "ISDIR",
    "LOOP", "MFILE", "MLINK", "MSGSIZE", "MULTIHOP", "NAMETOOLONG", "NETDOWN", "NETRESET",
    "NETUNREACH", "NFILE", "NOBUFS", "NODEV", "NOENT", "NOEXEC", "NOLCK", "NOLINK", "NOMEM",
    "NOMSG", "NOPROTOOPT", "NOSPC", "NOSYS", "NOTCONN", "NOTDIR", "NOTEMPTY",
    "NOTRECOVERABLE", "NOTSOCK", "NOTSUP", "NOTTY", "NXIO", "OVERFLOW", "OWNERDEAD", "PERM",
    "PIPE", "PROTO", "PROTONOSUPPORT", "PROTOTYPE", "RANGE", "ROFS", "SPIPE", "SRCH", "STALE",
    "TIMEDOUT", "TXTBSY", "XDEV", "NOTCAPABLE",
    /* WasmEdge getaddrinfo extensions, 77..87 */
    "AIADDRFAMILY", "AIAGAIN", "AIBADFLAG", "AIFAIL", "AIFAMILY", "AIMEMORY", "AINODATA",
    "AINONAME", "AISERVICE", "AISOCKTYPE", "AISYSTEM",
};

/* Userdata tags of netio_wait's two subscriptions. */
enum { WAIT_TAG_FD = 1, WAIT_TAG_CLOCK = 2 };

const char *netio_errno_name(uint32_t err)
{
    if (err < sizeof ERRNO_NAMES / sizeof ERRNO_NAMES[0])
        return ERRNO_NAMES[err];
    return "UNKNOWN";
}

static void write_stderr(const char *s, size_t n)
{
    while (n > 0) {
        __wasi_ciovec_t iov = {(const uint8_t *)s, (__wasi_size_t)n};
        __wasi_size_t done = 0;
        if (__wasi_fd_write(2, &iov, 1, &done) != __WASI_ERRNO_SUCCESS || done == 0)
            return;
        s += done;
        n -= done;
    }
}

void netio_log(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s != NULL; s = va_arg(ap, const char *))
        write_stderr(s, strlen(s));
    va_end(ap);
    write_stderr("\n", 1);
}

static const char *format_u32(char *out, uint32_t v)
{
    char tmp[10];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return out;
}

void netio_log_errno(const char *who, const char *what, uint32_t err)
{
    char num[11];
    netio_log(who, ": ", what, ": errno ", format_u32(num, err), " (", netio_errno_name(err), ")",
              NULL);
}

bool netio_env_u32(const char *name, uint32_t min, uint32_t max, uint32_t fallback,
                   uint32_t *out)
{
    const char *v = getenv(name);
    uint64_t acc = 0;

    if (v == NULL || *v == '\0') {
        *out = fallback;
        return true;
    }
    for (const char *p = v; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        acc = acc * 10 + (uint64_t)(*p - '0');
        if (acc > max)
            return false;
    }
    if (acc < min)
        return false;
    *out = (uint32_t)acc;
    return true;
}

bool netio_load_server_config(struct http_server_config *cfg, const char *who)
{
    http_server_config_default(cfg);
    if (!netio_env_u32("HTTP_IDLE_TIMEOUT_MS", 1, 86400000, cfg->idle_timeout_ms,
                       &cfg->idle_timeout_ms)) {
        netio_log(who, ": HTTP_IDLE_TIMEOUT_MS must be a number of ms in 1..86400000", NULL);
        return false;
    }
    return true;
}

static bool is_stream_socket(__wasi_fd_t fd, __wasi_errno_t *err)
{
    __wasi_fdstat_t st;
    *err = __wasi_fd_fdstat_get(fd, &st);
    return *err == __WASI_ERRNO_SUCCESS && st.fs_filetype == __WASI_FILETYPE_SOCKET_STREAM;
}

bool netio_find_listener(__wasi_fd_t *fd, const char **why)
{
    /* Hosts pre-open directories first, then listeners; 4096 bounds a broken scan. */
    enum { FIRST_FD = 3, SCAN_LIMIT = 4096 };
    uint32_t env_fd;
    __wasi_errno_t err;

    if (!netio_env_u32("LISTEN_FD", 0, 0x7fffffff, UINT32_MAX, &env_fd)) {
        *why = "LISTEN_FD is not a valid fd number";
        return false;
    }
    if (env_fd != UINT32_MAX) {
        if (!is_stream_socket(env_fd, &err)) {
            *why = err == __WASI_ERRNO_SUCCESS ? "LISTEN_FD is not a stream socket"
                                               : "LISTEN_FD is not an open fd";
            return false;
        }
        *fd = env_fd;
        return true;
    }
    for (__wasi_fd_t candidate = FIRST_FD; candidate < SCAN_LIMIT; candidate++) {
        if (is_stream_socket(candidate, &err)) {
            *fd = candidate;
            return true;
        }
        if (err == __WASI_ERRNO_BADF)
            break;
    }
    *why = "no pre-opened listening socket (no stream socket among fds 3.., and LISTEN_FD unset)";
    return false;
}

static void set_clock_subscription(__wasi_subscription_t *sub, uint64_t timeout_ns)
{
    memset(sub, 0, sizeof *sub);
    sub->userdata = WAIT_TAG_CLOCK;
    sub->u.tag = __WASI_EVENTTYPE_CLOCK;
    sub->u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    sub->u.u.clock.timeout = timeout_ns;
    sub->u.u.clock.precision = 0;
    sub->u.u.clock.flags = 0; /* relative */
}

__wasi_errno_t netio_wait(__wasi_fd_t fd, bool for_write, int64_t timeout_ms)
{
    __wasi_subscription_t subs[2];
    __wasi_event_t events[2];
    __wasi_size_t nsubs = 1, nevents = 0;
    __wasi_errno_t err;

    memset(&subs[0], 0, sizeof subs[0]);
    subs[0].userdata = WAIT_TAG_FD;
    if (for_write) {
        subs[0].u.tag = __WASI_EVENTTYPE_FD_WRITE;
        subs[0].u.u.fd_write.file_descriptor = fd;
    } else {
        subs[0].u.tag = __WASI_EVENTTYPE_FD_READ;
        subs[0].u.u.fd_read.file_descriptor = fd;
    }
    if (timeout_ms >= 0)
        set_clock_subscription(&subs[nsubs++], (uint64_t)timeout_ms * 1000000u);

    do {
        err = __wasi_poll_oneoff(subs, events, nsubs, &nevents);
    } while (err == __WASI_ERRNO_INTR);
    if (err != __WASI_ERRNO_SUCCESS)
        return err;
    for (__wasi_size_t i = 0; i < nevents && i < 2; i++) {
        if (events[i].userdata == WAIT_TAG_FD)
            return events[i].error;
    }
    return nevents > 0 ? __WASI_ERRNO_TIMEDOUT : __WASI_ERRNO_AGAIN;
}

void netio_sleep_ms(uint32_t ms)
{
    __wasi_subscription_t sub;
    __wasi_event_t ev;
    __wasi_size_t nevents = 0;
    set_clock_subscription(&sub, (uint64_t)ms * 1000000u);
    (void)__wasi_poll_oneoff(&sub, &ev, 1, &nevents);
}

__wasi_errno_t netio_recv(__wasi_fd_t fd, uint8_t *buf, size_t cap, size_t *n)
{
    __wasi_iovec_t iov = {buf, (__wasi_size_t)(cap > UINT32_MAX ? UINT32_MAX : cap)};
    __wasi_size_t got = 0;
    __wasi_roflags_t roflags = 0;
    __wasi_errno_t err;

    do {
        err = __wasi_sock_recv(fd, &iov, 1, 0, &got, &roflags);
    } while (err == __WASI_ERRNO_INTR);
    *n = err == __WASI_ERRNO_SUCCESS ? got : 0;
    return err;
}

__wasi_errno_t netio_send2(__wasi_fd_t fd, const uint8_t *a, size_t alen, const uint8_t *b,
                           size_t blen, size_t *n)
{
    __wasi_ciovec_t iov[2];
    __wasi_size_t count = 0, sent = 0;
    __wasi_errno_t err;

    if (alen > 0)
        iov[count++] = (__wasi_ciovec_t){a, (__wasi_size_t)alen};
    if (blen > 0)
        iov[count++] = (__wasi_ciovec_t){b, (__wasi_size_t)blen};
    if (count == 0) {
        *n = 0;
        return __WASI_ERRNO_SUCCESS;
    }
    do {
        err = __wasi_sock_send(fd, iov, count, 0, &sent);
    } while (err == __WASI_ERRNO_INTR);
    *n = err == __WASI_ERRNO_SUCCESS ? sent : 0;
    return err;
}

uint64_t netio_now_ns(void)
{
    __wasi_timestamp_t t = 0;
    if (__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1000000, &t) != __WASI_ERRNO_SUCCESS)
        return 0;
    return t;
}

bool netio_accept_error_is_transient(__wasi_errno_t err)
{
    switch (err) {
    case __WASI_ERRNO_AGAIN:
    case __WASI_ERRNO_INTR:
    case __WASI_ERRNO_CONNABORTED:
    case __WASI_ERRNO_CONNRESET:
    case __WASI_ERRNO_MFILE:
    case __WASI_ERRNO_NFILE:
    case __WASI_ERRNO_NOBUFS:
    case __WASI_ERRNO_NOMEM:
    case __WASI_ERRNO_PERM: /* e.g. a firewall or policy refusing one peer */
    case __WASI_ERRNO_PROTO:
        return true;
    default:
        return false;
    }
}
