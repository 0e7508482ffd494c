/*
 * http_client: fetches http://HOST[:PORT]/PATH (argv[1]) with WasmEdge's
 * socket extension and prints the response body on stdout.
 *
 *   sock_getaddrinfo  (only when HOST is not a dotted IPv4 literal)
 *   sock_open(INET4, STREAM) -> sock_connect (V1, IPv4) -> sock_send ...
 *   -> poll_oneoff + sock_recv ... -> fd_close
 *
 * The response is parsed with the shared parser (../common/http.c) in
 * response mode: Content-Length, chunked, or read-until-close bodies; 1xx
 * interim responses are skipped.
 *
 * Exit status: 0 for a 2xx response, 1 for any other response or any
 * failure (each explained on stderr with the errno), 2 for bad usage.
 * Environment: HTTP_CLIENT_TIMEOUT_MS, the longest wait for data (default 30000).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/http.h"
#include "../common/netio.h"
#include "../common/wasmedge_sock.h"

static const char WHO[] = "http_client";

#define MAX_HOST_LEN 253
#define MAX_PATH_LEN 8192
#define MAX_ADDRINFO 8
#define RESPONSE_MAX_HEAD (64u * 1024u)
#define RESPONSE_MAX_BODY (16u * 1024u * 1024u)
#define READ_CHUNK 16384

struct url {
    char host[MAX_HOST_LEN + 1];
    uint16_t port;
    char port_text[6];
    const char *path;            /* into argv; "/" if the URL has none */
    size_t path_len;
    bool explicit_port;
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* http://HOST[:PORT][/PATH]; no userinfo, no IPv6 literals, no fragments. */
static bool parse_url(const char *text, struct url *u, const char **why)
{
    const char *p = text, *host_end;
    size_t host_len;

    if (strncmp(p, "http://", 7) != 0 && strncmp(p, "HTTP://", 7) != 0) {
        *why = "the URL must start with http://";
        return false;
    }
    p += 7;
    host_end = p;
    while (*host_end != '\0' && *host_end != ':' && *host_end != '/')
        host_end++;
    host_len = (size_t)(host_end - p);
    if (host_len == 0 || host_len > MAX_HOST_LEN) {
        *why = "the URL has no host, or a host too long";
        return false;
    }
    for (size_t i = 0; i < host_len; i++) {
        char c = p[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
              c == '.')) {
            *why = "the URL host may only hold letters, digits, '-' and '.'";
            return false;
        }
    }
    memcpy(u->host, p, host_len);
    u->host[host_len] = '\0';

    u->port = 80;
    u->explicit_port = false;
    p = host_end;
    if (*p == ':') {
        uint32_t port = 0;
        size_t digits = 0;
        for (p++; is_digit(*p) && digits < 6; p++, digits++)
            port = port * 10 + (uint32_t)(*p - '0');
        if (digits == 0 || port == 0 || port > 65535 || (*p != '\0' && *p != '/')) {
            *why = "the URL port must be a number in 1..65535";
            return false;
        }
        u->port = (uint16_t)port;
        u->explicit_port = true;
    }
    u->port_text[http_format_u64(u->port_text, u->port)] = '\0';

    if (*p == '\0') {
        u->path = "/";
        u->path_len = 1;
        return true;
    }
    u->path = p;
    u->path_len = strlen(p);
    if (u->path_len > MAX_PATH_LEN) {
        *why = "the URL path is too long";
        return false;
    }
    for (size_t i = 0; i < u->path_len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e || c == '#') {
            *why = "the URL path has a space, control or non-ASCII character, or a fragment";
            return false;
        }
    }
    return true;
}

/* A dotted-quad IPv4 literal, four decimal parts 0..255. */
static bool parse_ipv4(const char *s, uint8_t out[4])
{
    for (int part = 0; part < 4; part++) {
        uint32_t v = 0;
        int digits = 0;
        while (is_digit(*s) && digits < 4) {
            v = v * 10 + (uint32_t)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return false;
        out[part] = (uint8_t)v;
        if (part < 3 && *s++ != '.')
            return false;
    }
    return *s == '\0';
}

/* Resolves a host name with sock_getaddrinfo; the first IPv4 result wins. */
static bool resolve(const struct url *u, uint8_t addr[4])
{
    static wasmedge_addrinfo infos[MAX_ADDRINFO];
    static wasmedge_sockaddr sockaddrs[MAX_ADDRINFO];
    static uint8_t sa_data[MAX_ADDRINFO][WASMEDGE_SA_DATA_CAP];
    static char canon[MAX_ADDRINFO][1];
    wasmedge_addrinfo hints;
    uintptr_t res = (uintptr_t)&infos[0];
    uint32_t count = 0, err;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = WASMEDGE_AF_INET4;
    hints.ai_socktype = WASMEDGE_SOCK_STREAM;
    hints.ai_protocol = WASMEDGE_IPPROTO_TCP;
    for (int i = 0; i < MAX_ADDRINFO; i++) {
        memset(&infos[i], 0, sizeof infos[i]);
        sockaddrs[i].sa_family = 0;
        sockaddrs[i].sa_data_len = WASMEDGE_SA_DATA_CAP;
        sockaddrs[i].sa_data = sa_data[i];
        infos[i].ai_addr = &sockaddrs[i];
        infos[i].ai_canonname = canon[i];
        infos[i].ai_canonname_len = 0;
        infos[i].ai_next = i + 1 < MAX_ADDRINFO ? &infos[i + 1] : NULL;
    }
    err = wasmedge_sock_getaddrinfo(u->host, (uint32_t)strlen(u->host) + 1, u->port_text,
                                    (uint32_t)strlen(u->port_text) + 1, &hints, &res,
                                    MAX_ADDRINFO, &count);
    if (err != 0) {
        netio_log_errno(WHO, "cannot resolve the host name", err);
        return false;
    }
    for (uint32_t i = 0; i < count && i < MAX_ADDRINFO; i++) {
        const wasmedge_sockaddr *sa = infos[i].ai_addr;
        if (infos[i].ai_family == WASMEDGE_AF_INET4 && sa != NULL && sa->sa_data_len >= 6) {
            memcpy(addr, sa->sa_data + 2, 4); /* after the big-endian port */
            return true;
        }
    }
    netio_log(WHO, ": the host name has no IPv4 address: ", u->host, NULL);
    return false;
}

static void format_ipv4(const uint8_t a[4], char out[16])
{
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        n += http_format_u64(out + n, a[i]);
        if (i < 3)
            out[n++] = '.';
    }
    out[n] = '\0';
}

static bool connect_to(const struct url *u, const uint8_t addr[4], __wasi_fd_t *fd)
{
    uint8_t raw[4];
    wasmedge_address wa = {raw, 4};
    uint32_t sock = 0, err;
    char ip[16];

    memcpy(raw, addr, 4);
    format_ipv4(addr, ip);
    err = wasmedge_sock_open(WASMEDGE_AF_INET4, WASMEDGE_SOCK_STREAM, &sock);
    if (err != 0) {
        netio_log_errno(WHO, "cannot open a socket (sock_open)", err);
        return false;
    }
    err = wasmedge_sock_connect(sock, &wa, u->port);
    if (err != 0) {
        char what[64 + 16 + 6];
        size_t n = 0;
        memcpy(what + n, "cannot connect to ", 18);
        n += 18;
        memcpy(what + n, ip, strlen(ip));
        n += strlen(ip);
        what[n++] = ':';
        memcpy(what + n, u->port_text, strlen(u->port_text) + 1);
        netio_log_errno(WHO, what, err);
        if (err == __WASI_ERRNO_ACCES || err == __WASI_ERRNO_PERM ||
            err == __WASI_ERRNO_NOTCAPABLE)
            netio_log(WHO, ": (the host's network policy may not allow this address)", NULL);
        (void)__wasi_fd_close(sock);
        return false;
    }
    *fd = sock;
    return true;
}

/* Appends to a fixed request buffer; false if it would not fit. */
static bool put(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
    if (len > cap - *n)
        return false;
    memcpy(buf + *n, s, len);
    *n += len;
    return true;
}

static bool send_all(__wasi_fd_t fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t n = 0;
        __wasi_errno_t err = netio_send2(fd, data, len, NULL, 0, &n);
        if (err != __WASI_ERRNO_SUCCESS || n == 0) {
            netio_log_errno(WHO, "sending the request failed", err);
            return false;
        }
        data += n;
        len -= n;
    }
    return true;
}

static bool send_request(__wasi_fd_t fd, const struct url *u)
{
    static char req[MAX_PATH_LEN + MAX_HOST_LEN + 256];
    size_t n = 0;
    bool ok = put(req, sizeof req, &n, "GET ", 4) && put(req, sizeof req, &n, u->path, u->path_len) &&
              put(req, sizeof req, &n, " HTTP/1.1\r\nHost: ", 17) &&
              put(req, sizeof req, &n, u->host, strlen(u->host));
    if (ok && u->explicit_port)
        ok = put(req, sizeof req, &n, ":", 1) &&
             put(req, sizeof req, &n, u->port_text, strlen(u->port_text));
    if (ok) {
        static const char rest[] = "\r\nUser-Agent: asyncwasm-netmods-http_client\r\n"
                                   "Accept: */*\r\nConnection: close\r\n\r\n";
        ok = put(req, sizeof req, &n, rest, sizeof rest - 1);
    }
    if (!ok) {
        netio_log(WHO, ": the request does not fit its buffer", NULL);
        return false;
    }
    return send_all(fd, (const uint8_t *)req, n);
}

static bool write_stdout(const uint8_t *data, size_t len)
{
    while (len > 0) {
        __wasi_ciovec_t iov = {data, (__wasi_size_t)(len > 0x40000000u ? 0x40000000u : len)};
        __wasi_size_t done = 0;
        __wasi_errno_t err = __wasi_fd_write(1, &iov, 1, &done);
        if (err != __WASI_ERRNO_SUCCESS || done == 0) {
            netio_log_errno(WHO, "writing to stdout failed", err);
            return false;
        }
        data += done;
        len -= done;
    }
    return true;
}

struct response_buffer {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Makes room for at least READ_CHUNK more bytes, within the response limits. */
static bool reserve(struct response_buffer *b)
{
    size_t limit = RESPONSE_MAX_HEAD + RESPONSE_MAX_BODY + READ_CHUNK;
    size_t cap = b->cap ? b->cap : READ_CHUNK * 2;
    uint8_t *nd;

    while (cap - b->len < READ_CHUNK && cap < limit)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    if (cap - b->len == 0)
        return false;
    if (cap == b->cap)
        return true;
    nd = realloc(b->data, cap);
    if (nd == NULL)
        return false;
    b->data = nd;
    b->cap = cap;
    return true;
}

/* Receives and parses until a final (non-1xx) response is complete. */
static int read_response(__wasi_fd_t fd, uint32_t timeout_ms)
{
    static const struct http_limits limits = {RESPONSE_MAX_HEAD, RESPONSE_MAX_BODY, 200};
    struct response_buffer b = {NULL, 0, 0};
    struct http_parser p;
    bool eof = false;
    int status = 1;

    http_parser_init(&p, HTTP_PARSE_RESPONSE, &limits);
    if (!reserve(&b)) {
        netio_log(WHO, ": out of memory for the response", NULL);
        return 1;
    }
    for (;;) {
        enum http_parse_status st = http_parse(&p, b.data, &b.len, eof);
        if (st == HTTP_PARSE_DONE && p.msg.status < 200) {
            http_parser_next(&p, b.data, &b.len); /* skip 100 Continue and friends */
            continue;
        }
        if (st == HTTP_PARSE_DONE) {
            const struct http_message *m = &p.msg;
            bool ok = write_stdout(b.data + m->body.off, m->body.len);
            if (m->status < 200 || m->status > 299) {
                char num[4];
                num[http_format_u64(num, (uint64_t)m->status)] = '\0';
                netio_log(WHO, ": the server answered with status ", num, NULL);
            }
            status = ok && m->status >= 200 && m->status <= 299 ? 0 : 1;
            break;
        }
        if (st == HTTP_PARSE_ERROR || st == HTTP_PARSE_TRUNCATED || st == HTTP_PARSE_EOF) {
            netio_log(WHO, ": bad response: ",
                      st == HTTP_PARSE_EOF ? "the server closed the connection without answering"
                                           : p.error_reason,
                      NULL);
            break;
        }
        if (eof)
            break; /* cannot happen: the parser always concludes at EOF */
        if (!reserve(&b)) {
            netio_log(WHO, ": out of memory for the response", NULL);
            break;
        }
        {
            size_t n = 0;
            __wasi_errno_t err = netio_wait(fd, false, timeout_ms);
            if (err == __WASI_ERRNO_SUCCESS)
                err = netio_recv(fd, b.data + b.len, b.cap - b.len, &n);
            if (err == __WASI_ERRNO_AGAIN)
                continue;
            if (err != __WASI_ERRNO_SUCCESS) {
                netio_log_errno(WHO, err == __WASI_ERRNO_TIMEDOUT ? "timed out waiting for the response"
                                                                 : "receiving the response failed",
                                err);
                break;
            }
            if (n == 0)
                eof = true;
            b.len += n;
        }
    }
    free(b.data);
    return status;
}

int main(int argc, char **argv)
{
    struct url u;
    const char *why = NULL;
    uint8_t addr[4];
    uint32_t timeout_ms;
    __wasi_fd_t fd;
    int status;

    if (argc != 2) {
        netio_log("usage: http_client http://HOST[:PORT]/PATH", NULL);
        return 2;
    }
    if (!parse_url(argv[1], &u, &why)) {
        netio_log(WHO, ": ", why, ": ", argv[1], NULL);
        return 2;
    }
    if (!netio_env_u32("HTTP_CLIENT_TIMEOUT_MS", 1, 86400000, 30000, &timeout_ms)) {
        netio_log(WHO, ": HTTP_CLIENT_TIMEOUT_MS must be a number of ms in 1..86400000", NULL);
        return 2;
    }
    if (!parse_ipv4(u.host, addr) && !resolve(&u, addr))
        return 1;
    if (!connect_to(&u, addr, &fd))
        return 1;
    status = send_request(fd, &u) ? read_response(fd, timeout_ms) : 1;
    (void)__wasi_fd_close(fd);
    return status;
}
