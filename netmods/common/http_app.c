/*
 * http_app.c: the routes of the netmods HTTP servers (see http_app.h).
 */
#include "http_app.h"

#include <string.h>

const char HTTP_APP_HELLO[] = "hello from asyncwasm\n";

static const char NOT_FOUND[] = "not found\n";
static const char METHOD_NOT_ALLOWED[] = "method not allowed\n";
static const char TEXT_PLAIN[] = "text/plain; charset=utf-8";

enum route {
    ROUTE_NONE,
    ROUTE_HELLO,
    ROUTE_ECHO,
    ROUTE_STATS,
};

struct route_entry {
    const char *path;
    size_t path_len;
    enum route route;
    const char *allow;           /* the methods the route answers */
};

/* A string literal and its length, so lookups need no strlen. */
#define LIT(s) s, sizeof s - 1

static const struct route_entry ROUTES[] = {
    {LIT("/"), ROUTE_HELLO, "GET, HEAD"},
    {LIT("/echo"), ROUTE_ECHO, "POST"},
    {LIT("/stats"), ROUTE_STATS, "GET, HEAD"},
};

static bool span_equals(const char *s, size_t n, const char *lit, size_t lit_len)
{
    return n == lit_len && memcmp(s, lit, lit_len) == 0;
}

static const struct route_entry *find_route(const char *path, size_t path_len)
{
    if (path_len == 0) {
        path = "/"; /* absolute-form target without a path */
        path_len = 1;
    }
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        if (span_equals(path, path_len, ROUTES[i].path, ROUTES[i].path_len))
            return &ROUTES[i];
    }
    return NULL;
}

/* Is the method one of the comma-separated names in `allow`? */
static bool method_allowed(const char *method, size_t method_len, const char *allow)
{
    const char *p = allow;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == method_len && memcmp(p, method, n) == 0)
            return true;
        if (comma == NULL)
            break;
        p = comma + 1;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* Appends s to out[*n, cap); returns false if it does not fit. */
static bool append(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (len > cap - *n)
        return false;
    memcpy(out + *n, s, len);
    *n += len;
    return true;
}

static bool append_counter(char *out, size_t cap, size_t *n, const char *key, uint64_t v,
                           bool last)
{
    char digits[20];
    size_t d = http_format_u64(digits, v);
    return append(out, cap, n, "\"", 1) && append(out, cap, n, key, strlen(key)) &&
           append(out, cap, n, "\":", 2) && append(out, cap, n, digits, d) &&
           append(out, cap, n, last ? "}\n" : ",", last ? 2 : 1);
}

/* {"requests":N,"connections":N,"active":N,"bad_requests":N}\n; 0 if it does not fit. */
static size_t format_stats(const struct http_server_stats *s, char *out, size_t cap)
{
    size_t n = 0;
    bool ok = append(out, cap, &n, "{", 1) &&
              append_counter(out, cap, &n, "requests", s->requests, false) &&
              append_counter(out, cap, &n, "connections", s->connections, false) &&
              append_counter(out, cap, &n, "active", s->active, false) &&
              append_counter(out, cap, &n, "bad_requests", s->bad_requests, true);
    return ok ? n : 0;
}

static void set_text(struct http_app_response *res, int status, const char *text, size_t len)
{
    res->status = status;
    res->content_type = TEXT_PLAIN;
    res->body = (const uint8_t *)text;
    res->body_len = len;
}

void http_app_handle(const struct http_app_request *req, const struct http_server_stats *stats,
                     struct http_app_response *res, char *scratch, size_t scratch_cap)
{
    const struct route_entry *route = find_route(req->path, req->path_len);

    res->allow = NULL;
    res->head_only = span_equals(req->method, req->method_len, LIT("HEAD"));

    if (route == NULL) {
        set_text(res, 404, LIT(NOT_FOUND));
        return;
    }
    if (!method_allowed(req->method, req->method_len, route->allow)) {
        set_text(res, 405, LIT(METHOD_NOT_ALLOWED));
        res->allow = route->allow;
        return;
    }
    switch (route->route) {
    case ROUTE_HELLO:
        set_text(res, 200, LIT(HTTP_APP_HELLO));
        break;
    case ROUTE_ECHO:
        res->status = 200;
        res->content_type = "application/octet-stream";
        res->body = req->body;
        res->body_len = req->body_len;
        break;
    case ROUTE_STATS: {
        size_t n = format_stats(stats, scratch, scratch_cap);
        if (n == 0) {
            set_text(res, 500, LIT("stats do not fit\n"));
            break;
        }
        res->status = 200;
        res->content_type = "application/json";
        res->body = (const uint8_t *)scratch;
        res->body_len = n;
        break;
    }
    case ROUTE_NONE:
    default:
        set_text(res, 404, LIT(NOT_FOUND));
        break;
    }
}
