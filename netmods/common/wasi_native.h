/*
 * wasi_native.h: a native (POSIX) stand-in for the parts of <wasi/api.h> the
 * netmods guests use, for tests only. Names and field names match wasi-libc's
 * header so the guest sources compile unchanged; layouts are native (only
 * native code reads them). Never compiled into a .wasm.
 */
#ifndef NETMODS_WASI_NATIVE_H
#define NETMODS_WASI_NATIVE_H

#ifdef __wasi__
#error "wasi_native.h is for native test builds only"
#endif

#include <stddef.h>
#include <stdint.h>

typedef uint32_t __wasi_size_t;
typedef uint32_t __wasi_fd_t;
typedef uint16_t __wasi_errno_t;
typedef uint16_t __wasi_fdflags_t;
typedef uint8_t __wasi_filetype_t;
typedef uint64_t __wasi_rights_t;
typedef uint64_t __wasi_timestamp_t;
typedef uint64_t __wasi_filesize_t;
typedef uint64_t __wasi_userdata_t;
typedef uint32_t __wasi_clockid_t;
typedef uint8_t __wasi_eventtype_t;
typedef uint16_t __wasi_eventrwflags_t;
typedef uint16_t __wasi_subclockflags_t;
typedef uint16_t __wasi_riflags_t;
typedef uint16_t __wasi_roflags_t;
typedef uint16_t __wasi_siflags_t;
typedef uint8_t __wasi_sdflags_t;

/* errno values: preview1 numbering (sockets-abi.md section 4.3). */
#define __WASI_ERRNO_SUCCESS ((__wasi_errno_t)0)
#define __WASI_ERRNO_ACCES ((__wasi_errno_t)2)
#define __WASI_ERRNO_ADDRINUSE ((__wasi_errno_t)3)
#define __WASI_ERRNO_ADDRNOTAVAIL ((__wasi_errno_t)4)
#define __WASI_ERRNO_AFNOSUPPORT ((__wasi_errno_t)5)
#define __WASI_ERRNO_AGAIN ((__wasi_errno_t)6)
#define __WASI_ERRNO_ALREADY ((__wasi_errno_t)7)
#define __WASI_ERRNO_BADF ((__wasi_errno_t)8)
#define __WASI_ERRNO_CONNABORTED ((__wasi_errno_t)13)
#define __WASI_ERRNO_CONNREFUSED ((__wasi_errno_t)14)
#define __WASI_ERRNO_CONNRESET ((__wasi_errno_t)15)
#define __WASI_ERRNO_FAULT ((__wasi_errno_t)21)
#define __WASI_ERRNO_HOSTUNREACH ((__wasi_errno_t)23)
#define __WASI_ERRNO_INPROGRESS ((__wasi_errno_t)26)
#define __WASI_ERRNO_INTR ((__wasi_errno_t)27)
#define __WASI_ERRNO_INVAL ((__wasi_errno_t)28)
#define __WASI_ERRNO_IO ((__wasi_errno_t)29)
#define __WASI_ERRNO_ISCONN ((__wasi_errno_t)30)
#define __WASI_ERRNO_MFILE ((__wasi_errno_t)33)
#define __WASI_ERRNO_NETDOWN ((__wasi_errno_t)38)
#define __WASI_ERRNO_NETRESET ((__wasi_errno_t)39)
#define __WASI_ERRNO_NETUNREACH ((__wasi_errno_t)40)
#define __WASI_ERRNO_NFILE ((__wasi_errno_t)41)
#define __WASI_ERRNO_NOBUFS ((__wasi_errno_t)42)
#define __WASI_ERRNO_NOENT ((__wasi_errno_t)44)
#define __WASI_ERRNO_NOMEM ((__wasi_errno_t)48)
#define __WASI_ERRNO_NOSYS ((__wasi_errno_t)52)
#define __WASI_ERRNO_NOTCONN ((__wasi_errno_t)53)
#define __WASI_ERRNO_NOTSOCK ((__wasi_errno_t)57)
#define __WASI_ERRNO_NOTSUP ((__wasi_errno_t)58)
#define __WASI_ERRNO_PERM ((__wasi_errno_t)63)
#define __WASI_ERRNO_PIPE ((__wasi_errno_t)64)
#define __WASI_ERRNO_PROTO ((__wasi_errno_t)65)
#define __WASI_ERRNO_TIMEDOUT ((__wasi_errno_t)73)
#define __WASI_ERRNO_NOTCAPABLE ((__wasi_errno_t)76)

#define __WASI_FILETYPE_UNKNOWN ((__wasi_filetype_t)0)
#define __WASI_FILETYPE_SOCKET_DGRAM ((__wasi_filetype_t)5)
#define __WASI_FILETYPE_SOCKET_STREAM ((__wasi_filetype_t)6)

#define __WASI_FDFLAGS_NONBLOCK ((__wasi_fdflags_t)4)

#define __WASI_CLOCKID_REALTIME ((__wasi_clockid_t)0)
#define __WASI_CLOCKID_MONOTONIC ((__wasi_clockid_t)1)

#define __WASI_EVENTTYPE_CLOCK ((__wasi_eventtype_t)0)
#define __WASI_EVENTTYPE_FD_READ ((__wasi_eventtype_t)1)
#define __WASI_EVENTTYPE_FD_WRITE ((__wasi_eventtype_t)2)

#define __WASI_EVENTRWFLAGS_FD_READWRITE_HANGUP ((__wasi_eventrwflags_t)1)
#define __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME ((__wasi_subclockflags_t)1)

#define __WASI_SDFLAGS_RD ((__wasi_sdflags_t)1)
#define __WASI_SDFLAGS_WR ((__wasi_sdflags_t)2)

typedef struct __wasi_iovec_t {
    uint8_t *buf;
    __wasi_size_t buf_len;
} __wasi_iovec_t;

typedef struct __wasi_ciovec_t {
    const uint8_t *buf;
    __wasi_size_t buf_len;
} __wasi_ciovec_t;

typedef struct __wasi_fdstat_t {
    __wasi_filetype_t fs_filetype;
    __wasi_fdflags_t fs_flags;
    __wasi_rights_t fs_rights_base;
    __wasi_rights_t fs_rights_inheriting;
} __wasi_fdstat_t;

typedef struct __wasi_event_fd_readwrite_t {
    __wasi_filesize_t nbytes;
    __wasi_eventrwflags_t flags;
} __wasi_event_fd_readwrite_t;

typedef struct __wasi_event_t {
    __wasi_userdata_t userdata;
    __wasi_errno_t error;
    __wasi_eventtype_t type;
    __wasi_event_fd_readwrite_t fd_readwrite;
} __wasi_event_t;

typedef struct __wasi_subscription_clock_t {
    __wasi_clockid_t id;
    __wasi_timestamp_t timeout;
    __wasi_timestamp_t precision;
    __wasi_subclockflags_t flags;
} __wasi_subscription_clock_t;

typedef struct __wasi_subscription_fd_readwrite_t {
    __wasi_fd_t file_descriptor;
} __wasi_subscription_fd_readwrite_t;

typedef union __wasi_subscription_u_u_t {
    __wasi_subscription_clock_t clock;
    __wasi_subscription_fd_readwrite_t fd_read;
    __wasi_subscription_fd_readwrite_t fd_write;
} __wasi_subscription_u_u_t;

typedef struct __wasi_subscription_u_t {
    uint8_t tag;
    __wasi_subscription_u_u_t u;
} __wasi_subscription_u_t;

typedef struct __wasi_subscription_t {
    __wasi_userdata_t userdata;
    __wasi_subscription_u_t u;
} __wasi_subscription_t;

__wasi_errno_t __wasi_fd_close(__wasi_fd_t fd);
__wasi_errno_t __wasi_fd_fdstat_get(__wasi_fd_t fd, __wasi_fdstat_t *stat);
__wasi_errno_t __wasi_fd_fdstat_set_flags(__wasi_fd_t fd, __wasi_fdflags_t flags);
__wasi_errno_t __wasi_fd_write(__wasi_fd_t fd, const __wasi_ciovec_t *iovs, size_t iovs_len,
                               __wasi_size_t *nwritten);
__wasi_errno_t __wasi_clock_time_get(__wasi_clockid_t id, __wasi_timestamp_t precision,
                                     __wasi_timestamp_t *time);
__wasi_errno_t __wasi_poll_oneoff(const __wasi_subscription_t *in, __wasi_event_t *out,
                                  __wasi_size_t nsubscriptions, __wasi_size_t *nevents);
__wasi_errno_t __wasi_sock_accept(__wasi_fd_t fd, __wasi_fdflags_t flags, __wasi_fd_t *newfd);
__wasi_errno_t __wasi_sock_recv(__wasi_fd_t fd, const __wasi_iovec_t *ri_data, size_t ri_data_len,
                                __wasi_riflags_t ri_flags, __wasi_size_t *nread,
                                __wasi_roflags_t *roflags);
__wasi_errno_t __wasi_sock_send(__wasi_fd_t fd, const __wasi_ciovec_t *si_data, size_t si_data_len,
                                __wasi_siflags_t si_flags, __wasi_size_t *nsent);
__wasi_errno_t __wasi_sock_shutdown(__wasi_fd_t fd, __wasi_sdflags_t how);

/* Translates a host errno value to the preview1 numbering. */
__wasi_errno_t wasi_native_errno(int host_errno);

#endif /* NETMODS_WASI_NATIVE_H */
