/*
 * wasi_compat.h: the WASI preview1 declarations the guests call.
 *
 * On wasm32-wasi this is wasi-libc's <wasi/api.h>: the guests call the
 * preview1 imports (__wasi_sock_accept, __wasi_poll_oneoff, ...) directly, so
 * every host call is explicit. Natively (tests only) the same names come from
 * wasi_native.h and are implemented over POSIX sockets by wasi_native.c, so
 * the real server loops can run on 127.0.0.1.
 */
#ifndef NETMODS_WASI_COMPAT_H
#define NETMODS_WASI_COMPAT_H

#ifdef __wasi__
#include <wasi/api.h>
#else
#include "wasi_native.h"
#endif

#endif /* NETMODS_WASI_COMPAT_H */
