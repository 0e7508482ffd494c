/*
 * wasmedge_sock.h: the WasmEdge socket-extension imports the client uses,
 * declared exactly as WasmEdge's wasmedge_wasi_socket crate imports them
 * (V1 signatures; docs/sockets-abi.md section 3):
 *
 *   sock_open(af u8, type u8, *fd u32)                         (i32,i32,i32)->i32
 *   sock_connect(fd, *WasiAddress, port u32)                   (i32,i32,i32)->i32
 *   sock_getaddrinfo(node*, node_len, service*, service_len,
 *                    *hints, *res u32, max_len, *res_len)       (i32 x8)->i32
 *
 * All live in the "wasi_snapshot_preview1" import module and return a
 * preview1 errno (plus WasmEdge's getaddrinfo codes 77..87). sock_send and
 * sock_recv are the preview1 functions from <wasi/api.h> (same signatures).
 * Natively (tests only), wasi_native.c implements these over POSIX.
 */
#ifndef NETMODS_WASMEDGE_SOCK_H
#define NETMODS_WASMEDGE_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "wasi_compat.h"

#define WASMEDGE_AF_INET4 1u
#define WASMEDGE_AF_INET6 2u
#define WASMEDGE_SOCK_STREAM 2u
#define WASMEDGE_IPPROTO_TCP 1u

/* sa_data of an IPv6 result: [port BE 2][flowinfo 4][addr 16][scope 4]. */
#define WASMEDGE_SA_DATA_CAP 26

/* WasiAddress: raw address bytes (4 = IPv4, 16 = IPv6), network order. */
typedef struct wasmedge_address {
    uint8_t *buf;
    uint32_t buf_len;
} wasmedge_address;

/* __wasi_sockaddr_t. */
typedef struct wasmedge_sockaddr {
    uint8_t sa_family;
    uint32_t sa_data_len;
    uint8_t *sa_data;
} wasmedge_sockaddr;

/* __wasi_addrinfo_t. */
typedef struct wasmedge_addrinfo {
    uint16_t ai_flags;
    uint8_t ai_family;
    uint8_t ai_socktype;
    uint8_t ai_protocol;
    uint32_t ai_addrlen;
    wasmedge_sockaddr *ai_addr;
    char *ai_canonname;
    uint32_t ai_canonname_len;
    struct wasmedge_addrinfo *ai_next;
} wasmedge_addrinfo;

#ifdef __wasi__
/* The layouts WasmEdge's thirdparty/wasi/api.hpp asserts (wasm32). */
_Static_assert(sizeof(wasmedge_address) == 8, "WasiAddress size");
_Static_assert(sizeof(uintptr_t) == 4, "getaddrinfo res word is a u32");
_Static_assert(sizeof(wasmedge_sockaddr) == 12, "__wasi_sockaddr_t size");
_Static_assert(offsetof(wasmedge_sockaddr, sa_data_len) == 4, "sa_data_len offset");
_Static_assert(offsetof(wasmedge_sockaddr, sa_data) == 8, "sa_data offset");
_Static_assert(sizeof(wasmedge_addrinfo) == 28, "__wasi_addrinfo_t size");
_Static_assert(_Alignof(wasmedge_addrinfo) == 4, "__wasi_addrinfo_t align");
_Static_assert(offsetof(wasmedge_addrinfo, ai_family) == 2, "ai_family offset");
_Static_assert(offsetof(wasmedge_addrinfo, ai_socktype) == 3, "ai_socktype offset");
_Static_assert(offsetof(wasmedge_addrinfo, ai_protocol) == 4, "ai_protocol offset");
_Static_assert(offsetof(wasmedge_addrinfo, ai_addrlen) == 8, "ai_addrlen offset");
_Static_assert(offsetof(wasmedge_addrinfo, ai_addr) == 12, "ai_addr offset");
_Static_assert(offsetof(wasmedge_addrinfo, ai_canonname) == 16, "ai_canonname offset");
_Static_assert(offsetof(wasmedge_addrinfo, ai_canonname_len) == 20, "ai_canonname_len offset");
_Static_assert(offsetof(wasmedge_addrinfo, ai_next) == 24, "ai_next offset");

#define WASMEDGE_IMPORT(name) \
    __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
#else
#define WASMEDGE_IMPORT(name)
#endif

WASMEDGE_IMPORT("sock_open")
uint32_t wasmedge_sock_open(uint32_t address_family, uint32_t sock_type, uint32_t *fd);

WASMEDGE_IMPORT("sock_connect")
uint32_t wasmedge_sock_connect(uint32_t fd, wasmedge_address *addr, uint32_t port);

/* res points at a word holding the address of the first of max_len
 * caller-allocated addrinfo entries chained by ai_next (uintptr_t is the
 * wasm32 u32 of the ABI; natively it holds a real pointer). */
WASMEDGE_IMPORT("sock_getaddrinfo")
uint32_t wasmedge_sock_getaddrinfo(const char *node, uint32_t node_len, const char *service,
                                   uint32_t service_len, const wasmedge_addrinfo *hints,
                                   uintptr_t *res, uint32_t max_len, uint32_t *res_len);

#endif /* NETMODS_WASMEDGE_SOCK_H */
