/*
 * http_server: an HTTP/1.1 server that serves one connection at a time on
 * the listening socket the host pre-opens (concurrency comes from the host
 * running many instances on the same listener). The embedded default module
 * of `asyncwasm serve`.
 *
 * Routes and protocol handling live in ../common/http.c and http_app.c; this
 * file only moves bytes:
 *
 *   accept (blocking sock_accept; the connection non-blocking) -> loop {
 *   sock_recv, and only when that says AGAIN wait readable (poll_oneoff
 *   with the idle timeout) -> parse -> sock_send } -> sock_shutdown -> fd_close
 *
 * Receiving first: under load the next request is usually there already, so
 * one host call per read instead of two (poll, then recv).
 *
 * A connection's errors (reset, timeout, malformed input) end that
 * connection only; the server exits only if the listener itself fails.
 *
 * Environment: LISTEN_FD (else the first stream socket from fd 3),
 * HTTP_IDLE_TIMEOUT_MS (default 15000). Exit status: 2 for a configuration
 * error, 1 if accepting on the listener fails for good.
 */
#include <stdbool.h>
#include <stddef.h>

#include "../common/http.h"
#include "../common/netio.h"

static const char WHO[] = "http_server";

/* Back-off after accept failed for lack of fds or memory. */
#define ACCEPT_BACKOFF_MS 50

static struct http_server_config g_cfg;
static struct http_server_stats g_stats;

/* Receives input into the connection, waiting (with the idle timeout) only
 * when none is there. False: end the connection. */
static bool read_step(__wasi_fd_t fd, struct http_conn *conn)
{
    size_t avail = 0, n = 0;
    uint8_t *space = http_conn_read_space(conn, &avail);
    __wasi_errno_t err;

    if (space == NULL)
        return false; /* out of memory */
    err = netio_recv(fd, space, avail, &n);
    if (err == __WASI_ERRNO_AGAIN) {
        /* Nothing yet: wait; the next read_step receives (AGAIN again if spurious). */
        return netio_wait(fd, false, http_conn_timeout_ms(conn)) == __WASI_ERRNO_SUCCESS;
    }
    if (err != __WASI_ERRNO_SUCCESS)
        return false;
    http_conn_on_read(conn, n);
    return true;
}

/* Sends what the connection has pending. False: end the connection. */
static bool write_step(__wasi_fd_t fd, struct http_conn *conn)
{
    struct http_iov iov[2];
    size_t count = http_conn_output(conn, iov), n = 0;
    __wasi_errno_t err = netio_send2(fd, iov[0].base, count > 0 ? iov[0].len : 0,
                                     count > 1 ? iov[1].base : NULL, count > 1 ? iov[1].len : 0,
                                     &n);

    if (err == __WASI_ERRNO_AGAIN) /* the send buffer is full: wait until it drains */
        return netio_wait(fd, true, http_conn_timeout_ms(conn)) == __WASI_ERRNO_SUCCESS;
    if (err != __WASI_ERRNO_SUCCESS)
        return false;
    http_conn_on_written(conn, n);
    return true;
}

static void serve_connection(__wasi_fd_t fd)
{
    struct http_conn conn;
    bool alive = true;

    http_conn_init(&conn, &g_cfg, &g_stats);
    while (alive) {
        switch (http_conn_want(&conn)) {
        case HTTP_WANT_READ:
            alive = read_step(fd, &conn);
            break;
        case HTTP_WANT_WRITE:
            alive = write_step(fd, &conn);
            break;
        case HTTP_WANT_SHUTDOWN:
            (void)__wasi_sock_shutdown(fd, __WASI_SDFLAGS_WR);
            http_conn_on_shutdown(&conn);
            break;
        case HTTP_WANT_CLOSE:
        default:
            alive = false;
            break;
        }
    }
    http_conn_free(&conn);
    (void)__wasi_fd_close(fd);
}

/* Handles a failed accept; returns false if the listener is unusable. */
static bool recover_from_accept_error(__wasi_fd_t listener, __wasi_errno_t err)
{
    if (err == __WASI_ERRNO_AGAIN) {
        /* A non-blocking listener (shared with other instances): wait for the next peer. */
        __wasi_errno_t werr = netio_wait(listener, false, -1);
        if (werr != __WASI_ERRNO_SUCCESS && werr != __WASI_ERRNO_TIMEDOUT) {
            netio_log_errno(WHO, "waiting on the listening socket failed", werr);
            return false;
        }
        return true;
    }
    if (netio_accept_error_is_transient(err)) {
        if (err == __WASI_ERRNO_MFILE || err == __WASI_ERRNO_NFILE ||
            err == __WASI_ERRNO_NOBUFS || err == __WASI_ERRNO_NOMEM)
            netio_sleep_ms(ACCEPT_BACKOFF_MS);
        return true;
    }
    netio_log_errno(WHO, "accept on the listening socket failed", err);
    return false;
}

int main(void)
{
    __wasi_fd_t listener;
    const char *why = NULL;

    if (!netio_load_server_config(&g_cfg, WHO))
        return 2;
    if (!netio_find_listener(&listener, &why)) {
        netio_log(WHO, ": ", why, NULL);
        return 2;
    }
    for (;;) {
        __wasi_fd_t fd;
        __wasi_errno_t err = __wasi_sock_accept(listener, __WASI_FDFLAGS_NONBLOCK, &fd);
        if (err != __WASI_ERRNO_SUCCESS) {
            if (!recover_from_accept_error(listener, err))
                return 1;
            continue;
        }
        g_stats.connections++;
        g_stats.active++;
        serve_connection(fd);
        g_stats.active--;
    }
}
