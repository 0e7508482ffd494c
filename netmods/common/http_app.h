/*
 * http_app.h: the routes the netmods HTTP servers answer.
 *
 *   GET|HEAD /       200 "hello from asyncwasm\n"
 *   POST /echo       200, the request body echoed back
 *   GET|HEAD /stats  200, JSON counters (see http_server_stats)
 *   known path, other method  405 with Allow
 *   anything else    404
 *
 * Pure: no I/O, no allocation. The connection layer (http.c) calls it once
 * per complete request and turns the result into a response.
 */
#ifndef NETMODS_HTTP_APP_H
#define NETMODS_HTTP_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct http_app_request {
    const char *method;
    size_t method_len;
    const char *path;            /* without the query; "" means "/" */
    size_t path_len;
    const uint8_t *body;
    size_t body_len;
};

struct http_app_response {
    int status;
    const char *content_type;
    const char *allow;           /* for 405: the Allow header value, else NULL */
    const uint8_t *body;
    size_t body_len;             /* also the Content-Length for HEAD */
    bool head_only;              /* HEAD: send the headers, not the body */
};

/* scratch (at least 128 bytes) holds generated bodies such as /stats. */
void http_app_handle(const struct http_app_request *req, const struct http_server_stats *stats,
                     struct http_app_response *res, char *scratch, size_t scratch_cap);

/* The body of GET /, exposed for tests. */
extern const char HTTP_APP_HELLO[];

#endif /* NETMODS_HTTP_APP_H */
