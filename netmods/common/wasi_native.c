/*
 * wasi_native.c: the WASI preview1 calls (and the WasmEdge socket calls) the
 * netmods guests make, implemented over POSIX for native test builds.
 *
 * A guest fd is the host fd. Semantics follow sockets-abi.md: sock_accept's
 * NONBLOCK flag makes the accepted socket non-blocking; sends never raise
 * SIGPIPE; poll_oneoff reports per-subscription failures in event.error and
 * only writes the events that happened; relative clock timeouts are in ns.
 */
#define _GNU_SOURCE
#include "wasi_native.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "wasmedge_sock.h"

/* At most this many iovecs per call, like WasmEdge's kIOVMax. */
#define NATIVE_IOV_MAX 1024
/* At most this many subscriptions per poll_oneoff. */
#define NATIVE_POLL_MAX 8192

__wasi_errno_t wasi_native_errno(int e)
{
    switch (e) {
    case 0: return __WASI_ERRNO_SUCCESS;
    case EACCES: return __WASI_ERRNO_ACCES;
    case EADDRINUSE: return __WASI_ERRNO_ADDRINUSE;
    case EADDRNOTAVAIL: return __WASI_ERRNO_ADDRNOTAVAIL;
    case EAFNOSUPPORT: return __WASI_ERRNO_AFNOSUPPORT;
    case EAGAIN: return __WASI_ERRNO_AGAIN;
    case EALREADY: return __WASI_ERRNO_ALREADY;
    case EBADF: return __WASI_ERRNO_BADF;
    case ECONNABORTED: return __WASI_ERRNO_CONNABORTED;
    case ECONNREFUSED: return __WASI_ERRNO_CONNREFUSED;
    case ECONNRESET: return __WASI_ERRNO_CONNRESET;
    case EFAULT: return __WASI_ERRNO_FAULT;
    case EHOSTUNREACH: return __WASI_ERRNO_HOSTUNREACH;
    case EINPROGRESS: return __WASI_ERRNO_INPROGRESS;
    case EINTR: return __WASI_ERRNO_INTR;
    case EINVAL: return __WASI_ERRNO_INVAL;
    case EISCONN: return __WASI_ERRNO_ISCONN;
    case EMFILE: return __WASI_ERRNO_MFILE;
    case ENETDOWN: return __WASI_ERRNO_NETDOWN;
    case ENETRESET: return __WASI_ERRNO_NETRESET;
    case ENETUNREACH: return __WASI_ERRNO_NETUNREACH;
    case ENFILE: return __WASI_ERRNO_NFILE;
    case ENOBUFS: return __WASI_ERRNO_NOBUFS;
    case ENOENT: return __WASI_ERRNO_NOENT;
    case ENOMEM: return __WASI_ERRNO_NOMEM;
    case ENOSYS: return __WASI_ERRNO_NOSYS;
    case ENOTCONN: return __WASI_ERRNO_NOTCONN;
    case ENOTSOCK: return __WASI_ERRNO_NOTSOCK;
    case EOPNOTSUPP: return __WASI_ERRNO_NOTSUP;
    case EPERM: return __WASI_ERRNO_PERM;
    case EPIPE: return __WASI_ERRNO_PIPE;
    case ETIMEDOUT: return __WASI_ERRNO_TIMEDOUT;
    default: return __WASI_ERRNO_IO;
    }
}

static __wasi_errno_t last_error(void)
{
    return wasi_native_errno(errno);
}

__wasi_errno_t __wasi_fd_close(__wasi_fd_t fd)
{
    return close((int)fd) == 0 ? __WASI_ERRNO_SUCCESS : last_error();
}

__wasi_errno_t __wasi_fd_fdstat_get(__wasi_fd_t fd, __wasi_fdstat_t *stat)
{
    struct stat st;
    int flags;

    if (fd > INT_MAX || fstat((int)fd, &st) != 0)
        return last_error();
    memset(stat, 0, sizeof *stat);
    if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
            stat->fs_filetype = type == SOCK_STREAM ? __WASI_FILETYPE_SOCKET_STREAM
                                                    : __WASI_FILETYPE_SOCKET_DGRAM;
    }
    flags = fcntl((int)fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK))
        stat->fs_flags |= __WASI_FDFLAGS_NONBLOCK;
    stat->fs_rights_base = UINT64_MAX;
    stat->fs_rights_inheriting = UINT64_MAX;
    return __WASI_ERRNO_SUCCESS;
}

__wasi_errno_t __wasi_fd_fdstat_set_flags(__wasi_fd_t fd, __wasi_fdflags_t flags)
{
    int current = fcntl((int)fd, F_GETFL);
    if (current < 0)
        return last_error();
    current = (flags & __WASI_FDFLAGS_NONBLOCK) ? current | O_NONBLOCK : current & ~O_NONBLOCK;
    return fcntl((int)fd, F_SETFL, current) == 0 ? __WASI_ERRNO_SUCCESS : last_error();
}

__wasi_errno_t __wasi_fd_write(__wasi_fd_t fd, const __wasi_ciovec_t *iovs, size_t iovs_len,
                               __wasi_size_t *nwritten)
{
    size_t total = 0;
    for (size_t i = 0; i < iovs_len; i++) {
        ssize_t n = write((int)fd, iovs[i].buf, iovs[i].buf_len);
        if (n < 0)
            return last_error();
        total += (size_t)n;
        if ((size_t)n < iovs[i].buf_len)
            break;
    }
    *nwritten = (__wasi_size_t)total;
    return __WASI_ERRNO_SUCCESS;
}

__wasi_errno_t __wasi_clock_time_get(__wasi_clockid_t id, __wasi_timestamp_t precision,
                                     __wasi_timestamp_t *time)
{
    struct timespec ts;
    (void)precision;
    if (clock_gettime(id == __WASI_CLOCKID_MONOTONIC ? CLOCK_MONOTONIC : CLOCK_REALTIME, &ts) != 0)
        return last_error();
    *time = (__wasi_timestamp_t)ts.tv_sec * 1000000000u + (__wasi_timestamp_t)ts.tv_nsec;
    return __WASI_ERRNO_SUCCESS;
}

/* The poll() timeout in ms for a clock subscription (rounded up). */
static int clock_timeout_ms(const __wasi_subscription_clock_t *clk)
{
    __wasi_timestamp_t rel = clk->timeout;
    if (clk->flags & __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME) {
        __wasi_timestamp_t now = 0;
        if (__wasi_clock_time_get(clk->id, 0, &now) != __WASI_ERRNO_SUCCESS)
            return 0;
        rel = clk->timeout > now ? clk->timeout - now : 0;
    }
    rel = (rel + 999999u) / 1000000u;
    return rel > INT_MAX ? INT_MAX : (int)rel;
}

static void fill_fd_event(__wasi_event_t *ev, const __wasi_subscription_t *sub,
                          const struct pollfd *pfd)
{
    memset(ev, 0, sizeof *ev);
    ev->userdata = sub->userdata;
    ev->type = sub->u.tag;
    if (pfd->revents & POLLNVAL) {
        ev->error = __WASI_ERRNO_BADF;
        return;
    }
    if (pfd->revents & POLLHUP)
        ev->fd_readwrite.flags = __WASI_EVENTRWFLAGS_FD_READWRITE_HANGUP;
    if (sub->u.tag == __WASI_EVENTTYPE_FD_READ) {
        int avail = 0;
        if (ioctl(pfd->fd, FIONREAD, &avail) == 0 && avail > 0)
            ev->fd_readwrite.nbytes = (__wasi_filesize_t)avail;
    } else {
        ev->fd_readwrite.nbytes = 1;
    }
}

__wasi_errno_t __wasi_poll_oneoff(const __wasi_subscription_t *in, __wasi_event_t *out,
                                  __wasi_size_t nsubscriptions, __wasi_size_t *nevents)
{
    struct pollfd *pfds;
    int timeout = -1, rc;
    __wasi_size_t n = 0;

    if (nsubscriptions == 0 || nsubscriptions > NATIVE_POLL_MAX)
        return __WASI_ERRNO_INVAL;
    pfds = calloc(nsubscriptions, sizeof *pfds);
    if (pfds == NULL)
        return __WASI_ERRNO_NOMEM;
    for (__wasi_size_t i = 0; i < nsubscriptions; i++) {
        pfds[i].fd = -1;
        if (in[i].u.tag == __WASI_EVENTTYPE_CLOCK) {
            int t = clock_timeout_ms(&in[i].u.u.clock);
            if (timeout < 0 || t < timeout)
                timeout = t;
        } else if (in[i].u.tag == __WASI_EVENTTYPE_FD_READ) {
            pfds[i].fd = (int)in[i].u.u.fd_read.file_descriptor;
            pfds[i].events = POLLIN;
        } else if (in[i].u.tag == __WASI_EVENTTYPE_FD_WRITE) {
            pfds[i].fd = (int)in[i].u.u.fd_write.file_descriptor;
            pfds[i].events = POLLOUT;
        } else {
            free(pfds);
            return __WASI_ERRNO_INVAL;
        }
    }
    do {
        rc = poll(pfds, nsubscriptions, timeout);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        __wasi_errno_t err = last_error();
        free(pfds);
        return err;
    }
    for (__wasi_size_t i = 0; i < nsubscriptions; i++) {
        if (in[i].u.tag == __WASI_EVENTTYPE_CLOCK) {
            if (rc == 0) {
                memset(&out[n], 0, sizeof out[n]);
                out[n].userdata = in[i].userdata;
                out[n].type = __WASI_EVENTTYPE_CLOCK;
                n++;
            }
        } else if (pfds[i].revents != 0) {
            fill_fd_event(&out[n++], &in[i], &pfds[i]);
        }
    }
    free(pfds);
    *nevents = n;
    return __WASI_ERRNO_SUCCESS;
}

__wasi_errno_t __wasi_sock_accept(__wasi_fd_t fd, __wasi_fdflags_t flags, __wasi_fd_t *newfd)
{
    int type = SOCK_CLOEXEC | ((flags & __WASI_FDFLAGS_NONBLOCK) ? SOCK_NONBLOCK : 0);
    int s = accept4((int)fd, NULL, NULL, type);
    if (s < 0)
        return last_error();
    *newfd = (__wasi_fd_t)s;
    return __WASI_ERRNO_SUCCESS;
}

__wasi_errno_t __wasi_sock_recv(__wasi_fd_t fd, const __wasi_iovec_t *ri_data, size_t ri_data_len,
                                __wasi_riflags_t ri_flags, __wasi_size_t *nread,
                                __wasi_roflags_t *roflags)
{
    struct iovec iov[NATIVE_IOV_MAX];
    struct msghdr msg;
    ssize_t n;

    if (ri_data_len > NATIVE_IOV_MAX || (ri_flags & ~3u) != 0)
        return __WASI_ERRNO_INVAL;
    for (size_t i = 0; i < ri_data_len; i++)
        iov[i] = (struct iovec){ri_data[i].buf, ri_data[i].buf_len};
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = ri_data_len;
    n = recvmsg((int)fd, &msg, ((ri_flags & 1) ? MSG_PEEK : 0) | ((ri_flags & 2) ? MSG_WAITALL : 0));
    if (n < 0)
        return last_error();
    *nread = (__wasi_size_t)n;
    *roflags = 0;
    return __WASI_ERRNO_SUCCESS;
}

__wasi_errno_t __wasi_sock_send(__wasi_fd_t fd, const __wasi_ciovec_t *si_data, size_t si_data_len,
                                __wasi_siflags_t si_flags, __wasi_size_t *nsent)
{
    struct iovec iov[NATIVE_IOV_MAX];
    struct msghdr msg;
    ssize_t n;

    if (si_data_len > NATIVE_IOV_MAX || si_flags != 0)
        return __WASI_ERRNO_INVAL;
    for (size_t i = 0; i < si_data_len; i++)
        iov[i] = (struct iovec){(void *)(uintptr_t)si_data[i].buf, si_data[i].buf_len};
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = si_data_len;
    n = sendmsg((int)fd, &msg, MSG_NOSIGNAL);
    if (n < 0)
        return last_error();
    *nsent = (__wasi_size_t)n;
    return __WASI_ERRNO_SUCCESS;
}

__wasi_errno_t __wasi_sock_shutdown(__wasi_fd_t fd, __wasi_sdflags_t how)
{
    int h;
    switch (how) {
    case __WASI_SDFLAGS_RD: h = SHUT_RD; break;
    case __WASI_SDFLAGS_WR: h = SHUT_WR; break;
    case __WASI_SDFLAGS_RD | __WASI_SDFLAGS_WR: h = SHUT_RDWR; break;
    default: return __WASI_ERRNO_INVAL;
    }
    return shutdown((int)fd, h) == 0 ? __WASI_ERRNO_SUCCESS : last_error();
}

/* ------------------------------------------------------------------ */
/* WasmEdge socket extension (V1), IPv4 only like the crate's connect     */
/* ------------------------------------------------------------------ */

uint32_t wasmedge_sock_open(uint32_t address_family, uint32_t sock_type, uint32_t *fd)
{
    int af, type, s;
    if (address_family == WASMEDGE_AF_INET4)
        af = AF_INET;
    else if (address_family == WASMEDGE_AF_INET6)
        af = AF_INET6;
    else
        return __WASI_ERRNO_INVAL;
    if (sock_type == WASMEDGE_SOCK_STREAM)
        type = SOCK_STREAM;
    else if (sock_type == 1)
        type = SOCK_DGRAM;
    else
        return __WASI_ERRNO_INVAL;
    s = socket(af, type | SOCK_CLOEXEC, 0);
    if (s < 0)
        return last_error();
    *fd = (uint32_t)s;
    return __WASI_ERRNO_SUCCESS;
}

uint32_t wasmedge_sock_connect(uint32_t fd, wasmedge_address *addr, uint32_t port)
{
    struct sockaddr_in sin;
    if (addr->buf_len != 4)
        return __WASI_ERRNO_INVAL;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    memcpy(&sin.sin_addr, addr->buf, 4);
    return connect((int)fd, (struct sockaddr *)&sin, sizeof sin) == 0 ? __WASI_ERRNO_SUCCESS
                                                                     : last_error();
}

/* Copies one IPv4 result into a caller-provided entry, as WasmEdge does. */
static void fill_addrinfo(wasmedge_addrinfo *out, const struct addrinfo *ai)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
    wasmedge_sockaddr *sa = out->ai_addr;
    out->ai_family = WASMEDGE_AF_INET4;
    out->ai_socktype = WASMEDGE_SOCK_STREAM;
    out->ai_protocol = WASMEDGE_IPPROTO_TCP;
    out->ai_addrlen = 14;
    sa->sa_family = WASMEDGE_AF_INET4;
    if (sa->sa_data_len >= 14) {
        memset(sa->sa_data, 0, 14);
        memcpy(sa->sa_data, &sin->sin_port, 2);
        memcpy(sa->sa_data + 2, &sin->sin_addr, 4);
        sa->sa_data_len = 14;
    }
}

uint32_t wasmedge_sock_getaddrinfo(const char *node, uint32_t node_len, const char *service,
                                   uint32_t service_len, const wasmedge_addrinfo *hints,
                                   uintptr_t *res, uint32_t max_len, uint32_t *res_len)
{
    struct addrinfo h, *list = NULL, *ai;
    wasmedge_addrinfo *entry = (wasmedge_addrinfo *)*res;
    uint32_t count = 0;
    int rc;

    (void)hints;
    if (node_len == 0 || node[node_len - 1] != '\0' || service_len == 0 ||
        service[service_len - 1] != '\0')
        return __WASI_ERRNO_INVAL;
    if (max_len < 1)
        return 82; /* AIMEMORY */
    memset(&h, 0, sizeof h);
    h.ai_family = AF_INET;
    h.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(node, service_len > 1 ? service : NULL, &h, &list);
    if (rc != 0)
        return rc == EAI_NONAME ? 84 /* AINONAME */ : 80 /* AIFAIL */;
    for (ai = list; ai != NULL && entry != NULL && count < max_len; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET)
            continue;
        fill_addrinfo(entry, ai);
        entry = entry->ai_next;
        count++;
    }
    freeaddrinfo(list);
    *res_len = count;
    return __WASI_ERRNO_SUCCESS;
}
