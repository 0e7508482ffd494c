/*
 * http_conn.c: one server-side HTTP/1.1 connection, sans-IO (see http.h).
 *
 * Strategy: the connection owns the receive buffer and a parser. Each time
 * bytes arrive it runs the parser; a complete request is answered through
 * http_app_handle and the response (head in `head`, body pointing into the
 * receive buffer, a static string or `small_body`) is handed to the driver
 * piece by piece. Only when the response has been sent is the request dropped
 * from the buffer and the next (possibly already buffered, pipelined) request
 * parsed, so responses go out in request order and the body a response points
 * at never moves while it is being sent.
 *
 * Closing: after an error (or with unread pipelined bytes) the write side is
 * shut down first and the input drained for a while, because closing a socket
 * with unread input makes the kernel send a RST that can destroy the response
 * before the client has read it (the "lingering close" of HTTP servers).
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "http_app.h"

/* The receive buffer starts at this size and grows by doubling. */
#define HTTP_READ_MIN 4096
/* Beyond a message's own limits, room for one more read of what follows it. */
#define HTTP_READ_SLACK 65536
/* A buffer grown beyond this is given back once its request is answered. */
#define HTTP_SHRINK_ABOVE 65536
/* At most this much input is discarded while lingering before a close. */
#define HTTP_DRAIN_MAX (1024 * 1024)

static const char CONTINUE_RESPONSE[] = "HTTP/1.1 100 Continue\r\n\r\n";

void http_server_config_default(struct http_server_config *cfg)
{
    cfg->limits.max_head_bytes = 64 * 1024;
    cfg->limits.max_body_bytes = 1024 * 1024;
    cfg->limits.max_header_count = 100;
    cfg->idle_timeout_ms = 15000;
    cfg->drain_timeout_ms = 2000;
}

void http_conn_init(struct http_conn *c, const struct http_server_config *cfg,
                    struct http_server_stats *stats)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->stats = stats;
    http_parser_init(&c->parser, HTTP_PARSE_REQUEST, &cfg->limits);
    c->phase = HTTP_CONN_READING;
}

void http_conn_free(struct http_conn *c)
{
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    c->phase = HTTP_CONN_CLOSED;
}

enum http_conn_want http_conn_want(const struct http_conn *c)
{
    switch (c->phase) {
    case HTTP_CONN_READING:
    case HTTP_CONN_DRAINING:
        return HTTP_WANT_READ;
    case HTTP_CONN_WRITING:
        return HTTP_WANT_WRITE;
    case HTTP_CONN_SHUTDOWN:
        return HTTP_WANT_SHUTDOWN;
    case HTTP_CONN_CLOSED:
    default:
        return HTTP_WANT_CLOSE;
    }
}

uint32_t http_conn_timeout_ms(const struct http_conn *c)
{
    return c->phase == HTTP_CONN_DRAINING ? c->cfg->drain_timeout_ms : c->cfg->idle_timeout_ms;
}

static size_t max_buffer_bytes(const struct http_conn *c)
{
    return c->cfg->limits.max_head_bytes + c->cfg->limits.max_body_bytes + HTTP_READ_SLACK;
}

/* Makes sure at least HTTP_READ_MIN bytes are free, within the cap. */
static bool grow_buffer(struct http_conn *c)
{
    size_t limit = max_buffer_bytes(c);
    size_t new_cap = c->cap ? c->cap : HTTP_READ_MIN;
    uint8_t *nb;

    while (new_cap - c->len < HTTP_READ_MIN && new_cap < limit)
        new_cap *= 2;
    if (new_cap > limit)
        new_cap = limit;
    if (new_cap <= c->cap)
        return c->cap > c->len;
    nb = realloc(c->buf, new_cap);
    if (nb == NULL)
        return c->cap > c->len;
    c->buf = nb;
    c->cap = new_cap;
    return true;
}

uint8_t *http_conn_read_space(struct http_conn *c, size_t *avail)
{
    if (c->phase == HTTP_CONN_DRAINING)
        c->len = 0; /* whatever was buffered is being thrown away */
    if ((c->buf == NULL || c->cap - c->len < HTTP_READ_MIN) && !grow_buffer(c)) {
        *avail = 0;
        return NULL;
    }
    *avail = c->cap - c->len;
    return c->buf + c->len;
}

/* Appends text to the response head; false if it would not fit. */
static bool head_append(struct http_conn *c, const char *s, size_t n)
{
    if (n > sizeof c->head - c->head_len)
        return false;
    memcpy(c->head + c->head_len, s, n);
    c->head_len += n;
    return true;
}

static bool head_append_str(struct http_conn *c, const char *s)
{
    return head_append(c, s, strlen(s));
}

static bool head_append_u64(struct http_conn *c, uint64_t v)
{
    char digits[20];
    return head_append(c, digits, http_format_u64(digits, v));
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

/*
 * Formats the status line and headers; every input is bounded, so it fits.
 * False if it did not after all: the head is then a 500 without a body.
 */
static bool format_head(struct http_conn *c, const struct http_app_response *res)
{
    bool ok;

    c->head_len = 0;
    ok = head_append_str(c, "HTTP/1.1 ") && head_append_u64(c, (uint64_t)res->status) &&
         head_append_str(c, " ") && head_append_str(c, status_text(res->status)) &&
         head_append_str(c, "\r\nContent-Type: ") && head_append_str(c, res->content_type) &&
         head_append_str(c, "\r\nContent-Length: ") && head_append_u64(c, res->body_len) &&
         head_append_str(c, "\r\n");
    if (ok && res->allow != NULL)
        ok = head_append_str(c, "Allow: ") && head_append_str(c, res->allow) &&
             head_append_str(c, "\r\n");
    if (ok && c->close_after_write)
        ok = head_append_str(c, "Connection: close\r\n");
    else if (ok && c->parser.msg.version_minor == 0)
        ok = head_append_str(c, "Connection: keep-alive\r\n");
    if (ok)
        ok = head_append_str(c, "\r\n");
    if (!ok) {
        /* Cannot happen with the fixed strings above; fail safe anyway. */
        static const char fallback[] =
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n";
        memcpy(c->head, fallback, sizeof fallback - 1);
        c->head_len = sizeof fallback - 1;
        c->close_after_write = true;
        c->body_len = 0;
    }
    return ok;
}

/*
 * The last head formatted, and what it depends on. Most responses repeat the
 * previous one (same route, same length), so copying it back costs far less
 * than formatting it again. The strings are static, so comparing pointers is
 * enough. One per process: the guests are single-threaded.
 */
static struct {
    int status;
    const char *content_type;
    const char *allow;
    size_t body_len;
    int connection;              /* 0: no Connection field, 1: close, 2: keep-alive */
    size_t head_len;             /* 0: nothing cached yet */
    char head[HTTP_CONN_HEAD_CAP];
} g_last_head;

static void build_head(struct http_conn *c, const struct http_app_response *res)
{
    int connection = c->close_after_write ? 1 : c->parser.msg.version_minor == 0 ? 2 : 0;

    if (g_last_head.head_len != 0 && g_last_head.status == res->status &&
        g_last_head.content_type == res->content_type && g_last_head.allow == res->allow &&
        g_last_head.body_len == res->body_len && g_last_head.connection == connection) {
        memcpy(c->head, g_last_head.head, g_last_head.head_len);
        c->head_len = g_last_head.head_len;
    } else {
        if (!format_head(c, res))
            return; /* the fallback: nothing to cache, and no body */
        g_last_head.status = res->status;
        g_last_head.content_type = res->content_type;
        g_last_head.allow = res->allow;
        g_last_head.body_len = res->body_len;
        g_last_head.connection = connection;
        g_last_head.head_len = c->head_len;
        memcpy(g_last_head.head, c->head, c->head_len);
    }
    c->body = res->body;
    c->body_len = res->head_only ? 0 : res->body_len;
}

static void start_writing(struct http_conn *c)
{
    c->sent = 0;
    c->phase = HTTP_CONN_WRITING;
}

static void respond_to_request(struct http_conn *c)
{
    const struct http_message *m = &c->parser.msg;
    struct http_app_request req;
    struct http_app_response res;

    c->stats->requests++;
    req.method = (const char *)c->buf + m->method.off;
    req.method_len = m->method.len;
    req.path = (const char *)c->buf + m->path.off;
    req.path_len = m->path.len;
    req.body = c->buf + m->body.off;
    req.body_len = m->body.len;
    http_app_handle(&req, c->stats, &res, c->small_body, sizeof c->small_body);

    c->close_after_write = !m->keep_alive;
    c->interim = false;
    build_head(c, &res);
    start_writing(c);
}

/* A protocol error: answer it, then close (the framing can no longer be trusted). */
static void respond_to_error(struct http_conn *c)
{
    struct http_app_response res;
    const char *reason = c->parser.error_reason ? c->parser.error_reason : "bad request";
    size_t n = strlen(reason);

    c->stats->bad_requests++;
    if (n > sizeof c->small_body - 1)
        n = sizeof c->small_body - 1;
    memcpy(c->small_body, reason, n);
    c->small_body[n] = '\n';

    res.status = c->parser.error_status;
    res.content_type = "text/plain; charset=utf-8";
    res.allow = NULL;
    res.body = (const uint8_t *)c->small_body;
    res.body_len = n + 1;
    res.head_only = false;
    c->close_after_write = true;
    c->linger = !c->peer_eof; /* the peer may still be sending what we did not read */
    c->interim = false;
    build_head(c, &res);
    start_writing(c);
}

static void send_continue(struct http_conn *c)
{
    c->head_len = sizeof CONTINUE_RESPONSE - 1;
    memcpy(c->head, CONTINUE_RESPONSE, c->head_len);
    c->body = NULL;
    c->body_len = 0;
    c->interim = true;
    start_writing(c);
}

static bool wants_continue(const struct http_conn *c)
{
    const struct http_message *m = &c->parser.msg;
    return m->expect_continue && !c->continue_sent && m->version_minor >= 1 &&
           http_parser_in_body(&c->parser);
}

/* Feeds the buffered bytes to the parser and acts on the outcome. */
static void advance(struct http_conn *c)
{
    enum http_parse_status st;

    if (c->buf == NULL) {
        /* Nothing buffered yet: only an end of stream can be news. */
        c->phase = c->peer_eof ? HTTP_CONN_CLOSED : HTTP_CONN_READING;
        return;
    }
    st = http_parse(&c->parser, c->buf, &c->len, c->peer_eof);
    switch (st) {
    case HTTP_PARSE_NEED_MORE:
        if (wants_continue(c))
            send_continue(c);
        else
            c->phase = HTTP_CONN_READING;
        break;
    case HTTP_PARSE_DONE:
        respond_to_request(c);
        break;
    case HTTP_PARSE_ERROR:
        respond_to_error(c);
        break;
    case HTTP_PARSE_EOF:
    case HTTP_PARSE_TRUNCATED:
    default:
        /* The peer is gone (mid-request or between requests): just close. */
        c->phase = HTTP_CONN_CLOSED;
        break;
    }
}

void http_conn_on_read(struct http_conn *c, size_t n)
{
    if (c->phase == HTTP_CONN_DRAINING) {
        c->drained += n;
        if (n == 0 || c->drained > HTTP_DRAIN_MAX)
            c->phase = HTTP_CONN_CLOSED;
        return;
    }
    if (c->phase != HTTP_CONN_READING)
        return;
    if (n == 0)
        c->peer_eof = true;
    else
        c->len += n < c->cap - c->len ? n : c->cap - c->len;
    advance(c);
}

size_t http_conn_output(const struct http_conn *c, struct http_iov iov[2])
{
    size_t count = 0, sent = c->sent;

    if (c->phase != HTTP_CONN_WRITING)
        return 0;
    if (sent < c->head_len) {
        iov[count++] = (struct http_iov){(const uint8_t *)c->head + sent, c->head_len - sent};
        sent = 0;
    } else {
        sent -= c->head_len;
    }
    if (c->body_len > sent)
        iov[count++] = (struct http_iov){c->body + sent, c->body_len - sent};
    return count;
}

/* Gives back a buffer that a large request grew, keeping what is buffered. */
static void shrink_buffer(struct http_conn *c)
{
    uint8_t *nb;
    size_t want = HTTP_READ_MIN;

    if (c->cap <= HTTP_SHRINK_ABOVE)
        return;
    if (c->len == 0) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
        return;
    }
    while (want < c->len)
        want *= 2;
    if (want >= c->cap)
        return;
    nb = realloc(c->buf, want);
    if (nb != NULL) {
        c->buf = nb;
        c->cap = want;
    }
}

static void finish_response(struct http_conn *c)
{
    if (c->close_after_write) {
        /* Unread pipelined bytes would make close() send a RST that could
         * destroy the response in flight, so drain them first. */
        if (c->parser.state == HTTP_STATE_DONE && c->len > c->parser.msg_end && !c->peer_eof)
            c->linger = true;
        c->phase = HTTP_CONN_SHUTDOWN;
        return;
    }
    http_parser_next(&c->parser, c->buf, &c->len);
    c->continue_sent = false;
    shrink_buffer(c);
    advance(c); /* a pipelined request may already be complete */
}

void http_conn_on_written(struct http_conn *c, size_t n)
{
    size_t total = c->head_len + c->body_len;

    if (c->phase != HTTP_CONN_WRITING)
        return;
    c->sent += n < total - c->sent ? n : total - c->sent;
    if (c->sent < total)
        return;
    if (c->interim) {
        c->interim = false;
        c->continue_sent = true;
        c->phase = HTTP_CONN_READING;
        return;
    }
    finish_response(c);
}

void http_conn_on_shutdown(struct http_conn *c)
{
    if (c->phase != HTTP_CONN_SHUTDOWN)
        return;
    if (c->linger) {
        c->phase = HTTP_CONN_DRAINING;
        c->drained = 0;
    } else {
        c->phase = HTTP_CONN_CLOSED;
    }
}
