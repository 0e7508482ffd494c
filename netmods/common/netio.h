/*
 * netio.h: the thin socket layer of the netmods guests, over WASI preview1.
 *
 * Everything here is a direct preview1 call (sock_accept, sock_recv,
 * sock_send, sock_shutdown, fd_close, fd_fdstat_get, poll_oneoff,
 * clock_time_get, fd_write) plus bookkeeping, so the servers stay explicit
 * about what they ask of the host. No stdio: errors go to fd 2 directly.
 */
#ifndef NETMODS_NETIO_H
#define NETMODS_NETIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "wasi_compat.h"

/* Name of a preview1 (or WasmEdge getaddrinfo) errno, e.g. "CONNREFUSED". */
const char *netio_errno_name(uint32_t err);

/* Writes the NULL-terminated list of strings, then a newline, to stderr. */
void netio_log(const char *first, ...);

/* "<who>: <what>: errno <n> (<NAME>)" on stderr. */
void netio_log_errno(const char *who, const char *what, uint32_t err);

/* An env var as u32 in [min, max], or `fallback` if unset; false if set but invalid. */
bool netio_env_u32(const char *name, uint32_t min, uint32_t max, uint32_t fallback,
                   uint32_t *out);

/*
 * The HTTP servers' configuration: defaults, then $HTTP_IDLE_TIMEOUT_MS
 * (1..86400000). Logs and returns false if a variable is invalid.
 */
bool netio_load_server_config(struct http_server_config *cfg, const char *who);

/*
 * Finds the pre-opened listening socket: the fd in $LISTEN_FD if set, else
 * the first fd from 3 up whose filetype is SOCKET_STREAM (the scan stops at
 * the first fd that is not open). On failure returns false with *why set.
 */
bool netio_find_listener(__wasi_fd_t *fd, const char **why);

/*
 * Waits until fd is readable (or writable) or timeout_ms elapses
 * (timeout_ms < 0: no timeout). Returns SUCCESS when ready (a hang-up counts
 * as ready: the next recv reports it), TIMEDOUT on timeout, or an errno.
 */
__wasi_errno_t netio_wait(__wasi_fd_t fd, bool for_write, int64_t timeout_ms);

/* Sleeps for ms milliseconds with a clock-only poll_oneoff. */
void netio_sleep_ms(uint32_t ms);

/* One sock_recv into buf; *n == 0 means end of stream. INTR is retried. */
__wasi_errno_t netio_recv(__wasi_fd_t fd, uint8_t *buf, size_t cap, size_t *n);

/* One sock_send of up to two pieces; *n is how much was taken. INTR is retried. */
__wasi_errno_t netio_send2(__wasi_fd_t fd, const uint8_t *a, size_t alen, const uint8_t *b,
                           size_t blen, size_t *n);

/* The monotonic clock in ns (0 if the host has none). */
uint64_t netio_now_ns(void);

/* Is this accept() error about the one connection (retry) rather than the listener? */
bool netio_accept_error_is_transient(__wasi_errno_t err);

#endif /* NETMODS_NETIO_H */
