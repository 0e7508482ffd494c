/*
 * http_server_poll: the same HTTP/1.1 service as http_server, but one
 * instance serves many connections at once with its own event loop:
 * non-blocking sockets and poll_oneoff over all of them.
 *
 * Strategy:
 *   - the listener is switched to non-blocking (fd_fdstat_set_flags) and
 *     connections are accepted with sock_accept(..., NONBLOCK, ...);
 *   - each round builds one subscription per connection, FD_READ or FD_WRITE
 *     as the connection wants (a connection is half-duplex: it reads a
 *     request, then writes the response), one FD_READ for the listener while
 *     there is room, and one relative MONOTONIC clock for the nearest
 *     deadline;
 *   - a ready connection is driven until its socket would block (AGAIN), at
 *     most OPS_PER_TURN steps so one busy peer cannot starve the others;
 *   - userdata carries the slot index and a generation, so an event for a
 *     slot that was closed and reused in the same round is ignored.
 *
 * Environment: LISTEN_FD, HTTP_IDLE_TIMEOUT_MS (as http_server), and
 * HTTP_MAX_CONNS (default 1024, at most 4096). Exit status: 2 for a
 * configuration error, 1 if the listener or poll_oneoff fails for good.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/http.h"
#include "../common/netio.h"

static const char WHO[] = "http_server_poll";

#define DEFAULT_MAX_CONNS 1024u
#define MAX_CONNS_LIMIT 4096u
/* Connections accepted per listener wake-up. */
#define ACCEPTS_PER_ROUND 64
/* I/O steps per connection per round. */
#define OPS_PER_TURN 32
/* Pause accepting this long when the host runs out of fds or memory. */
#define ACCEPT_BACKOFF_NS (100u * 1000000u)

/* Userdata tags above any slot reference. */
#define TAG_LISTENER UINT64_MAX
#define TAG_CLOCK (UINT64_MAX - 1)

struct slot {
    bool used;
    uint32_t generation;
    uint32_t active_pos;         /* index in g_active */
    __wasi_fd_t fd;
    uint64_t deadline_ns;
    struct http_conn conn;
};

static struct http_server_config g_cfg;
static struct http_server_stats g_stats;
static __wasi_fd_t g_listener;
static bool g_listener_nonblocking;
static uint64_t g_accept_resume_ns; /* accepting paused until then */
static uint64_t g_now;

static uint32_t g_max_conns;
static struct slot *g_slots;
static uint32_t *g_free;            /* stack of free slot indices */
static uint32_t g_nfree;
static uint32_t *g_active;          /* dense list of used slot indices */
static uint32_t g_nactive;
static __wasi_subscription_t *g_subs;
static __wasi_event_t *g_events;

static bool allocate_tables(void)
{
    size_t nsubs = (size_t)g_max_conns + 2;
    g_slots = calloc(g_max_conns, sizeof *g_slots);
    g_free = calloc(g_max_conns, sizeof *g_free);
    g_active = calloc(g_max_conns, sizeof *g_active);
    g_subs = calloc(nsubs, sizeof *g_subs);
    g_events = calloc(nsubs, sizeof *g_events);
    if (!g_slots || !g_free || !g_active || !g_subs || !g_events)
        return false;
    for (uint32_t i = 0; i < g_max_conns; i++)
        g_free[i] = g_max_conns - 1 - i; /* pop order 0, 1, 2, ... */
    g_nfree = g_max_conns;
    return true;
}

static uint64_t slot_tag(uint32_t index)
{
    return ((uint64_t)g_slots[index].generation << 32) | index;
}

static void touch(struct slot *s)
{
    s->deadline_ns = g_now + (uint64_t)http_conn_timeout_ms(&s->conn) * 1000000u;
}

static void close_slot(uint32_t index)
{
    struct slot *s = &g_slots[index];
    uint32_t last = g_active[g_nactive - 1];

    http_conn_free(&s->conn);
    (void)__wasi_fd_close(s->fd);
    g_active[s->active_pos] = last;
    g_slots[last].active_pos = s->active_pos;
    g_nactive--;
    s->used = false;
    s->generation++;
    g_free[g_nfree++] = index;
    g_stats.active--;
}

static bool drive_read(struct slot *s, bool *closed_or_blocked)
{
    size_t avail = 0, n = 0;
    uint8_t *space = http_conn_read_space(&s->conn, &avail);
    __wasi_errno_t err;

    if (space == NULL)
        return false;
    err = netio_recv(s->fd, space, avail, &n);
    if (err == __WASI_ERRNO_AGAIN) {
        *closed_or_blocked = true;
        return true;
    }
    if (err != __WASI_ERRNO_SUCCESS)
        return false;
    http_conn_on_read(&s->conn, n);
    return true;
}

static bool drive_write(struct slot *s, bool *blocked)
{
    struct http_iov iov[2];
    size_t count = http_conn_output(&s->conn, iov), n = 0;
    __wasi_errno_t err = netio_send2(s->fd, iov[0].base, count > 0 ? iov[0].len : 0,
                                     count > 1 ? iov[1].base : NULL, count > 1 ? iov[1].len : 0,
                                     &n);
    if (err == __WASI_ERRNO_AGAIN) {
        *blocked = true;
        return true;
    }
    if (err != __WASI_ERRNO_SUCCESS)
        return false;
    http_conn_on_written(&s->conn, n);
    return true;
}

/* Moves bytes for one connection until its socket would block. */
static void drive(uint32_t index)
{
    struct slot *s = &g_slots[index];
    bool ok = true, blocked = false;

    for (int ops = 0; ops < OPS_PER_TURN && ok && !blocked; ops++) {
        switch (http_conn_want(&s->conn)) {
        case HTTP_WANT_READ:
            ok = drive_read(s, &blocked);
            break;
        case HTTP_WANT_WRITE:
            ok = drive_write(s, &blocked);
            break;
        case HTTP_WANT_SHUTDOWN:
            (void)__wasi_sock_shutdown(s->fd, __WASI_SDFLAGS_WR);
            http_conn_on_shutdown(&s->conn);
            break;
        case HTTP_WANT_CLOSE:
        default:
            ok = false;
            break;
        }
        if (ok && !blocked)
            touch(s);
    }
    if (!ok)
        close_slot(index);
}

static void open_slot(__wasi_fd_t fd)
{
    uint32_t index = g_free[--g_nfree];
    struct slot *s = &g_slots[index];

    s->used = true;
    s->fd = fd;
    s->active_pos = g_nactive;
    g_active[g_nactive++] = index;
    http_conn_init(&s->conn, &g_cfg, &g_stats);
    touch(s);
    g_stats.connections++;
    g_stats.active++;
    drive(index); /* the request often arrives with the connection */
}

/* Accepts what is pending. Returns false if the listener is unusable. */
static bool accept_pending(void)
{
    int limit = g_listener_nonblocking ? ACCEPTS_PER_ROUND : 1;

    for (int i = 0; i < limit && g_nactive < g_max_conns; i++) {
        __wasi_fd_t fd;
        __wasi_errno_t err = __wasi_sock_accept(g_listener, __WASI_FDFLAGS_NONBLOCK, &fd);
        if (err == __WASI_ERRNO_SUCCESS) {
            open_slot(fd);
            continue;
        }
        if (err == __WASI_ERRNO_AGAIN)
            return true;
        if (!netio_accept_error_is_transient(err)) {
            netio_log_errno(WHO, "accept on the listening socket failed", err);
            return false;
        }
        if (err == __WASI_ERRNO_MFILE || err == __WASI_ERRNO_NFILE ||
            err == __WASI_ERRNO_NOBUFS || err == __WASI_ERRNO_NOMEM) {
            g_accept_resume_ns = g_now + ACCEPT_BACKOFF_NS;
            return true;
        }
    }
    return true;
}

static void add_fd_subscription(size_t *n, uint64_t tag, __wasi_fd_t fd, bool for_write)
{
    __wasi_subscription_t *sub = &g_subs[(*n)++];
    memset(sub, 0, sizeof *sub);
    sub->userdata = tag;
    if (for_write) {
        sub->u.tag = __WASI_EVENTTYPE_FD_WRITE;
        sub->u.u.fd_write.file_descriptor = fd;
    } else {
        sub->u.tag = __WASI_EVENTTYPE_FD_READ;
        sub->u.u.fd_read.file_descriptor = fd;
    }
}

static void add_clock_subscription(size_t *n, uint64_t deadline_ns)
{
    __wasi_subscription_t *sub = &g_subs[(*n)++];
    memset(sub, 0, sizeof *sub);
    sub->userdata = TAG_CLOCK;
    sub->u.tag = __WASI_EVENTTYPE_CLOCK;
    sub->u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    sub->u.u.clock.timeout = deadline_ns > g_now ? deadline_ns - g_now : 0;
    sub->u.u.clock.flags = 0; /* relative */
}

/* One subscription per connection, the listener if accepting, the nearest deadline. */
static size_t build_subscriptions(void)
{
    size_t n = 0;
    uint64_t earliest = UINT64_MAX;
    bool accepting = g_nactive < g_max_conns && g_now >= g_accept_resume_ns;

    if (accepting)
        add_fd_subscription(&n, TAG_LISTENER, g_listener, false);
    else if (g_nactive < g_max_conns)
        earliest = g_accept_resume_ns;
    for (uint32_t i = 0; i < g_nactive; i++) {
        uint32_t index = g_active[i];
        struct slot *s = &g_slots[index];
        /* A connection wanting to shut down or close ran out of steps last
         * turn; FD_WRITE is ready at once, so it is driven next round. */
        add_fd_subscription(&n, slot_tag(index), s->fd,
                            http_conn_want(&s->conn) != HTTP_WANT_READ);
        if (s->deadline_ns < earliest)
            earliest = s->deadline_ns;
    }
    if (earliest != UINT64_MAX)
        add_clock_subscription(&n, earliest);
    return n;
}

static void handle_connection_event(const __wasi_event_t *ev)
{
    uint32_t index = (uint32_t)(ev->userdata & 0xffffffffu);
    uint32_t generation = (uint32_t)(ev->userdata >> 32);

    if (index >= g_max_conns || !g_slots[index].used || g_slots[index].generation != generation)
        return; /* closed (and maybe reused) earlier in this round */
    if (ev->error != __WASI_ERRNO_SUCCESS) {
        close_slot(index);
        return;
    }
    drive(index);
}

static void close_expired(void)
{
    uint32_t i = 0;
    while (i < g_nactive) {
        uint32_t index = g_active[i];
        if (g_slots[index].deadline_ns <= g_now)
            close_slot(index); /* moves the last entry into position i */
        else
            i++;
    }
}

/* One round of the event loop. Returns false on a fatal error. */
static bool run_round(void)
{
    size_t nsubs, nevents_max;
    __wasi_size_t nevents = 0;
    __wasi_errno_t err;

    g_now = netio_now_ns();
    nsubs = build_subscriptions();
    if (nsubs == 0)
        return true; /* cannot happen: the listener or a deadline is always there */
    err = __wasi_poll_oneoff(g_subs, g_events, (__wasi_size_t)nsubs, &nevents);
    if (err == __WASI_ERRNO_INTR)
        return true;
    if (err != __WASI_ERRNO_SUCCESS) {
        netio_log_errno(WHO, "poll_oneoff failed", err);
        return false;
    }
    g_now = netio_now_ns();
    nevents_max = nevents < nsubs ? nevents : nsubs;
    for (size_t i = 0; i < nevents_max; i++) {
        const __wasi_event_t *ev = &g_events[i];
        if (ev->userdata == TAG_LISTENER) {
            if (ev->error != __WASI_ERRNO_SUCCESS) {
                netio_log_errno(WHO, "polling the listening socket failed", ev->error);
                return false;
            }
            if (!accept_pending())
                return false;
        } else if (ev->userdata != TAG_CLOCK) {
            handle_connection_event(ev);
        }
    }
    close_expired();
    return true;
}

int main(void)
{
    const char *why = NULL;

    if (!netio_load_server_config(&g_cfg, WHO))
        return 2;
    if (!netio_env_u32("HTTP_MAX_CONNS", 1, MAX_CONNS_LIMIT, DEFAULT_MAX_CONNS, &g_max_conns)) {
        netio_log(WHO, ": HTTP_MAX_CONNS must be a number in 1..4096", NULL);
        return 2;
    }
    if (!netio_find_listener(&g_listener, &why)) {
        netio_log(WHO, ": ", why, NULL);
        return 2;
    }
    if (!allocate_tables()) {
        netio_log(WHO, ": out of memory for the connection table", NULL);
        return 2;
    }
    /* Without a non-blocking listener, accept one connection per readiness. */
    g_listener_nonblocking =
        __wasi_fd_fdstat_set_flags(g_listener, __WASI_FDFLAGS_NONBLOCK) == __WASI_ERRNO_SUCCESS;
    while (run_round()) {
    }
    return 1;
}
